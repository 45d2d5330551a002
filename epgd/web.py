"""
The HTTP API (SPEC §4): Klein routes only. Parse, call a collaborator, render.

The collaborators are injected: a ``Catalog`` (provider data, the current schedule and its
rendered outputs) and a ``StreamManager`` (live streams). Neither knows about HTTP routing,
and this module knows nothing of how either works.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Protocol

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from werkzeug.http import parse_accept_header, parse_date

from epgd import __version__, status
from epgd.config import Config
from epgd.hdhr.device import LINEUP_STATUS, HdhrDevice
from epgd.httpguard import shorten
from epgd.plaintext import error_line
from epgd.publish.m3u import for_ffmpeg, hls_urls


class PublishedOutputs(Protocol):
    """The outputs of one schedule, rendered once (see ``epgd.publish``)."""

    epg_xml: bytes
    epg_gz: bytes
    etag: str  # quoted, e.g. '"3f2a..."'
    last_modified: str  # an HTTP date

    def playlist(self, base_url: str) -> bytes: ...

    def schedule_json(self, now: float) -> bytes: ...


class CatalogLike(Protocol):
    def health(self) -> dict[str, Any]: ...

    def published(self) -> PublishedOutputs | None: ...

    def refresh(self) -> Deferred[None]: ...


class StreamsLike(Protocol):
    def serve(self, request: IRequest, channel_id: str) -> Any: ...

    def serve_hls(self, request: IRequest, channel_id: str) -> Any: ...

    def serve_hls_segment(self, request: IRequest, channel_id: str, name: str) -> Any: ...

    def serve_slate(self, request: IRequest, channel_id: str, reason: str) -> Any:
        """The slate alone, saying ``reason`` (a user at max_connections: SPEC §14, §15)."""

    def status(self) -> dict[str, Any]: ...

    def stop(self, channel_id: str) -> bool: ...

    def connections(self) -> dict[str, int]: ...


class MetricsLike(Protocol):
    def render(self, accept: str) -> tuple[bytes, str]: ...


def _json(request: IRequest, body: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode("utf-8")


def _accepts_gzip(request: IRequest) -> bool:
    """RFC 9110 §12.5.3 as werkzeug reads it: ``gzip;q=0, *`` refuses gzip."""
    accept = (request.getHeader(b"accept-encoding") or b"").decode("latin-1").lower()
    return parse_accept_header(accept).quality("gzip") > 0


def unauthorized(request: IRequest) -> bytes:
    """401 for an admin endpoint, saying which scheme to use (RFC 6750 §3)."""
    request.setHeader(b"WWW-Authenticate", b'Bearer realm="epgd"')
    return error_line(request, 401, "admin token required")


def _longest_channel_id(config: Config) -> int:
    """Channel ids are "<lineup id>_<1..999>": nothing longer can name one."""
    return max((len(lineup.id) for lineup in config.lineups), default=0) + 4


class EpgdApi:
    """The web API of one epgd process."""

    app = Klein()
    # Paths are looked up as they come: werkzeug would answer "//stream//x.ts" with a
    # RequestRedirect, which escapes Klein as a 500 (set before any route is added).
    app.url_map.merge_slashes = False
    log = Logger()

    def __init__(
        self,
        config: Config,
        catalog: CatalogLike,
        streams: StreamsLike,
        clock: IReactorTime,
        hdhr: HdhrDevice | None = None,
        metrics: MetricsLike | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.streams = streams
        self.clock = clock
        self._hdhr = hdhr  # None: made from the config (and state_dir) when first asked for
        if metrics is None:
            from epgd.metrics import Metrics

            metrics = Metrics(config, catalog, streams, clock)  # type: ignore[arg-type]
        self.metrics = metrics

    # -- helpers ---------------------------------------------------------------------

    def base_url(self, request: IRequest) -> str:
        if self.config.server.base_url:
            return self.config.server.base_url.rstrip("/")
        host = (request.getHeader(b"host") or b"").decode("latin-1").strip()
        if not host:
            address = request.getHost()
            host = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 80)}"
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host}"

    def authorized(self, request: IRequest) -> bool:
        token = self.config.server.admin_token
        if not token:
            return True
        offered = b""
        header = request.getHeader(b"authorization") or b""
        if header[:7].lower() == b"bearer ":
            offered = header[7:].strip()
        else:
            offered = (request.args or {}).get(b"token", [b""])[0]
        return hmac.compare_digest(offered, token.encode("utf-8"))

    def _outputs(self, request: IRequest) -> PublishedOutputs | bytes:
        published = self.catalog.published()
        if published is None:
            request.setHeader(b"Retry-After", b"10")
            return error_line(request, 503, "no schedule yet: provider data is still loading")
        return published

    # -- guide -----------------------------------------------------------------------

    @app.route("/playlist.m3u", methods=["GET", "HEAD"])
    def playlist(self, request: IRequest) -> bytes:
        outputs = self._outputs(request)
        if isinstance(outputs, bytes):
            return outputs
        # exactly the SPEC §4 types: clients and scripts compare them; both bodies are UTF-8
        request.setHeader(b"Content-Type", b"audio/x-mpegurl")
        request.setHeader(b"Vary", b"User-Agent")
        playlist = outputs.playlist(self.base_url(request))
        if (request.args or {}).get(b"output", [b""])[0] == b"m3u8":
            playlist = hls_urls(playlist)  # SPEC §16: the same channels as HLS
        agent = request.getHeader(b"user-agent") or b""
        return for_ffmpeg(playlist) if agent.startswith(b"Lavf/") else playlist

    def _guide(self, request: IRequest, always_gzip: bool) -> bytes:
        outputs = self._outputs(request)
        if isinstance(outputs, bytes):
            return outputs
        encoded = not always_gzip and _accepts_gzip(request)
        # The gzip-encoded response is another representation: its own tag, so caches never
        # hand plain bytes to a client that got gzip (or back). Either tag still validates.
        gzip_tag = outputs.etag[:-1] + '-gzip"'
        request.setHeader(b"ETag", (gzip_tag if encoded else outputs.etag).encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"Vary", b"Accept-Encoding")
        # Twisted writes Last-Modified and answers If-Modified-Since (304)...
        modified = parse_date(outputs.last_modified)
        unchanged = modified is not None and request.setLastModified(modified.timestamp())
        inm = (request.getHeader(b"if-none-match") or b"").decode("latin-1")
        offered = {t.strip().removeprefix("W/") for t in inm.split(",")}
        if inm and ("*" in offered or offered & {outputs.etag, gzip_tag}):
            request.setResponseCode(304)
            return b""
        if inm and unchanged:  # ...unless If-None-Match is there: it decides (RFC 9110 §13.1.3)
            request.setResponseCode(200)
        elif unchanged:
            return b""
        if always_gzip:
            request.setHeader(b"Content-Type", b"application/gzip")
            return outputs.epg_gz
        request.setHeader(b"Content-Type", b"application/xml")  # encoding: the XML prolog
        if encoded:
            request.setHeader(b"Content-Encoding", b"gzip")
            return outputs.epg_gz
        return outputs.epg_xml

    @app.route("/epg.xml", methods=["GET", "HEAD"])
    def epg(self, request: IRequest) -> bytes:
        return self._guide(request, always_gzip=False)

    @app.route("/epg.xml.gz", methods=["GET", "HEAD"])
    def epg_gz(self, request: IRequest) -> bytes:
        return self._guide(request, always_gzip=True)

    @app.route("/schedule.json", methods=["GET", "HEAD"])
    def schedule(self, request: IRequest) -> bytes:
        outputs = self._outputs(request)
        if isinstance(outputs, bytes):
            return outputs
        request.setHeader(b"Content-Type", b"application/json")
        return outputs.schedule_json(self.clock.seconds())

    @app.route("/health", methods=["GET", "HEAD"])
    def health(self, request: IRequest) -> bytes:
        body = self.catalog.health()
        # beyond SPEC §4, for the status page: each provider's connections in use of its limit
        connections = self.streams.connections()
        for name, entry in body.get("providers", {}).items():
            provider = self.config.provider(name)
            entry["connections"] = connections.get(name, 0)
            entry["max_streams"] = provider.max_streams if provider is not None else 0
        return _json(request, body, 503 if body.get("status") == "starting" else 200)

    @app.route("/refresh", methods=["POST"])
    def refresh(self, request: IRequest) -> bytes:
        if not self.authorized(request):
            return unauthorized(request)
        self.catalog.refresh().addErrback(
            lambda f: self.log.failure("refresh failed", f)
        )
        return _json(request, {"refreshing": True}, 202)

    # -- streams ---------------------------------------------------------------------

    @app.route("/stream/<string:filename>", methods=["GET", "HEAD"])
    def stream(self, request: IRequest, filename: str) -> Any:
        channel_id, _, kind = filename.rpartition(".")
        if kind not in ("ts", "m3u8"):
            return error_line(request, 404, f"unknown stream {shorten(filename)!r}: "
                                            "stream URLs end in .ts or .m3u8")
        if len(channel_id) > _longest_channel_id(self.config):
            return error_line(request, 404, f"unknown channel {shorten(channel_id)!r}")
        if kind == "m3u8":
            return self.streams.serve_hls(request, channel_id)
        return self.streams.serve(request, channel_id)

    @app.route("/stream/<string:channel_id>/<string:name>", methods=["GET", "HEAD"])
    def stream_segment(self, request: IRequest, channel_id: str, name: str) -> Any:
        """An HLS output segment (SPEC §16): ``/stream/{id}/{sequence}.ts``."""
        if len(channel_id) > _longest_channel_id(self.config):
            return error_line(request, 404, f"unknown channel {shorten(channel_id)!r}")
        return self.streams.serve_hls_segment(request, channel_id, name)

    @app.route("/streams/status", methods=["GET"])
    def streams_status(self, request: IRequest) -> bytes:
        return _json(request, self.streams.status())

    @app.route("/streams/stop/<string:channel_id>", methods=["GET", "POST"])
    def streams_stop(self, request: IRequest, channel_id: str) -> bytes:
        if not self.authorized(request):
            return unauthorized(request)
        if self.streams.stop(channel_id):
            return _json(request, {"stopped": channel_id})
        return error_line(request, 404, f"no active stream on channel {shorten(channel_id)!r}")

    # -- HDHomeRun emulation (SPEC §10.1) ----------------------------------------------

    def _tuner(self, request: IRequest) -> HdhrDevice | bytes:
        if not self.config.hdhr.enabled:
            return error_line(request, 404, "not found: HDHomeRun emulation is off (hdhr.enabled)")
        if self._hdhr is None:
            self._hdhr = HdhrDevice.from_config(self.config)
        return self._hdhr

    def _xml(self, request: IRequest, body: bytes, content_type: bytes = b"application/xml") -> bytes:
        request.setHeader(b"Content-Type", content_type)
        return body

    @app.route("/discover.json", methods=["GET", "HEAD"])
    def hdhr_discover(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return _json(request, tuner.discover(self.base_url(request)))

    @app.route("/lineup.json", methods=["GET", "HEAD"])
    def hdhr_lineup(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return _json(request, tuner.lineup(self.base_url(request)))

    @app.route("/lineup.xml", methods=["GET", "HEAD"])
    def hdhr_lineup_xml(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return self._xml(request, tuner.lineup_xml(self.base_url(request)))

    @app.route("/lineup_status.json", methods=["GET", "HEAD"])
    def hdhr_lineup_status(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return _json(request, LINEUP_STATUS)

    @app.route("/lineup.post", methods=["GET", "POST"])
    def hdhr_lineup_post(self, request: IRequest) -> bytes:
        # Plex starts a "channel scan" here (?scan=start&source=Cable); ours is always done.
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return _json(request, {})

    @app.route("/device.xml", methods=["GET", "HEAD"])
    @app.route("/capability", methods=["GET", "HEAD"])
    def hdhr_device(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return self._xml(request, tuner.device_xml(self.base_url(request)), b"text/xml; charset=utf-8")

    @app.route("/auto/v<string:number>", methods=["GET", "HEAD"])
    def hdhr_tune(self, request: IRequest, number: str) -> Any:
        """Exactly /stream/{id}.ts of that channel; ?transcode= and ?duration= mean nothing to us."""
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        channel_id = tuner.channel_for(number)
        if channel_id is None:
            return error_line(request, 404, f"unknown channel number {shorten(number)!r}: see /lineup.json")
        return self.streams.serve(request, channel_id)

    # -- the status page and metrics ---------------------------------------------------

    @app.route("/", methods=["GET", "HEAD"])
    def status_page(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"Content-Security-Policy", status.CONTENT_SECURITY_POLICY.encode("ascii"))
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return status.page({
            "version": __version__,
            "base_url": self.config.server.base_url.rstrip("/"),
            "token": bool(self.config.server.admin_token),
            "hdhr": self.config.hdhr.enabled,
            "lineups": [{"id": lu.id, "name": lu.display_name} for lu in self.config.lineups],
        })

    @app.route("/status.js", methods=["GET", "HEAD"])
    def status_script(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", b"text/javascript; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return status.script()

    @app.route("/watch.js", methods=["GET", "HEAD"])
    @app.route("/hls.min.js", methods=["GET", "HEAD"])
    def watch_script(self, request: IRequest) -> bytes:
        """The Watch player (and hls.js, shipped with epgd, for browsers without native HLS)."""
        name = request.path.rsplit(b"/", 1)[-1].decode("ascii")
        request.setHeader(b"Content-Type", b"text/javascript; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-cache" if name == "watch.js" else b"public, max-age=86400")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Vary", b"Accept-Encoding")
        body, gzipped = status.asset(name, _accepts_gzip(request))
        if gzipped:
            request.setHeader(b"Content-Encoding", b"gzip")
        return body

    @app.route("/metrics", methods=["GET"])
    def metrics_page(self, request: IRequest) -> bytes:
        if not self.authorized(request):
            return error_line(request, 401, "admin token required")
        accept = (request.getHeader(b"accept") or b"").decode("latin-1")
        body, content_type = self.metrics.render(accept)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return body

    @app.handle_errors(Exception)
    def _unexpected(self, request: IRequest, failure: Any) -> bytes:
        from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

        if failure.check(NotFound):
            return error_line(request, 404, "not found: see /playlist.m3u, /epg.xml, /schedule.json, /health")
        if failure.check(MethodNotAllowed):
            allowed = sorted(failure.value.valid_methods or ())
            if allowed:
                request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
            return error_line(request, 405, "method not allowed" + (
                f": use {' or '.join(allowed)}" if allowed else ""))
        if failure.check(HTTPException):  # any other routing answer werkzeug gives
            error = failure.value
            return error_line(request, error.code or 400, f"{error.name}".lower())
        self.log.failure("unexpected error in {path}", failure, path=request.path)
        return error_line(request, 500, "internal error (see the epgd log)")
