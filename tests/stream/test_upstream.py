"""One provider connection: first bytes, silence, reconnects, fail-over signal (epgd.stream.upstream)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived

from epgd.config import StreamConfig
from epgd.net import timers
from epgd.redact import Redactor
from epgd.stream.upstream import Upstream
from tests.streamfakes import FakeHTTP
from tests.tsutil import stream

URL = "http://provider.test/live/alice/hunter22/7.ts"


class _AgentLikeHTTP:
    """Fails a cancelled request the way twisted.web.client.Agent does."""

    def __init__(self) -> None:
        self.requests: list[Deferred[Any]] = []

    def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
        def cancel(d: Deferred[Any]) -> None:
            d.errback(ResponseNeverReceived([Failure(CancelledError())]))

        d: Deferred[Any] = Deferred(cancel)
        self.requests.append(d)
        return d


class Consumer:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.failures: list[str] = []

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def upstream_cut(self, upstream: Upstream) -> None:
        self.data.append(b"<cut>")

    def upstream_failed(self, upstream: Upstream, reason: str) -> None:
        self.failures.append(reason)

    @property
    def body(self) -> bytes:
        return b"".join(self.data)


class UpstreamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)  # exact delays, unless a test wants jitter
        self.clock = Clock()
        self.http = FakeHTTP()
        self.config = StreamConfig(connect_timeout=4, reconnect_attempts=3)
        self.upstream = Upstream(
            URL, "main", self.http, {"User-Agent": "UA/1", "Referer": "http://r/"}, self.clock,
            self.config, Redactor.for_urls([URL]),
        )
        self.consumer = Consumer()
        self.upstream.subscribe(self.consumer)
        self.upstream.start()

    def tearDown(self) -> None:
        self.upstream.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_streams_whole_packets_with_headers(self) -> None:
        url, headers, _ = self.http.requests[0]
        self.assertEqual(url, URL)
        self.assertEqual(headers["User-Agent"], ["UA/1"])
        self.assertEqual(headers["Referer"], ["http://r/"])
        response = self.http.answer(URL)
        data = stream(30)
        for i in range(0, len(data), 1000):
            response.send(data[i:i + 1000])
        response.send(b"G")
        self.assertEqual(self.consumer.body, data)
        self.assertEqual(self.upstream.state, "streaming")

    def test_html_with_status_200_is_a_failed_source(self) -> None:
        response = self.http.answer(URL)
        with capturedLogs() as events:
            response.send(b"<!DOCTYPE html><html><title>Expired</title>" + b" " * 1000)
        self.assertEqual(len(self.consumer.failures), 1)
        self.assertIn("an HTML page", self.consumer.failures[0])
        self.assertTrue(response.transport.stopped)
        text = " ".join(str(e.get("reason", "")) + str(e.get("url", "")) for e in events)
        self.assertIn("Expired", text)
        self.assertNotIn("hunter22", text)
        self.assertEqual(self.upstream.state, "failed")

    def test_non_2xx_is_a_failed_source(self) -> None:
        self.http.answer(URL, code=404)
        self.assertEqual(len(self.consumer.failures), 1)
        self.assertIn("HTTP 404", self.consumer.failures[0])

    def test_no_answer_within_connect_timeout_fails(self) -> None:
        self.clock.advance(4.01)
        self.assertEqual(len(self.consumer.failures), 1)
        self.assertIn("no answer within 4s", self.consumer.failures[0])

    def agent_like_upstream(self) -> tuple[_AgentLikeHTTP, Upstream, Consumer]:
        """An Upstream over an HTTP client that fails the way treq over a real Agent does."""
        self.upstream.close()
        http = _AgentLikeHTTP()
        upstream = Upstream(URL, "main", http, {}, self.clock, self.config, Redactor.for_urls([URL]))
        consumer = Consumer()
        upstream.subscribe(consumer)
        upstream.start()
        return http, upstream, consumer

    def test_no_answer_from_a_real_agent_says_so(self) -> None:
        """A cancelled Agent request fails with ResponseNeverReceived, not a bare CancelledError."""
        _, upstream, consumer = self.agent_like_upstream()
        self.clock.advance(4.01)
        self.assertEqual(consumer.failures, ["no answer within 4s"])
        upstream.close()

    def test_connection_closed_before_an_answer_is_named_plainly(self) -> None:
        http, upstream, consumer = self.agent_like_upstream()
        http.requests[0].errback(ResponseNeverReceived([Failure(ConnectionDone())]))
        self.assertEqual(len(consumer.failures), 1)
        self.assertIn("Connection was closed cleanly", consumer.failures[0])
        self.assertNotIn("Failure", consumer.failures[0])
        upstream.close()

    def test_no_first_bytes_within_connect_timeout_fails(self) -> None:
        self.clock.advance(2)
        self.http.answer(URL)
        self.clock.advance(1.5)
        self.assertEqual(self.consumer.failures, [])
        self.clock.advance(1.1)  # 4 s after the request
        self.assertEqual(len(self.consumer.failures), 1)

    def test_drop_mid_event_reconnects_with_backoff_then_fails(self) -> None:
        response = self.http.answer(URL)
        response.send(stream(10))
        response.drop()
        delays = []
        for attempt in range(1, 4):
            self.assertEqual(self.http.count(URL), attempt)
            before = self.clock.seconds()
            while self.http.count(URL) == attempt:
                self.clock.advance(0.25)
            delays.append(self.clock.seconds() - before)
            self.http.answer(URL, code=503)
        self.assertEqual(delays, [0.5, 1.0, 2.0])
        self.assertEqual(len(self.consumer.failures), 1)
        self.assertIn("gave up after 3 reconnects", self.consumer.failures[0])

    def test_clean_end_reconnects_at_once_and_glues_no_partial_packet(self) -> None:
        first = self.http.answer(URL)
        a = stream(10, fill=0xAA)
        first.send(a[:-100])  # the provider rotates mid-packet
        first.end()
        self.clock.advance(0)
        second = self.http.answer(URL)
        b = stream(10, fill=0xBB)
        second.send(b + b"G")
        body = self.consumer.body
        self.assertEqual(body, a[:9 * 188] + b"<cut>" + b)  # the 10th was cut short: never sent
        self.assertEqual(self.consumer.failures, [])

    def test_reconnect_is_a_cut(self) -> None:
        """
        A reconnection resumes wherever the provider likes: consumers are told so before its
        first bytes (their splicer re-enters at a clean point), not after the first connection.
        """
        first = self.http.answer(URL)
        a = stream(10, fill=0xAA)
        first.send(a + b"G")
        self.assertEqual(self.consumer.data, [a])
        first.end()
        self.clock.advance(0)
        second = self.http.answer(URL)
        b = stream(20, fill=0xBB)
        second.send(b[5 * 188:] + b"G")
        self.assertEqual(self.consumer.body, a + b"<cut>" + b[5 * 188:])
        self.assertEqual(self.consumer.failures, [])

    def test_silence_counts_as_a_drop(self) -> None:
        response = self.http.answer(URL)
        response.send(stream(10))
        self.clock.pump([0.25] * 15)
        self.assertFalse(response.transport.stopped)
        self.clock.pump([0.25] * 6)  # silent for connect_timeout (checked every timeout/4)
        self.assertTrue(response.transport.stopped)
        self.assertEqual(self.upstream.state, "waiting")
        self.clock.advance(0.5)
        self.assertEqual(self.http.count(URL), 2)

    def test_a_connection_paused_by_its_viewers_is_not_silent(self) -> None:
        """A player that pauses must not make epgd reconnect to the provider over and over."""
        response = self.http.answer(URL)
        response.send(stream(10))
        self.upstream.fanout.set_paused(self.consumer, True)
        self.assertTrue(response.transport.paused)
        self.clock.pump([0.25] * 80)  # paused 20 s, five times connect_timeout
        self.assertFalse(response.transport.stopped)
        self.assertEqual(self.http.count(URL), 1)
        self.assertEqual(self.upstream.state, "streaming")
        self.upstream.fanout.set_paused(self.consumer, False)
        self.clock.pump([0.25] * 18)  # resumed, and the provider really sends nothing
        self.assertTrue(response.transport.stopped)
        self.assertEqual(self.upstream.state, "waiting")

    def test_a_reconnection_into_paused_viewers_is_not_silence(self) -> None:
        """A reconnect while every viewer is paused must not fail over after connect_timeout (issue 11, 9)."""
        response = self.http.answer(URL)
        response.send(stream(10))
        self.upstream.fanout.set_paused(self.consumer, True)
        response.end()  # the provider rotates the connection while the viewer is paused
        self.clock.advance(0)
        again = self.http.answer(URL)
        self.assertTrue(again.transport.paused)  # the new body is paused at once: no bytes
        self.clock.pump([0.25] * 80)  # 20 s, five times connect_timeout
        self.assertEqual(self.consumer.failures, [])
        self.assertFalse(again.transport.stopped)
        self.assertEqual(self.http.count(URL), 2)

    def test_userinfo_in_a_stream_url_becomes_basic_authorization(self) -> None:
        """http://user:pass@host/... streams as players fetch it (issue 11, item 5)."""
        url = "http://tv:se%40cret@provider.test/live/1.ts"
        upstream = Upstream(url, "main", self.http, {"User-Agent": "UA/1"}, self.clock, self.config,
                            Redactor.for_urls([url]))
        upstream.subscribe(Consumer())
        upstream.start()
        self.addCleanup(upstream.close)
        sent_url, headers, _ = self.http.requests[-1]
        self.assertEqual(sent_url, "http://provider.test/live/1.ts")
        self.assertEqual(headers["Authorization"], ["Basic dHY6c2VAY3JldA=="])  # tv:se@cret
        self.assertEqual(headers["User-Agent"], ["UA/1"])

    def test_every_consumer_paused_pauses_the_provider_socket(self) -> None:
        response = self.http.answer(URL)
        other = Consumer()
        self.upstream.subscribe(other)
        self.upstream.fanout.set_paused(self.consumer, True)
        self.assertFalse(response.transport.paused)
        self.upstream.fanout.set_paused(other, True)
        self.assertTrue(response.transport.paused)

    def test_close_stops_the_connection(self) -> None:
        response = self.http.answer(URL)
        response.send(stream(10))
        self.upstream.close()
        self.assertTrue(response.transport.stopped)
        self.assertEqual(self.consumer.failures, [])
