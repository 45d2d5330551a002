"""
The output's one clock (epgd.mpegts.splice.timeline, SPEC §7.1 "One clock"), driven with plain
90 kHz numbers and wall-clock seconds: a cut continues the old timeline in real time, the new
first frame comes at least a frame after the last one out, the PCR never leaps ahead of the
wall clock by more than a frame, everything wraps at 2^33, a source's own clock jumping is
seen, and the first PES of a stream after a cut may not overlap the old stream's last.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.pes import WRAP, ring_diff
from epgd.mpegts.splice.timeline import PCR_JUMP, TS_JUMP, Timeline

VIDEO, AUDIO = 0x100, 0x101
FRAME = 3600
SOURCE_VIDEO, SOURCE_AUDIO = 0x31, 0x32


def play(clock: Timeline, pcr: int, dts: int, frames: int, start: float = 0.0, frame: int = FRAME,
         audio_step: int = 1920) -> tuple[int, int, float, int]:
    """
    ``frames`` frames of a source whose PCR starts at ``pcr`` and video DTS at ``dts``, one PCR
    per frame on the PCR PID and an audio PES every ``audio_step``, paced in real time; the
    output's (last PCR, last video DTS, wall time, last audio DTS) after them.
    """
    out_pcr = out_dts = out_audio = 0
    now = start
    audio = dts
    for k in range(frames):
        now = start + k * frame / 90000
        out_pcr = clock.pcr((pcr + k * frame) % WRAP, now, True)
        new = clock.stamp(VIDEO, (dts + k * frame) % WRAP)
        assert new is not None
        out_dts = new
        while ring_diff(audio, dts + k * frame) <= 0:
            stamped = clock.stamp(AUDIO, audio % WRAP)
            assert stamped is not None
            out_audio = stamped
            audio += audio_step
    return out_pcr, out_dts, now, out_audio


class FirstSourceTests(SynchronousTestCase):
    def test_the_first_source_keeps_its_clock(self) -> None:
        clock = Timeline()
        clock.cut(None, VIDEO)
        self.assertFalse(clock.pending)  # nothing went out before: nothing to continue
        self.assertEqual(clock.stamp(VIDEO, 123456), 123456)
        self.assertEqual(clock.pcr(100000, 0.0, True), 100000)
        self.assertEqual((clock.ts_offset, clock.pcr_offset, clock.last_pcr), (0, 0, 100000))

    def test_a_pcr_off_the_pcr_pid_is_shifted_but_is_not_the_reference(self) -> None:
        clock = Timeline()
        clock.cut(None, VIDEO)
        clock.pcr(5000, 1.0, True)
        self.assertEqual(clock.pcr(7000, 2.0, False), 7000)
        self.assertEqual(clock.last_pcr, 5000)


class CutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Timeline()
        self.clock.cut(None, VIDEO)
        # the old source: frames carried 0.5 s ahead of its PCR
        self.last_pcr, self.last_dts, self.t0, self.last_audio = play(self.clock, 1_000_000, 1_045_000, 50)

    def test_a_wait_moves_the_clock_on_in_real_time(self) -> None:
        clock = self.clock
        pcr, lead = 7_000_000_000, 45000  # the new source: its own clock, the same lead
        clock.cut(pcr, VIDEO)
        self.assertTrue(clock.pending)
        clock.place(pcr + lead, pcr, VIDEO, self.t0 + 2.0)
        self.assertFalse(clock.pending)
        self.assertEqual(clock.stamp(VIDEO, pcr + lead), (self.last_dts + 2 * 90000) % WRAP)
        self.assertEqual(clock.pcr(pcr, self.t0 + 2.0, True), self.last_pcr + 2 * 90000)

    def test_frames_closer_to_their_clock_come_one_frame_after_the_last_and_the_pcr_holds(self) -> None:
        """Lead 0.5 s then 0.1 s, no wait: DTS still rise by a frame; the PCR takes a frame at most."""
        clock = self.clock
        pcr, lead = 55_555_555, 9000
        clock.cut(pcr, VIDEO)
        clock.place(pcr + lead, pcr, VIDEO, self.t0)
        self.assertEqual(clock.stamp(VIDEO, pcr + lead), self.last_dts + FRAME)
        first_pcr = clock.pcr(pcr, self.t0, True)
        self.assertGreaterEqual(first_pcr, self.last_pcr)
        self.assertEqual(first_pcr, self.last_pcr + FRAME)  # clamped: wall clock (0 s) plus a frame

    def test_a_pcr_placed_with_no_wait_moves_on_by_a_tick_at_least(self) -> None:
        """
        Only the PCR's 90 kHz base is shifted (its 27 MHz extension stays the source's): a first
        PCR on the last one's base would go back by their extensions' difference (up to 299
        ticks; GStreamer reads a new clock), so it takes the next base at least.
        """
        clock = self.clock
        pcr, lead = 7_000_000_000, 90000  # frames further ahead of the PCR than the old source's
        clock.cut(pcr, VIDEO)
        clock.place(pcr + lead, pcr, VIDEO, self.t0)  # no wait: the frames a frame after the old ones
        self.assertEqual(clock.stamp(VIDEO, pcr + lead), self.last_dts + FRAME)
        # ... which would put the PCR before the last one: it holds, and moves on by a tick
        self.assertEqual(clock.pcr(pcr, self.t0, True), self.last_pcr + 1)

    def test_the_frame_is_learned_from_the_old_stream(self) -> None:
        clock = Timeline()
        clock.cut(None, VIDEO)
        _, last_dts, now, _ = play(clock, 0, 45000, 50, frame=1800)  # 50 fps
        clock.cut(90_000_000, VIDEO)
        clock.place(90_000_000 + 9000, 90_000_000, VIDEO, now)
        self.assertEqual(clock.stamp(VIDEO, 90_000_000 + 9000), last_dts + 1800)

    def test_without_a_known_pcr_the_old_lead_is_assumed(self) -> None:
        clock = self.clock
        clock.cut(None, VIDEO)
        clock.place(3_000_000, None, VIDEO, self.t0 + 1.0)
        self.assertEqual(clock.stamp(VIDEO, 3_000_000), self.last_dts + 90000)

    def test_the_timeline_wraps_at_2_to_the_33(self) -> None:
        clock = Timeline()
        clock.cut(None, VIDEO)
        _, last_dts, now, _ = play(clock, WRAP - 10 * FRAME - 45000, WRAP - 10 * FRAME, 10)
        self.assertEqual(last_dts, WRAP - FRAME)
        clock.cut(500_000, VIDEO)
        clock.place(545_000, 500_000, VIDEO, now)
        self.assertEqual(clock.stamp(VIDEO, 545_000), 0)
        self.assertEqual(clock.stamp(VIDEO, 545_000 + FRAME), FRAME)

    def test_a_streams_first_pes_after_a_cut_may_not_overlap_its_last(self) -> None:
        clock = self.clock
        pcr, lead = 7_000_000_000, 45000
        clock.cut(pcr, VIDEO)
        clock.place(pcr + lead, pcr, VIDEO, self.t0)  # no wait: the new audio starts a frame later
        last_audio = self.last_audio
        shift = clock.ts_offset
        overlapping = (last_audio + 1000 - shift) % WRAP  # starts before the old last PES (1920) ended
        self.assertIsNone(clock.stamp(AUDIO, overlapping))
        after = (last_audio + 1920 - shift) % WRAP
        self.assertEqual(clock.stamp(AUDIO, after), (last_audio + 1920) % WRAP)
        self.assertIsNotNone(clock.stamp(AUDIO, after + 100))  # checked once only: the first that goes out
        self.assertIsNotNone(clock.stamp(VIDEO, pcr + lead))  # the anchor is never held back


class SourceClockTests(SynchronousTestCase):
    def test_a_decode_timestamp_that_steps_back_or_leaps_ahead(self) -> None:
        clock = Timeline()
        self.assertFalse(clock.ts_jumped(SOURCE_VIDEO, 1_000_000))
        self.assertFalse(clock.ts_jumped(SOURCE_VIDEO, 1_000_000 + FRAME))
        self.assertTrue(clock.ts_jumped(SOURCE_VIDEO, 1_000_000 + FRAME + TS_JUMP[0] - 1))
        self.assertTrue(clock.ts_jumped(SOURCE_VIDEO, 1_000_000 + FRAME + TS_JUMP[1] + 1))
        self.assertFalse(clock.ts_jumped(SOURCE_VIDEO, 1_000_000 + 2 * FRAME))  # a jump is not remembered
        self.assertFalse(clock.ts_jumped(SOURCE_AUDIO, 5))  # each stream on its own

    def test_the_wrap_is_not_a_jump(self) -> None:
        clock = Timeline()
        clock.ts_jumped(SOURCE_VIDEO, WRAP - 100)
        self.assertFalse(clock.ts_jumped(SOURCE_VIDEO, FRAME - 100))

    def test_a_pcr_that_steps_back_leaps_ahead_or_says_discontinuity(self) -> None:
        clock = Timeline()
        self.assertFalse(clock.pcr_jumped(0, False))  # nothing to compare with yet
        clock.pcr(1_000_000, 0.0, True)
        self.assertFalse(clock.pcr_jumped(1_000_000 + FRAME, False))
        self.assertTrue(clock.pcr_jumped(1_000_000 + PCR_JUMP[0] - 1, False))
        self.assertTrue(clock.pcr_jumped(1_000_000 + PCR_JUMP[1] + 1, False))
        self.assertTrue(clock.pcr_jumped(1_000_000 + FRAME, True))
        clock.pcr(2_000_000, 0.1, False)  # a PCR off the PCR PID is not the source's clock
        self.assertFalse(clock.pcr_jumped(1_000_000 + FRAME, False))

    def test_a_cut_forgets_the_old_sources_clock(self) -> None:
        clock = Timeline()
        clock.pcr(1_000_000, 0.0, True)
        clock.ts_jumped(SOURCE_VIDEO, 1_000_000)
        clock.cut(7_000_000_000, VIDEO)
        self.assertFalse(clock.pcr_jumped(7_000_000_000, False))
        self.assertFalse(clock.ts_jumped(SOURCE_VIDEO, 7_000_000_000))
