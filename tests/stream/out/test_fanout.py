"""One producer, many consumers, backpressure only when everyone is paused (epgd.stream.out.fanout)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import StreamConfig
from epgd.redact import Redactor
from epgd.stream.out.client import Client
from epgd.stream.out.fanout import Fanout
from epgd.stream.out.output import Output
from epgd.stream.upstream import Upstream
from tests.streamfakes import FakeHTTP, FakeRequest, FakeTransport
from tests.streamhelpers import E2ETestCase, event
from tests.tsutil import stream

URL = "http://provider.test/live/alice/hunter22/7.ts"


class Sink:
    def __init__(self, fanout: Fanout | None = None, drop_after: int | None = None) -> None:
        self.data: list[bytes] = []
        self.fanout = fanout
        self.drop_after = drop_after

    def write(self, data: bytes) -> None:
        self.data.append(data)
        if self.drop_after is not None and len(self.data) >= self.drop_after:
            assert self.fanout is not None
            self.fanout.remove(self)


class FanoutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.producer = FakeTransport()
        self.fanout = Fanout(self.producer)

    def test_every_consumer_gets_every_chunk_in_order(self) -> None:
        a, b = Sink(), Sink()
        self.fanout.add(a)
        self.fanout.add(b)
        self.fanout.write(b"1")
        self.fanout.write(b"2")
        self.assertEqual(a.data, [b"1", b"2"])
        self.assertEqual(b.data, [b"1", b"2"])

    def test_one_paused_consumer_does_not_pause_the_producer(self) -> None:
        a, b = Sink(), Sink()
        self.fanout.add(a)
        self.fanout.add(b)
        self.fanout.set_paused(a, True)
        self.assertFalse(self.producer.paused)
        self.fanout.set_paused(b, True)
        self.assertTrue(self.producer.paused)
        self.fanout.set_paused(a, False)
        self.assertFalse(self.producer.paused)

    def test_removing_the_last_unpaused_consumer_pauses(self) -> None:
        a, b = Sink(), Sink()
        self.fanout.add(a, paused=True)
        self.fanout.add(b)
        self.assertFalse(self.producer.paused)
        self.fanout.remove(b)
        self.assertTrue(self.producer.paused)
        self.fanout.remove(a)  # nobody left: keep reading (the join buffer stays fresh)
        self.assertFalse(self.producer.paused)

    def test_pause_and_resume_are_not_repeated(self) -> None:
        a = Sink()
        self.fanout.add(a)
        self.fanout.set_paused(a, True)
        self.fanout.set_paused(a, True)
        self.assertEqual(self.producer.pauses, 1)

    def test_new_producer_takes_the_current_state(self) -> None:
        a = Sink()
        self.fanout.add(a, paused=True)
        fresh = FakeTransport()
        self.fanout.set_producer(fresh)
        self.assertTrue(fresh.paused)

    def test_consumer_removing_itself_while_written(self) -> None:
        a = Sink(self.fanout, drop_after=1)
        b = Sink()
        self.fanout.add(a)
        self.fanout.add(b)
        self.fanout.write(b"1")
        self.fanout.write(b"2")
        self.assertEqual(a.data, [b"1"])
        self.assertEqual(b.data, [b"1", b"2"])
        self.assertEqual(len(self.fanout), 1)


class Raising:
    def __init__(self) -> None:
        self.calls = 0

    def write(self, data: bytes) -> None:
        self.calls += 1
        raise ValueError("a bug in one consumer")


class ContainmentTests(SynchronousTestCase):
    """One consumer's failed write drops that consumer only (issue 11, item 7)."""

    def test_a_raising_consumer_is_dropped_alone_and_logged_once(self) -> None:
        told: list[tuple[object, Failure]] = []
        fanout = Fanout(FakeTransport(), on_error=lambda c, f: told.append((c, f)))
        before, bad, after = Sink(), Raising(), Sink()
        for consumer in (before, bad, after):
            fanout.add(consumer)
        with capturedLogs() as events:
            fanout.write(b"1")  # does not raise
            fanout.write(b"2")
        self.assertEqual((before.data, after.data), ([b"1", b"2"], [b"1", b"2"]))
        self.assertNotIn(bad, fanout)
        self.assertEqual(bad.calls, 1)
        self.assertEqual([c for c, _ in told], [bad])
        self.assertTrue(told[0][1].check(ValueError))
        failures = [e for e in events if e.get("log_failure") is not None]
        self.assertEqual(len(failures), 1)
        self.flushLoggedErrors(ValueError)

    def test_a_failing_release_is_logged_and_contained_too(self) -> None:
        def broken(consumer: object, failure: Failure) -> None:
            raise RuntimeError("the release failed as well")

        fanout = Fanout(on_error=broken)
        good = Sink()
        fanout.add(Raising())
        fanout.add(good)
        with capturedLogs():
            fanout.write(b"1")
        self.assertEqual(good.data, [b"1"])
        self.flushLoggedErrors(ValueError, RuntimeError)

    def test_one_channel_failing_does_not_drop_the_provider_connection(self) -> None:
        """Unguarded, the exception unwinds into Twisted's HTTP client, which drops the body."""
        clock = Clock()
        http = FakeHTTP()
        upstream = Upstream(URL, "main", http, {}, clock, StreamConfig(), Redactor.for_urls([URL]))
        self.addCleanup(upstream.close)
        good, bad = Tap(), Tap(fail=True)
        upstream.subscribe(bad)
        upstream.subscribe(good)
        upstream.start()
        response = http.answer(URL)
        data = stream(30)
        with capturedLogs():
            response.send(data[:3000])
            response.send(data[3000:])
        response.send(b"G")
        self.assertEqual(b"".join(good.data), data)
        self.assertFalse(response.transport.stopped)
        self.assertEqual(upstream.state, "streaming")
        self.assertEqual(http.count(URL), 1)
        self.assertNotIn(bad, upstream.fanout)
        self.flushLoggedErrors(ValueError)


