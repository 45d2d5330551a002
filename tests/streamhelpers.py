"""
Shared helpers of the stream's end-to-end tests: a running epgd (StreamManager + EpgdApi on a
127.0.0.1 port) in front of a `FakeProvider`, raw HTTP/1.0 clients that read MPEG-TS, schedules
built relative to now, and log capture.

HTTP/1.0 clients get the body unchunked and see the server close at its end, so what a test
reads is exactly the bytes a player would get.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import eventAsText, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from epgd.config import Config, LineupConfig, ProviderConfig, ServerConfig, StreamConfig
from epgd.redact import Redactor
from epgd.schedule.model import Channel, Event, Schedule, Source
from epgd.web import EpgdApi
from tests.fakeprovider import PASSWORD, USER, FakeProvider

PACKET = 188
PAT_PID = 0
NULL_PID = 0x1FFF
A_PIDS = frozenset({0x100, 0x101, 0x102})  # clip a: PMT, video, audio
B_PIDS = frozenset({0x200, 0x201, 0x202})  # clip b
LINEUP = "test"


# -- MPEG-TS ---------------------------------------------------------------------------

def pid_of(packet: bytes | memoryview) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def pids(data: bytes | bytearray) -> list[int]:
    """The PID of every packet; fails the test on anything that is not whole aligned packets."""
    view = memoryview(data)
    whole = len(data) - len(data) % PACKET
    out = []
    for offset in range(0, whole, PACKET):
        if view[offset] != 0x47:
            raise AssertionError(f"byte {offset} is {view[offset]:#x}, not a 0x47 sync byte")
        out.append(pid_of(view[offset:offset + 3]))
    return out


def first_media_pid(data: bytes | bytearray) -> int | None:
    """The first PID that is not a keepalive null packet."""
    for pid in pids(data):
        if pid != NULL_PID:
            return pid
    return None


# -- schedules and configuration -------------------------------------------------------

def utc(t: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(t, tz=_dt.UTC)


def event(title: str, start: float, stop: float, *urls: str, provider: str = "main") -> Event:
    """An event from ``start`` to ``stop`` (POSIX seconds) with ``urls`` as its sources."""
    sources = tuple(Source(provider=provider, channel=f"{title} feed", url=u) for u in urls)
    return Event(key=title.lower(), lineup=LINEUP, title=title, start=utc(start), stop=utc(stop),
                 sources=sources)


def schedule(channels: dict[str, list[Event]], now: float) -> Schedule:
    built = tuple(
        Channel(id=cid, name=cid, number=i, lineup=LINEUP, group="Test", events=tuple(events))
        for i, (cid, events) in enumerate(sorted(channels.items()), start=1)
    )
    return Schedule(generated_at=utc(now), channels=built)


def config(provider: FakeProvider, channels: int = 3, max_streams: int = 0,
           max_clients: int = 500, admin_token: str = "", **stream: Any) -> Config:
    """Test settings: fast checks, short timeouts, small buffers; ``stream`` overrides them."""
    settings: dict[str, Any] = {
        "check_interval": 0.5, "idle_timeout": 30.0, "connect_timeout": 2.0,
        "client_buffer": 1024 * 1024, "hold_after_end": 0.0, "reconnect_attempts": 2,
        # These tests tell sources apart by their PIDs, which continuous output rewrites:
        # the splicer's own end-to-end tests (test_splice_e2e) ask for "continuous".
        "output": "passthrough",
        # ... and they hold SPEC §7's 503s and keepalive: the slate's own (test_slate_e2e) ask for it
        "slate": False,
    }
    settings.update(stream)
    return Config(
        server=ServerConfig(listen=(), max_clients=max_clients, admin_token=admin_token),
        stream=StreamConfig(**settings),
        providers=(ProviderConfig(name="main", playlist=provider.playlist_url(),
                                  max_streams=max_streams),),
        lineups=(LineupConfig(id=LINEUP, channels=channels),),
        path="e2e.toml",
    )


class FakeCatalog:
    """Just enough of a Catalog for the stream routes."""

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "providers": {}}

    def published(self) -> None:
        return None

    def refresh(self) -> Deferred[None]:
        return Deferred()


# -- clients ---------------------------------------------------------------------------

class HTTPReader(Protocol):
    """A raw HTTP/1.0 client: sends one request, splits the head, keeps (up to ``keep``) the body."""

    def __init__(self, reactor: Any, request: bytes, keep: int = 8 * 1024 * 1024) -> None:
        self.reactor = reactor
        self.request = request
        self.keep = keep
        self.head = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.received = 0  # body bytes, including those not kept
        self.arrivals: list[tuple[float, int]] = []  # (time, body bytes so far)
        self.closed: Deferred[None] = Deferred()
        self.is_closed = False
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        if not self.status:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.head, data = self.head.split(b"\r\n\r\n", 1)
            lines = self.head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        if data:
            self.received += len(data)
            self.arrivals.append((time.monotonic(), self.received))
            room = self.keep - len(self.body)
            if room > 0:
                self.body += data[:room]
        self._check()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.is_closed = True
        self._check()
        self.closed.callback(None)

    def _check(self) -> None:
        for item in list(self._waiters):
            test, d = item
            if test() or self.is_closed:
                self._waiters.remove(item)
                d.callback(None)

    async def wait_for(self, test: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``test()`` holds (checked as data arrives); fail the test after ``timeout``."""
        if test():
            return
        d: Deferred[None] = Deferred()
        self._waiters.append((test, d))
        d.addTimeout(timeout, self.reactor)
        try:
            await d
        except DeferredTimeout:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what} "
                f"(status {self.status}, {self.received} body bytes, closed={self.is_closed})"
            ) from None
        if not test():
            raise AssertionError(f"connection closed while waiting for {what} "
                                 f"(status {self.status}, {self.received} body bytes)")

    async def wait_bytes(self, n: int, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: self.received >= n, timeout, f"{n} body bytes")

    async def wait_closed(self, timeout: float = 5.0) -> None:
        if not self.is_closed:
            self.closed.addTimeout(timeout, self.reactor)
            try:
                await self.closed
            except DeferredTimeout:
                raise AssertionError(f"connection still open after {timeout}s") from None

    async def close(self) -> None:
        if not self.is_closed and self.transport is not None:
            self.transport.abortConnection()
            await self.wait_closed()

    def text(self) -> str:
        return bytes(self.body).decode("utf-8", "replace")

    def longest_silence(self, since: float = 0.0) -> float:
        """The longest gap between body arrivals after monotonic time ``since``."""
        times = [t for t, _ in self.arrivals if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


# -- the system under test ------------------------------------------------------------

class Epgd:
    """StreamManager + EpgdApi listening on 127.0.0.1, fed a schedule the test controls."""

    def __init__(self, reactor: Any, cfg: Config, current: Schedule | None, catalog: Any = None) -> None:
        """``catalog``: what serves /playlist.m3u and the guide (default: none, `FakeCatalog`)."""
        from epgd.stream.manager import StreamManager

        self.reactor = reactor
        self.config = cfg
        self.current = current
        self.redactor = Redactor.for_urls([p.playlist for p in cfg.providers])
        self.manager = StreamManager(cfg, reactor, lambda: self.current, self.redactor)
        self.api = EpgdApi(cfg, catalog or FakeCatalog(), self.manager, reactor)
        site = Site(self.api.app.resource())
        site.noisy = False
        self.manager.startService()
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.clients: list[HTTPReader] = []

    def set_schedule(self, new: Schedule) -> None:
        self.current = new
        self.manager.schedule_changed(new)

    async def open(self, path: str, method: str = "GET", keep: int = 8 * 1024 * 1024,
                   headers: Iterable[str] = ()) -> HTTPReader:
        """Connect and send a request; returns at once (the response arrives as it comes)."""
        extra = "".join(f"{h}\r\n" for h in headers)
        request = f"{method} {path} HTTP/1.0\r\nHost: epgd.test\r\n{extra}\r\n".encode()
        client = HTTPReader(self.reactor, request, keep)
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port.getHost().port)
        await connectProtocol(endpoint, client)
        self.clients.append(client)
        return client

    async def fetch(self, path: str, method: str = "GET", timeout: float = 5.0,
                    headers: Iterable[str] = ()) -> HTTPReader:
        """A whole short response (the server closes at its end)."""
        client = await self.open(path, method, headers=headers)
        await client.wait_closed(timeout)
        return client

    async def status(self) -> dict[str, Any]:
        response = await self.fetch("/streams/status")
        assert response.status == 200, response.text()
        return json.loads(response.text())

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        result = self.manager.stopService()
        if isinstance(result, Deferred):
            await result
        await self.port.stopListening()
        # Let the provider connections the manager closed finish closing.
        await deferLater(self.reactor, 0.05, lambda: None)


