"""
One HLS segment written to one request: the window's shared bytes, in pieces the socket takes,
never a copy per viewer.

``Request.write`` of a whole segment would have Twisted join it into the transport's buffer (a
copy of megabytes per viewer, held until the viewer has read it all). A streaming producer on
the request writes it as the socket drains instead, through the channel viewers' own
``BodyWriter`` (``sendmsg`` from a view of the shared bytes while the transport's buffer is
empty; Twisted's buffer, and its backpressure, otherwise).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.web.iweb import IRequest
from zope.interface import implementer

from epgd.stream.out.bodywriter import BodyWriter, direct_transport
from epgd.stream.out.client import disconnected, release_producer

#: bytes handed to the socket (or Twisted) at a time
PIECE = 256 * 1024


@implementer(IPushProducer)
class SegmentSender:
    """Writes ``data`` as ``request``'s body; ``done`` fires with ``b""`` at its end (Klein finishes)."""

    def __init__(self, request: IRequest, data: bytes) -> None:
        self.request: Any = request
        self.done: Deferred[bytes] = Deferred(lambda _: self._stop())
        self._view = memoryview(data)
        self._offset = 0
        self._paused = False
        self._stopped = False
        self._direct = False
        self._writer = BodyWriter(request)

    def start(self) -> Deferred[bytes]:
        if disconnected(self.request):
            self._stopped = True
            return self.done
        self.request.registerProducer(self, True)
        self._send()
        return self.done

    def _send(self) -> None:
        view = self._view
        while not self._paused and not self._stopped and self._offset < len(view):
            piece = view[self._offset:self._offset + PIECE]
            self._offset += len(piece)
            # the first write (the headers too) goes through Twisted; after it a view of the
            # shared bytes is enough when they go straight to the socket
            self._writer.write(piece if self._direct else bytes(piece))  # type: ignore[arg-type]
            if self._offset == len(piece):
                self._direct = direct_transport(self.request) is not None
        if self._offset >= len(view) and not self._stopped:
            self._finish()

    def _finish(self) -> None:
        self._stopped = True
        release_producer(self.request)
        if not self.done.called:
            self.done.callback(b"")

    def _stop(self) -> None:
        """The viewer went away (Klein cancelled ``done``, or the transport stopped us)."""
        self._stopped = True
        self._view = memoryview(b"")

    # -- IPushProducer ---------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        if self._paused:
            self._paused = False
            self._send()

    def stopProducing(self) -> None:
        self._stop()
