"""
One HTTP client of a channel stream: a streaming producer on its request, reading on through
the channel's shared backlog from an offset of its own.

The channel (``output.Output``) decides when a viewer is written to; the viewer writes what
the backlog holds past its offset, in one piece, when its socket has room. The socket tells
the client when to stop (``pauseProducing``); the client tells its channel's fanout, which
pauses the provider only when every client is paused, and asks to be written to again when
the socket has room. A client that falls ``client_buffer`` bytes behind is dropped so it
never slows the others; until then what it has not taken costs its offset, no private copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from zope.interface import implementer

from epgd.stream.out.backlog import Backlog
from epgd.stream.out.bodywriter import BodyWriter
from epgd.stream.out.fanout import Fanout

#: small writes are held at most this long before they go out anyway (see the channel)
FLUSH_AFTER = 0.1


def disconnected(request: Any) -> bool:
    """
    The request's connection is lost: Twisted's own flag (see ``epgd.internals``), as no public
    API tells it. ``notifyFinish()`` asked for after the loss never fires, and registering a
    producer then fails (the request has no channel any more).
    """
    return bool(getattr(request, "_disconnected", False))


def release_producer(request: Any) -> None:
    """The request stops pulling from its producer, unless its connection is gone already."""
    if not disconnected(request):
        try:
            request.unregisterProducer()
        except Exception:  # the request's channel is already gone
            pass


def describe_peer(request: IRequest) -> str:
    """``127.0.0.1:53412`` for log lines."""
    try:
        address = request.getClientAddress()
        return f"{address.host}:{address.port}"
    except Exception:
        return "client"


@implementer(IPushProducer)
class Client:
    """
    One viewer. ``done`` fires (with ``b""``) when the stream ends for it, which lets Klein
    finish the response; cancelling ``done`` (Klein does when the connection goes away)
    detaches it.
    """

    log = Logger()

    def __init__(
        self,
        request: IRequest,
        clock: IReactorTime,
        buffer_limit: int,
        channel_id: str = "",
        on_detach: Callable[[Client], None] | None = None,
    ) -> None:
        # IRequest does not declare the IConsumer half (registerProducer) Request has.
        self.request: Any = request
        self._writer = BodyWriter(request)
        self.channel_id = channel_id
        self.peer = describe_peer(request)
        self.fanout: Fanout[Client] | None = None
        self.bytes_sent = 0
        self.detached = False
        self.paused = False
        self.reason = ""
        self.dropped: str | None = None  # why epgd cut this viewer off, a word for /metrics
        self.done: Deferred[bytes] = Deferred(self._cancelled)
        self._limit = buffer_limit
        self._on_detach = on_detach
        self._registered = False
        self.connected_at = clock.seconds()
        #: where in its channel's backlog this viewer reads on; set when it starts to follow it
        self.backlog: Backlog | None = None
        self.position = 0
        #: told when the socket has room again: the channel writes to this viewer then
        self.on_ready: Callable[[Client], None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self, initial: bytes = b"") -> None:
        """Register on the request and send the headers (and ``initial``) at once."""
        finished = self.request.notifyFinish()
        finished.addErrback(self._lost)
        finished.addCallback(lambda _: self.detach("response finished"))
        if self.detached:
            return
        if disconnected(self.request):
            self.detach("connection closed before the stream started")
            return
        self.request.registerProducer(self, True)
        self._registered = True
        self.bytes_sent += len(initial)
        self._writer.write(initial)  # headers now, with or without bytes: players see 200 at once

    def follow(self, backlog: Backlog, position: int) -> None:
        """Read on through ``backlog`` from ``position`` (a joiner: the latest entry point)."""
        self.backlog = backlog
        self.position = position

    def end(self, reason: str = "stream stopped") -> None:
        """The stream is over for this client: send what it has not had and finish."""
        if self.detached:
            return
        if not self.paused:
            self.pump(1 << 62)
        self.detach(reason)

    def detach(self, reason: str, connection_gone: bool = False) -> None:
        """
        Release everything this client holds. Idempotent: reached from stopProducing, the
        notifyFinish errback, the Deferred canceller, a drop and the channel's stop.
        """
        if self.detached:
            return
        self.detached = True
        self.reason = reason
        self.backlog = None
        if self.fanout is not None:
            self.fanout.remove(self)
        if self._registered:
            self._registered = False
            release_producer(self.request)
        if self._on_detach is not None:
            self._on_detach(self)
        if not connection_gone and not self.done.called:
            self.done.callback(b"")

    def _cancelled(self, _: Deferred[bytes]) -> None:
        self.detach("client went away", connection_gone=True)

    def _lost(self, failure: Failure) -> None:
        self.detach("client went away", connection_gone=True)

    # -- IPushProducer ---------------------------------------------------------------

    def pauseProducing(self) -> None:
        if self.detached or self.paused:
            return
        self.paused = True
        if self.fanout is not None:
            self.fanout.set_paused(self, True)

    def resumeProducing(self) -> None:
        if self.detached or not self.paused:
            return
        self.paused = False
        if self.fanout is not None:
            self.fanout.set_paused(self, False)
        if self.on_ready is not None and self.lag:
            self.on_ready(self)

    def stopProducing(self) -> None:
        self.detach("client went away", connection_gone=True)

    # -- data ------------------------------------------------------------------------

    @property
    def lag(self) -> int:
        """Bytes of the backlog this viewer has not had yet: how far it has fallen behind."""
        backlog = self.backlog
        return backlog.end - self.position if backlog is not None else 0

    def pump(self, limit: int) -> int:
        """
        Write what the backlog holds past this viewer's offset, at most ``limit`` bytes, as
        one piece; returns the bytes written (0 while paused). The caller guards it.
        """
        backlog = self.backlog
        if self.detached or self.paused or backlog is None or self.position >= backlog.end:
            return 0
        parts = backlog.since(self.position, limit)
        size = sum(len(p) for p in parts)
        self.position += size
        self.bytes_sent += size
        self._writer.write_parts(parts, size)  # may call pauseProducing back
        return size

    def write(self, data: bytes) -> None:
        """Bytes outside the backlog (keepalive while it waits to start); none while paused."""
        if self.detached or self.paused:
            return
        self.bytes_sent += len(data)
        self._writer.write(data)  # may call pauseProducing back

    def fell_behind(self) -> bool:
        """Past ``client_buffer`` behind: dropped now (logged), so it holds up no memory."""
        if self.detached or self.lag <= self._limit:
            return False
        self._drop()
        return True

    def _drop(self) -> None:
        self.log.warn(
            "[PROXY] {channel} dropping client {peer}: it fell {queued} bytes behind "
            "(client_buffer {limit})",
            channel=self.channel_id, peer=self.peer, queued=self.lag, limit=self._limit,
        )
        self._cut_off("too_slow", "too slow: fell more than client_buffer bytes behind")

    def fail(self) -> None:
        """Writing to this viewer raised (logged by the caller): cut off this one only."""
        self._cut_off("error", "internal error while writing to it")

    def _cut_off(self, word: str, reason: str) -> None:
        if self.detached:
            return
        connection = getattr(self.request, "channel", None)
        transport = getattr(connection, "transport", None)
        self.dropped = word
        self.detach(reason)
        # Abort, not loseConnection: that would wait, holding the unread buffers, for a
        # client that does not read to take them.
        try:
            if transport is not None and hasattr(transport, "abortConnection"):
                transport.abortConnection()
            elif connection is not None and hasattr(connection, "loseConnection"):
                connection.loseConnection()
        except Exception:  # a connection already in pieces: it is going anyway
            self.log.failure("[PROXY] {channel}: closing {peer} failed", channel=self.channel_id,
                             peer=self.peer)

    def __repr__(self) -> str:
        return f"<Client {self.peer} on {self.channel_id}>"

