"""
The splicer (epgd.mpegts.splice.continuous): whatever sources and cuts come in, one program comes out.

Inputs are synthetic provider streams (tests/tsgen.py) with the knobs real providers turn;
the output is read back by an independent reader (tests/tsverify.py) and checked for what a
strict demuxer needs: one PMT PID and program, fixed elementary PIDs, no continuity error,
a PCR that never steps back and leaps ahead across a cut no further than the wall clock
moved plus a frame, decode timestamps that only rise, and a random-access point first after
every cut. ffmpeg's own view of a spliced stream is checked in tests/test_splice_e2e.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.entry import latest_entry
from epgd.mpegts.splice.continuous import ContinuousSplicer
from epgd.mpegts.splice.layout import OUT_AUDIO, OUT_OTHER, OUT_PMT, OUT_VIDEO
from epgd.mpegts.splice.timeline import ABSORBED, SOUND_OVERLAP
from tests.tsgen import AC3, MP2, MPEG2, WRAP, Source
from tests.tsverify import Report, read, ring, video_marks

FRAME = 3600
#: examples per property; EPGD_SPLICE_EXAMPLES=2000 for a deeper search on a developer's machine
EXAMPLES = int(os.environ.get("EPGD_SPLICE_EXAMPLES", "60"))


@dataclass
class Piece:
    """One feed's output, where it came from and when."""

    data: bytes
    segment: int
    now: float
    hard: bool = False  # the first feed after a cut with the old source cut short (no close())
    #: the entry of a make-before-break cut that took no real time (the old source finished
    #: its sound, and the wait was absorbed): the sound must run on with a gap under a frame
    seamless: bool = False


def run(sources: list[tuple[Source, int, int]], chunk: int | list[int] = 7, waits: list[float] | None = None,
        side: list[bool] | None = None, splicer: ContinuousSplicer | None = None,
        paced: bool = True, close: bool = True) -> tuple[bytes, list[Piece], ContinuousSplicer]:
    """
    Feed each (source, first frame, frame count) in turn, with a cut between them; ``chunk``
    packets per feed (a list cycles). ``paced``: the wall clock moves with the bytes, as a
    live source sends them; else each segment's feeds happen at one moment (so that any
    chunking must give the same bytes). Each segment starts ``waits`` seconds after the
    previous one ended (the time a cut took). A side entry (``side``) closes the old source
    first, which sends what it finishes meanwhile (``close=False``: it is cut at once).
    """
    splicer = splicer or ContinuousSplicer()
    pieces: list[Piece] = []
    now = 1000.0
    sizes = chunk if isinstance(chunk, list) else [chunk]
    turn = 0
    flowing = 0  # the source the splicer is on (one that showed no way in never was)
    for index, (source, first, count) in enumerate(sources):
        data = source.frames(first, count)
        if index:
            now += count_seconds(sources[index - 1]) + (waits[index - 1] if waits else 0.0)
            if side and side[index - 1]:
                finder = splicer.finder()
                old, old_first, old_count = sources[flowing]
                position = 0
                entry = None
                while entry is None and position < len(data):
                    size = sizes[turn % len(sizes)] * 188
                    turn += 1
                    entry = finder.feed(data[position:position + size])
                    position += size
                if entry is None:
                    continue
                position = min(position, len(data))
                when = now + (position / len(data)) * count_seconds((source, first, count)) if paced else now
                # no real time taken: the old source's bytes came up to the cut (a short old
                # source runs out while the new one is read on the side: a real wait, then)
                last_old = max((p.now for p in pieces if p.segment == flowing and p.data), default=when)
                # make-before-break: the old source finishes what it was sending before the cut
                splicer.close(entry)
                tail = old.frames(old_first + old_count, 6) if close else b""
                ahead = position  # the new source goes on arriving meanwhile, held for the cut
                for at in range(0, len(tail), 188):
                    if splicer.closed:
                        break
                    pieces.append(Piece(splicer.feed(tail[at:at + 188], when), flowing, when))
                    if at % (4 * 188) == 0 and ahead < len(data):
                        splicer.foresee(data[ahead:ahead + 4 * 188])
                        ahead += 4 * 188
                waited = (waits[index - 1] if waits else 0.0) + when - last_old
                finished = splicer.closed and close and waited < ABSORBED / 4
                pieces.append(Piece(splicer.enter(entry, when), index, when, seamless=finished))
                flowing = index
            else:
                splicer.cut()
                pieces.append(Piece(b"", index, now, hard=True))
                position = 0
                flowing = index
        else:
            position = 0
        start = now
        while position < len(data):
            size = sizes[turn % len(sizes)] * 188
            turn += 1
            when = start + (position / len(data)) * count_seconds((source, first, count)) if paced else start
            pieces.append(Piece(splicer.feed(data[position:position + size], when), index, when))
            position += size
    return b"".join(p.data for p in pieces), pieces, splicer


