"""
epgd's configuration: TOML in, frozen attrs values (``epgd.configtypes``) out.

Loading and validation (``load_config``) turn every mistake into one ``ConfigError`` line
that names the file, the key and what is wrong. This module knows the sections and their
keys; reading one value and phrasing its failure is ``epgd.configread``'s. The value classes
and ``check_listen`` are re-exported here, so the rest of epgd imports everything
configuration from this one module.
"""

from __future__ import annotations

import datetime as _dt
import re
import tomllib
import zoneinfo
from typing import Any

from attrs import fields

from epgd.configread import Reader, check_listen, is_int, is_number, show
from epgd.configtypes import (
    DEFAULT_USER_AGENT,
    SLATE_SIZES,
    Config,
    ConfigError,
    EventConfig,
    GuideConfig,
    HdhrConfig,
    LineupConfig,
    ProviderConfig,
    ServerConfig,
    StreamConfig,
    UserConfig,
)
from epgd.configusers import read_open_networks, read_users
from epgd.hdhr.deviceid import fix_check_digit, valid_device_id
from epgd.redact import Redactor

__all__ = [
    "DEFAULT_USER_AGENT", "Config", "ConfigError", "EventConfig", "GuideConfig", "HdhrConfig", "LineupConfig",
    "ProviderConfig", "ServerConfig", "StreamConfig", "UserConfig", "check_listen", "load_config",
    "parse_config",
]

