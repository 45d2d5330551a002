"""epgd.stream.readgaps: the gaps between a provider connection's reads, as /metrics counts them."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.readgaps import ReadClock, ReadGaps


class ReadClockTests(SynchronousTestCase):
    def test_gaps_between_reads_land_in_their_buckets(self) -> None:
        gaps = ReadGaps()
        clock = ReadClock(gaps)
        for t in (10.0, 10.008, 10.308, 10.316):
            clock.read(t, pauses=0)
        self.assertEqual(gaps.count, 3)
        self.assertEqual(gaps.counts[gaps.bounds.index(0.01)], 2)
        self.assertEqual(gaps.counts[gaps.bounds.index(0.5)], 1)  # 300 ms: over 0.25
        self.assertAlmostEqual(gaps.total, 0.316)

    def test_a_wait_spanning_a_pause_or_a_new_connection_is_no_gap(self) -> None:
        gaps = ReadGaps()
        clock = ReadClock(gaps)
        clock.read(10.0, pauses=0)
        clock.read(15.0, pauses=1)  # epgd paused the connection meanwhile (backpressure)
        clock.restart()  # a reconnection
        clock.read(30.0, pauses=1)
        self.assertEqual(gaps.count, 0)
        clock.read(30.02, pauses=1)
        self.assertEqual(gaps.count, 1)

    def test_without_a_histogram_reads_cost_nothing_more(self) -> None:
        clock = ReadClock(None)
        clock.read(1.0, 0)
        clock.read(2.0, 0)  # no error: an Upstream made without a registry
