"""
The slate as a channel's source (epgd.stream.channel.slate): a showing starts with PAT, PMT and
a key frame once its picture is made, hands on what is due on its timer, stands still while
its viewers are paused, takes new words at its next key frame, and fails alone.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.slate import source as slate_source
from epgd.mpegts.slate.h264 import idr_access_unit
from epgd.mpegts.slate.picture import render
from epgd.mpegts.slate.source import KeyFrame, prepare
from epgd.publish.slatetext import SlateText
from epgd.stream.channel.slate import FEED_EVERY, ChannelSlate, SlateFeed
from epgd.stream.slatepaint import SlatePainter
from tests.mpegts.slate.test_source import access_units, is_idr, packets, pid_of

SIZE = "640x360"
WORDS = SlateText(("101  NHL PPV 1", "No events scheduled"))
OTHER = SlateText(("101  NHL PPV 1", "main: all 1 connections in use"))


class Sink:
    """What a tap is to a feed: it takes the bytes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.failed: list[str] = []

    def write(self, data: bytes) -> None:
        self.data += data

    def upstream_cut(self, upstream: object) -> None: ...

    def upstream_failed(self, upstream: object, reason: str) -> None:
        self.failed.append(reason)


class ManualPainter(SlatePainter):
    """A painter whose pictures come when the test says (as a worker thread's would)."""

    def __init__(self) -> None:
        super().__init__(None, threaded=False)
        self.asked: list[tuple[str, tuple[str, ...]]] = []
        self.waiting: list[Deferred[KeyFrame]] = []

    def paint(self, size: str, lines: tuple[str, ...]) -> Deferred[KeyFrame]:
        self.asked.append((size, lines))
        d: Deferred[KeyFrame] = Deferred()
        self.waiting.append(d)
        return d

    def finish(self, index: int = -1) -> None:
        size, lines = self.asked[index]
        self.waiting[index].callback(prepare(size, lines))


class FeedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.sink = Sink()

    def feed(self, key: KeyFrame | None = None) -> SlateFeed:
        feed = SlateFeed(self.clock, SIZE, "nhl_1")
        feed.subscribe(self.sink)
        if key is not None:
            feed.show(key)
        feed.start()
        return feed

    def test_starts_with_pat_pmt_and_a_key_frame(self) -> None:
        self.feed(prepare(SIZE, WORDS.lines))
        self.clock.advance(0)
        first = packets(bytes(self.sink.data))
        self.assertEqual([pid_of(p) for p in first[:2]], [0, 0x1000])
        units = access_units(bytes(self.sink.data))
        self.assertTrue(units and is_idr(units[0][1]))

    def test_hands_on_what_is_due_every_step(self) -> None:
        self.feed(prepare(SIZE, WORDS.lines))
        self.clock.advance(0)
        sizes = []
        for _ in range(50):
            before = len(self.sink.data)
            self.clock.advance(FEED_EVERY)
            sizes.append(len(self.sink.data) - before)
        self.assertTrue(all(sizes), sizes)  # a frame and audio every step
        seconds = 50 * FEED_EVERY
        self.assertLess(len(self.sink.data) * 8 / seconds, 2_000_000)
        [timer] = self.clock.getDelayedCalls()
        self.assertAlmostEqual(timer.getTime() - self.clock.seconds(), FEED_EVERY)

    def test_waits_for_its_picture(self) -> None:
        feed = self.feed()
        self.clock.advance(5)
        self.assertEqual(self.sink.data, b"")
        feed.show(prepare(SIZE, WORDS.lines))
        self.clock.advance(0)
        self.assertEqual(pid_of(bytes(self.sink.data[:188])), 0)

    def test_paused_stands_still_and_resumes_without_a_burst(self) -> None:
        feed = self.feed(prepare(SIZE, WORDS.lines))
        self.clock.advance(2)
        feed.fanout.set_paused(self.sink, True)
        before = len(self.sink.data)
        self.clock.advance(60)
        self.assertEqual((len(self.sink.data), self.clock.getDelayedCalls()), (before, []))
        feed.fanout.set_paused(self.sink, False)
        self.clock.advance(0)
        self.assertLess(len(self.sink.data) - before, 20 * 188)  # a step's worth, not a minute's

    def test_close_stops_the_timer(self) -> None:
        feed = self.feed(prepare(SIZE, WORDS.lines))
        self.clock.advance(1)
        self.successResultOf(feed.close())
        self.assertEqual((self.clock.getDelayedCalls(), feed.active), ([], False))

    def test_a_failing_slate_silences_itself_alone(self) -> None:
        broke: list[bool] = []
        feed = SlateFeed(self.clock, SIZE, "nhl_1", on_broken=lambda: broke.append(True))
        feed.subscribe(self.sink)
        feed.show(prepare(SIZE, WORDS.lines))
        feed.start()
        self.clock.advance(1)

        def fail(self: object, t: float) -> bytes:
            raise RuntimeError("encoder bug")

        self.patch(slate_source.SlateSource, "packets_until", fail)
        with capturedLogs() as events:
            self.clock.advance(FEED_EVERY)
        self.assertEqual((broke, feed.active, self.clock.getDelayedCalls()), ([True], False, []))
        self.assertEqual(len([e for e in events if "log_failure" in e]), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.sink.failed, [])  # the channel is not failed over: it only loses the slate


class ChannelSlateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.painter = ManualPainter()
        self.slate = ChannelSlate(self.clock, SIZE, self.painter, ZoneInfo("UTC"), "nhl_1")
        self.sink = Sink()

    def showing(self) -> SlateFeed:
        feed = self.slate.feed()
        feed.subscribe(self.sink)
        feed.start()
        return feed

    def test_a_picture_is_made_only_when_the_words_change(self) -> None:
        self.slate.say(WORDS)
        self.slate.say(SlateText(WORDS.lines, 12345.0))
        self.assertEqual(len(self.painter.asked), 1)
        self.slate.say(OTHER)
        self.assertEqual(len(self.painter.asked), 2)
        self.assertEqual(self.slate.text, "101  NHL PPV 1\nmain: all 1 connections in use")

    def test_a_showing_starts_when_its_picture_is_made(self) -> None:
        self.slate.say(WORDS)
        self.showing()
        self.clock.advance(1)
        self.assertEqual(self.sink.data, b"")
        self.painter.finish()
        self.clock.advance(0)
        self.assertEqual(pid_of(bytes(self.sink.data[:188])), 0)

    def test_a_later_showing_starts_at_once(self) -> None:
        self.slate.say(WORDS)
        self.painter.finish()
        self.showing()
        self.clock.advance(0)
        self.assertTrue(self.sink.data)

    def test_new_words_show_from_the_next_key_frame(self) -> None:
        self.slate.say(WORDS)
        self.painter.finish()
        self.showing()
        self.clock.advance(2)
        self.slate.say(OTHER)
        self.painter.finish()
        before = len(self.sink.data)
        self.clock.advance(2)
        idrs = [unit for _, unit in access_units(bytes(self.sink.data[before:])) if is_idr(unit)]
        self.assertEqual(len(idrs), 1)  # a second after the last one, not five
        self.assertEqual(idrs[0], idr_access_unit(render(OTHER.lines, SIZE)).access_unit)

    def test_an_old_picture_never_replaces_newer_words(self) -> None:
        self.slate.say(WORDS)
        self.slate.say(OTHER)
        self.showing()
        self.painter.finish(0)  # WORDS' picture, made too late
        self.clock.advance(1)
        self.assertEqual(self.sink.data, b"")
        self.painter.finish(1)
        self.clock.advance(0)
        self.assertTrue(self.sink.data)

    def test_a_picture_that_cannot_be_made_breaks_the_slate_alone(self) -> None:
        self.slate.say(WORDS)
        feed = self.showing()
        with capturedLogs() as events:
            self.painter.waiting[0].errback(RuntimeError("no font"))
        self.assertTrue(self.slate.broken)
        self.assertFalse(feed.active)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(any("making the slate's picture failed" in e.get("log_format", "") for e in events))
        self.flushLoggedErrors(RuntimeError)
