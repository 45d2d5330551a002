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

from typing import Any

from twisted.internet import tcp

from epgd.internals import INTERNALS

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

    __slots__ = ("_request", "_transport", "_chunked", "_checked", "direct")

    def __init__(self, request: Any) -> None:
        self._request = request
        self._transport: tcp.Connection | None = None
        self._chunked = False
        self._checked = False
        #: writes that went straight to the socket (tests and benchmarks read it)
        self.direct = 0

    def write(self, data: bytes) -> None:
        transport = self._transport
        request = self._request
        if transport is None:
            request.write(data)
            if not self._checked:  # once, after the headers went out
                self._checked = True
                self._transport = direct_transport(request)
                self._chunked = bool(getattr(request, "chunked", False))
            return
        if not data:
            return
        if request.finished or request._disconnected:
            request.write(data)  # Twisted's own answer: an error, or nothing
            return
        parts: tuple[bytes, ...] = (b"%x\r\n" % len(data), data, CRLF) if self._chunked else (data,)
        request.sentLength += len(data)
        if (transport.dataBuffer or transport._tempDataLen or not transport.connected
                or transport.disconnecting or transport._writeDisconnected):
            transport.writeSequence(parts)  # behind what is queued: the transport's turn
            return
        try:
            sent = transport.socket.sendmsg(parts)
        except OSError:
            # full (EAGAIN), or a reset or broken pipe that the transport meets in its own
            # doWrite and closes on, as it would have
            transport.writeSequence(parts)
            return
        self.direct += 1
        if sent < len(data) + (len(parts[0]) + 2 if self._chunked else 0):
            transport.writeSequence(_rest(parts, sent))


def _rest(parts: tuple[bytes, ...], sent: int) -> list[bytes]:
    """What ``sendmsg`` left of ``parts`` after ``sent`` bytes."""
    rest = []
    for part in parts:
        if sent >= len(part):
            sent -= len(part)
            continue
        rest.append(part[sent:] if sent else part)
        sent = 0
    return rest