class E2ETestCase(TestCase):
    """Real reactor, real sockets on 127.0.0.1, a fake provider, captured logs."""

    timeout = 30

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.provider = FakeProvider(self.reactor)
        self.provider.start()
        self.addCleanup(self.provider.stop)
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.addCleanup(self.assert_no_credentials)  # runs after epgd has stopped

    def now(self) -> float:
        return self.reactor.seconds()

    def epgd(self, channels: dict[str, list[Event]], **settings: Any) -> Epgd:
        cfg = config(self.provider, **settings)
        running = Epgd(self.reactor, cfg, schedule(channels, self.now()))
        self.addCleanup(running.stop)
        return running

    def log_lines(self) -> list[str]:
        """epgd's log lines (the fake provider's own events left out), tracebacks included."""
        return [eventAsText(e, includeTimestamp=False, includeSystem=False) or ""
                for e in self.events
                if not str(e.get("log_namespace", "")).startswith("tests.")]

    def assert_logged(self, needle: str) -> str:
        for line in self.log_lines():
            if needle in line:
                return line
        self.fail(f"no log line contains {needle!r}; got:\n" + "\n".join(self.log_lines()[-30:]))

    def assert_no_credentials(self, *texts: str) -> None:
        for text in (*texts, *self.log_lines()):
            for secret in (USER, PASSWORD):
                if secret in text:
                    self.fail(f"credential {secret!r} leaked in: {text[:300]!r}")

    async def sleep(self, seconds: float) -> None:
        await deferLater(self.reactor, seconds, lambda: None)

    async def wait_until(self, test: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not test():
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout}s waiting for {what}")
            await self.sleep(0.02)
