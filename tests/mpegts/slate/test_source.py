"""
The slate as a live TS source: what ffmpeg and ffprobe make of it, and the rules a strict
demuxer holds a provider to (continuity, PCR spacing, exact PTS steps, audio and video in step,
PAT/PMT before every key frame), read back with the splicer tests' independent reader.
"""

from __future__ import annotations

import random
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.slate.h264 import Geometry, p_access_unit
from epgd.mpegts.slate.picture import SIZES, render
from epgd.mpegts.slate.source import MAX_RATE, MAX_SPREAD, SlateSource, prepare
from epgd.mpegts.splice.continuous import ContinuousSplicer
from tests import tsverify
from tests.mpegts.slate import ff
from tests.mpegts.slate.test_h264 import LONG, cropped_frame
from tests.mpegts.slate.test_picture import TYPICAL

DATA = Path(__file__).parents[2] / "data" / "ts"
NEW = ["101  NHL PPV 1", "Up next: Oilers vs Flames", "Today 21:30 · in 3 h 50 min"]
WORST = LONG


def run(source: SlateSource, seconds: float, step: float = 0.04, start: float = 0.0) -> bytes:
    """What a timer calling ``packets_until`` every ``step`` s collects from ``start`` to ``seconds``."""
    out = []
    ticks = int(round((seconds - start) / step))
    for k in range(1, ticks + 1):
        out.append(source.packets_until(start + k * step))
    return b"".join(out)


def packets(data: bytes) -> list[bytes]:
    return [data[i:i + 188] for i in range(0, len(data), 188)]


