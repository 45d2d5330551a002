"""
epgd.mpegts.liveedge: a new source's key frame is handed over once entering it sends no
burst of the source's past at once (issue 17), and at once for a source sending in real time.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.entry import EntryFinder
from epgd.mpegts.liveedge import AHEAD, WATCH, LiveEdge
from tests.tsgen import Source

FRAME = 0.04  # tsgen's 25 fps


def first_frame(source: Source, data: bytes) -> int:
    """The frame (by DTS) an entry's data starts with."""
    from epgd.mpegts.entry import next_stamps
    stamps = next_stamps(data, 0, source.video or 0)
    assert stamps is not None
    return (stamps[1] - source.clock) // source.frame


class LiveEdgeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.source = Source(gop=5)
        self.edge = LiveEdge(EntryFinder())

    def test_a_source_in_real_time_is_entered_at_its_key_frame_as_it_comes(self) -> None:
        for n in range(1, 5):  # frames 1-4: no key frame; the source keeps real time
            self.assertIsNone(self.edge.feed(self.source.frames(n, 1), n * FRAME))
        entry = self.edge.feed(self.source.frames(5, 1), 5 * FRAME)
        self.assertIsNotNone(entry)
        assert entry is not None
        self.assertEqual(first_frame(self.source, entry.data), 5)
        self.assertEqual(self.edge.skipped, 0)

    def test_a_key_frame_among_the_first_bytes_waits_until_the_source_shows_its_pace(self) -> None:
        self.assertIsNone(self.edge.feed(self.source.frames(0, 2), 0.0))  # burst or real time?
        self.assertIsNone(self.edge.feed(self.source.frames(2, 2), 2 * FRAME))
        entry = self.edge.feed(self.source.frames(4, 1), 4 * FRAME)  # read WATCH: real time
        self.assertGreaterEqual(4 * FRAME, WATCH)
        assert entry is not None
        self.assertEqual(first_frame(self.source, entry.data), 0)  # the first key frame, as before
        # with all that came after (the PAT and PMT before it are the finder's)
        self.assertEqual(len(entry.data), len(Source(gop=5).frames(0, 5)) - 2 * 188)

    def test_a_burst_is_entered_at_a_key_frame_that_came_in_real_time(self) -> None:
        now, n, taken = 0.0, 0, None
        while n < 38:  # 1.5 s of media in 0.3 s: five frames each 0.04 s
            self.assertIsNone(self.edge.feed(self.source.frames(n, 5), now))
            n, now = n + 5, now + FRAME
        while taken is None:  # then real time
            taken = self.edge.feed(self.source.frames(n, 1), now)
            first_sent, n, now = n, n + 1, now + FRAME
        frame = first_frame(self.source, taken.data)
        self.assertEqual(frame % 5, 0)
        self.assertGreaterEqual(frame, 35)  # not the burst's first key frames ...
        self.assertLessEqual((first_sent - frame + 1) * FRAME, AHEAD + FRAME)  # ... nor far ahead
        self.assertGreater(self.edge.skipped, 5)

    def test_an_impatient_caller_gets_the_first_key_frame_at_once(self) -> None:
        entry = self.edge.feed(self.source.frames(0, 10), 0.0, patient=False)
        assert entry is not None
        self.assertEqual(first_frame(self.source, entry.data), 0)

    def test_take_hands_over_the_latest_key_frame_when_the_wait_is_over(self) -> None:
        self.edge.feed(self.source.frames(0, 16), 0.0)
        last = self.source.frames(16, 4)  # no key frame after 15
        self.edge.feed(last, 0.01)
        entry = self.edge.take()
        self.assertEqual(first_frame(self.source, entry.data), 15)
        self.assertTrue(entry.data.endswith(last))
