"""
A channel's switching machine (epgd.stream.channel.machine), state by state: a table of
(state, input) -> (state, effects), driven with a task.Clock, as Twisted tests ClientService.

Each test brings a fresh machine into its state through inputs only, sends one input and
checks what a viewer or a provider would notice: which source flows, which connections are
held, what the channel is asked to do next, which timers are armed. Pairs the table does not
declare raise ``NoTransition``.
"""

from __future__ import annotations

from typing import Any

from automat import NoTransition
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, StreamConfig
from epgd.mpegts.entry import Entry
from epgd.mpegts.liveedge import WATCH
from epgd.mpegts.slate.source import KeyFrame, prepare
from epgd.mpegts.splice.continuous import ContinuousSplicer
from epgd.net import timers
from epgd.redact import Redactor
from epgd.schedule.model import Source
from epgd.stream.channel.core import SwitchCore
from epgd.stream.channel.machine import (
    CLOSE_WAIT_SECONDS,
    ENTRY_GIVE_UP,
    ENTRY_WAIT_SECONDS,
    Switching,
    machine,
)
from epgd.stream.channel.slate import FEED_EVERY, SlateFeed
from epgd.stream.channel.tap import Tap
from epgd.stream.out.output import Output
from epgd.stream.registry import UpstreamRegistry
from tests.streamfakes import FakeHTTP, FakeResponse
from tests.tsgen import Source as Clip

BASE = "http://provider.test/live/"
_SLATE: list[KeyFrame] = []


def slate_picture() -> KeyFrame:
    if not _SLATE:
        _SLATE.append(prepare("640x360", ("1  NHL 1", "No events scheduled")))
    return _SLATE[0]
OLD = Clip(marker=1, gop=5)
NEW = Clip(marker=2, gop=5, pmt=0x200, video=0x201, audio=(0x202,), clock=5_000_000)


class Owner:
    """The channel's policy half: records what the machine asks of it."""

    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []

    def failover(self, failed: str) -> None:
        self.asked.append(("failover", failed))

    def retry(self) -> None:
        self.asked.append(("retry",))

    def connect(self, source: Source, over_closing: bool) -> None:
        self.asked.append(("connect", source.channel, over_closing))


class Taps:
    """Opens sources the way the façade does and answers them as the provider."""

    def __init__(self, test: MachineTests) -> None:
        self.test = test
        self.responses: dict[str, FakeResponse] = {}

    def open(self, name: str) -> Tap:
        upstream = self.test.registry.acquire(Source("main", name, BASE + name))
        return Tap(self.test, upstream)

    def answer(self, name: str) -> FakeResponse:
        response = self.test.http.answer(BASE + name)
        self.responses[name] = response
        return response


class MachineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.http = FakeHTTP()
        self.config = Config(stream=StreamConfig(connect_timeout=4, chunk_size=188),
                             providers=(ProviderConfig("main", BASE + "get.php"),))
        self.registry = UpstreamRegistry(self.config, self.clock, Redactor(),
                                         http_factory=lambda provider: self.http)
        self.output = Output(self.clock, 188, _Producer())
        self.owner = Owner()
        self.core = SwitchCore("nhl_1", self.clock, self.config.stream, self.registry, self.output,
                               ContinuousSplicer(), self.owner)
        self.m: Switching = machine(self.core)
        self.taps = Taps(self)
        self.data: list[tuple[Tap, bytes]] = []

    # the façade's routing, as ChannelStream does it
    def tap_data(self, tap: Tap, data: bytes) -> None:
        if tap is self.core.current:
            self.core.deliver(data)
            if self.core.splicer.closed:
                self.m.old_done()
        elif tap is self.core.pending:
            self.m.pending_data(data)

    def tap_cut(self, tap: Tap) -> None:
        pass

    def tap_failed(self, tap: Tap, reason: str) -> None:
        if tap is self.core.pending:
            self.m.pending_failed(reason)
        elif tap is self.core.current:
            self.m.current_failed(reason)

    # -- reaching each state -----------------------------------------------------------

    def flowing(self) -> Tap:
        tap = self.taps.open("1.ts")
        self.m.connect(tap)
        self.taps.answer("1.ts").send(OLD.frames(0, 6))
        self.assertEqual((self.core.state, self.core.current), ("steady", tap))
        return tap

    def seeking(self) -> tuple[Tap, Tap]:
        old = self.flowing()
        new = self.taps.open("2.ts")
        self.m.connect_beside(new)
        self.taps.answer("2.ts")
        return old, new

    def closing(self) -> tuple[Tap, Tap]:
        old, new = self.seeking()
        pending = self.taps.responses["2.ts"]
        pending.send(NEW.frames(3, 2))  # no key frame yet; then a while of real time (no burst) ...
        self.clock.advance(WATCH)
        pending.send(NEW.frames(5, 2))  # ... before its key frame: the way in at once
        self.assertEqual(self.core.state, "closing")  # the old one is in the middle of a frame
        return old, new

    def slate(self) -> Tap:
        """A showing of the channel's slate, as the façade makes one."""
        feed = SlateFeed(self.clock, "640x360", "nhl_1")
        feed.show(slate_picture())
        return Tap(self, feed)

    def on_slate(self) -> Tap:
        slate = self.slate()
        self.m.show_slate(slate)
        self.clock.advance(0)  # its first key frame
        self.assertEqual((self.core.state, self.core.current, self.core.on_slate), ("steady", slate, True))
        return slate

    def held(self) -> list[int]:
        """Provider connections epgd holds, by source: what a single-connection plan counts."""
        return sorted(u.name for u in self.registry.upstreams())  # type: ignore[return-value]

    def timers(self) -> list[float]:
        """The machine's own timers (the upstreams' watchdogs are theirs), in seconds from now."""
        return sorted(round(c.getTime() - self.clock.seconds(), 3) for c in self.clock.getDelayedCalls()
                      if getattr(c.func, "__self__", None) is self.m)

    # -- steady ------------------------------------------------------------------------

    def test_steady_connect_opens_the_source_with_nothing_flowing(self) -> None:
        tap = self.taps.open("1.ts")
        self.m.connect(tap)
        self.assertEqual((self.core.state, self.core.pending), ("connecting", tap))
        self.assertEqual(len(self.http.waiting(BASE + "1.ts")), 1)

    def test_steady_connect_beside_reads_the_new_source_while_the_old_flows(self) -> None:
        old, new = self.seeking()
        self.assertEqual((self.core.state, self.core.current, self.core.pending), ("seeking", old, new))

    def test_steady_await_slot_breaks_before_make(self) -> None:
        self.http.slow_close = True  # the provider sees the old socket go only later
        self.flowing()
        self.m.await_slot(Source("main", "2.ts", BASE + "2.ts"), None)
        self.assertEqual(self.core.state, "awaiting_slot")
        self.assertEqual(self.core.current, None)  # the old connection goes first
        self.assertTrue(self.taps.responses["1.ts"].transport.stopped)
        self.assertEqual(self.owner.asked, [])  # not while it is still there
        self.taps.responses["1.ts"].transport.closed()
        self.assertEqual(self.owner.asked, [("connect", "2.ts", False)])
        self.assertEqual((self.core.state, self.timers()), ("steady", []))

    def test_steady_await_slot_waits_for_the_closing_connection(self) -> None:
        closing: Deferred[None] = Deferred()
        self.m.await_slot(Source("main", "2.ts", BASE + "2.ts"), closing)
        self.assertEqual((self.core.state, self.core.awaiting and self.core.awaiting.channel),
                         ("awaiting_slot", "2.ts"))
        self.assertEqual(self.timers(), [4.0])  # connect_timeout at most
        closing.callback(None)
        self.assertEqual(self.owner.asked, [("connect", "2.ts", False)])
        self.assertEqual((self.core.state, self.core.awaiting, self.timers()), ("steady", None, []))

    def test_steady_retry_later_waits_the_backoff(self) -> None:
        self.m.retry_later()
        self.m.abandon()
        self.m.retry_later()
        self.assertEqual((self.core.state, self.timers()), ("retrying", [1.0]))  # 0.5 s, then 1 s

    def test_steady_current_failed_lets_go_and_fails_over(self) -> None:
        tap = self.flowing()
        self.taps.responses["1.ts"].drop()  # reconnects ...
        for _ in range(6):
            self.clock.advance(8.0)
            if self.http.waiting(BASE + "1.ts"):
                self.http.answer(BASE + "1.ts", code=500)
        self.assertEqual(self.owner.asked, [("failover", "1.ts")])
        self.assertEqual((self.core.state, self.core.current, self.held()), ("steady", None, []))
        self.assertIn("1.ts", self.core.error or "")
        self.assertFalse(tap.upstream.active)

    def test_steady_nothing_on_lets_go_of_what_flows(self) -> None:
        self.flowing()
        self.m.nothing_on()
        self.assertEqual((self.core.state, self.core.current, self.held()), ("steady", None, []))
        self.assertTrue(self.taps.responses["1.ts"].transport.stopped)

    def test_steady_abandon_changes_nothing(self) -> None:
        tap = self.flowing()
        self.m.abandon()
        self.assertEqual((self.core.state, self.core.current), ("steady", tap))

    def test_steady_stop(self) -> None:
        self.flowing()
        self.m.stop()
        self.assertEqual((self.core.state, self.held()), ("stopped", []))

    # -- connecting --------------------------------------------------------------------

    def test_connecting_first_bytes_cut_in(self) -> None:
        tap = self.taps.open("1.ts")
        self.m.connect(tap)
        self.taps.answer("1.ts").send(OLD.frames(0, 6))
        self.assertEqual((self.core.state, self.core.current, self.core.pending), ("steady", tap, None))
        self.assertEqual(self.core.switches, 0)  # the first source is no switch
        self.assertGreater(self.output.bytes_in, 0)

    def test_connecting_failure_fails_over(self) -> None:
        self.m.connect(self.taps.open("1.ts"))
        self.http.answer(BASE + "1.ts", code=404)
        self.assertEqual(self.owner.asked, [("failover", "1.ts")])
        self.assertEqual((self.core.state, self.core.pending, self.held()), ("steady", None, []))
        self.assertIn("HTTP 404", self.core.error or "")

    def test_connecting_abandon_lets_go(self) -> None:
        self.m.connect(self.taps.open("1.ts"))
        self.m.abandon()
        self.assertEqual((self.core.state, self.core.pending, self.held()), ("steady", None, []))

    # -- seeking -----------------------------------------------------------------------

    def test_seeking_first_bytes_arm_the_entry_wait(self) -> None:
        self.seeking()
        self.taps.responses["2.ts"].send(NEW.frames(1, 2))  # frames 1, 2: no key frame
        self.assertEqual(self.core.state, "seeking")
        self.assertIn(ENTRY_WAIT_SECONDS, self.timers())

    def test_seeking_no_key_frame_in_time_relaxes_then_gives_up(self) -> None:
        self.seeking()
        self.taps.responses["2.ts"].send(NEW.frames(1, 2))
        self.clock.advance(ENTRY_WAIT_SECONDS)
        self.assertEqual(self.core.state, "seeking")
        self.assertEqual(self.owner.asked, [])
        for _ in range(ENTRY_GIVE_UP - 1):
            self.clock.advance(ENTRY_WAIT_SECONDS)
        self.assertEqual(self.core.state, "steady")
        self.assertEqual(self.owner.asked, [("failover", "2.ts")])
        self.assertEqual(self.held(), ["1.ts"])  # the old one still flows
        self.assertIn("sent no PAT and PMT within 15s", self.core.error or "")

    def test_seeking_found_lets_the_old_finish_its_frame(self) -> None:
        self.closing()
        self.assertEqual(self.timers(), [CLOSE_WAIT_SECONDS])  # the entry wait went with seeking

    def test_seeking_pending_failed_keeps_the_old(self) -> None:
        old, _ = self.seeking()
        self.taps.responses["2.ts"].drop()
        self.assertEqual((self.core.state, self.core.current, self.held()), ("steady", old, ["1.ts"]))
        self.assertEqual(self.owner.asked, [("failover", "2.ts")])

    def test_seeking_current_failed_lets_the_new_go_on_alone(self) -> None:
        _, new = self.seeking()
        self.m.current_failed("dropped")
        self.assertEqual((self.core.state, self.core.current, self.core.pending), ("connecting", None, new))
        self.taps.responses["2.ts"].send(NEW.frames(0, 6))
        self.assertEqual((self.core.state, self.core.current), ("steady", new))

    def test_seeking_abandon_keeps_the_old(self) -> None:
        old, _ = self.seeking()
        self.taps.responses["2.ts"].send(NEW.frames(1, 2))
        self.m.abandon()
        self.assertEqual((self.core.state, self.core.current, self.held()), ("steady", old, ["1.ts"]))
        self.assertEqual(self.timers(), [])  # the entry wait is gone with the state

    # -- closing -----------------------------------------------------------------------

    def test_closing_cuts_when_the_old_frame_is_done(self) -> None:
        old, new = self.closing()
        self.taps.responses["2.ts"].send(NEW.frames(7, 1))  # held meanwhile
        # frame 7 starts: frame 6 was the last picture; its sound runs while it is shown
        self.taps.responses["1.ts"].send(OLD.frames(6, 3))
        self.assertEqual((self.core.state, self.core.current, self.held()), ("steady", new, ["2.ts"]))
        self.assertEqual(self.core.switches, 1)
        self.assertEqual(self.timers(), [])

    def test_closing_cuts_anyway_when_the_old_takes_too_long(self) -> None:
        _, new = self.closing()
        self.clock.advance(CLOSE_WAIT_SECONDS)
        self.assertEqual((self.core.state, self.core.current), ("steady", new))

    def test_closing_old_failing_cuts_at_once(self) -> None:
        _, new = self.closing()
        self.taps.responses["1.ts"].drop()  # the upstream reconnects: not a failure yet
        self.m.current_failed("gone")
        self.assertEqual((self.core.state, self.core.current), ("steady", new))

    def test_closing_new_failing_keeps_the_old_from_its_next_key_frame(self) -> None:
        old, _ = self.closing()
        self.m.pending_failed("gone")
        self.assertEqual((self.core.state, self.core.current), ("steady", old))
        self.assertTrue(self.core.splicer.entering)  # the old one re-enters: it was told to end
        self.assertFalse(self.core.splicer.closed)
        self.assertEqual(self.owner.asked, [("failover", "2.ts")])

    def test_closing_abandon_keeps_the_old_from_its_next_key_frame(self) -> None:
        old, _ = self.closing()
        self.m.abandon()
        self.assertEqual((self.core.state, self.core.current, self.held()), ("steady", old, ["1.ts"]))
        self.assertTrue(self.core.splicer.entering)
        self.assertEqual(self.timers(), [])

    # -- awaiting a slot, retrying -----------------------------------------------------

    def test_awaiting_slot_opens_anyway_after_connect_timeout(self) -> None:
        closing: Deferred[None] = Deferred()
        self.m.await_slot(Source("main", "2.ts", BASE + "2.ts"), closing)
        self.clock.advance(4.0)
        self.assertEqual(self.owner.asked, [("connect", "2.ts", True)])
        closing.callback(None)  # too late: nothing more happens
        self.assertEqual(self.owner.asked, [("connect", "2.ts", True)])

    def test_awaiting_slot_abandon_forgets_the_wait(self) -> None:
        closing: Deferred[None] = Deferred()
        self.m.await_slot(Source("main", "2.ts", BASE + "2.ts"), closing)
        self.m.abandon()
        self.assertEqual((self.core.state, self.timers(), self.core.awaiting), ("steady", [], None))
        self.clock.advance(10)
        self.assertEqual(self.owner.asked, [])

    def test_retrying_asks_again_when_due(self) -> None:
        self.m.retry_later()
        self.clock.advance(0.5)
        self.assertEqual((self.core.state, self.owner.asked), ("steady", [("retry",)]))

    def test_retrying_keeps_what_flows_until_it_fails(self) -> None:
        tap = self.flowing()
        self.m.retry_later()
        self.assertEqual(self.core.current, tap)
        self.m.current_failed("gone")
        self.assertEqual((self.core.state, self.core.current), ("retrying", None))
        self.assertEqual(self.owner.asked, [])  # the retry due opens what comes next

    def test_retrying_abandon_cancels_the_retry(self) -> None:
        self.m.retry_later()
        self.m.abandon()
        self.assertEqual((self.core.state, self.timers()), ("steady", []))

    # -- stopped -----------------------------------------------------------------------

    def test_stopped_refuses_to_open(self) -> None:
        self.m.stop()
        self.m.connect(self.taps.open("1.ts"))
        self.assertEqual((self.core.state, self.held(), self.http.requests), ("stopped", [], []))

    def test_stopping_while_waiting_leaves_no_timer(self) -> None:
        for arm in (self.m.retry_later, lambda: self.m.await_slot(Source("main", "2", BASE + "2"), Deferred())):
            self.setUp()
            arm()
            self.m.stop()
            self.assertEqual((self.core.state, self.timers()), ("stopped", []))

    # -- the slate ---------------------------------------------------------------------

    def test_steady_show_slate_puts_it_on_with_no_provider_connection(self) -> None:
        slate = self.on_slate()
        self.assertGreater(self.output.bytes_in, 0)
        self.assertTrue(self.core.splicer.codecs)  # the splicer entered it at its key frame
        self.assertEqual((self.held(), self.http.requests, self.core.media_at), ([], [], None))
        self.assertTrue(slate.upstream.started)

    def test_on_the_slate_a_new_source_is_sought_beside_it_and_cut_to(self) -> None:
        slate = self.on_slate()
        new = self.taps.open("1.ts")
        self.m.connect_beside(new)
        self.assertEqual((self.core.state, self.core.current, self.core.pending), ("seeking", slate, new))
        self.taps.answer("1.ts").send(OLD.frames(0, 2))
        self.assertEqual(self.core.state, "closing")
        self.clock.advance(0)  # the slate hands on its next frame at once and ends there
        self.assertEqual((self.core.state, self.core.current, self.core.on_slate), ("steady", new, False))
        self.assertEqual(self.core.media_at, self.clock.seconds())
        self.assertFalse(slate.upstream.active)  # the showing is over: no timer left behind
        self.assertEqual(self.held(), ["1.ts"])

    def test_steady_stalled_steps_aside_beside_the_slate(self) -> None:
        old = self.flowing()
        slate = self.slate()
        self.m.stalled(slate)
        self.assertEqual((self.core.state, self.core.current, self.core.pending), ("seeking", slate, old))
        self.assertEqual(self.held(), ["1.ts"])  # still connected: it may come back
        self.taps.responses["1.ts"].send(OLD.frames(6, 5))  # it recovers: its next key frame
        self.clock.advance(FEED_EVERY)
        self.assertEqual((self.core.state, self.core.current), ("steady", old))
        self.assertEqual(self.core.switches, 0)  # a recovery behind the slate is no switch

    def test_connecting_show_slate_keeps_opening_beside_it(self) -> None:
        tap = self.taps.open("1.ts")
        self.m.connect(tap)
        slate = self.slate()
        self.m.show_slate(slate)
        self.assertEqual((self.core.state, self.core.current, self.core.pending), ("seeking", slate, tap))
        self.taps.answer("1.ts").send(OLD.frames(0, 6))
        self.clock.advance(FEED_EVERY)
        self.assertEqual((self.core.state, self.core.current, self.core.switches), ("steady", tap, 0))

    def test_seeking_stalled_lets_the_old_go(self) -> None:
        _, new = self.seeking()
        slate = self.slate()
        self.m.stalled(slate)
        self.assertEqual((self.core.state, self.core.current, self.core.pending), ("seeking", slate, new))
        self.assertEqual(self.held(), ["2.ts"])
        self.taps.responses["2.ts"].send(NEW.frames(0, 2))
        self.clock.advance(FEED_EVERY)
        self.assertEqual((self.core.state, self.core.current), ("steady", new))

    def test_closing_stalled_changes_nothing(self) -> None:
        old, new = self.closing()
        slate = self.slate()
        self.m.stalled(slate)
        self.assertEqual((self.core.state, self.core.current, self.core.pending), ("closing", old, new))
        self.assertFalse(slate.upstream.active)
        self.assertEqual(self.timers(), [CLOSE_WAIT_SECONDS])

    def test_awaiting_slot_show_slate_keeps_the_wait(self) -> None:
        closing: Deferred[None] = Deferred()
        self.m.await_slot(Source("main", "2.ts", BASE + "2.ts"), closing)
        slate = self.slate()
        self.m.show_slate(slate)
        self.assertEqual((self.core.state, self.core.current, self.timers()), ("awaiting_slot", slate, [4.0]))
        closing.callback(None)
        self.assertEqual((self.core.state, self.owner.asked), ("steady", [("connect", "2.ts", False)]))
        self.assertEqual(self.core.current, slate)  # it shows until the new source cuts in

    def test_awaiting_slot_stalled_lets_what_flows_go(self) -> None:
        self.flowing()
        self.m.await_slot(Source("main", "2.ts", BASE + "2.ts"), Deferred())
        slate = self.slate()
        self.m.stalled(slate)
        self.assertEqual((self.core.state, self.core.current, self.held()), ("awaiting_slot", slate, []))

    def test_retrying_show_slate_keeps_the_retry(self) -> None:
        self.m.retry_later()
        slate = self.slate()
        self.m.show_slate(slate)
        self.assertEqual((self.core.state, self.core.current, self.timers()), ("retrying", slate, [0.5]))
        self.clock.advance(0.5)
        self.assertEqual((self.core.state, self.owner.asked, self.core.current), ("steady", [("retry",)], slate))

    def test_retrying_stalled_lets_what_flows_go(self) -> None:
        self.flowing()
        self.m.retry_later()
        slate = self.slate()
        self.m.stalled(slate)
        self.assertEqual((self.core.state, self.core.current, self.held()), ("retrying", slate, []))

    def test_nothing_on_keeps_the_slate_on(self) -> None:
        slate = self.on_slate()
        self.m.nothing_on()
        self.assertEqual((self.core.state, self.core.current, slate.upstream.active), ("steady", slate, True))

    def test_nothing_on_at_the_cut_keeps_the_slate_from_its_next_key_frame(self) -> None:
        slate = self.on_slate()
        self.m.connect_beside(self.taps.open("1.ts"))
        self.taps.answer("1.ts").send(OLD.frames(0, 2))
        self.assertEqual(self.core.state, "closing")
        self.m.nothing_on()
        self.assertEqual((self.core.state, self.core.current, self.held()), ("steady", slate, []))
        self.assertTrue(self.core.splicer.entering)  # told to end, it re-enters at its next key frame
        self.assertEqual(self.timers(), [])

    def test_stopped_shows_no_slate(self) -> None:
        self.m.stop()
        for show in (self.m.show_slate, self.m.stalled):
            slate = self.slate()
            show(slate)
            self.assertEqual((self.core.state, self.core.current, slate.upstream.active), ("stopped", None, False))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_on_the_slate_ends_it(self) -> None:
        slate = self.on_slate()
        self.m.stop()
        self.assertEqual((self.core.state, self.core.current, slate.upstream.active), ("stopped", None, False))
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])

    # -- pairs nobody planned ----------------------------------------------------------

    def test_unplanned_pairs_raise(self) -> None:
        with self.assertRaises(NoTransition):
            self.m.pending_data(b"")  # steady: no pending source
        with self.assertRaises(NoTransition):
            self.m.slot_free(False)  # steady: no wait under way
        self.m.connect(self.taps.open("1.ts"))
        with self.assertRaises(NoTransition):
            self.m.found(Entry(b"", None, 1, None))  # connecting: the splicer finds its own way in
        with self.assertRaises(NoTransition):
            self.m.retry_due()
        with self.assertRaises(NoTransition):
            self.m.stalled(self.slate())  # connecting: nothing flows to stall
        self.m.abandon()
        self.seeking()
        with self.assertRaises(NoTransition):
            self.m.show_slate(self.slate())  # seeking: something flows (stalled is the input)


class _Producer:
    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...