def pid_of(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def payload(packet: bytes) -> bytes:
    start = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
    return packet[start:]


def random_access(packet: bytes) -> bool:
    return bool(packet[3] & 0x20 and packet[4] and packet[5] & 0x40)


def access_units(data: bytes, pid: int = 0x100) -> list[tuple[int, bytes]]:
    """(packet index of its start, elementary stream bytes) of each PES of ``pid``."""
    units: list[tuple[int, bytearray]] = []
    for index, packet in enumerate(packets(data)):
        if pid_of(packet) != pid:
            continue
        body = payload(packet)
        if packet[1] & 0x40:
            units.append((index, bytearray(body[9 + body[8]:])))
        elif units:
            units[-1][1].extend(body)
    return [(index, bytes(unit)) for index, unit in units]


def is_idr(unit: bytes) -> bool:
    return b"\x00\x00\x00\x01\x65" in unit


class DecodeTests(SynchronousTestCase):
    def test_every_size_decodes_clean(self) -> None:
        """6 s at each size (two key frames): ffmpeg reads and decodes all of it with no error line."""
        for size in SIZES:
            data = run(SlateSource(size, TYPICAL), 6.0)
            self.assertEqual(ff.errors(data, "mpegts"), "", size)

    def test_first_picture_is_the_slate_exactly(self) -> None:
        """Through the TS layer too, the first decoded frame is the picture, sample for sample."""
        source = SlateSource("960x540", TYPICAL)
        frame = ff.decode(run(source, 1.0), "mpegts", frames=1)
        self.assertTrue(frame == cropped_frame(source.key.picture))

    def test_probed_as_one_program_h264_and_aac(self) -> None:
        """ffprobe: one program; H.264 25 fps on 0x100, AAC LC 48 kHz stereo on 0x101."""
        found = ff.probe(run(SlateSource("1280x720", TYPICAL), 3.0), "mpegts")
        self.assertEqual(len(found["programs"]), 1)
        streams = {s["id"]: s for s in found["streams"]}
        self.assertEqual(set(streams), {"0x100", "0x101"})
        video, audio = streams["0x100"], streams["0x101"]
        self.assertEqual((video["codec_name"], video["width"], video["height"], video["r_frame_rate"],
                          video["avg_frame_rate"]), ("h264", 1280, 720, "25/1", "25/1"))
        self.assertEqual((audio["codec_name"], audio["profile"], audio["sample_rate"], audio["channels"]),
                         ("aac", "LC", "48000", 2))


class ClockTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.source = SlateSource("1280x720", TYPICAL)
        self.data = run(self.source, 60.0, step=0.1)
        self.report = tsverify.read(self.data)

    def test_continuity_counters_run_on(self) -> None:
        self.assertEqual(self.report.cc_errors, [])
        self.assertEqual(self.report.pids, {0, 0x1000, 0x100, 0x101})

    def test_pcr_every_40_ms_never_backwards(self) -> None:
        pcrs = [base for _, base in self.report.pcrs]
        steps = [tsverify.ring(b, a) for a, b in zip(pcrs, pcrs[1:], strict=False)]
        self.assertGreaterEqual(min(steps), 0)
        self.assertLessEqual(max(steps), 3600)
        self.assertGreaterEqual(tsverify.ring(pcrs[-1], pcrs[0]), 59 * 90000)

    def test_timestamps_step_exactly(self) -> None:
        """A frame every 3600 ticks, an AAC frame every 1920 (1024 samples at 48 kHz), none missing."""
        video = self.report.decode_stamps(0x100)
        audio = self.report.decode_stamps(0x101)
        self.assertEqual({tsverify.ring(b, a) for a, b in zip(video, video[1:], strict=False)}, {3600})
        self.assertEqual({tsverify.ring(b, a) for a, b in zip(audio, audio[1:], strict=False)}, {1920})

    def test_audio_and_video_in_step_for_a_minute(self) -> None:
        """
        They start together, every timestamp is the start plus whole frames (no drift), and
        after 60 s the media sent of each ends within a frame of the other's (video may run up
        to an IDR's sending window ahead, its frames going out before the IDR's).
        """
        video = self.report.decode_stamps(0x100)
        audio = self.report.decode_stamps(0x101)
        self.assertEqual(video[0], audio[0])
        self.assertEqual(video, [video[0] + 3600 * k for k in range(len(video))])
        self.assertEqual(audio, [audio[0] + 1920 * j for j in range(len(audio))])
        self.assertEqual(len(video), 60 * 25 - self.source.first_frame + 1)  # every frame due by 60 s
        ahead = tsverify.ring(video[-1] + 3600, audio[-1] + 1920)
        self.assertTrue(-1920 < ahead <= 3600 + MAX_SPREAD, ahead)

    def test_every_frame_arrives_before_it_is_shown(self) -> None:
        """Each PES's PTS is after the PCR sent before it (a decoder has it in time), by at most 1 s."""
        pcrs = self.report.pcrs
        at = 0
        for pid in (0x100, 0x101):
            at = 0
            for index, pts, _ in self.report.stamps[pid]:
                while at + 1 < len(pcrs) and pcrs[at + 1][0] < index:
                    at += 1
                if pcrs[at][0] < index:
                    lead = tsverify.ring(pts, pcrs[at][1])
                    self.assertTrue(0 < lead <= 90000, (pid, index, lead))

    def test_key_frames_every_5_s_after_pat_and_pmt(self) -> None:
        """An IDR with random_access_indicator every 5 s, each right after a PAT and the PMT; the stream starts so."""
        all_packets = packets(self.data)
        units = access_units(self.data)
        starts = [index for index, unit in units if is_idr(unit)]
        self.assertEqual(starts[0], 2)
        self.assertGreaterEqual(len(starts), 12)
        frames = [n for n, (_, unit) in enumerate(units) if is_idr(unit)]
        self.assertEqual({b - a for a, b in zip(frames, frames[1:], strict=False)}, {125})
        for index in starts:
            self.assertEqual([pid_of(p) for p in all_packets[index - 2:index]], [0, 0x1000])
            self.assertTrue(random_access(all_packets[index]))
        self.assertFalse(any(random_access(p) for n, p in enumerate(all_packets) if n not in starts))

    def test_pat_and_pmt_twice_a_second(self) -> None:
        """PSI at least every 0.4 s (ETSI TR 101 290 allows 0.5 s), measured on the PCR clock."""
        pat_positions = [n for n, p in enumerate(packets(self.data)) if pid_of(p) == 0]
        pcr_at = {index: base for index, base in self.report.pcrs}
        times = []
        for n in pat_positions:
            later = next(i for i in range(n, n + 400) if i in pcr_at)
            times.append(pcr_at[later])
        self.assertLessEqual(max(b - a for a, b in zip(times, times[1:], strict=False)), 36000)

    def test_key_frame_sent_over_time_not_in_a_burst(self) -> None:
        """
        In any 40 ms of PCR time the stream carries at most ~13 Mbit/s at 720p (an IDR spread
        over its window, within level 3.1's 16.8 Mbit/s T-STD input rate), not 146 KB at once.
        """
        pcrs = self.report.pcrs
        worst = 0.0
        j = 0
        for index, base in pcrs:
            while j < len(pcrs) and pcrs[j][1] - base < 3600:
                j += 1
            if j == len(pcrs):
                break
            worst = max(worst, (pcrs[j][0] - index) * 188 * 8 / ((pcrs[j][1] - base) / 90000))
        self.assertLess(worst, 13e6)


class CallingTests(SynchronousTestCase):
    def test_any_timer_gives_the_same_stream(self) -> None:
        """Called every 40 ms, every 100 ms or at random moments: the same bytes, whole packets each time."""
        every_40 = run(SlateSource("640x360", TYPICAL), 12.0, step=0.04)
        every_100 = run(SlateSource("640x360", TYPICAL), 12.0, step=0.1)
        source = SlateSource("640x360", TYPICAL)
        rng = random.Random(7)
        t, parts = 0.0, []
        while t < 12.0:
            t = min(12.0, t + rng.uniform(0.0, 0.3))
            part = source.packets_until(t)
            self.assertEqual(len(part) % 188, 0)
            parts.append(part)
        self.assertEqual(source.packets_until(3.0), b"")  # the past gives nothing again
        self.assertEqual(every_40, every_100)
        self.assertEqual(every_40, b"".join(parts))

    def test_clock_wraps_modulo_2_33(self) -> None:
        """Started 2 s before the 33-bit wrap: steps stay exact across it and ffmpeg sees no error."""
        source = SlateSource("640x360", TYPICAL, clock=(1 << 33) - 2 * 90000)
        data = run(source, 6.0)
        report = tsverify.read(data)
        video = report.decode_stamps(0x100)
        self.assertLess(video[-1], video[0])  # it did wrap
        self.assertEqual({tsverify.ring(b, a) for a, b in zip(video, video[1:], strict=False)}, {3600})
        self.assertEqual(ff.errors(data, "mpegts"), "")

    def test_key_interval_at_most_5_s(self) -> None:
        self.assertRaises(ValueError, SlateSource, "640x360", TYPICAL, key_interval=6)
        self.assertRaises(ValueError, SlateSource, "800x600", TYPICAL)
        units = access_units(run(SlateSource("640x360", TYPICAL, key_interval=2.0), 9.0))
        frames = [n for n, (_, unit) in enumerate(units) if is_idr(unit)]
        self.assertEqual({b - a for a, b in zip(frames, frames[1:], strict=False)}, {50})


class TextTests(SynchronousTestCase):
    def test_new_text_changes_only_the_next_key_frame(self) -> None:
        """
        After ``set_text`` the very next IDR (within 0.6 s) shows the new text and every later
        one too; the frames in between are the same skipped P frames as before, the picture
        rendered once, and the last frame decodes to the new picture exactly.
        """
        source = SlateSource("640x360", TYPICAL)
        before = run(source, 2.0)
        self.assertTrue(source.set_text(NEW))
        after = run(source, 12.0, start=2.0)
        self.assertEqual(source.renders, 2)
        old_idr = next(unit for _, unit in access_units(before) if is_idr(unit))
        units = access_units(before + after)
        change = len(packets(before))
        later = [(index, unit) for index, unit in units if index >= change]
        idrs = [unit for _, unit in later if is_idr(unit)]
        self.assertGreaterEqual(len(idrs), 2)
        self.assertEqual(len(set(idrs)), 1)
        self.assertNotEqual(idrs[0], old_idr)
        skips = {p_access_unit(Geometry(640, 360), n) for n in range(16)}
        first_new = next(n for n, (_, unit) in enumerate(later) if is_idr(unit))
        self.assertLessEqual(first_new, 15)  # 0.6 s of frames at most
        self.assertTrue(all(unit in skips for _, unit in later if not is_idr(unit)))
        last = ff.decode(before + after, "mpegts")[-len(cropped_frame(source.key.picture)):]
        self.assertTrue(last == cropped_frame(render(NEW, "640x360")))

    def test_same_text_renders_nothing(self) -> None:
        """The countdown line is re-sent every minute; unchanged text costs no render and no extra IDR."""
        source = SlateSource("640x360", TYPICAL)
        run(source, 1.0)
        self.assertFalse(source.set_text(list(TYPICAL)))
        units = access_units(run(source, 6.0, start=1.0))
        self.assertEqual(source.renders, 1)
        self.assertEqual(sum(is_idr(unit) for _, unit in units), 1)

    def test_picture_prepared_elsewhere(self) -> None:
        """``prepare`` (for a worker thread) then ``show``: the same as ``set_text``; a wrong size is refused."""
        by_text = SlateSource("640x360", TYPICAL)
        by_show = SlateSource("640x360", TYPICAL, key=prepare("640x360", TYPICAL))
        first = run(by_text, 2.0), run(by_show, 2.0)
        self.assertEqual(first[0], first[1])
        self.assertTrue(by_text.set_text(NEW))
        self.assertTrue(by_show.show(prepare("640x360", NEW)))
        self.assertFalse(by_show.show(prepare("640x360", NEW)))
        self.assertEqual(run(by_text, 8.0, start=2.0), run(by_show, 8.0, start=2.0))
        self.assertEqual(by_show.lines, tuple(NEW))
        self.assertEqual(by_show.shown, ("101  NHL PPV 1", "Up next: Oilers vs Flames", "Today 21:30 · in 3 h 50 min"))
        self.assertRaises(ValueError, by_show.show, prepare("960x540", TYPICAL))

    def test_requested_key_frame_reaches_a_joiner_within_a_second(self) -> None:
        """
        A joiner at 2 s asks for an IDR: it is sent by the time ``request_idr`` says, within
        1 s; the stream from the PAT before it decodes clean; a second request waits a second.
        """
        source = SlateSource("1280x720", TYPICAL)
        before = run(source, 2.0)
        ready = source.request_idr()
        self.assertLessEqual(ready, 3.0)
        after = run(source, ready + 0.04, start=2.0)
        idr = next(index for index, unit in access_units(before + after) if is_idr(unit)
                   and index >= len(packets(before)))
        joined = b"".join(packets(before + after)[idr - 2:])
        self.assertEqual(ff.errors(joined + run(source, 4.0, start=ready + 0.04), "mpegts"), "")
        self.assertGreaterEqual(source.request_idr() - ready, 1.0)


class RateTests(SynchronousTestCase):
    def test_at_most_2_mbits_at_every_size(self) -> None:
        """20 s with an IDR every 5 s, with typical and with long text: at most 2 Mbit/s (SPEC §14)."""
        for size in SIZES:
            for lines in (TYPICAL, WORST):
                data = run(SlateSource(size, lines), 20.0, step=0.1)
                self.assertLessEqual(len(data) * 8 / 20.0, MAX_RATE, (size, lines[0]))

    def test_pathological_text_keeps_the_rate(self) -> None:
        """
        A wall of long lines: the slate leaves lines out rather than pass 2 Mbit/s (1080p) or
        make an IDR no H.264 level allows (360p, where the rate would still be fine).
        """
        wall = ["W" * 60 + " " + "M" * 60] * 12
        for size in ("1920x1080", "640x360"):
            source = SlateSource(size, wall)
            self.assertLess(len(source.shown), 12)
            self.assertIsNotNone(source.key.level)
            data = run(source, 10.0, step=0.1)
            self.assertLessEqual(len(data) * 8 / 10.0, MAX_RATE)


class SplicerTests(SynchronousTestCase):
    def test_slate_event_slate_is_one_program(self) -> None:
        """
        To the splicer a slate is one more source: slate -> a provider clip -> slate (with
        another clock) comes out as one program, continuity unbroken, time always moving on,
        and ffmpeg decodes all of it with no error line.
        """
        splicer = ContinuousSplicer()
        out, now = [], 0.0
        for source, frames in ((SlateSource("640x360", TYPICAL), 75), (None, 0),
                               (SlateSource("640x360", NEW, clock=123_456_789), 100)):
            splicer.cut()
            if source is None:
                clip = (DATA / "a.ts").read_bytes()
                chunk = len(clip) // 125 // 188 * 188
                for at in range(0, len(clip), chunk):
                    now += 0.04
                    out.append(splicer.feed(clip[at:at + chunk], now))
                continue
            for k in range(1, frames + 1):
                now += 0.04
                out.append(splicer.feed(source.packets_until(k * 0.04), now))
        data = b"".join(out)
        report = tsverify.read(data)
        self.assertEqual(report.cc_errors, [])
        self.assertEqual([streams for _, _, streams in report.pmts], [[(0x1B, 0x100), (0x0F, 0x101)]])
        video = report.decode_stamps(0x100)
        self.assertGreater(min(tsverify.ring(b, a) for a, b in zip(video, video[1:], strict=False)), 0)
        self.assertGreater(len(video), 200)
        self.assertEqual(ff.errors(data, "mpegts"), "")
