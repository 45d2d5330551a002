"""
A streaming response's body written straight to its socket, past Twisted's public API: what it
reads is listed in ``epgd.internals.INTERNALS`` (and checked here, at run time, from there).
``tests/test_bodywriter.py`` fails loudly when those internals move; until then anything
unexpected falls back to ``request.write``.

Why: ``Request.write`` costs, per call and per viewer, the Request -> HTTPChannel -> transport
chain, a chunk header, a copy of the data when the transport joins its buffer, and two
``epoll_ctl`` calls (start, then stop writing) around one ``send``. A channel writes the same
coalesced bytes to every viewer, and a viewer that keeps up has an empty transport buffer
nearly always: then one ``sendmsg`` of (chunk header, the shared bytes, CRLF) does the whole
job, with no copy in user space. Whatever the socket does not take goes to the transport
(``writeSequence``), so ordering, buffering and backpressure (the transport pauses its
producer past ``bufferSize``) stay Twisted's own, and the next writes follow it there until
the transport has drained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet import tcp

from epgd.internals import INTERNALS
from epgd.stream.out.backlog import Part

#: what this module reads past the public API; one gone means Twisted's path, never a wrong write
_READS = INTERNALS[__name__]
_TRANSPORT_NAMES = _READS["twisted.internet.tcp.Connection"]
_REQUEST_NAMES = _READS["twisted.web.http.Request"] + _READS["twisted.web.server.Request"]

CRLF = b"\r\n"


def direct_transport(request: Any) -> tcp.Connection | None:
    """
    The plain TCP transport under ``request`` once its headers are out and its body goes
    unchanged to the socket; None when anything stands between (TLS, an encoder, a HEAD
    answered by faking, no socket at all as in tests' fake requests).
    """
    if not getattr(request, "startedWriting", False) or "write" in vars(request):
        return None  # headers not out yet, or Twisted swapped write out (HEAD, 204, 304)
    if getattr(request, "_encoder", None) is not None or getattr(request, "_inFakeHead", False):
        return None
    transport = getattr(getattr(request, "channel", None), "transport", None)
    if not isinstance(transport, tcp.Connection) or getattr(transport, "TLS", True):
        return None
    if not all(hasattr(transport, name) for name in _TRANSPORT_NAMES):
        return None
    if not all(hasattr(request, name) for name in _REQUEST_NAMES):
        return None
    return transport


class BodyWriter:
    """Writes one response's body; the first write (the headers) always goes through Twisted."""

    __slots__ = ("_request", "_transport", "_chunked", "_checked", "direct", "queued")

    def __init__(self, request: Any) -> None:
        self._request = request
        self._transport: tcp.Connection | None = None
        self._chunked = False
        self._checked = False
        #: writes that went straight to the socket, and writes that left bytes (all of them,
        #: or what the socket did not take) to Twisted's buffer (tests and benchmarks read them)
        self.direct = 0
        self.queued = 0

    def write(self, data: bytes) -> None:
        self.write_parts((data,), len(data))

    def write_parts(self, parts: Sequence[Part], size: int) -> None:
        """
        ``parts`` (``size`` bytes in all) as one piece of the body: one HTTP chunk, one
        ``sendmsg`` of the shared bytes, no copy, when the socket takes it.
        """
        transport = self._transport
        request = self._request
        if transport is None:
            request.write(_joined(parts))
            if not self._checked:  # once, after the headers went out
                self._checked = True
                self._transport = direct_transport(request)
                self._chunked = bool(getattr(request, "chunked", False))
            return
        if not size:
            return
        if request.finished or request._disconnected:
            request.write(_joined(parts))  # Twisted's own answer: an error, or nothing
            return
        if self._chunked:
            parts = (b"%x\r\n" % size, *parts, CRLF)
        request.sentLength += size
        if (transport.dataBuffer or transport._tempDataLen or not transport.connected
                or transport.disconnecting or transport._writeDisconnected):
            self.queued += 1
            transport.writeSequence([bytes(p) for p in parts])  # behind what is queued
            return
        try:
            sent = transport.socket.sendmsg(parts)
        except OSError:
            # full (EAGAIN), or a reset or broken pipe that the transport meets in its own
            # doWrite and closes on, as it would have
            self.queued += 1
            transport.writeSequence([bytes(p) for p in parts])
            return
        self.direct += 1
        if sent < size + (len(parts[0]) + 2 if self._chunked else 0):
            self.queued += 1
            transport.writeSequence(_rest(parts, sent))


def _joined(parts: Sequence[Part]) -> bytes:
    if len(parts) == 1:
        part = parts[0]
        return part if isinstance(part, bytes) else bytes(part)
    return b"".join(parts)


def _rest(parts: Sequence[Part], sent: int) -> list[bytes]:
    """What ``sendmsg`` left of ``parts`` after ``sent`` bytes (copied: Twisted keeps bytes)."""
    rest = []
    for part in parts:
        if sent >= len(part):
            sent -= len(part)
            continue
        rest.append(bytes(part[sent:]) if sent else bytes(part))
        sent = 0
    return rest
