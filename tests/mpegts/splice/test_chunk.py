"""
The splicer's hot path (epgd.mpegts.splice.chunk): a chunk of the current source onto the
output — plain packets rewritten in place and passed on in one piece, our PAT + PMT put right
before the next packet out, joiners' places counted in output bytes, a chunk that ends inside
a PES header held for the next one, a mid-chunk table change continuing with the new table,
and the steady state's fast path giving, byte for byte, what the per-packet handlers give.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.entry import Entry, EntryFinder
from epgd.mpegts.splice import steady
from epgd.mpegts.splice.chunk import rewrite
from epgd.mpegts.splice.continuous import ContinuousSplicer
from epgd.mpegts.splice.layout import OUT_PMT, OUT_VIDEO, OutputProgram
from epgd.mpegts.splice.rewrite import Rewriter, Verdict
from tests.mpegts.splice.test_continuous import EXAMPLES, run, sources
from tests.tsgen import MP2, MPEG2, Source
from tests.tsverify import read, video_marks


def pid_of(data: bytes, p: int) -> int:
    return ((data[p + 1] & 0x1F) << 8) | data[p + 2]


def begun(source: Source, first: int = 0, count: int = 10) -> tuple[Rewriter, Entry, list[str]]:
    """A rewriter that has begun ``source`` at its first entry in frames ``first``.."""
    entry = EntryFinder().feed(source.frames(first, count))
    assert entry is not None
    notes: list[str] = []
    rw = Rewriter(OutputProgram(), notes.append)
    rw.begin(entry)
    return rw, entry, notes


class ChunkTests(SynchronousTestCase):
    def test_plain_packets_come_out_rewritten_in_one_piece(self) -> None:
        source = Source(gop=100, psi_every=100, video_packets=5)
        rw, entry, _ = begun(source)
        self.assertTrue(rewrite(rw, entry.data, 0.0).data)
        frame = source.frames(10, 1)
        plain = b"".join(frame[p:p + 188] for p in range(0, len(frame), 188)
                         if pid_of(frame, p) == source.video and not frame[p + 1] & 0x40 and not frame[p + 3] & 0x20)
        self.assertGreater(len(plain), 188)
        out = rewrite(rw, plain, 0.4)
        self.assertEqual((len(out.pieces), out.stopped, out.entry, out.first_entry), (1, None, -1, -1))
        self.assertEqual(len(out.data), len(plain))
        self.assertEqual({pid_of(out.data, p) for p in range(0, len(plain), 188)}, {OUT_VIDEO})
        shifts = set()
        for p in range(0, len(plain), 188):  # only the PID and counter bytes change
            self.assertEqual(out.data[p + 4:p + 188], plain[p + 4:p + 188])
            self.assertEqual(out.data[p + 3] & 0xF0, plain[p + 3] & 0xF0)
            shifts.add((out.data[p + 3] - plain[p + 3]) & 0x0F)
        self.assertEqual(len(shifts), 1)  # one counter shift for the whole source

    def test_our_psi_goes_right_before_each_key_frame_where_joiners_start(self) -> None:
        source = Source(gop=4, psi_every=4, pmt=0x500, video=0x501, audio=(0x502,))
        rw, entry, _ = begun(source, count=13)  # key frames at 0, 4, 8, 12
        out = rewrite(rw, entry.data, 0.0)
        data = out.data
        ours = [p for p in range(0, len(data), 188) if data[p + 1:p + 3] == b"\x40\x00"]
        self.assertEqual(len(ours), 4)
        self.assertEqual((out.first_entry, out.entry), (ours[0], ours[-1]))
        for p in ours:
            self.assertEqual(pid_of(data, p + 188), OUT_PMT)
            self.assertEqual(video_marks(read(data[p:]))[0], (1, True))  # then the key frame
        self.assertNotIn(source.pmt, {pid_of(data, p) for p in range(0, len(data), 188)})  # theirs are gone

    def test_a_pes_header_cut_by_the_chunk_end_is_held(self) -> None:
        source = Source(split_header=True, gop=100, psi_every=100)
        rw, entry, _ = begun(source)
        rewrite(rw, entry.data, 0.0)
        frame = source.frames(10, 1)
        start = next(p for p in range(0, len(frame), 188)
                     if pid_of(frame, p) == source.video and frame[p + 1] & 0x40)
        out = rewrite(rw, frame[:start + 188], 0.4)  # its header goes on in the next packet
        self.assertIs(out.stopped, Verdict.HOLD)
        self.assertEqual(out.rest, frame[start:start + 188])
        self.assertEqual(len(out.data), start)
        rest = rewrite(rw, out.rest + frame[start + 188:], 0.4)
        self.assertIsNone(rest.stopped)
        self.assertEqual(len(out.data) + len(rest.data), len(frame))

    def test_a_table_change_mid_chunk_gives_what_packet_by_packet_gives(self) -> None:
        """Each stream's first PES changes the table (its plain packets go fast from there)."""
        source = Source(audio=(0x102, 0x103), subtitles=0x104, gop=3)
        whole = begun(source, count=12)
        one = begun(Source(**{**vars(source), "counters": {}}), count=12)
        self.assertEqual(whole[1], one[1])
        at_once = rewrite(whole[0], whole[1].data, 0.0).data
        parts = []
        entry = one[1].data
        for p in range(0, len(entry), 188):
            parts.append(rewrite(one[0], entry[p:p + 188], 0.0).data)
        self.assertEqual(at_once, b"".join(parts))
        self.assertEqual(read(at_once).cc_errors, [])
        self.assertEqual(len(read(at_once).stamps[0x102]), 12)  # the second audio track went out whole

    def test_our_psi_due_at_a_chunk_end_goes_before_the_next_chunk_s_first_packet(self) -> None:
        """
        A broadcast capture sends its PAT between two packets of a picture: where a chunk ends
        right after it, ours still go right before the next packet out, as in one chunk.
        """
        clip = (Path(__file__).parents[2] / "data" / "ts" / "real" / "mpeg2-576i25-mp2.ts").read_bytes()
        cut = 524 * 188  # after its PAT at packet 523, a plain video packet
        self.assertEqual((pid_of(clip, cut - 188), pid_of(clip, cut), clip[cut + 1] & 0x40), (0, 0x1000, 0))
        whole = ContinuousSplicer().feed(clip, 0.0)
        splicer = ContinuousSplicer()
        self.assertEqual(splicer.feed(clip[:cut], 0.0) + splicer.feed(clip[cut:], 0.0), whole)


