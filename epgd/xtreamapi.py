"""
The Xtream Codes endpoints (SPEC §15) behind ``epgd.web``'s routes: ``player_api.php``,
``get.php``, the login of ``xmltv.php`` and the stream paths ``/live/U/P/101.ts`` and
``/U/P/101``, and ``/live/U/P/101.m3u8`` with its segments ``/live/U/P/101/{sequence}.ts``.

Every endpoint answers 404 while no ``[[user]]`` is configured, and needs an account from
anywhere (the API is per account: its answers name the user and carry its stream URLs).
Wrong credentials on ``player_api.php`` answer ``{"user_info": {"auth": 0}}`` with 401, as
the apps expect; elsewhere the one-line 401 of ``epgd.access``. The documents themselves are
``epgd.publish.xtream``'s; ``.ts`` streams are served by ``servers["ts"]`` (the stream
manager), ``.m3u8`` ones by ``hls`` (its HLS output, SPEC §16).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from epgd.access import Access, Refusal, Viewer
from epgd.config import Config, UserConfig
from epgd.httpguard import shorten
from epgd.plaintext import error_line
from epgd.publish import xtream
from epgd.publish.scoped import config_channels
from epgd.publish.xmltv import DAY, GRID
from epgd.schedule.model import Channel, Schedule

__all__ = ["XtreamApi"]

#: actions whose answer is an empty list: epgd has live channels only
EMPTY_ACTIONS = frozenset({"get_vod_categories", "get_vod_streams", "get_series_categories", "get_series"})
ABSENT = "not found: the Xtream Codes API needs viewer accounts ([[user]] in the configuration)"

Serve = Callable[[IRequest, str], Any]


class HlsServer(Protocol):
    """The HLS output (SPEC §16): a channel's playlist and its segments."""

    def serve_hls(self, request: IRequest, channel_id: str, prefix: str = "") -> Any: ...

    def serve_hls_segment(self, request: IRequest, channel_id: str, name: str) -> Any: ...


class HasSchedule(Protocol):
    schedule: Schedule


def _arg(request: IRequest, name: bytes) -> str:
    values = (request.args or {}).get(name) or [b""]
    return values[0].decode("utf-8", "replace").strip()


