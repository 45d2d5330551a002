"""
What every group of routes of the HTTP API shares: the one Klein app they are added to, the
collaborators' protocols, and the helpers that render. ``epgd.web.api.EpgdApi`` is the API.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from werkzeug.http import parse_accept_header

from epgd.access import Access, Viewer
from epgd.config import Config
from epgd.hdhr.device import HdhrDevice
from epgd.plaintext import error_line
from epgd.publish.scoped import LineupViews
from epgd.schedule.model import Schedule
from epgd.xtreamapi import XtreamApi

app = Klein()
# Paths are looked up as they come: werkzeug would answer "//stream//x.ts" with a
# RequestRedirect, which escapes Klein as a 500 (set before any route is added).
app.url_map.merge_slashes = False


class PublishedOutputs(Protocol):
    """The outputs of one schedule, rendered once (see ``epgd.publish``)."""

    epg_xml: bytes
    epg_gz: bytes
    etag: str  # quoted, e.g. '"3f2a..."'
    last_modified: str  # an HTTP date
    schedule: Schedule  # what they were rendered from (viewer accounts see a part of it)
    rendered_at: float

    def playlist(self, base_url: str) -> bytes: ...

    def schedule_json(self, now: float) -> bytes: ...


class CatalogLike(Protocol):
    def health(self) -> dict[str, Any]: ...

    def published(self) -> PublishedOutputs | None: ...

    def refresh(self) -> Deferred[None]: ...


class StreamsLike(Protocol):
    def serve(self, request: IRequest, channel_id: str) -> Any: ...

    def serve_hls(self, request: IRequest, channel_id: str, prefix: str = "") -> Any: ...

    def serve_hls_segment(self, request: IRequest, channel_id: str, name: str) -> Any: ...

    def serve_slate(self, request: IRequest, channel_id: str, reason: str) -> Any:
        """The slate alone, saying ``reason`` (a user at max_connections: SPEC §14, §15)."""

    def status(self) -> dict[str, Any]: ...

    def stop(self, channel_id: str) -> bool: ...

    def connections(self) -> dict[str, int]: ...


class MetricsLike(Protocol):
    def render(self, accept: str) -> tuple[bytes, str]: ...


def json_body(request: IRequest, body: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode("utf-8")


def accepts_gzip(request: IRequest) -> bool:
    """RFC 9110 §12.5.3 as werkzeug reads it: ``gzip;q=0, *`` refuses gzip."""
    accept = (request.getHeader(b"accept-encoding") or b"").decode("latin-1").lower()
    return parse_accept_header(accept).quality("gzip") > 0


def longest_channel_id(config: Config) -> int:
    """Channel ids are "<lineup id>_<1..999>": nothing longer can name one."""
    return max((len(lineup.id) for lineup in config.lineups), default=0) + 4


class ApiBase:
    """The state every group of routes reads, and the helpers they share."""

    config: Config
    catalog: CatalogLike
    streams: StreamsLike
    clock: IReactorTime
    access: Access
    xtream: XtreamApi
    _views: LineupViews
    _hdhr: HdhrDevice | None
    _tuners: dict[frozenset[str], HdhrDevice]

    def _slate(self, request: IRequest, channel_id: str, reason: str) -> Any:
        """The slate alone, saying ``reason``: where a stream is refused (a user at its limit)."""
        return self.streams.serve_slate(request, channel_id, reason)

    def base_url(self, request: IRequest) -> str:
        if self.config.server.base_url:
            return self.config.server.base_url.rstrip("/")
        host = (request.getHeader(b"host") or b"").decode("latin-1").strip()
        if not host:
            address = request.getHost()
            host = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 80)}"
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host}"

    def _outputs(self, request: IRequest, viewer: Viewer | None = None) -> PublishedOutputs | bytes:
        """The outputs ``viewer`` sees (an account's lineups only), or the 503 while none exist."""
        published = self.catalog.published()
        if published is None:
            request.setHeader(b"Retry-After", b"10")
            return error_line(request, 503, "no schedule yet: provider data is still loading")
        if viewer is not None and viewer.lineups is not None:
            return self._views.view(published, viewer.lineups)
        return published