#: an H.264 source, an MPEG-2 one (on PIDs of its own with a PID per codec), H.264 again
SWITCHES = [(Source(marker=1), 0, 12), (Source(marker=2, pmt=0x300, video=0x301, audio=(0x302,)), 0, 30),
            (Source(marker=3, pmt=0x400, video=0x401, audio=(0x402,)), 0, 12)]


class SteadyPathTests(SynchronousTestCase):
    @settings(max_examples=EXAMPLES, deadline=None)
    @example(items=SWITCHES, chunks=[7], side=[True] * 5, damage=0, scramble=0,
             codecs=[False, True, False, False, False], per_codec=True)
    @given(items=sources(), chunks=st.lists(st.integers(1, 40), min_size=1, max_size=4),
           side=st.lists(st.booleans(), min_size=5, max_size=5), damage=st.sampled_from([0, 3, 7]),
           scramble=st.sampled_from([0, 4]), codecs=st.lists(st.booleans(), min_size=5, max_size=5),
           per_codec=st.booleans())
    def test_the_steady_path_gives_what_the_handlers_give(self, items: list[tuple[Source, int, int]],
                                                          chunks: list[int], side: list[bool], damage: int,
                                                          scramble: int, codecs: list[bool], per_codec: bool) -> None:
        """
        Any sources (some damaged, scrambled, of other codecs) and cuts, with a PID per codec or
        not, restamped in the steady state or each packet by its handler: the same bytes.
        """
        items = [(Source(**{**vars(s), "counters": {}, "damage_every": damage if n % 2 else 0,
                            "scramble_every": scramble if n % 3 == 1 else 0,
                            **({"video_type": MPEG2, "audio_type": MP2} if codecs[n] else {})}), f, c)
                 for n, (s, f, c) in enumerate(items)]

        def spliced() -> tuple[bytes, dict[str, object]]:
            fresh = [(Source(**{**vars(s), "counters": {}}), f, c) for s, f, c in items]
            out, _, splicer = run(fresh, chunk=chunks, side=side, splicer=ContinuousSplicer(pid_per_codec=per_codec))
            rw = splicer._rewriter
            # what the next cut reads: the clock, the counters, the sound under way
            return out, {**vars(rw.timeline), "cc": rw.cc, "pes_left": rw.pes_left, "frames": rw.frames_seen}

        fast = spliced()
        self.patch(steady.Steady, "of", classmethod(lambda cls, rw, data, buf, now: None))
        self.assertEqual(fast, spliced())