def _json(request: IRequest, body: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def host_and_port(base_url: str) -> tuple[str, str, str]:
    """``server_info``'s ``url`` (the host name, no port), ``port`` and ``server_protocol``."""
    parts = urlsplit(base_url)
    scheme = parts.scheme or "http"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"  # apps build http://URL:PORT/ from these
    try:
        port = parts.port
    except ValueError:
        port = None
    return host, str(port or (443 if scheme == "https" else 80)), scheme


class XtreamApi:
    """The Xtream Codes answers of one epgd process."""

    def __init__(self, config: Config, access: Access, published: Callable[[], HasSchedule | None],
                 clock: IReactorTime, base_url: Callable[[IRequest], str]) -> None:
        self.config = config
        self.access = access
        self._published = published
        self.clock = clock
        self._base_url = base_url
        #: "ts" -> the stream manager's serve
        self.servers: dict[str, Serve] = {}
        #: ``.m3u8`` streams and their segments (``/live/U/P/101/{sequence}.ts``)
        self.hls: HlsServer | None = None
        #: the slate alone, saying why (a user at its limit), for .ts streams: the manager's serve_slate
        self.slate: Callable[[IRequest, str, str], Any] | None = None
        # what "created_at" and "added" say: when this process started serving accounts
        self.created = clock.seconds()

    # -- helpers ---------------------------------------------------------------------

    def _channels(self) -> list[Channel]:
        """The current schedule's channels (with events), or the configured ones before the first."""
        published = self._published()
        return list(published.schedule.channels) if published is not None else config_channels(self.config)

    def _channel(self, user: UserConfig, number: int | None) -> Channel | None:
        for channel in self._channels():
            if channel.number == number and user.sees(channel.lineup):
                return channel
        return None

    def login(self, request: IRequest, login: tuple[str, str] | None = None) -> Viewer | bytes:
        """The account of an Xtream Codes request, or the rendered answer (404 without accounts)."""
        if not self.access.enabled:
            return error_line(request, 404, ABSENT)
        found = self.access.user(request, login)
        return found.render(request) if isinstance(found, Refusal) else found

    # -- player_api.php --------------------------------------------------------------

    def player_api(self, request: IRequest) -> bytes:
        if not self.access.enabled:
            return error_line(request, 404, ABSENT)
        found = self.access.user(request)
        if isinstance(found, Refusal):
            if found.code != 401:
                return found.render(request)
            request.setHeader(b"WWW-Authenticate", b'Basic realm="epgd"')
            return _json(request, {"user_info": {"auth": 0}}, 401)
        user = found.user
        assert user is not None  # access.user() answers users only
        action = _arg(request, b"action")
        now = self.clock.seconds()
        if action == "get_live_categories":
            return _json(request, xtream.categories(self.config, user))
        if action == "get_live_streams":
            category = _arg(request, b"category_id") or None
            return _json(request, xtream.live_streams(self.config, self._channels(), user, category,
                                                      self.created))
        if action in ("get_short_epg", "get_simple_data_table"):
            channel = self._channel(user, _number(_arg(request, b"stream_id")))
            if action == "get_short_epg":
                limit = _number(_arg(request, b"limit")) or xtream.DEFAULT_SHORT_EPG
                return _json(request, xtream.short_epg(channel, now, limit))
            begin = (now // GRID) * GRID  # the window of epg.xml (SPEC §6.2)
            return _json(request, xtream.data_table(channel, now, (begin, begin + GRID + self.config.guide.days * DAY)))
        if action in EMPTY_ACTIONS:
            return _json(request, [])
        host, port, scheme = host_and_port(self._base_url(request))
        return _json(request, xtream.account(user, self.access.active(user.name), host, port, scheme, now,
                                             self.created))

    # -- get.php ---------------------------------------------------------------------

    def get_php(self, request: IRequest) -> bytes:
        """The account's M3U; ``output=m3u8`` (or ``hls``) gives HLS stream URLs."""
        found = self.login(request)
        if isinstance(found, bytes):
            return found
        assert found.user is not None
        extension = "m3u8" if _arg(request, b"output").lower() in ("m3u8", "hls") else "ts"
        request.setHeader(b"Content-Type", b"audio/x-mpegurl")
        return xtream.user_playlist(self._channels(), self._base_url(request), found.user, extension)

    # -- streams ---------------------------------------------------------------------

    def live(self, request: IRequest, name: str, password: str, filename: str) -> Any:
        """``/live/U/P/101.ts``, ``/live/U/P/101.m3u8``, ``/U/P/101``: the channel numbered 101."""
        number, dot, extension = filename.partition(".")
        extension = extension if dot else "ts"
        channel = self._stream_channel(request, name, password, number)
        if not isinstance(channel, Channel):
            return channel
        hls = self.hls
        if extension == "m3u8" and hls is not None:
            # segment URIs relative to /live/U/P/: /live/U/P/101/{sequence}.ts, which logs in too
            prefix = f"{channel.number}/"
            return self.access.hls(request, channel.id, lambda r, c, _: hls.serve_hls(r, c, prefix),
                                   (name, password))
        serve = self.servers.get(extension)
        if serve is None:
            return error_line(request, 404, f"no .{shorten(extension, 8)} streams here: use .ts or .m3u8")
        return self.access.stream(request, channel.id, serve, (name, password), slate=self.slate)

    def _stream_channel(self, request: IRequest, name: str, password: str, number: str) -> Channel | bytes:
        """The channel a stream path names, for its logged-in account; else the answer (404, 401, 429)."""
        if _number(number) is None:
            # not a stream path at all (a scanner's /a/b/c.php): no login was tried, none failed
            return error_line(request, 404, "not found: see /playlist.m3u, /epg.xml, /schedule.json, /health")
        found = self.login(request, (name, password))
        if isinstance(found, bytes):
            return found
        assert found.user is not None
        channel = self._channel(found.user, _number(number))
        if channel is None:
            return error_line(request, 404, f"unknown channel number {shorten(number)!r}: "
                                            "see get_live_streams")
        return channel

    def live_segment(self, request: IRequest, name: str, password: str, number: str, segment: str) -> Any:
        """``/live/U/P/101/{sequence}.ts``: a segment of ``/live/U/P/101.m3u8``."""
        hls = self.hls
        channel = self._stream_channel(request, name, password, number if hls is not None else "")
        if not isinstance(channel, Channel) or hls is None:
            return channel
        return self.access.hls(request, channel.id, lambda r, c, _: hls.serve_hls_segment(r, c, segment),
                               (name, password))
