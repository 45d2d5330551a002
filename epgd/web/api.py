"""
``EpgdApi``, the HTTP API of one epgd process (SPEC §4): the guide, the streams (TS and HLS),
the status page and metrics, and the Xtream Codes routes; the HDHomeRun routes come from
``epgd.web.hdhr``. Routes only: parse, call a collaborator, render.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from werkzeug.http import parse_date

from epgd import __version__, status
from epgd.access import Access, Viewer
from epgd.config import Config
from epgd.hdhr.device import HdhrDevice
from epgd.httpguard import shorten
from epgd.plaintext import error_line
from epgd.publish.m3u import for_ffmpeg, hls_urls
from epgd.publish.scoped import LineupViews
from epgd.publish.xtream import live_prefix, user_playlist
from epgd.redact import Redactor
from epgd.web.base import (
    CatalogLike,
    MetricsLike,
    StreamsLike,
    accepts_gzip,
    app,
    json_body,
    longest_channel_id,
)
from epgd.web.hdhr import HdhrRoutes
from epgd.xtreamapi import XtreamApi


class EpgdApi(HdhrRoutes):
    """The web API of one epgd process."""

    app = app
    log = Logger()

    def __init__(
        self,
        config: Config,
        catalog: CatalogLike,
        streams: StreamsLike,
        clock: IReactorTime,
        hdhr: HdhrDevice | None = None,
        metrics: MetricsLike | None = None,
        redactor: Redactor | None = None,
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
        # viewer accounts (SPEC §15): who may see what, their outputs, the Xtream Codes API
        self.access = Access(config, clock)
        self._views = LineupViews(config, (redactor or Redactor()).mask)
        self._tuners: dict[frozenset[str], HdhrDevice] = {}
        self.xtream = XtreamApi(config, self.access, catalog.published, clock, self.base_url)
        self.xtream.servers["ts"] = streams.serve
        self.xtream.slate = self._slate
        self.xtream.hls = streams

    # -- guide -----------------------------------------------------------------------

    @app.route("/playlist.m3u", methods=["GET", "HEAD"])
    def playlist(self, request: IRequest) -> bytes:
        viewer = self.access.viewer(request)
        outputs = viewer if isinstance(viewer, bytes) else self._outputs(request, viewer)
        if isinstance(outputs, bytes):
            return outputs
        # exactly the SPEC §4 types: clients and scripts compare them; both bodies are UTF-8
        request.setHeader(b"Content-Type", b"audio/x-mpegurl")
        request.setHeader(b"Vary", b"User-Agent")
        base, user = self.base_url(request), viewer.user if isinstance(viewer, Viewer) else None
        hls = (request.args or {}).get(b"output", [b""])[0] == b"m3u8"  # SPEC §16: the same channels as HLS
        # an account's playlist carries stream URLs that log in (SPEC §15)
        if user:
            playlist = user_playlist(outputs.schedule.channels, base, user, "m3u8" if hls else "ts")
        else:
            playlist = hls_urls(outputs.playlist(base)) if hls else outputs.playlist(base)
        agent = request.getHeader(b"user-agent") or b""
        return for_ffmpeg(playlist) if agent.startswith(b"Lavf/") else playlist

    def _guide(self, request: IRequest, always_gzip: bool, viewer: Viewer | None = None) -> bytes:
        """``viewer``: already logged in (``/xmltv.php``); else the request is asked who it is."""
        found = viewer or self.access.viewer(request)
        outputs = found if isinstance(found, bytes) else self._outputs(request, found)
        if isinstance(outputs, bytes):
            return outputs
        encoded = not always_gzip and accepts_gzip(request)
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
        viewer = self.access.viewer(request)
        outputs = viewer if isinstance(viewer, bytes) else self._outputs(request, viewer)
        if isinstance(outputs, bytes):
            return outputs
        request.setHeader(b"Content-Type", b"application/json")
        return outputs.schedule_json(self.clock.seconds())

    @app.route("/health", methods=["GET", "HEAD"])
    def health(self, request: IRequest) -> bytes:
        refusal = self.access.operator(request)
        if refusal is not None:
            return refusal
        body = self.catalog.health()
        # beyond SPEC §4, for the status page: each provider's connections in use of its limit
        connections = self.streams.connections()
        for name, entry in body.get("providers", {}).items():
            provider = self.config.provider(name)
            entry["connections"] = connections.get(name, 0)
            entry["max_streams"] = provider.max_streams if provider is not None else 0
        return json_body(request, body, 503 if body.get("status") == "starting" else 200)

    @app.route("/refresh", methods=["POST"])
    def refresh(self, request: IRequest) -> bytes:
        refusal = self.access.admin(request)
        if refusal is not None:
            return refusal
        self.catalog.refresh().addErrback(
            lambda f: self.log.failure("refresh failed", f)
        )
        return json_body(request, {"refreshing": True}, 202)

    # -- streams ---------------------------------------------------------------------

    @app.route("/stream/<string:filename>", methods=["GET", "HEAD"])
    def stream(self, request: IRequest, filename: str) -> Any:
        channel_id, _, kind = filename.rpartition(".")
        if kind not in ("ts", "m3u8"):
            return error_line(request, 404, f"unknown stream {shorten(filename)!r}: "
                                            "stream URLs end in .ts or .m3u8")
        if len(channel_id) > longest_channel_id(self.config):
            return error_line(request, 404, f"unknown channel {shorten(channel_id)!r}")
        if kind == "m3u8":
            return self.access.hls(request, channel_id, self._hls_playlist)
        return self.access.stream(request, channel_id, self.streams.serve, slate=self._slate)

    def _hls_playlist(self, request: IRequest, channel_id: str, viewer: Viewer) -> Any:
        """
        An account's playlist points its segments at the ``/live/U/P/{number}/`` form, which
        logs in by itself: a player fetching segments sends no Basic header or query of its own.
        """
        number = self._number_of(channel_id) if viewer.user is not None else None
        prefix = "" if number is None else "../" + live_prefix(viewer.user, number)  # type: ignore[arg-type]
        return self.streams.serve_hls(request, channel_id, prefix)

    def _number_of(self, channel_id: str) -> int | None:
        published = self.catalog.published()
        channel = published.schedule.channel(channel_id) if published is not None else None
        return channel.number if channel is not None else None

    @app.route("/stream/<string:channel_id>/<string:name>", methods=["GET", "HEAD"])
    def stream_segment(self, request: IRequest, channel_id: str, name: str) -> Any:
        """An HLS output segment (SPEC §16): ``/stream/{id}/{sequence}.ts``."""
        if len(channel_id) > longest_channel_id(self.config):
            return error_line(request, 404, f"unknown channel {shorten(channel_id)!r}")
        return self.access.hls(request, channel_id,
                               lambda r, c, _: self.streams.serve_hls_segment(r, c, name))

    @app.route("/streams/status", methods=["GET"])
    def streams_status(self, request: IRequest) -> bytes:
        refusal = self.access.operator(request)
        return refusal if refusal is not None else json_body(request, self.streams.status())

    @app.route("/streams/stop/<string:channel_id>", methods=["GET", "POST"])
    def streams_stop(self, request: IRequest, channel_id: str) -> bytes:
        refusal = self.access.admin(request)
        if refusal is not None:
            return refusal
        if self.streams.stop(channel_id):
            return json_body(request, {"stopped": channel_id})
        return error_line(request, 404, f"no active stream on channel {shorten(channel_id)!r}")

    # -- the status page and metrics ---------------------------------------------------

    @app.route("/", methods=["GET", "HEAD"])
    def status_page(self, request: IRequest) -> bytes:
        refusal = self.access.operator(request)
        if refusal is not None:
            return refusal
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
        body, gzipped = status.asset(name, accepts_gzip(request))
        if gzipped:
            request.setHeader(b"Content-Encoding", b"gzip")
        return body

    @app.route("/metrics", methods=["GET"])
    def metrics_page(self, request: IRequest) -> bytes:
        refusal = self.access.admin(request)
        if refusal is not None:
            return refusal
        accept = (request.getHeader(b"accept") or b"").decode("latin-1")
        body, content_type = self.metrics.render(accept)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return body

    # -- Xtream Codes API (SPEC §15; epgd.xtreamapi) -------------------------------------

    @app.route("/player_api.php", methods=["GET", "HEAD", "POST"])
    def xc_player_api(self, request: IRequest) -> bytes:
        return self.xtream.player_api(request)

    @app.route("/get.php", methods=["GET", "HEAD", "POST"])
    def xc_get(self, request: IRequest) -> bytes:
        return self.xtream.get_php(request)

    @app.route("/xmltv.php", methods=["GET", "HEAD", "POST"])
    def xc_xmltv(self, request: IRequest) -> bytes:
        viewer = self.xtream.login(request)
        return viewer if isinstance(viewer, bytes) else self._guide(request, False, viewer)

    @app.route("/live/<string:user>/<string:password>/<string:filename>", methods=["GET", "HEAD"])
    @app.route("/<string:user>/<string:password>/<string:filename>", methods=["GET", "HEAD"])
    def xc_live(self, request: IRequest, user: str, password: str, filename: str) -> Any:
        return self.xtream.live(request, user, password, filename)

    @app.route("/live/<string:user>/<string:password>/<string:number>/<string:name>", methods=["GET", "HEAD"])
    def xc_live_segment(self, request: IRequest, user: str, password: str, number: str, name: str) -> Any:
        """A segment of ``/live/U/P/{number}.m3u8`` (SPEC §16 through §15's login)."""
        return self.xtream.live_segment(request, user, password, number, name)

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
