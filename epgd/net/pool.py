"""
The HTTP client pool for talking to a provider: Twisted's Agent, with a cap on the size of a
response's header section.

Twisted's client parser limits each header line (``LineReceiver.MAX_LENGTH``, 16 KiB) but
not how many lines come: a provider that answers with endless headers would fill memory
before the body (and its size cap) ever starts. ``HeaderLimitedPool`` builds
``HTTP11ClientProtocol``s that give up once a response's headers pass ``MAX_HEADER_BYTES``.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure
from twisted.web._newclient import HEADER, STATUS, HTTP11ClientProtocol
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

#: A response's status line and headers together; real providers send a few hundred bytes.
MAX_HEADER_BYTES = 64 * 1024


class HeadersTooLong(Exception):
    """A response whose header section passed the limit; the connection is dropped."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response headers longer than {limit // 1024} KiB")


class _HeaderLimitedProtocol(HTTP11ClientProtocol):
    """Counts what arrives while the parser is still reading a status line or headers."""

    max_header_bytes = MAX_HEADER_BYTES

    def __init__(self, quiescentCallback: Any = lambda c: None) -> None:
        super().__init__(quiescentCallback)
        self._counted: object = None  # the response parser the count belongs to
        self._header_bytes = 0

    def dataReceived(self, bytes: bytes) -> None:  # noqa: A002 - Twisted's parameter name
        parser = self._parser
        if parser is not None and parser.state in (STATUS, HEADER):
            if parser is not self._counted:
                self._counted, self._header_bytes = parser, 0
            self._header_bytes += len(bytes)
        super().dataReceived(bytes)
        # Still in the headers after this read: every byte so far was header bytes (a read
        # that also held the start of the body has moved the parser on to BODY).
        parser = self._parser
        if (parser is not None and parser is self._counted and parser.state in (STATUS, HEADER)
                and self._header_bytes > self.max_header_bytes):
            self._giveUp(Failure(HeadersTooLong(self.max_header_bytes)))


class _HeaderLimitedFactory(_HTTP11ClientFactory):
    # Twisted logs "Starting factory ..." and "Stopping factory ..." for each connection a
    # client factory makes: two lines per fetch and per stream say nothing to an operator.
    noisy = False

    def buildProtocol(self, addr: Any) -> HTTP11ClientProtocol:
        return _HeaderLimitedProtocol(self._quiescentCallback)


class HeaderLimitedPool(HTTPConnectionPool):
    """An ``HTTPConnectionPool`` whose connections refuse endless response headers."""

    _factory = _HeaderLimitedFactory


__all__ = ["MAX_HEADER_BYTES", "HeaderLimitedPool", "HeadersTooLong"]