_TOP_KEYS = ("server", "stream", "guide", "hdhr", "provider", "lineup", "event", "user")
_HLS_VARIANT = re.compile(r"best|worst|[1-9][0-9]*p|[1-9][0-9]*")
_PROVIDER_NAME = re.compile(r"[a-z0-9_-]+")
_LINEUP_ID = re.compile(r"[a-z0-9_]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def load_config(path: str, sources_required: bool = True) -> Config:
    """
    Read and validate a TOML file; every problem is one ``ConfigError`` line.
    ``sources_required=False`` (``--demo --config``) accepts a file without providers or lineups.
    """
    if not path:
        raise ConfigError("epgd: the configuration file name is empty")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the file: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, as TOML requires") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from None
    return parse_config(data, path, sources_required)


def parse_config(data: dict[str, Any], path: str, sources_required: bool = True) -> Config:
    """Validate already-parsed TOML ``data`` (``path`` is only used in messages)."""
    return _Parser(path, data, sources_required).config()


class _Parser(Reader):
    """One pass over the TOML data: which sections and keys exist, and what each may hold."""

    def __init__(self, path: str, data: dict[str, Any], sources_required: bool = True) -> None:
        urls: list[str] = []
        for section, keys in (("provider", ("playlist", "guide")), ("event", ("url",))):
            items = data.get(section)
            for item in items if isinstance(items, list) else [items]:
                if isinstance(item, dict):
                    urls += [item[k] for k in keys if isinstance(item.get(k), str)]
        super().__init__(path, Redactor.for_urls(urls))
        self.data = data
        self.sources_required = sources_required

    def tables(self, key: str) -> list[dict[str, Any]]:
        """The ``[[key]]`` tables of the file (one ``[key]`` table counts as one of them)."""
        value = self.data.get(key, [])
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, f"must be one or more [[{key}]] tables", value)
        return value

    # -- sections ----------------------------------------------------------------------

    def config(self) -> Config:
        self.table(self.data, "", _TOP_KEYS)
        server = self.server(self.data.get("server", {}))
        stream = self.stream(self.data.get("stream", {}))
        guide = self.guide(self.data.get("guide", {}))
        hdhr = self.hdhr(self.data.get("hdhr", {}))
        providers = tuple(self.provider(p, f"provider[{i}]") for i, p in enumerate(self.tables("provider")))
        if not providers and self.sources_required:
            self.fail("provider", "at least one [[provider]] table is required", shown=False)
        names = [p.name for p in providers]
        for i, name in enumerate(names):
            if name in names[:i]:
                self.fail(f"provider[{i}].name", "duplicate provider name", name)
        parsed: list[LineupConfig] = []
        for i, t in enumerate(self.tables("lineup")):
            # Numbering runs on from the previous lineup unless first_number says otherwise.
            after = parsed[-1].channel_number(parsed[-1].channels) + 1 if parsed else 1
            parsed.append(self.lineup(t, f"lineup[{i}]", names, after))
        lineups = tuple(parsed)
        if not lineups and self.sources_required:
            self.fail("lineup", "at least one [[lineup]] table is required", shown=False)
        self.numbers_apart(lineups)
        seen: dict[str, str] = {}
        for i, lineup in enumerate(lineups):
            if any(lineup.id == other.id for other in lineups[:i]):
                self.fail(f"lineup[{i}].id", "duplicate lineup id", lineup.id)
            for channel_id in lineup.channel_ids():
                if channel_id in seen:
                    self.fail(f"lineup[{i}]", f'channel id "{channel_id}" is also a channel of lineup "{seen[channel_id]}"', shown=False)
                seen[channel_id] = lineup.id
        by_id = {lineup.id: lineup for lineup in lineups}
        events = tuple(self.event(t, f"event[{i}]", by_id, names) for i, t in enumerate(self.tables("event")))
        users = read_users(self, self.tables("user"), [lineup.id for lineup in lineups])
        return Config(server=server, stream=stream, guide=guide, hdhr=hdhr, providers=providers,
                      lineups=lineups, events=events, users=users, path=self.path)

    def numbers_apart(self, lineups: tuple[LineupConfig, ...]) -> None:
        """Channel numbers are GuideNumbers and tvg-chno: two channels never share one."""
        for i, lineup in enumerate(lineups):
            low, high = lineup.first_number, lineup.channel_number(lineup.channels)
            for other in lineups[:i]:
                o_low, o_high = other.first_number, other.channel_number(other.channels)
                if low <= o_high and o_low <= high:
                    self.fail(f"lineup[{i}].first_number",
                              f'channel numbers {_span(low, high)} of lineup "{lineup.id}" overlap '
                              f'{_span(o_low, o_high)} of lineup "{other.id}"', shown=False)

    def server(self, value: Any) -> ServerConfig:
        t = self.table(value, "server", _names(ServerConfig))
        d = ServerConfig()
        listen: Any = t.get("listen", list(d.listen))
        if isinstance(listen, str):
            listen = [listen]
        if not isinstance(listen, list) or not listen:
            self.fail("server.listen", "must be an endpoint string or a non-empty array of them", listen)
        for i, desc in enumerate(listen):
            key = f"server.listen[{i}]" if isinstance(t.get("listen"), list) else "server.listen"
            reason = check_listen(self.string(desc, key, nonempty=True))
            if reason:
                self.fail(key, f"not a Twisted endpoint string ({reason})", desc)
        base_url = self.string(t.get("base_url", d.base_url), "server.base_url").strip()
        if base_url and not re.match(r"https?://[^/?#\s]+", base_url):
            self.fail("server.base_url", 'must be empty or an http(s) URL like "http://nordvpn:8080"', base_url)
        return ServerConfig(
            listen=tuple(listen),
            base_url=base_url,
            admin_token=self.string(t.get("admin_token", d.admin_token), "server.admin_token"),
            state_dir=self.string(t.get("state_dir", d.state_dir), "server.state_dir", nonempty=True),
            max_clients=self.integer(t.get("max_clients", d.max_clients), "server.max_clients", 1),
            open_networks=read_open_networks(self, t.get("open_networks", list(d.open_networks))),
        )

    def stream(self, value: Any) -> StreamConfig:
        t = self.table(value, "stream", _names(StreamConfig))
        d = StreamConfig()
        chunk_size = self.integer(t.get("chunk_size", d.chunk_size), "stream.chunk_size", 188)
        client_buffer = self.integer(t.get("client_buffer", d.client_buffer), "stream.client_buffer", 188)
        if client_buffer < chunk_size:
            self.fail("stream.client_buffer", f"must be at least stream.chunk_size ({chunk_size})", client_buffer)
        return StreamConfig(
            check_interval=self.seconds(t.get("check_interval", d.check_interval), "stream.check_interval"),
            idle_timeout=self.seconds(t.get("idle_timeout", d.idle_timeout), "stream.idle_timeout"),
            chunk_size=chunk_size,
            user_agent=self.string(t.get("user_agent", d.user_agent), "stream.user_agent"),
            connect_timeout=self.seconds(t.get("connect_timeout", d.connect_timeout), "stream.connect_timeout"),
            client_buffer=client_buffer,
            hold_after_end=self.seconds(t.get("hold_after_end", d.hold_after_end), "stream.hold_after_end", open_lo=False),
            reconnect_attempts=self.integer(t.get("reconnect_attempts", d.reconnect_attempts), "stream.reconnect_attempts", 0),
            output=self.choice(t.get("output", d.output), "stream.output", ("continuous", "passthrough")),
            on_codec_change=self.choice(t.get("on_codec_change", d.on_codec_change),
                                        "stream.on_codec_change", ("continue", "new_pid", "close")),
            slate=self.boolean(t.get("slate", d.slate), "stream.slate"),
            slate_size=self.choice(t.get("slate_size", d.slate_size), "stream.slate_size", SLATE_SIZES),
            hls_segment=self.hls_segment(t.get("hls_segment", d.hls_segment)),
            # fewer than 3 would list less than RFC 8216 §6.2.2's three target durations
            hls_window=self.integer(t.get("hls_window", d.hls_window), "stream.hls_window", 3, 1000),
        )

    def hls_segment(self, value: Any) -> float:
        """Seconds from 1 to 60: shorter is not HLS, longer keeps minutes of video per channel."""
        if not is_number(value) or not 1 <= value <= 60:
            self.fail("stream.hls_segment", "must be a number of seconds from 1 to 60", value)
        return float(value)

    def hdhr(self, value: Any) -> HdhrConfig:
        t = self.table(value, "hdhr", _names(HdhrConfig))
        d = HdhrConfig()
        return HdhrConfig(
            enabled=self.boolean(t.get("enabled", d.enabled), "hdhr.enabled"),
            friendly_name=self.string(t.get("friendly_name", d.friendly_name), "hdhr.friendly_name",
                                      nonempty=True).strip(),
            tuner_count=self.integer(t.get("tuner_count", d.tuner_count), "hdhr.tuner_count", 0, 999),
            device_id=self.device_id(t.get("device_id", d.device_id)),
            discovery=self.boolean(t.get("discovery", d.discovery), "hdhr.discovery"),
            discovery_port=self.integer(t.get("discovery_port", d.discovery_port), "hdhr.discovery_port",
                                        0, 65535),
        )

    def device_id(self, value: Any) -> str:
        text = self.string(value, "hdhr.device_id").strip()
        if text and not valid_device_id(text):
            fixed = fix_check_digit(text)
            hint = f' (with a valid check digit: "{fixed}")' if fixed else ""
            self.fail("hdhr.device_id", 'must be "" or 8 hex digits with a valid HDHomeRun check digit, '
                      f'like "10439EFD"{hint}', text)
        return text.upper()

    def guide(self, value: Any) -> GuideConfig:
        t = self.table(value, "guide", _names(GuideConfig))
        d = GuideConfig()
        timezone = self.string(t.get("timezone", d.timezone), "guide.timezone", nonempty=True)
        try:
            zoneinfo.ZoneInfo(timezone)
        except Exception:
            self.fail("guide.timezone", 'unknown time zone: use an IANA name like "America/New_York"', timezone)
        return GuideConfig(
            days=self.integer(t.get("days", d.days), "guide.days", 1, 366),
            filler=self.boolean(t.get("filler", d.filler), "guide.filler"),
            timezone=timezone,
        )

    def provider(self, value: Any, key: str) -> ProviderConfig:
        t = self.table(value, key, _names(ProviderConfig), required=("name", "playlist"))
        name = self.string(t["name"], f"{key}.name")
        if not _PROVIDER_NAME.fullmatch(name):
            self.fail(f"{key}.name", "must be made of a-z, 0-9, _ and -", name)
        headers = t.get("headers", {})
        if not isinstance(headers, dict):
            self.fail(f"{key}.headers", "must be a table of strings, like { Referer = \"http://x/\" }", headers)
        for header, text in headers.items():
            if not _HEADER_NAME.fullmatch(header):
                self.fail(f"{key}.headers", "not a valid HTTP header name", header)
            if not isinstance(text, str):
                self.fail(f"{key}.headers.{header}", "must be a string", text)
            if any(c in text for c in "\r\n\x00"):
                self.fail(f"{key}.headers.{header}", "must be a one-line string", shown=False)
        return ProviderConfig(
            name=name,
            playlist=self.source(t["playlist"], f"{key}.playlist", nonempty=True),
            guide=self.source(t.get("guide", ""), f"{key}.guide", nonempty=False),
            refresh_interval=self.seconds(t.get("refresh_interval", 21600.0), f"{key}.refresh_interval"),
            max_streams=self.integer(t.get("max_streams", 0), f"{key}.max_streams", 0),
            headers=dict(headers),
            guide_offset=self.seconds(t.get("guide_offset", 0.0), f"{key}.guide_offset", lo=None),
            fetch_timeout=self.seconds(t.get("fetch_timeout", 3600.0), f"{key}.fetch_timeout"),
            max_guide_bytes=self.integer(t.get("max_guide_bytes", 2147483648), f"{key}.max_guide_bytes", 1),
            hls_variant=self.hls_variant(t.get("hls_variant", "best"), f"{key}.hls_variant"),
        )

    def hls_variant(self, value: Any, key: str) -> str:
        if is_int(value) and value > 0:
            return str(value)
        text = self.string(value, key).strip().lower()
        if not _HLS_VARIANT.fullmatch(text):
            self.fail(key, 'must be "best", "worst", a height like "720p" or a number of bit/s', value)
        return text

    def lineup(self, value: Any, key: str, providers: list[str], first_number: int = 1) -> LineupConfig:
        t = self.table(value, key, _names(LineupConfig), required=("id",))
        d = LineupConfig(id="x")
        lineup_id = self.string(t["id"], f"{key}.id")
        if not _LINEUP_ID.fullmatch(lineup_id):
            self.fail(f"{key}.id", "must be made of a-z, 0-9 and _", lineup_id)
        chosen = self.strings(t.get("providers", []), f"{key}.providers")
        for i, name in enumerate(chosen):
            if name not in providers:
                known = ", ".join(f'"{p}"' for p in providers)
                self.fail(f"{key}.providers[{i}]", f"unknown provider {show(name)} (known: {known})", shown=False)
        pattern = self.regex(t.get("name_pattern", ""), f"{key}.name_pattern")
        if pattern and "title" not in re.compile(pattern, re.IGNORECASE).groupindex:
            self.fail(f"{key}.name_pattern", "needs a named group (?P<title>...)", pattern)
        formats = self.strings(t.get("name_time_formats", list(d.name_time_formats)), f"{key}.name_time_formats")
        if not formats or not all(f.strip() for f in formats):
            self.fail(f"{key}.name_time_formats", "must be a non-empty array of strptime formats", list(formats))
        return LineupConfig(
            id=lineup_id,
            name=self.string(t.get("name", ""), f"{key}.name").strip(),
            channels=self.integer(t.get("channels", d.channels), f"{key}.channels", 1, 999),
            first_number=self.integer(t.get("first_number", first_number), f"{key}.first_number", 0),
            group=self.string(t.get("group", ""), f"{key}.group").strip(),
            logo=self.string(t.get("logo", ""), f"{key}.logo").strip(),
            providers=chosen,
            match_group=self.regex(t.get("match_group", ""), f"{key}.match_group"),
            match_name=self.regex(t.get("match_name", ""), f"{key}.match_name"),
            match_title=self.regex(t.get("match_title", ""), f"{key}.match_title"),
            exclude_title=self.regex(t.get("exclude_title", ""), f"{key}.exclude_title"),
            name_pattern=pattern,
            name_time_formats=formats,
            default_duration=self.seconds(t.get("default_duration", d.default_duration), f"{key}.default_duration"),
            pre_padding=self.seconds(t.get("pre_padding", 0.0), f"{key}.pre_padding", open_lo=False),
            post_padding=self.seconds(t.get("post_padding", 0.0), f"{key}.post_padding", open_lo=False),
        )

    def event(self, value: Any, key: str, lineups: dict[str, LineupConfig], providers: list[str]) -> EventConfig:
        t = self.table(value, key, _names(EventConfig), required=("lineup", "title", "start"))
        lineup_id = self.string(t["lineup"], f"{key}.lineup")
        lineup = lineups.get(lineup_id)
        if lineup is None:
            known = ", ".join(f'"{i}"' for i in lineups)
            self.fail(f"{key}.lineup", f"unknown lineup {show(lineup_id)} (known: {known})", shown=False)
        start = self.stamp(t["start"], f"{key}.start")
        if "stop" in t:
            stop = self.stamp(t["stop"], f"{key}.stop")
            if stop <= start:
                self.fail(f"{key}.stop", f"must be after start ({start.isoformat()})", stop)
        else:
            stop = start + _dt.timedelta(seconds=lineup.default_duration)
        url = self.source(t.get("url", ""), f"{key}.url", nonempty=False)
        provider = self.string(t.get("provider", ""), f"{key}.provider").strip()
        channel = self.string(t.get("channel", ""), f"{key}.channel").strip()
        if provider and provider not in providers:
            known = ", ".join(f'"{p}"' for p in providers)
            self.fail(f"{key}.provider", f"unknown provider {show(provider)} (known: {known})", shown=False)
        if not url and not (provider and channel):
            self.fail(key, 'needs a url, or a provider and a channel (its name in that playlist)', shown=False)
        return EventConfig(
            lineup=lineup_id,
            title=self.string(t["title"], f"{key}.title", nonempty=True).strip(),
            start=start, stop=stop, url=url, provider=provider, channel=channel,
        )


def _span(low: int, high: int) -> str:
    return f"{low}-{high}" if high > low else str(low)


def _names(cls: type) -> tuple[str, ...]:
    return tuple(a.name for a in fields(cls))
