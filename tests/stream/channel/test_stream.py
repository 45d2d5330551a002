"""One combined channel: switching, fail-over, keepalive, joiners (epgd.stream.channel.stream)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, StreamConfig
from epgd.net import timers
from epgd.redact import Redactor
from epgd.schedule.model import Schedule
from epgd.stream.channel.stream import ChannelStream
from epgd.stream.out.client import Client
from epgd.stream.registry import UpstreamRegistry
from tests.streamfakes import (
    BASE,
    T0,
    FakeHTTP,
    FakeRequest,
    FakeResponse,
    event,
    finish_when_done,
    log_text,
    schedule,
)
from tests.tsutil import fills, packet, pids, stream


class ChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)  # exact retry delays
        self.clock = Clock()
        self.clock.advance(T0)
        self.http = FakeHTTP()
        self.make(max_streams=0)

    def make(self, max_streams: int) -> None:
        self.config = Config(
            stream=StreamConfig(connect_timeout=4, hold_after_end=60, chunk_size=188, output="passthrough"),
            providers=(ProviderConfig("main", BASE + "get.php", max_streams=max_streams),),
        )
        self.registry = UpstreamRegistry(self.config, self.clock, Redactor.for_urls([BASE]),
                                         http_factory=lambda provider: self.http)
        self.channel = ChannelStream("nhl_1", self.clock, self.config.stream, self.registry,
                                     Redactor.for_urls([BASE]))
        self.addCleanup(self.channel.stop)

    def client(self) -> tuple[Client, FakeRequest]:
        request = FakeRequest()
        client = Client(request, self.clock, buffer_limit=1 << 20,
                        channel_id="nhl_1", on_detach=self.channel.client_gone)
        finish_when_done(request, client.done)
        self.channel.add_client(client)
        return client, request

    def at(self, seconds: float) -> None:
        self.clock.advance(T0 + seconds - self.clock.seconds())

    def test_start_logs_and_delivers_from_the_first_pat(self) -> None:
        sched = schedule(event("game", 0, 100, "1.ts"))
        with capturedLogs() as events:
            self.channel.check(sched, self.clock.seconds())
        self.assertIn("[PROXY] Starting proxy for nhl_1 -> http://provider.test/live/***/***/1.ts",
                      log_text(events))
        _, request = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(packet(0x100) * 5 + stream(20) + b"G")
        self.assertEqual(request.body[:188], stream(1))  # a PAT first
        self.assertEqual(len(request.body) % 188, 0)

    def test_switch_is_make_before_break_and_cuts_at_a_pat(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 100, 200, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        old = self.http.answer(BASE + "1.ts")
        old.send(stream(20, fill=0xAA) + b"G")
        self.at(100)
        with capturedLogs() as events:
            self.channel.check(sched, self.clock.seconds())
        self.assertIn("[PROXY] nhl_1 switching from 1.ts to 2.ts", log_text(events))
        new = self.http.answer(BASE + "2.ts")
        self.assertFalse(old.transport.stopped)  # the old keeps flowing meanwhile
        old.send(stream(10, fill=0xAA)[1:] + b"\x47")  # more old data (already aligned)
        new.send(packet(0x200, fill=0xBB) * 3)  # no PAT yet: held back
        self.assertNotIn(0xBB, fills(request.body))
        new.send(stream(20, pid=0x200, fill=0xBB) + b"G")
        self.assertTrue(old.transport.stopped)
        body = request.body
        self.assertEqual(len(body) % 188, 0)
        first_b = body.index(stream(1) + packet(0x200, fill=0xBB, counter=1))
        self.assertEqual(fills(body[first_b:]), {0xBB})  # nothing old after the cut
        self.assertEqual(pids(body[first_b:first_b + 188]), [0])  # the new starts at a PAT
        self.assertFalse(request.finished)
        self.assertEqual(self.channel.switches, 1)

    def test_no_pat_within_5s_cuts_anyway(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 100, 200, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        self.http.answer(BASE + "1.ts").send(stream(20, fill=0xAA) + b"G")
        self.at(100)
        self.channel.check(sched, self.clock.seconds())
        new = self.http.answer(BASE + "2.ts")
        new.send(packet(0x200, fill=0xBB) * 10)
        self.clock.advance(4.9)
        self.assertNotIn(0xBB, fills(request.body))
        self.clock.advance(0.1)
        new.send(packet(0x200, fill=0xBB) * 10)
        self.assertIn(0xBB, fills(request.body))
        self.assertEqual(len(request.body) % 188, 0)

    def one_connection_switch(self, slow_close: bool = False) -> tuple[Schedule, FakeRequest, FakeResponse]:
        """A one-connection plan at its boundary: the old source is told to close."""
        self.channel.stop()
        self.http.slow_close = slow_close
        self.make(max_streams=1)
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 100, 200, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        old = self.http.answer(BASE + "1.ts")
        old.send(stream(20) + b"G")
        self.at(100)
        self.channel.check(sched, self.clock.seconds())
        return sched, request, old

    def test_one_connection_plan_breaks_before_make(self) -> None:
        _, request, old = self.one_connection_switch()
        self.assertTrue(old.transport.stopped)  # closed before the new is opened
        self.assertEqual(len(self.http.waiting(BASE + "2.ts")), 1)
        self.assertFalse(request.finished)
        self.http.answer(BASE + "2.ts").send(stream(20, pid=0x200, fill=0xBB) + b"G")
        self.assertIn(0xBB, fills(request.body))

    def test_break_before_make_waits_for_the_old_connection_to_be_gone(self) -> None:
        """A single-connection panel still counting the old socket would answer 403 (issue 11, 8)."""
        sched, request, old = self.one_connection_switch(slow_close=True)
        self.assertTrue(old.transport.stopped)
        self.clock.advance(1.0)
        self.channel.check(sched, self.clock.seconds())  # a check meanwhile changes nothing
        self.assertEqual(self.http.count(BASE + "2.ts"), 0)  # not while the old one is there
        self.assertEqual(self.channel.status(self.clock.seconds())["stream_url"],
                         "http://provider.test/live/***/***/2.ts")
        old.transport.closed()
        self.assertEqual(len(self.http.waiting(BASE + "2.ts")), 1)
        self.http.answer(BASE + "2.ts").send(stream(20, pid=0x200, fill=0xBB) + b"G")
        self.assertIn(0xBB, fills(request.body))
        self.assertFalse(request.finished)

    def test_break_before_make_opens_anyway_when_the_old_never_closes(self) -> None:
        self.one_connection_switch(slow_close=True)
        self.clock.advance(3.9)
        self.assertEqual(self.http.count(BASE + "2.ts"), 0)
        self.clock.advance(0.1)  # connect_timeout (4 s): the old close is taking too long
        self.assertEqual(len(self.http.waiting(BASE + "2.ts")), 1)

    def test_failover_to_the_next_source_at_once(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts", "1b.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        self.http.answer(BASE + "1.ts", code=404)
        self.http.answer(BASE + "1b.ts").send(stream(20, fill=0xCC) + b"G")
        self.assertEqual(fills(request.body), {0xCC})
        self.assertIsNone(self.channel.status(self.clock.seconds())["error"])

    def test_start_is_logged_once_across_failover_and_retries(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts", "1b.ts"))
        with capturedLogs() as events:
            self.channel.check(sched, self.clock.seconds())
            self.client()
            self.http.answer(BASE + "1.ts", code=404)
            self.http.answer(BASE + "1b.ts", code=404)
            self.clock.pump([0.25] * 4)  # retried after 0.5 s
            self.http.answer(BASE + "1.ts").send(stream(20) + b"G")
        text = log_text(events)
        self.assertEqual(text.count("[PROXY] Starting proxy for nhl_1"), 1, text)
        self.assertIn("failing over from 1.ts to 1b.ts", text)

    def test_single_failing_source_is_retried_with_keepalive(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        self.http.answer(BASE + "1.ts", code=500)
        self.assertIn("HTTP 500", self.channel.status(self.clock.seconds())["error"])
        self.assertEqual(self.http.count(BASE + "1.ts"), 1)
        self.clock.pump([0.25, 0.25])
        self.assertEqual(self.http.count(BASE + "1.ts"), 2)  # after 0.5 s
        self.assertEqual(set(pids(request.body)), {0x1FFF})  # keepalive only
        self.assertFalse(request.finished)

    def test_joiner_starts_at_the_latest_pat_at_once(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(25, pat_every=10) + b"G")  # PATs at packets 0, 10, 20
        _, late = self.client()
        self.assertEqual(late.body, stream(25, pat_every=10)[20 * 188:])

    def test_all_clients_paused_pauses_the_provider(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        a, _ = self.client()
        b, _ = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        a.pauseProducing()
        self.assertFalse(response.transport.paused)
        b.pauseProducing()
        self.assertTrue(response.transport.paused)
        a.resumeProducing()
        self.assertFalse(response.transport.paused)

    def test_after_the_hold_the_source_is_released_and_clients_kept(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 400, 500, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        self.at(130)  # ended, but held (hold_after_end 60)
        self.channel.check(sched, self.clock.seconds())
        self.assertFalse(response.transport.stopped)
        self.at(161)
        self.channel.check(sched, self.clock.seconds())
        self.assertTrue(response.transport.stopped)
        self.assertFalse(request.finished)
        self.assertEqual(self.registry.upstreams(), [])
        self.at(400)
        self.channel.check(sched, self.clock.seconds())
        self.http.answer(BASE + "2.ts").send(stream(20, fill=0xBB) + b"G")
        self.assertIn(0xBB, fills(request.body))

    def test_small_chunks_are_coalesced_once_for_every_client(self) -> None:
        self.channel.stop()
        self.config = Config(stream=StreamConfig(chunk_size=1880, output="passthrough"))
        self.channel = ChannelStream("nhl_1", self.clock, self.config.stream, self.registry,
                                     Redactor())
        self.addCleanup(self.channel.stop)
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        _, request = self.client()
        response = self.http.answer(BASE + "1.ts")
        data = stream(30)
        response.send(data[:1000])
        self.assertEqual(request.body, b"")  # 940 bytes: less than chunk_size
        response.send(data[1000:2500])  # 13 packets (2444 bytes) ready: one write
        self.assertEqual(request.written[1:], [data[:2444]])
        response.send(data[2500:3000])  # 2 more packets: held up to 100 ms
        self.clock.advance(0.05)
        self.assertEqual(request.body, data[:2444])
        self.clock.advance(0.05)
        self.assertEqual(request.body, data[:2820])

    def test_stop_finishes_clients_and_leaves_nothing_behind(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        self.channel.stop()
        self.assertTrue(request.finished)
        self.assertTrue(response.transport.stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
