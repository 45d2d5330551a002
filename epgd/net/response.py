"""
Small things every reader of a provider's HTTP answers needs: the request interface epgd
uses, the URL an answer came from after redirects, its content type and status line, and
throwing a body away.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol as TwistedProtocol


class HTTPGetter(Protocol):
    """The part of ``treq.HTTPClient`` epgd's provider requests use."""

    def get(self, url: str, **kwargs: Any) -> Deferred[Any]: ...


class Discard(TwistedProtocol):
    """Throws an unwanted body (an error answer's) away by closing its connection at once."""

    def connectionMade(self) -> None:
        stop_body(self.transport)


def stop_body(transport: Any) -> None:
    """Close a response body's connection (its transport is an ``IPushProducer``)."""
    if transport is not None:
        transport.stopProducing()


def final_url(response: Any, default: str) -> str:
    """The URL a response came from after redirects (relative HLS URIs resolve against it)."""
    request = getattr(response, "request", None)
    uri = getattr(request, "absoluteURI", None)
    if isinstance(uri, bytes):
        return uri.decode("utf-8", "replace")
    return uri if isinstance(uri, str) else default


def content_type(response: Any) -> bytes:
    headers = getattr(response, "headers", None)
    values = headers.getRawHeaders(b"content-type") if headers is not None else None
    return values[0] if values else b""


def status_line(response: Any) -> str:
    """``HTTP 404 Not Found``: how a failed answer is named in one line."""
    phrase = (getattr(response, "phrase", b"") or b"").decode("latin-1", "replace")
    return f"HTTP {response.code} {phrase}".strip()


def is_success(response: Any) -> bool:
    return 200 <= response.code < 300