class Tap(Sink):
    """A channel's subscription to an Upstream."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail

    def write(self, data: bytes) -> None:
        if self.fail:
            raise ValueError("a bug in one channel's splicer")
        super().write(data)

    def upstream_cut(self, upstream: object) -> None:
        pass

    def upstream_failed(self, upstream: object, reason: str) -> None:
        pass


class ViewerContainmentTests(SynchronousTestCase):
    """A viewer whose write raises is cut off; the channel's other viewers never notice."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.producer = FakeTransport()
        self.output = Output(self.clock, chunk_size=188, producer=self.producer)
        self.output.deliver(stream(1), entry=0)

    def viewer(self, request: FakeRequest | None = None) -> tuple[Client, FakeRequest]:
        request = request or FakeRequest()
        client = Client(request, self.clock, buffer_limit=1 << 20, channel_id="nhl_1",
                        on_detach=self.output.remove)
        self.output.add(client)
        return client, request

    def test_a_raising_viewer_is_dropped_alone(self) -> None:
        first, ok = self.viewer()
        broken, bad = self.viewer(BrokenRequest(after=2))  # joined fine (headers, recent packets), then breaks
        last, ok2 = self.viewer()
        with capturedLogs() as events:
            self.output.deliver(stream(3, fill=7))
            self.output.deliver(stream(3, fill=8))
        self.assertTrue(ok.body.endswith(stream(3, fill=7) + stream(3, fill=8)))
        self.assertEqual(ok2.body, ok.body)
        self.assertTrue(broken.detached)
        self.assertEqual(broken.dropped, "error")
        self.assertTrue(bad.aborted)
        self.assertFalse(first.detached or last.detached)
        self.assertFalse(self.producer.stopped)
        self.assertEqual(self.output.client_count, 2)
        self.assertEqual(len([e for e in events if e.get("log_failure") is not None]), 1)
        self.flushLoggedErrors(OSError)

    def test_a_viewer_whose_first_write_raises_is_dropped_at_once(self) -> None:
        _, ok = self.viewer()
        with capturedLogs():
            broken, _ = self.viewer(BrokenRequest())
        self.assertEqual(broken.dropped, "error")
        self.assertEqual(self.output.client_count, 1)
        self.output.deliver(stream(1, fill=3))
        self.assertTrue(ok.body.endswith(stream(1, fill=3)))
        self.flushLoggedErrors(OSError)

    def test_a_waiting_viewer_that_raises_on_keepalive_is_dropped_alone(self) -> None:
        self.output.reset_join()  # joiners wait for the next entry point
        waiting_ok, ok = self.viewer()
        broken, bad = self.viewer(BrokenRequest(after=1))  # its headers went out
        self.assertEqual(self.output.client_count, 2)
        with capturedLogs():
            self.clock.advance(0.5)
            self.output.tick()
        self.assertTrue(broken.detached)
        self.assertEqual(broken.dropped, "error")
        self.assertFalse(waiting_ok.detached)
        self.assertEqual(self.output.client_count, 1)
        self.output.deliver(stream(2, fill=9), entry=0)
        self.assertTrue(ok.body.endswith(stream(2, fill=9)))
        self.flushLoggedErrors(OSError)


class BrokenRequest(FakeRequest):
    """A request whose writes raise (after ``after`` good ones)."""

    def __init__(self, after: int = 0) -> None:
        super().__init__()
        self.after = after

    def write(self, data: bytes) -> None:
        if len(self.written) >= self.after:
            raise OSError("the connection's write raised")
        super().write(data)


class EndToEnd(E2ETestCase):
    """Two channels on one provider connection, over real sockets; one channel breaks."""

    async def test_one_broken_channel_leaves_the_shared_provider_connection_up(self) -> None:
        url = self.provider.stream("a", "a")
        now = self.now()
        epgd = self.epgd({cid: [event("Game", now - 60, now + 600, url)]
                          for cid in ("test_1", "test_2")})
        one = await epgd.open("/stream/test_1.ts")
        two = await epgd.open("/stream/test_2.ts")
        await one.wait_bytes(100_000)
        await two.wait_bytes(100_000)

        def broken(data: bytes, now: float) -> bytes:
            raise ValueError("a bug in test_1's splicer")

        epgd.manager.channels["test_1"].splicer.feed = broken  # type: ignore[method-assign]
        seen = two.received
        await two.wait_bytes(seen + 300_000)
        self.assertEqual(self.provider.requests["a"], 1, "the provider connection was dropped")
        self.assertEqual(self.provider.peak_total, 1)
        # the broken channel is told at once (it fails over or retries), not starved until idle
        broken_channel = epgd.manager.channels["test_1"]
        self.assertIn("epgd failed on this source's data", broken_channel.error or "")
        self.flushLoggedErrors(ValueError)
