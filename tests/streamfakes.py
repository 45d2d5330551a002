"""
In-memory fakes for the stream unit tests: a request that honours producers (pause/resume
driven by hand) and a provider whose responses the test feeds byte by byte.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from zope.interface import implementer

from epgd.schedule.model import Channel, Event, Schedule, Source


class FakeRequest:
    """Enough of ``IRequest`` for the stream code, with the producer edges of the real one."""

    def __init__(self, method: bytes = b"GET", port: int = 40000) -> None:
        self.method = method
        self.code = 200
        self.headers: dict[bytes, bytes] = {}
        self.written: list[bytes] = []
        self.producer: Any = None
        self.streaming: bool | None = None
        self.finished = False
        self._disconnected = False
        self._notifications: list[Deferred[None]] = []
        self.port = port
        self.channel = self  # loseConnection target, like HTTPChannel
        self.transport = self  # the channel's transport: abortConnection
        self.connection_closed = False
        self.aborted = False

    # IRequest bits
    def setResponseCode(self, code: int) -> None:
        self.code = code

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def getClientAddress(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", self.port)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise ValueError("producer already registered")
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        if self.finished:
            raise RuntimeError("write after finish")
        if not self._disconnected:
            self.written.append(data)

    def finish(self) -> None:
        if self._disconnected:
            raise RuntimeError("finish after disconnect")
        if self.finished:
            raise RuntimeError("finish called twice")
        if self.producer is not None:
            raise RuntimeError("finished with a producer still registered")
        self.finished = True
        for d in self._notifications:
            d.callback(None)
        self._notifications = []

    def notifyFinish(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self._notifications.append(d)
        return d

    def loseConnection(self) -> None:
        self.connection_closed = True

    def abortConnection(self) -> None:
        self.connection_closed = self.aborted = True

    # test controls
    @property
    def body(self) -> bytes:
        return b"".join(self.written)

    def disconnect(self) -> None:
        """The client goes away, as HTTPChannel.connectionLost tells a request."""
        self._disconnected = True
        for d in self._notifications:
            d.errback(Failure(ConnectionError("client went away")))
        self._notifications = []


def run_due(clock: Clock) -> int:
    """
    One reactor turn's timed calls: those due now, not the ones they schedule (a real
    reactor runs a ``callLater(0)`` made during a turn in the next one; ``Clock.advance``
    would run it in the same). Returns how many ran.
    """
    due = [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]
    for call in due:
        if call.active():
            clock.calls.remove(call)
            call.called = True
            call.func(*call.args, **call.kw)
    return len(due)


def finish_when_done(request: FakeRequest, done: Deferred[bytes]) -> None:
    """What Klein does with the Deferred ``serve`` returns."""

    def _write(result: bytes) -> None:
        if not request._disconnected and not request.finished:
            request.write(result or b"")
            request.finish()

    done.addCallbacks(_write, lambda f: None)


@implementer(IPushProducer)
class FakeTransport:
    """
    The provider body's transport: records pause/resume/stop. ``slow_close``: like a real
    socket, it is gone only later (``closed()``), not the moment it is told to stop.
    """

    def __init__(self, slow_close: bool = False) -> None:
        self.paused = False
        self.pauses = 0
        self.stopped = False
        self.slow_close = slow_close
        self.protocol: Protocol | None = None

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if not self.slow_close:
            self.closed()

    def closed(self) -> None:
        """The connection is gone at last."""
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.connectionLost(Failure(ConnectionError("aborted")))


class FakeResponse:
    def __init__(self, code: int = 200, phrase: bytes = b"OK", slow_close: bool = False) -> None:
        self.code = code
        self.phrase = phrase
        self.transport = FakeTransport(slow_close)
        self.protocol: Protocol | None = None

    def deliverBody(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        assert self.protocol is not None
        self.protocol.dataReceived(data)

    def end(self, clean: bool = True) -> None:
        assert self.protocol is not None
        reason = ResponseDone() if clean else PotentialDataLoss()
        self.transport.protocol = None
        self.protocol.connectionLost(Failure(reason))

    def drop(self) -> None:
        assert self.protocol is not None
        self.transport.protocol = None
        self.protocol.connectionLost(Failure(ConnectionError("reset by peer")))


class FakeHTTP:
    """A provider: every GET waits in ``requests`` for the test to answer it."""

    def __init__(self, slow_close: bool = False) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], Deferred[Any]]] = []
        self.slow_close = slow_close  # connections are gone only when the test says so

    def get(self, url: str, headers: Any = None, unbuffered: bool = False, **kw: Any) -> Deferred[Any]:
        assert unbuffered, "live bodies must be unbuffered"
        d: Deferred[Any] = Deferred()
        self.requests.append((url, dict(headers or {}), d))
        return d

    def waiting(self, url: str | None = None) -> list[Deferred[Any]]:
        return [d for u, _, d in self.requests if not d.called and (url is None or u == url)]

    def answer(self, url: str, code: int = 200) -> FakeResponse:
        """Answer the oldest open request for ``url``."""
        pending = self.waiting(url)
        assert pending, f"no open request for {url}"
        response = FakeResponse(code, slow_close=self.slow_close)
        pending[0].callback(response)
        return response

    def count(self, url: str) -> int:
        return sum(1 for u, _, _ in self.requests if u == url)


# -- one channel's schedule, on a task.Clock that starts at T0 -------------------------

BASE = "http://provider.test/live/alice/hunter22/"
T0 = 1_800_000_000.0


def utc(t: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(t, _dt.UTC)


def event(key: str, start: float, stop: float, *names: str, provider: str = "main") -> Event:
    sources = tuple(Source(provider, n, BASE + n) for n in names)
    return Event(key, "nhl", key, utc(T0 + start), utc(T0 + stop), sources)


def schedule(*events: Event) -> Schedule:
    channel = Channel("nhl_1", "NHL 1", 1, "nhl", "NHL", events=events)
    return Schedule(utc(T0), (channel,))


def log_text(events: Sequence[Mapping[str, Any]]) -> str:
    from twisted.logger import formatEvent

    return "\n".join(formatEvent(dict(e)) for e in events)
