"""
One channel's HLS output (epgd.stream.hlsout.window): the window of segments, the playlist
RFC 8216 and SPEC §16 describe, segments found while they are listed, and first-request waits.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.segment import Segment
from epgd.mpegts.splice.continuous import ContinuousSplicer
from epgd.stream.hlsout.window import HlsOutput, OutputStopped
from tests.tsgen import MPEG2, Source

START = 1764000000.0  # 2025-11-24T16:00:00Z


def output_of(*parts: tuple[Source, int, int]) -> bytes:
    splicer = ContinuousSplicer()
    out = []
    for index, (source, first, count) in enumerate(parts):
        if index:
            splicer.cut()
        out.append(splicer.feed(source.frames(first, count), 0.0))
    return b"".join(out)


class WindowTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.out = HlsOutput("nhl_ppv_1", self.clock, target=1.0, window=3, first_sequence=int(START))

    def feed(self, data: bytes, per_second: int = 25 * 5 * 188) -> None:
        """``data`` at the pace of tsgen's streams (about 5 packets a frame, 25 frames a second)."""
        for at in range(0, len(data), 94 * 188):
            self.out.write(data[at:at + 94 * 188])
            self.clock.advance(94 * 188 / per_second)

    def test_the_playlist(self) -> None:
        self.feed(output_of((Source(marker=1), 0, 5 * 25 + 1)))
        text = self.out.playlist("nhl_ppv_1/").decode("ascii")
        lines = text.splitlines()
        self.assertEqual(lines[:6], [
            "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1",
            f"#EXT-X-MEDIA-SEQUENCE:{int(START) + 2}", "#EXT-X-DISCONTINUITY-SEQUENCE:0",
            "#EXT-X-INDEPENDENT-SEGMENTS"])
        entries = lines[6:]
        self.assertEqual(len(entries), 3 * 3)  # the window: 3 segments of 3 lines
        first_date = entries[0]
        self.assertTrue(first_date.startswith("#EXT-X-PROGRAM-DATE-TIME:2025-11-24T16:00:0"), first_date)
        self.assertEqual(entries[1:3], ["#EXTINF:1.000,", f"nhl_ppv_1/{int(START) + 2}.ts"])
        # the dates run on with the durations (one clock)
        dates = [line.split(":", 1)[1] for line in entries if line.startswith("#EXT-X-PROGRAM-DATE-TIME")]
        seconds = [float(d[17:23]) for d in dates]
        self.assertEqual([round(b - a, 3) for a, b in zip(seconds, seconds[1:], strict=False)], [1.0, 1.0])
        self.assertEqual(self.out.playlist("nhl_ppv_1/"), text.encode())  # rendered once, kept
        self.assertIn(b"\n/live/u/p/101/", self.out.playlist("/live/u/p/101/"))

    def test_segments_are_found_while_listed_with_their_time_left(self) -> None:
        self.feed(output_of((Source(marker=1), 0, 6 * 25 + 1)))
        oldest = self.out.segments[0].sequence
        self.assertIsNone(self.out.find(oldest - 1))  # it left the window
        self.assertIsNone(self.out.find(oldest + 3))  # not there yet
        ages = []
        for sequence in range(oldest, oldest + 3):
            found = self.out.find(sequence)
            assert found is not None
            self.assertEqual(found[0].sequence, sequence)
            ages.append(found[1])
        self.assertEqual(ages, [1, 2, 3])  # leaves after 1, 2, 3 more segments of 1 s
        etags = {s.etag for s in self.out.segments}
        self.assertEqual(len(etags), 3)

    def test_target_duration_covers_every_segment_and_never_shrinks(self) -> None:
        self.feed(output_of((Source(marker=1, gop=40), 0, 200)))  # key frames 1.6 s apart
        self.assertEqual(self.out.target_duration, 2)
        self.assertTrue(all(s.duration == 1.6 for s in self.out.segments))

    def test_discontinuity_sequence_counts_those_that_left(self) -> None:
        self.feed(output_of((Source(marker=1), 0, 60), (Source(marker=2, video_type=MPEG2, clock=5_000_000), 0, 60),
                            (Source(marker=3, clock=7_000_000), 0, 150)))
        self.assertEqual(self.out.discontinuity_sequence, 2)  # two codec changes, both gone
        self.assertIn(b"#EXT-X-DISCONTINUITY-SEQUENCE:2\n", self.out.playlist("x/"))
        self.assertNotIn(b"#EXT-X-DISCONTINUITY\n", self.out.playlist("x/"))

    def test_a_discontinuity_starts_the_dates_anew(self) -> None:
        self.out._add([Segment(b"a", 1.0, False, START)])
        self.out._add([Segment(b"b", 1.0, False, START + 1.3)])  # within the drift: runs on
        self.out._add([Segment(b"c", 1.0, True, START + 2.9)])  # a new program: its own time
        self.out._add([Segment(b"d", 1.0, False, START + 7.0)])  # the wall clock ran away: its own
        self.assertEqual([round(s.date - START, 3) for s in self.out.segments], [1.0, 2.9, 7.0])

    def test_first_request_waits_for_the_first_segment(self) -> None:
        waiting = self.out.ready()
        self.assertNoResult(waiting)
        cancelled = self.out.ready()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        self.feed(output_of((Source(marker=1), 0, 26)))
        self.successResultOf(waiting)
        self.successResultOf(self.out.ready())

    def test_a_stopped_channel_tells_those_waiting(self) -> None:
        waiting = self.out.ready()
        self.out.close()
        self.failureResultOf(waiting, OutputStopped)
        with self.assertRaises(OutputStopped):
            self.out.ready()

    def test_a_segmenting_error_stays_here(self) -> None:
        def broken(data: bytes, now: float) -> list[Segment]:
            raise ValueError("bad bytes")

        self.out.segmenter.feed = broken  # type: ignore[method-assign]
        self.out.write(b"\x47" * 188)  # never raises into the channel's output
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.feed(output_of((Source(marker=1), 0, 30)))  # a fresh segmenter goes on
        self.assertTrue(self.out.segments)
