"""
Who holds which provider connection: the Upstreams by URL (ref-counted, so one connection
serves every channel that plays a URL), one HTTP client and pool per provider, and the
``max_streams`` slot accounting (each open Upstream takes one slot of its provider).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import cast

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.web.client import Agent, HTTPConnectionPool

from epgd.config import Config
from epgd.hls.playlist import is_hls_url
from epgd.net.failure import Fault
from epgd.net.pool import HeaderLimitedPool
from epgd.net.response import HTTPGetter
from epgd.redact import Redactor
from epgd.schedule.model import Source
from epgd.stream.readgaps import ReadGaps
from epgd.stream.upstream import Upstream


def _when_done(*closing: Deferred[None]) -> Deferred[None]:
    """
    A Deferred of its own that fires (with None) when the first of ``closing`` does, leaving
    their results alone: cancelling it (a caller that stopped waiting) touches none of them.
    """
    done: Deferred[None] = Deferred()

    def fire(result: object) -> object:
        if not done.called:
            done.callback(None)
        return result

    for each in closing:
        each.addBoth(fire)
    return done


class ProviderFull(Exception):
    """Every connection the provider allows is in use by streams that have viewers."""

    def __init__(self, provider: str, limit: int) -> None:
        super().__init__(f"provider {provider!r} is at its limit of {limit} concurrent streams")
        self.provider = provider
        self.limit = limit


HTTPFactory = Callable[[str], HTTPGetter]


class UpstreamRegistry:
    """Upstreams by URL and the provider connection budget."""

    def __init__(
        self,
        config: Config,
        reactor: object,
        redactor: Redactor,
        http_factory: HTTPFactory | None = None,
    ) -> None:
        self._config = config
        self._reactor = reactor
        self._redactor = redactor
        self._http_factory = http_factory
        self._by_url: dict[str, Upstream] = {}
        self._refs: dict[Upstream, int] = {}
        self._clients: dict[str, HTTPGetter] = {}
        self._pools: list[HTTPConnectionPool] = []
        self._closing: list[Deferred[None]] = []
        self._closing_for: Counter[str] = Counter()  # provider -> its connections still closing
        self._closing_by: dict[str, list[Deferred[None]]] = {}
        #: called with (provider name, the stream asking) when the provider is full;
        #: returns True if it stopped something to free a slot
        self.make_room: Callable[[str, object], bool] = lambda provider, asking: False
        #: (provider, fault word) -> faults seen, for /metrics
        self.failures: Counter[tuple[str, Fault]] = Counter()
        #: provider -> the gaps between reads of its streams, for /metrics
        self.read_gaps: dict[str, ReadGaps] = {}

    # -- slots -----------------------------------------------------------------------

    def limit(self, provider: str) -> int:
        config = self._config.provider(provider)
        return config.max_streams if config is not None else 0

    def used(self, provider: str) -> int:
        """
        Connections of ``provider`` in use, counting those still closing: a single-connection
        panel counts a socket until it is gone, and answers 403 to a second one meanwhile.
        """
        open_now = sum(1 for u in self._by_url.values() if u.provider == provider)
        return open_now + self._closing_for[provider]

    def has_room(self, provider: str, soon: bool = False) -> bool:
        """
        A connection of ``provider`` may open now; ``soon``: once the ones closing are gone
        (what deciding to admit a viewer needs).
        """
        limit = self.limit(provider)
        used = self.used(provider) - (self._closing_for[provider] if soon else 0)
        return limit <= 0 or used < limit

    def slot_freed(self, provider: str) -> Deferred[None] | None:
        """Fires when the first of ``provider``'s closing connections is gone; None: none is."""
        waiting = self._closing_by.get(provider)
        if not waiting:
            return None
        return _when_done(*waiting)

    # -- upstreams -------------------------------------------------------------------

    def get(self, url: str) -> Upstream | None:
        return self._by_url.get(url)

    def refs(self, upstream: Upstream) -> int:
        return self._refs.get(upstream, 0)

    def upstreams(self) -> list[Upstream]:
        return list(self._by_url.values())

    def acquire(self, source: Source, asking: object = None, over_closing: bool = False) -> Upstream:
        """
        The running Upstream of ``source.url``, or a new (not yet started: subscribe, then
        ``start()``) one; raises ``ProviderFull``. ``over_closing``: do not count connections
        still closing (their close is taking too long to wait for).
        """
        upstream = self._by_url.get(source.url)
        if upstream is None:
            if not self.has_room(source.provider, over_closing) and not (
                self.make_room(source.provider, asking) and self.has_room(source.provider, over_closing)
            ):
                raise ProviderFull(source.provider, self.limit(source.provider))
            provider = self._config.provider(source.provider)
            headers = {"User-Agent": self._config.stream.user_agent}
            if provider is not None:
                headers.update(provider.headers)
            # Either kind takes one slot; an Upstream whose answer is a playlist follows it too.
            upstream = Upstream(
                source.url, source.provider, self._http(source.provider), headers,
                self._reactor, self._config.stream, self._redactor,  # type: ignore[arg-type]
                on_failed=self._failed, on_fault=self._fault,
                hls_variant=provider.hls_variant if provider is not None else "best",
                kind="hls" if is_hls_url(source.url) else "ts",
                read_gaps=self.read_gaps.setdefault(source.provider, ReadGaps()),
            )
            self._by_url[source.url] = upstream
            self._refs[upstream] = 0
        self._refs[upstream] = self._refs.get(upstream, 0) + 1
        return upstream

    def release(self, upstream: Upstream) -> Deferred[None]:
        """
        One user less; the last one out closes the connection. Fires once its slot is free
        (the provider connection is gone); at once when others still use it.
        """
        count = self._refs.get(upstream)
        if count is None:
            return succeed(None)
        if count > 1:
            self._refs[upstream] = count - 1
            return succeed(None)
        del self._refs[upstream]
        if self._by_url.get(upstream.url) is upstream:
            del self._by_url[upstream.url]
        closing = upstream.close()
        self._track(closing, upstream.provider)
        return _when_done(closing)

    def _fault(self, upstream: Upstream, fault: Fault) -> None:
        self.failures[(upstream.provider, fault)] += 1

    def _failed(self, upstream: Upstream) -> None:
        """A failed Upstream holds no connection: free its URL and slot at once."""
        if self._by_url.get(upstream.url) is upstream:
            del self._by_url[upstream.url]

    def _track(self, closing: Deferred[None], provider: str | None = None) -> None:
        if closing.called:
            return
        self._closing.append(closing)
        if provider is not None:
            self._closing_for[provider] += 1
            self._closing_by.setdefault(provider, []).append(closing)
        closing.addBoth(self._closed, closing, provider)

    def _closed(self, result: object, closing: Deferred[None], provider: str | None) -> object:
        if closing in self._closing:
            self._closing.remove(closing)
            if provider is not None:
                self._closing_for[provider] -= 1
                self._closing_by[provider].remove(closing)
        return result

    # -- HTTP ------------------------------------------------------------------------

    def _http(self, provider: str) -> HTTPGetter:
        """One HTTP client (one persistent pool) per provider; "" for manual URLs."""
        existing = self._clients.get(provider)
        if existing is not None:
            return existing
        client: HTTPGetter
        if self._http_factory is not None:
            client = self._http_factory(provider)
        else:
            pool = HeaderLimitedPool(self._reactor, persistent=True)  # no endless response headers
            self._pools.append(pool)
            agent = Agent(
                self._reactor, connectTimeout=self._config.stream.connect_timeout, pool=pool
            )
            client = cast(HTTPGetter, HTTPClient(agent))
        self._clients[provider] = client
        return client

    def close(self) -> Deferred[object]:
        """Close every Upstream and pool; fires when their connections are gone."""
        for upstream in list(self._refs) + list(self._by_url.values()):
            self._track(upstream.close())
        self._by_url.clear()
        self._refs.clear()
        waits: list[Deferred[object]] = list(self._closing)  # type: ignore[arg-type]
        waits += [pool.closeCachedConnections() for pool in self._pools]
        self._pools.clear()
        self._clients.clear()
        return DeferredList(waits, consumeErrors=True)  # type: ignore[return-value]
