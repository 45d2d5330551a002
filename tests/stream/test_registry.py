"""
Who holds which provider connection (epgd.stream.registry): one Upstream per URL shared by
reference count, one HTTP client per provider, and ``max_streams`` slots that count a
connection until it is really gone (a single-connection panel answers 403 to a second one
meanwhile), on a task.Clock with in-memory HTTP.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, StreamConfig
from epgd.redact import Redactor
from epgd.schedule.model import Source
from epgd.stream.registry import ProviderFull, UpstreamRegistry
from epgd.stream.upstream import Upstream
from tests.streamfakes import FakeHTTP, FakeResponse
from tests.tsutil import stream

BASE = "http://provider.test/live/alice/s3cret/"


def source(n: int, provider: str = "main") -> Source:
    return Source(provider, f"ch{n}", f"{BASE}{n}.ts")


class RegistryCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.made: list[str] = []  # providers an HTTP client was made for
        self.http: dict[str, FakeHTTP] = {}
        self.make(max_streams=1)

    def make(self, max_streams: int) -> None:
        self.config = Config(
            stream=StreamConfig(connect_timeout=4, reconnect_attempts=0, user_agent="UA/1"),
            providers=(ProviderConfig("main", BASE + "get.php", max_streams=max_streams,
                                      headers={"Referer": "http://r/"}),
                       ProviderConfig("other", "http://other.test/list.m3u")),
        )
        self.registry = UpstreamRegistry(self.config, self.clock, Redactor.for_urls([BASE]),
                                         http_factory=self.client_for)

    def client_for(self, provider: str) -> FakeHTTP:
        self.made.append(provider)
        # connections close only when the test says so, like a socket that takes its time
        return self.http.setdefault(provider, FakeHTTP(slow_close=True))

    def streaming(self, upstream: Upstream, provider: str = "main") -> FakeResponse:
        """Start ``upstream`` and answer it with MPEG-TS: it holds a provider connection."""
        upstream.start()
        response = self.http[provider].answer(upstream.url)
        response.send(stream(10))
        return response


class SlotTests(RegistryCase):
    def test_a_full_provider_refuses_another_url(self) -> None:
        self.registry.acquire(source(1))
        with self.assertRaises(ProviderFull) as raised:
            self.registry.acquire(source(2))
        self.assertEqual(str(raised.exception), "provider 'main' is at its limit of 1 concurrent streams")
        self.assertEqual((raised.exception.provider, raised.exception.limit), ("main", 1))
        self.assertEqual(self.registry.used("main"), 1)

    def test_no_limit_and_other_providers(self) -> None:
        self.make(max_streams=0)
        for n in range(5):
            self.registry.acquire(source(n))
        self.assertEqual(self.registry.used("main"), 5)
        self.assertTrue(self.registry.has_room("main"))
        self.assertEqual(self.registry.limit("other"), 0)
        self.assertEqual(self.registry.limit(""), 0)  # a manual URL belongs to no provider
        self.assertTrue(self.registry.has_room(""))

    def test_a_closing_connection_still_takes_its_slot(self) -> None:
        upstream = self.registry.acquire(source(1))
        response = self.streaming(upstream)
        released = self.registry.release(upstream)
        self.assertTrue(response.transport.stopped)
        self.assertNoResult(released)  # the socket is not gone yet
        self.assertIsNone(self.registry.get(upstream.url))
        self.assertEqual(self.registry.upstreams(), [])
        self.assertEqual(self.registry.used("main"), 1)
        self.assertFalse(self.registry.has_room("main"))
        self.assertTrue(self.registry.has_room("main", soon=True))  # what admitting a viewer asks
        with self.assertRaises(ProviderFull):
            self.registry.acquire(source(2))
        response.transport.closed()
        self.successResultOf(released)
        self.assertEqual(self.registry.used("main"), 0)
        self.assertTrue(self.registry.has_room("main"))
        self.registry.acquire(source(2))

    def test_over_closing_does_not_wait_for_a_slow_close(self) -> None:
        upstream = self.registry.acquire(source(1))
        self.streaming(upstream)
        self.registry.release(upstream)
        other = self.registry.acquire(source(2), over_closing=True)
        self.assertEqual(other.url, source(2).url)
        self.assertEqual(self.registry.used("main"), 2)

    def test_slot_freed_fires_when_the_next_closing_connection_is_gone(self) -> None:
        self.make(max_streams=2)
        self.assertIsNone(self.registry.slot_freed("main"))  # nothing closing: nothing to wait for
        first, second = self.registry.acquire(source(1)), self.registry.acquire(source(2))
        first_response, second_response = self.streaming(first), self.streaming(second)
        first_closed, second_closed = self.registry.release(first), self.registry.release(second)
        freed = self.registry.slot_freed("main")
        assert freed is not None
        self.assertNoResult(freed)
        first_response.transport.closed()
        self.assertIsNone(self.successResultOf(freed))
        self.successResultOf(first_closed)  # waiting for the slot took nothing from release's answer
        self.assertNoResult(second_closed)
        again = self.registry.slot_freed("main")
        assert again is not None
        second_response.transport.closed()
        self.successResultOf(again)
        self.successResultOf(second_closed)
        self.assertIsNone(self.registry.slot_freed("main"))

    def test_slot_freed_fires_for_whichever_closing_connection_goes_first(self) -> None:
        """A slot is free as soon as any connection is gone, not only the oldest one."""
        self.make(max_streams=2)
        first, second = self.registry.acquire(source(1)), self.registry.acquire(source(2))
        first_response, second_response = self.streaming(first), self.streaming(second)
        self.registry.release(first)
        self.registry.release(second)
        freed = self.registry.slot_freed("main")
        assert freed is not None
        second_response.transport.closed()  # the newer one closes first
        self.successResultOf(freed)
        self.assertTrue(self.registry.has_room("main"))
        first_response.transport.closed()

    def test_a_failed_upstream_frees_its_url_and_slot_at_once(self) -> None:
        upstream = self.registry.acquire(source(1))
        upstream.start()
        self.http["main"].answer(upstream.url, code=404)
        self.assertEqual(upstream.state, "failed")
        self.assertIsNone(self.registry.get(upstream.url))
        self.assertEqual(self.registry.used("main"), 0)
        self.assertEqual(self.registry.failures[("main", "http_error")], 1)
        fresh = self.registry.acquire(source(1))  # a new connection, not the failed one
        self.assertIsNot(fresh, upstream)


class MakeRoomTests(RegistryCase):
    def test_a_full_provider_is_asked_to_make_room(self) -> None:
        held = self.registry.acquire(source(1))
        asked: list[tuple[str, Any]] = []

        def make_room(provider: str, asking: object) -> bool:
            asked.append((provider, asking))
            self.registry.release(held)  # nothing started: gone at once
            return True
        self.registry.make_room = make_room
        me = object()
        upstream = self.registry.acquire(source(2), asking=me)
        self.assertEqual(asked, [("main", me)])
        self.assertEqual(self.registry.upstreams(), [upstream])

    def test_room_promised_but_not_made_is_still_full(self) -> None:
        self.registry.acquire(source(1))
        self.registry.make_room = lambda provider, asking: True
        with self.assertRaises(ProviderFull):
            self.registry.acquire(source(2))

    def test_not_asked_while_there_is_room(self) -> None:
        asked: list[str] = []

        def make_room(provider: str, asking: object) -> bool:
            asked.append(provider)
            return False
        self.registry.make_room = make_room
        self.registry.acquire(source(1))
        self.registry.acquire(source(1))  # the same URL takes no new slot
        self.assertEqual(asked, [])


class SharingTests(RegistryCase):
    def test_one_upstream_per_url_counted_by_reference(self) -> None:
        first = self.registry.acquire(source(1))
        again = self.registry.acquire(source(1))
        self.assertIs(again, first)
        self.assertEqual(self.registry.refs(first), 2)
        response = self.streaming(first)
        self.successResultOf(self.registry.release(first))  # another still plays it
        self.assertFalse(response.transport.stopped)
        self.assertIs(self.registry.get(first.url), first)
        self.assertEqual(self.registry.refs(first), 1)
        closed = self.registry.release(first)
        self.assertTrue(response.transport.stopped)
        self.assertEqual(self.registry.refs(first), 0)
        response.transport.closed()
        self.successResultOf(closed)

    def test_releasing_what_is_not_held_is_harmless(self) -> None:
        upstream = self.registry.acquire(source(1))
        self.successResultOf(self.registry.release(upstream))
        self.successResultOf(self.registry.release(upstream))
        self.assertEqual(self.registry.used("main"), 0)

    def test_upstreams_carry_the_provider_headers_and_user_agent(self) -> None:
        upstream = self.registry.acquire(source(1))
        upstream.start()
        _, headers, _ = self.http["main"].requests[0]
        self.assertEqual((headers["User-Agent"], headers["Referer"]), (["UA/1"], ["http://r/"]))

    def test_hls_urls_are_hls_from_the_start(self) -> None:
        self.make(max_streams=0)
        hls = self.registry.acquire(Source("main", "h", BASE + "index.m3u8"))
        ts = self.registry.acquire(source(1))
        self.assertEqual((hls.kind, ts.kind), ("hls", "ts"))


class HttpClientTests(RegistryCase):
    def test_one_http_client_per_provider(self) -> None:
        self.make(max_streams=0)
        for n in range(3):
            self.registry.acquire(source(n)).start()
        self.registry.acquire(source(9, provider="other")).start()
        self.assertEqual(self.made, ["main", "other"])
        self.assertEqual(len(self.http["main"].requests), 3)
        self.assertEqual(len(self.http["other"].requests), 1)

    def test_without_a_factory_each_provider_gets_a_header_limited_pool(self) -> None:
        """A persistent pool per provider, refusing endless headers; closed with the registry."""
        from epgd.net.pool import HeaderLimitedPool
        from epgd.stream import registry as registry_module

        made: list[HeaderLimitedPool] = []

        class Recorded(HeaderLimitedPool):
            def __init__(self, reactor: Any, persistent: bool = True) -> None:
                super().__init__(reactor, persistent)
                made.append(self)

        self.patch(registry_module, "HeaderLimitedPool", Recorded)
        self.make(max_streams=0)
        registry = UpstreamRegistry(self.config, self.clock, Redactor())
        registry.acquire(source(1))
        registry.acquire(source(2))
        registry.acquire(source(9, provider="other"))
        self.assertEqual(len(made), 2)
        self.assertTrue(all(pool.persistent for pool in made))
        self.successResultOf(registry.close())


class CloseTests(RegistryCase):
    def test_close_waits_for_every_connection(self) -> None:
        self.make(max_streams=0)
        first, second = self.registry.acquire(source(1)), self.registry.acquire(source(2))
        first_response, second_response = self.streaming(first), self.streaming(second)
        self.registry.acquire(source(2))  # two users of one connection: closed all the same
        done: Deferred[Any] = self.registry.close()
        self.assertTrue(first_response.transport.stopped and second_response.transport.stopped)
        self.assertEqual(self.registry.upstreams(), [])
        self.assertIsNone(self.registry.get(first.url))
        self.assertNoResult(done)
        first_response.transport.closed()
        self.assertNoResult(done)
        second_response.transport.closed()
        self.successResultOf(done)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_waits_for_connections_already_closing(self) -> None:
        upstream = self.registry.acquire(source(1))
        response = self.streaming(upstream)
        self.registry.release(upstream)
        done = self.registry.close()
        self.assertNoResult(done)
        response.transport.closed()
        self.successResultOf(done)