def count_seconds(item: tuple[Source, int, int]) -> float:
    source, _, count = item
    return count * source.frame / 90000


class Invariants:
    """What every continuous output must hold."""

    def _sound_runs_on(self: SynchronousTestCase, report: Report, pieces: list[Piece]) -> None:  # type: ignore[misc]
        """
        SPEC §7.1: at a make-before-break cut that took no real time, each audio stream goes on
        with a gap of at most one audio frame (a tsgen PES is one frame), and no overlap.
        """
        at, begins, seamless, segment = 0, [], set(), None
        for piece in pieces:
            if piece.data and piece.segment != segment:
                if piece.seamless:
                    seamless.add(len(begins))
                begins.append(at)
                segment = piece.segment
            at += len(piece.data) // 188
        begins.append(at)
        for k in sorted(seamless):
            begun, cut, ends = begins[k - 1], begins[k], begins[k + 1]
            for pid in OUT_AUDIO:
                stamps = [(i, pts) for i, pts, _ in report.stamps.get(pid, [])]
                before = [pts for i, pts in stamps if begun <= i < cut]  # of the source just before
                after = [pts for i, pts in stamps if cut <= i < ends]  # ... and just after
                steps = [ring(b, a) for a, b in pairwise(before[-6:]) if ring(b, a) > 0]
                if len(steps) < 2 or not after:
                    continue  # how long its PES last is learned from the steps between them
                frame = min(steps)  # a PES sent twice (a provider's duplicate) is no frame
                gap = ring(after[0], max(before, key=lambda v: ring(v, before[-1])) + frame)
                self.assertGreaterEqual(gap, -SOUND_OVERLAP, f"PID {pid:#x}: the sound overlaps by {-gap} at the cut at {cut}")
                self.assertLessEqual(gap, frame, f"PID {pid:#x}: a gap of {gap} ticks at the cut at {cut}")

    def _shown_in_order(self: SynchronousTestCase, report: Report, pieces: list[Piece]) -> None:  # type: ignore[misc]
        """
        After a cut, nothing of any stream is shown at or before what it showed already (a
        source with B-frames reorders within itself, never across a cut).
        """
        for cut in _boundaries(pieces):
            for pid, stamps in report.stamps.items():
                before = [pts for i, pts, _ in stamps if i < cut]
                after = [pts for i, pts, _ in stamps if i >= cut]
                if not before or not after:
                    continue
                top = max(before, key=lambda v: ring(v, before[-1]))
                first = min(after, key=lambda v: ring(v, after[0]))
                self.assertGreater(ring(first, top), 0, f"PID {pid:#x} shows {first} after {top} at the cut at {cut}")

    def check(self: SynchronousTestCase, out: bytes, pieces: list[Piece], service: int,
              frame: int = FRAME) -> Report:  # type: ignore[misc]
        report = read(out)
        self.assertEqual(report.cc_errors, [])
        self.assertLessEqual(report.pmt_pids, {OUT_PMT})
        self.assertLessEqual(report.programs, {service})
        # one PCR PID, whatever PID each source carried its PCR on (GStreamer's tsdemux reads a
        # new PCR PID as a new program and stops)
        self.assertLessEqual(report.pmt_pcr_pids, {OUT_VIDEO})
        self.assertLessEqual(report.pcr_pids, {OUT_VIDEO})
        allowed = {0, OUT_PMT, OUT_VIDEO, 0x1FFF, *OUT_AUDIO, *OUT_OTHER}
        # audio is cut at whole PES (whole frames): none ends short or has a stray continuation,
        # but where a source was cut short (a provider that dropped), which nothing can mend
        self.assertEqual([m for m in report.pes_mismatches if m[1] in OUT_AUDIO
                          and not _after_hard_cut(report, pieces, m[0], m[1])], [])
        self.assertLessEqual(report.pids, allowed)
        # wall time and segment of every output packet
        when: list[tuple[int, float]] = []
        for piece in pieces:
            when += [(piece.segment, piece.now)] * (len(piece.data) // 188)
        for (i, a), (j, b) in pairwise(report.pcrs):
            step = ring(b, a)
            self.assertGreaterEqual(step, 0, f"PCR steps back at packet {j}")
            if when[i][0] != when[j][0]:  # across a cut
                wall = (when[j][1] - when[i][1]) * 90000
                self.assertLessEqual(step, wall + frame + 1, f"PCR leaps ahead at the cut at {j}")
        for pid, stamps in report.stamps.items():
            decode = [dts if dts is not None else pts for _, pts, dts in stamps]
            for k in range(1, len(decode)):
                step = ring(decode[k], decode[k - 1])
                if pid == OUT_VIDEO:
                    self.assertGreater(step, 0, f"video DTS does not rise at PES {k}")
                else:
                    self.assertGreaterEqual(step, 0, f"PID {pid:#x} steps back at PES {k}")
        self._shown_in_order(report, pieces)
        self._sound_runs_on(report, pieces)
        marks = video_marks(report)
        for k, (marker, rap) in enumerate(marks):
            if k == 0 or marks[k - 1][0] != marker:
                self.assertTrue(rap, f"the first frame of source {marker} is not a key frame")
        return report


def _after_hard_cut(report: Report, pieces: list[Piece], index: int, pid: int) -> bool:
    """Whether packet ``index`` starts the first PES of ``pid`` after a cut with no close()."""
    at, boundaries = 0, []
    for piece in pieces:
        if piece.hard:
            boundaries.append(at)
        at += len(piece.data) // 188
    before = [b for b in boundaries if b <= index]
    if not before:
        return False
    return not any(before[-1] <= i < index for i, _, _ in report.stamps.get(pid, []))


def _boundaries(pieces: list[Piece]) -> list[int]:
    """The output packet index where each segment after the first begins."""
    at, seen, out = 0, None, []
    for piece in pieces:
        if piece.data and seen is not None and piece.segment != seen:
            out.append(at)
        if piece.data:
            seen = piece.segment
        at += len(piece.data) // 188
    return out


class SpliceTests(SynchronousTestCase, Invariants):
    def test_three_sources_become_one_program(self) -> None:
        a = Source(marker=1, service=11, pmt=0x100, video=0x101, audio=(0x102,), clock=1_000_000)
        b = Source(marker=2, service=22, pmt=0x200, video=0x210, audio=(0x220,), clock=7_000_000_000)
        c = Source(marker=3, service=33, pmt=0x40, video=0x41, audio=(0x42,), clock=WRAP - 20 * FRAME)
        out, pieces, splicer = run([(a, 0, 30), (b, 5, 30), (c, 10, 40)])
        report = self.check(out, pieces, service=11)
        self.assertEqual([m for m, _ in video_marks(report)][0], 1)
        self.assertEqual({m for m, _ in video_marks(report)}, {1, 2, 3})
        self.assertEqual(report.pmts, [(report.pmts[0][0], 0, [(0x1B, OUT_VIDEO), (0x0F, 0x101)])])
        self.assertEqual(splicer.codecs, "h264+aac")
        # the timeline runs on through the wrap of source c's clock: one frame per frame
        video = report.decode_stamps(OUT_VIDEO)
        steps = [ring(b, a) for a, b in pairwise(video)]
        self.assertEqual(min(steps), FRAME)
        self.assertLessEqual(max(steps), 2 * FRAME)  # a frame, and the real time a cut took

    def test_any_chunking_gives_the_same_output(self) -> None:
        sources = [
            (Source(marker=1, split_header=True, pcr=0x1F0), 0, 20),
            (Source(marker=2, pmt=0x300, video=0x301, audio=(0x302, 0x303), split_header=True), 4, 25),
        ]
        outputs = set()
        for chunk in (1, 2, 3, 7, 50, [1, 5, 2, 9]):
            fresh = [(Source(**{**vars(s), "counters": {}}), f, n) for s, f, n in sources]
            outputs.add(run(fresh, chunk=chunk, paced=False)[0])
        self.assertEqual(len(outputs), 1)

    def test_joiners_entry_is_our_psi_before_a_key_frame(self) -> None:
        splicer = ContinuousSplicer()
        source = Source(gop=4, psi_every=8)
        data = source.frames(0, 12)
        out = splicer.feed(data, 0.0)
        self.assertEqual(splicer.first_entry, 0)
        entry = splicer.entry
        self.assertGreater(entry, 0)
        tail = read(out[entry:])
        self.assertEqual(out[entry + 1:entry + 3], b"\x40\x00")  # our PAT ...
        self.assertEqual(video_marks(tail)[0], (1, True))  # ... then PMT, then the key frame
        self.assertEqual(len(video_marks(tail)), 4)  # frames 8-11: the last GOP

    def test_audio_before_the_first_key_frame_is_dropped(self) -> None:
        splicer = ContinuousSplicer()
        source = Source(gop=10)
        out = splicer.feed(source.frames(3, 20), 0.0)  # starts mid-GOP
        report = read(out)
        first_video = report.stamps[OUT_VIDEO][0][0]
        first_audio = report.stamps[0x101][0][0]
        self.assertLess(first_video, first_audio)
        self.assertEqual(video_marks(report)[0], (1, True))

    def test_a_wait_moves_the_clock_on_in_real_time(self) -> None:
        a, b = Source(marker=1), Source(marker=2, clock=123456789, pmt=0x500, video=0x501, audio=(0x502,))
        out, pieces, _ = run([(a, 0, 20), (b, 0, 20)], waits=[2.0])
        report = self.check(out, pieces, service=1)
        video = report.decode_stamps(OUT_VIDEO)
        jumps = [ring(y, x) for x, y in pairwise(video) if ring(y, x) != FRAME]
        self.assertEqual(len(jumps), 1)
        self.assertAlmostEqual(jumps[0] / 90000, 2.0 + FRAME / 90000, places=1)

    def test_a_source_with_frames_closer_to_its_clock_keeps_both_rules(self) -> None:
        """Lead 1 s then 0.1 s: DTS still rise and the PCR still takes only the wall clock + a frame."""
        a = Source(marker=1, lead=90000)
        b = Source(marker=2, lead=9000, clock=55_555_555, pmt=0x600, video=0x601, audio=(0x602,))
        out, pieces, _ = run([(a, 0, 25), (b, 0, 25), (Source(marker=3, lead=60000), 0, 20)])
        self.check(out, pieces, service=1)

    def test_pcr_on_its_own_pid_and_several_audio_tracks_and_other_streams(self) -> None:
        a = Source(marker=1, pcr=0x1F0, audio=(0x102, 0x103), subtitles=0x104, scte35=0x105)
        b = Source(marker=2, pmt=0x700, video=0x701, audio=(0x702, 0x703), pcr=0x7F0, subtitles=0x704,
                   scte35=0x705, clock=9_999_999)
        out, pieces, splicer = run([(a, 0, 40), (b, 2, 40)])
        report = self.check(out, pieces, service=1)
        self.assertEqual(report.pmts[0][2], [(0x1B, 0x100), (0x0F, 0x101), (0x0F, 0x102), (0x06, 0x110),
                                             (0x86, 0x111)])
        self.assertTrue({0x101, 0x102, 0x110, 0x111} <= report.pids)
        self.assertGreater(len(report.pcrs), 20)  # their PCR PIDs' PCRs, on the video's PID
        self.assertEqual(splicer.codecs, "h264+aac+aac+dvbsub+scte35")
        self.assertGreater(len(report.stamps[0x110]), 2)  # subtitles are restamped with the rest

    def test_scte35_sections_pass_untouched(self) -> None:
        a = Source(scte35=0x105)
        out = ContinuousSplicer().feed(a.frames(0, 30), 0.0)
        cue = [out[i + 4:i + 188] for i in range(0, len(out), 188)
               if ((out[i + 1] & 0x1F) << 8 | out[i + 2]) == 0x110]
        self.assertTrue(cue)
        self.assertTrue(all(b"cue" in payload for payload in cue))

    def test_scrambled_packets_pass_unshifted_and_are_noted_once(self) -> None:
        splicer = ContinuousSplicer()
        a, b = Source(marker=1), Source(marker=2, scramble_every=4, clock=7777777, pmt=0x800, video=0x801,
                                        audio=(0x802,))
        run([(a, 0, 20), (b, 0, 30)], splicer=splicer)
        self.assertEqual(splicer.notes, ["scrambled packets: passed on without shifting their timestamps"])

    def test_damaged_adaptation_only_and_duplicate_packets(self) -> None:
        a = Source(marker=1, damage_every=3, adaptation_only_every=4, duplicate_every=5)
        b = Source(marker=2, damage_every=3, adaptation_only_every=4, duplicate_every=5, pmt=0x900,
                   video=0x901, audio=(0x902,), clock=66666)
        out, pieces, _ = run([(a, 0, 30), (b, 1, 30)])
        report = self.check(out, pieces, service=1)
        self.assertGreater(report.damaged, 0)  # passed on, not parsed

    def test_a_source_without_video(self) -> None:
        radio = Source(marker=1, video=None, audio=(0x102,))
        tv = Source(marker=2, pmt=0x200, video=0x201, audio=(0x202,), clock=5_000_000)
        out, pieces, splicer = run([(radio, 0, 20), (tv, 0, 20), (Source(marker=3, video=None), 0, 20)])
        report = self.check(out, pieces, service=1)
        self.assertIn(OUT_VIDEO, report.pids)
        audio = report.decode_stamps(0x101)
        self.assertTrue(all(ring(b, a) > 0 for a, b in pairwise(audio)))

    def test_pmt_change_mid_source_is_a_new_version_and_a_codec_change(self) -> None:
        changes: list[tuple[str, str]] = []
        splicer = ContinuousSplicer(on_codecs=lambda old, new: changes.append((old, new)))
        out = splicer.feed(Source(pmt_change_at=10).frames(0, 20), 0.0)
        report = read(out)
        self.assertEqual([v for _, v, _ in report.pmts], [0, 1])
        self.assertEqual(report.pmts[1][2], [(0x1B, 0x100), (0x0F, 0x101), (0x0F, 0x102)])
        self.assertEqual(changes, [("h264+aac", "h264+aac+aac")])
        self.assertGreater(len(report.stamps[0x102]), 5)

    def test_codec_change_at_a_cut(self) -> None:
        changes: list[tuple[str, str]] = []
        splicer = ContinuousSplicer(on_codecs=lambda old, new: changes.append((old, new)))
        a = Source(marker=1)
        b = Source(marker=2, video_type=MPEG2, audio_type=MP2, pmt=0x300, video=0x301, audio=(0x302,))
        c = Source(marker=3, audio_type=AC3)
        out, pieces, _ = run([(a, 0, 20), (b, 0, 20), (c, 0, 20)], splicer=splicer)
        report = self.check(out, pieces, service=1)
        self.assertEqual(changes, [("h264+aac", "mpeg2+mp2"), ("mpeg2+mp2", "h264+ac3")])
        self.assertEqual([v for _, v, _ in report.pmts], [0, 1, 2])

    def test_a_pid_per_codec_keeps_each_codec_on_its_own_pid(self) -> None:
        """
        ``on_codec_change = "new_pid"``: a reader that kept the streams it probed first (ffmpeg
        -c copy, mpv) never gets MPEG-2 bytes on its H.264 PID; the PCR PID stays put.
        """
        a = Source(marker=1)
        b = Source(marker=2, video_type=MPEG2, audio_type=MP2, pmt=0x300, video=0x301, audio=(0x302,))
        out, _, _ = run([(a, 0, 20), (b, 0, 20), (Source(marker=3, counters={}), 0, 20)],
                        splicer=ContinuousSplicer(pid_per_codec=True))
        report = read(out)
        self.assertEqual([streams for _, _, streams in report.pmts],
                         [[(0x1B, 0x100), (0x0F, 0x101)], [(0x02, 0x120), (0x03, 0x121)],
                          [(0x1B, 0x100), (0x0F, 0x101)]])
        self.assertEqual((report.pcr_pids, report.pmt_pcr_pids), ({OUT_VIDEO}, {OUT_VIDEO}))
        self.assertEqual(report.cc_errors, [])
        self.assertEqual((len(report.decode_stamps(0x100)), len(report.decode_stamps(0x120))), (40, 20))
        video = report.decode_stamps(0x100)
        self.assertTrue(all(ring(b, a) > 0 for a, b in pairwise(video)))

    def test_a_clock_jump_inside_a_source_is_re_entered(self) -> None:
        """A provider looping a file: its clock jumps back; ours runs on."""
        splicer = ContinuousSplicer()
        source = Source()
        looped = source.frames(0, 20) + Source(counters=dict(source.counters)).frames(0, 20)
        out = splicer.feed(looped, 0.0)
        report = read(out)
        self.assertEqual(report.cc_errors, [])
        video = report.decode_stamps(OUT_VIDEO)
        self.assertTrue(all(ring(b, a) > 0 for a, b in pairwise(video)))
        self.assertEqual(len(video), 40)
        self.assertEqual(splicer.notes, ["the source's clock jumped: re-entered it at its next key frame"])

    def test_side_entry_and_self_entry_agree(self) -> None:
        items = [(Source(marker=1), 0, 20), (Source(marker=2, pmt=0x400, video=0x401, audio=(0x402,)), 2, 20)]
        side = run([(Source(**{**vars(s), "counters": {}}), f, n) for s, f, n in items], side=[True],
                   paced=False, close=False)[0]
        own = run([(Source(**{**vars(s), "counters": {}}), f, n) for s, f, n in items], side=[False],
                  paced=False)[0]
        self.assertEqual(side, own)


    def test_close_ends_the_old_source_after_its_last_whole_frame(self) -> None:
        splicer = ContinuousSplicer()
        a = Source(marker=1)
        before = splicer.feed(a.frames(0, 10), 0.0)
        splicer.close()
        self.assertFalse(splicer.closed)  # frame 9 is not known to be whole yet
        after = splicer.feed(a.frames(10, 3), 0.4)
        self.assertTrue(splicer.closed)
        self.assertEqual(len(video_marks(read(before + after))), 10)  # frames 0-9, none begun after
        self.assertEqual(read(before + after).cc_errors, [])
        self.assertEqual(splicer.feed(a.frames(13, 3), 0.5), b"")
        b = Source(marker=2, pmt=0x300, video=0x301, audio=(0x302,), clock=5_000_000)
        splicer.cut()
        self.assertFalse(splicer.closed)
        rest = splicer.feed(b.frames(0, 10), 1.0)
        self.assertEqual({m for m, _ in video_marks(read(rest))}, {2})
        self.assertEqual(read(before + after + rest).cc_errors, [])

    def test_a_switch_enters_at_a_key_frame_where_every_picture_has_an_sps(self) -> None:
        """
        As a channel switches: the new source's entry, then the latest key frame of what it sent
        while the old one closed (``latest_entry``). An SPS before every picture (some encoders,
        eac3-first-h264-720p25.ts) is no key frame: entering at a P-picture after it would lose
        everything up to the next key frame.
        """
        splicer = ContinuousSplicer()
        a = Source(marker=1)
        b = Source(marker=2, pmt=0x300, video=0x301, audio=(0x302,), clock=5_000_000, gop=10,
                   sps_every_frame=True)
        before = splicer.feed(a.frames(0, 10), 0.0)
        incoming = b.frames(0, 6)
        entry = splicer.finder().feed(incoming[:188 * 8])
        assert entry is not None
        splicer.close(entry)
        after = splicer.feed(a.frames(10, 3), 0.4)
        self.assertTrue(splicer.closed)
        rest = splicer.enter(latest_entry(entry, incoming[188 * 8:]), 0.4)
        marks = video_marks(read(before + after + rest))
        new = [rap for marker, rap in marks if marker == 2]
        self.assertEqual(new, [True, False, False, False, False, False])  # from its key frame, all six

    def test_close_with_nothing_flowing_is_closed_at_once(self) -> None:
        fresh = ContinuousSplicer()
        fresh.close()
        self.assertTrue(fresh.closed)
        entering = ContinuousSplicer()
        entering.feed(Source().frames(0, 10), 0.0)
        entering.cut()
        self.assertTrue(entering.entering)
        entering.close()
        self.assertTrue(entering.closed)


@st.composite
def sources(draw: st.DrawFn) -> list[tuple[Source, int, int]]:
    out = []
    for marker in range(1, draw(st.integers(2, 5)) + 1):
        base = draw(st.sampled_from([0x100, 0x200, 0x300, 0x400, 0x1000, 0x40]))
        video = draw(st.booleans()) or marker == 1
        near_wrap = draw(st.booleans())
        gop = draw(st.integers(1, 8))
        source = Source(
            marker=marker,
            service=draw(st.integers(1, 0xFFFF)),
            tsid=draw(st.integers(0, 0xFFFF)),
            pmt=base,
            video=base + 1 if video else None,
            audio=tuple(base + 2 + k for k in range(draw(st.integers(1, 2)))),
            pcr=base + 0x20 if draw(st.booleans()) else None,
            clock=WRAP - draw(st.integers(0, 40)) * FRAME if near_wrap else draw(st.integers(0, WRAP - 1)),
            lead=draw(st.integers(9000, 90000)),
            gop=gop,
            psi_every=draw(st.integers(1, gop)),
            video_packets=draw(st.integers(1, 4)),
            split_header=draw(st.booleans()),
            duplicate_every=draw(st.sampled_from([0, 3])),
            adaptation_only_every=draw(st.sampled_from([0, 4])),
            audio_split=draw(st.booleans()),
            b_frames=draw(st.booleans()),
        )
        out.append((source, draw(st.integers(0, 10)), draw(st.integers(gop + 1, 30))))
    return out


@st.composite
def pictures(draw: st.DrawFn) -> list[tuple[Source, int, int]]:
    """
    Sources with video, each muxing its sound its own way against its pictures (from a frame
    before its picture's decode time to two after), and carrying both well ahead of its clock,
    as muxers that keep a decoder's buffers fed do (0.3 s or more).
    """
    out = []
    for marker in range(1, draw(st.integers(2, 4)) + 1):
        base = draw(st.sampled_from([0x100, 0x200, 0x300]))
        gop = draw(st.integers(1, 6))
        source = Source(marker=marker, pmt=base, video=base + 1, audio=(base + 2,),
                        pcr=base + 0x20 if draw(st.booleans()) else None,
                        clock=draw(st.integers(0, WRAP - 1)), lead=draw(st.integers(27000, 90000)),
                        gop=gop, psi_every=draw(st.integers(1, gop)), b_frames=draw(st.booleans()),
                        audio_shift=draw(st.integers(-FRAME, 2 * FRAME)))
        out.append((source, draw(st.integers(0, 10)), draw(st.integers(gop + 1, 20))))
    return out


class SpliceProperties(SynchronousTestCase, Invariants):
    def assertNoFrameLate(self, report: Report) -> None:
        """Every frame reaches the decoder before its time: its DTS (else PTS) at or past the PCR then."""
        pcrs = report.pcrs
        for pid, stamps in report.stamps.items():
            for index, pts, dts in stamps:
                before = [pcr for i, pcr in pcrs if i < index]
                if before:
                    due = dts if dts is not None else pts
                    self.assertGreaterEqual(ring(due, before[-1]), 0, f"PID {pid:#x}: a frame late at packet {index}")

    def test_a_wait_the_frames_absorb_the_clock_absorbs_too(self) -> None:
        """
        A cut that took just under ABSORBED when the new source's frames were placed, and past
        it when its first PCR went out (a PCR on a PID of its own comes a few packets later):
        the PCR moved on by the whole wait and the frames did not, so every frame of the new
        source reached players 0.7 s late, and the next cut left a gap as long.
        """
        audio = dict(audio=(258,), audio_type=MP2, lead=9000, psi_every=1)
        items = [(Source(marker=1, video=257, gop=1, **audio), 0, 2),
                 (Source(marker=2, video=None, gop=1, **audio), 0, 2),
                 (Source(marker=3, video=None, gop=1, **audio), 0, 2),
                 (Source(marker=4, video=257, pcr=288, gop=4, **audio), 2, 5),
                 (Source(marker=5, video=None, gop=1, **audio), 0, 2)]
        out, pieces, _ = run(items, chunk=[1], waits=[0.0, 0.0, 0.625, 0.0], side=[False, False, False, True])
        report = self.check(out, pieces, service=1)
        self.assertNoFrameLate(report)

    def test_frames_keep_their_lead_after_a_source_without_video(self) -> None:
        """
        How far the old frames ran ahead of the clock is read from the stream sent last: after
        two sound-only sources the video's last stamp is long stale, and read from it the new
        source's frames got no lead at all over a PCR that moved on in real time (late sound).
        """
        audio = dict(audio=(258,), audio_type=MP2, lead=9000, psi_every=1)
        items = [(Source(marker=1, video=257, gop=1, **audio), 0, 2),
                 (Source(marker=2, video=None, gop=1, **audio), 0, 2),
                 (Source(marker=3, video=None, gop=1, **audio), 0, 2),
                 (Source(marker=4, video=257, pcr=288, gop=2, split_header=True, video_packets=2, **audio), 1, 3),
                 (Source(marker=5, video=None, gop=1, **audio), 0, 2)]
        out, pieces, _ = run(items, chunk=[15], waits=[0.0, 0.0, 1.0, 0.0], side=[False, False, False, True])
        report = self.check(out, pieces, service=1)
        self.assertNoFrameLate(report)

    def test_the_old_sound_runs_on_to_where_the_new_sound_begins(self) -> None:
        """
        The new source muxes its sound after its pictures (its first sound after its key frame
        starts well after that frame is shown): the old source's sound runs on until then.
        """
        for late in (FRAME + 92, 2 * FRAME - 1):
            old = Source(marker=1, clock=0, lead=27000, gop=1, psi_every=1, audio_shift=91)
            new = Source(marker=2, clock=0, lead=27000, gop=1, psi_every=1, audio_shift=late)
            out, pieces, _ = run([(old, 0, 3), (new, 0, 2)], chunk=1, side=[True])
            self.assertEqual([p.seamless for p in pieces if p.seamless], [True])
            self.check(out, pieces, service=1)  # a gap of at most one audio frame at the cut

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(items=pictures(), chunk=st.lists(st.integers(1, 40), min_size=1, max_size=5))
    def test_make_before_break_switches_keep_the_sound_going(self, items: list[tuple[Source, int, int]],
                                                               chunk: list[int]) -> None:
        """SPEC §7.1: a gap of at most one audio frame at each cut, however each source muxes its sound."""
        out, pieces, _ = run(items, chunk=chunk, side=[True] * 5)
        assume(any(p.seamless for p in pieces))  # a source may show no way in within its frames
        self.check(out, pieces, service=items[0][0].service)

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(items=sources(), chunk=st.lists(st.integers(1, 40), min_size=1, max_size=5),
           waits=st.lists(st.floats(0, 3), min_size=5, max_size=5),
           side=st.lists(st.booleans(), min_size=5, max_size=5))
    def test_any_sources_and_cuts_keep_one_program(self, items: list[tuple[Source, int, int]], chunk: list[int],
                                                   waits: list[float], side: list[bool]) -> None:
        out, pieces, _ = run(items, chunk=chunk, waits=waits, side=side)
        first = next((p.segment for p in pieces if p.data), 0)  # a source may never find a way in
        self.check(out, pieces, service=items[first][0].service)

    @settings(max_examples=max(1, EXAMPLES * 2 // 3), deadline=None)
    @given(items=sources(), chunks=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=4),
                                            min_size=2, max_size=2))
    def test_any_chunking_gives_the_same_output(self, items: list[tuple[Source, int, int]],
                                                chunks: list[list[int]]) -> None:
        outputs = [run([(Source(**{**vars(s), "counters": {}}), f, n) for s, f, n in items], chunk=c,
                       paced=False)[0] for c in chunks]
        self.assertEqual(outputs[0], outputs[1])
