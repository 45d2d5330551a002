"""
The edges of the HTTP server that Klein's routes never see: requests Twisted refuses before
any resource runs, paths that are not UTF-8, and the access log. Every answer from here, as
from the routes, is one line of plain text (SPEC §4), and nothing a client sends is echoed or
logged at unbounded length.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.web.http import HTTPChannel, combinedLogFormatter
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site
from zope.interface import implementer

from epgd.plaintext import error_line
from epgd.redact import Redactor

#: Longest piece of client text shown in an error line or the access log.
SHOWN = 80


def shorten(text: str, limit: int = SHOWN) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more)"


def _shorten_bytes(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    return data[:limit] + b"...(%d more)" % (len(data) - limit)


class _OneLineChannel(HTTPChannel):
    """
    Twisted answers a request it cannot parse (a bad request line, a broken header, too
    many or too long headers) with a bare status line. This one says what is wrong, in one
    line, and still hangs up as Twisted does (the rest of the request cannot be trusted).
    ``_respondToBadRequestAndDisconnect`` is the one place all those paths meet.
    """

    def _respondToBadRequestAndDisconnect(self) -> None:
        body = b"bad request: the request line or its headers are malformed\n"
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        self.loseConnection()


@implementer(IResource)
class Utf8Paths:
    """
    Refuses a path that is not UTF-8 once percent-decoded, with a one-line 400, before Klein
    sees it (Klein logs a traceback for it and answers an HTML page).
    """

    isLeaf = True

    def __init__(self, wrapped: Resource) -> None:
        self._wrapped = wrapped

    def getChildWithDefault(self, name: bytes, request: IRequest) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError("Utf8Paths is a leaf")

    def render(self, request: IRequest) -> Any:
        try:
            unquote_to_bytes(request.path or b"").decode("utf-8")
        except UnicodeDecodeError:
            return error_line(request, 400, "bad request: the path is not UTF-8")
        return self._wrapped.render(request)


class EpgdSite(Site):
    """The web site: one-line 400s for malformed requests, a masked and bounded access log."""

    protocol = _OneLineChannel  # type: ignore[assignment]  # HTTP/1.1 only: no TLS, no h2

    def __init__(self, resource: Resource, redactor: Redactor, **kwargs: Any) -> None:
        super().__init__(Utf8Paths(resource), logFormatter=access_log_formatter(redactor),
                         **kwargs)


class _Logged:
    """What the access log reads of a request, with every client-sent text bounded."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self.uri = _shorten_bytes(request.uri or b"", 512)
        self.method = _shorten_bytes(request.method or b"", 32)
        self.clientproto = _shorten_bytes(request.clientproto or b"", 32)
        self.code = request.code
        self.sentLength = request.sentLength

    def getClientAddress(self) -> Any:
        return self._request.getClientAddress()

    def getHeader(self, name: bytes) -> bytes | None:
        value = self._request.getHeader(name)
        return None if value is None else _shorten_bytes(value, 256)


def access_log_formatter(redactor: Redactor) -> Any:
    """The access log in combined format, secrets masked (``?token=``), client text bounded."""

    def format_line(timestamp: str, request: Any) -> str:
        return redactor.mask(combinedLogFormatter(timestamp, _Logged(request)))

    return format_line


__all__ = ["SHOWN", "EpgdSite", "Utf8Paths", "access_log_formatter", "shorten"]
