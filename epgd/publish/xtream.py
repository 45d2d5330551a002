"""
The Xtream Codes API documents (SPEC §15): what TiviMate, IPTV Smarters, iMPlayer, OTT
Navigator and pyxtream read from ``player_api.php``, and the account's M3U of ``get.php``.

Field names and JSON types follow the SPEC to the letter: the apps parse them with fixed
types (``num`` and ``stream_id`` integers, ``added`` and the timestamps strings, ``exp_date``
never null), and a guide whose ``epg_channel_id`` is not the XMLTV channel id shows nothing.
A channel's ``stream_id`` is its channel number, so it stays the same across restarts and
refreshes. Pure functions of their arguments: no HTTP, no clock.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from epgd.config import Config, UserConfig
from epgd.publish.m3u import attribute, plain
from epgd.schedule.model import Channel, Event

__all__ = [
    "NEVER_EXPIRES", "account", "categories", "data_table", "live_streams", "short_epg", "stream_path",
    "user_playlist",
]

#: 2100-01-01: accounts do not expire, and some apps fail on a null exp_date
NEVER_EXPIRES = "4102444800"
OUTPUT_FORMATS = ["ts", "m3u8"]
DEFAULT_SHORT_EPG = 4
MAX_LISTINGS = 1000


def _utc_text(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def account(user: UserConfig, active: int, host: str, port: str, protocol: str, now: float,
            created: float) -> dict[str, Any]:
    """The account answer (no ``action``, ``get_account_info`` and any action we do not know)."""
    return {
        "user_info": {
            "username": user.name,
            "password": user.password,
            "message": "",
            "auth": 1,
            "status": "Active",
            "exp_date": NEVER_EXPIRES,
            "is_trial": "0",
            "active_cons": str(active),
            "created_at": str(int(created)),
            "max_connections": str(user.max_connections),
            "allowed_output_formats": list(OUTPUT_FORMATS),
        },
        "server_info": {
            "url": host,
            "port": port,
            "https_port": "",
            "server_protocol": protocol,
            "rtmp_port": "",
            "timezone": "UTC",
            "timestamp_now": int(now),
            "time_now": _utc_text(now),
            "process": True,
        },
    }


def _positions(config: Config) -> dict[str, int]:
    """A lineup's category id: its place in the configuration, from 1 (stable across restarts)."""
    return {lineup.id: i for i, lineup in enumerate(config.lineups, start=1)}


def categories(config: Config, user: UserConfig) -> list[dict[str, Any]]:
    """``get_live_categories``: one per lineup the account sees."""
    return [
        {"category_id": str(position), "category_name": lineup.display_name, "parent_id": 0}
        for position, lineup in enumerate(config.lineups, start=1)
        if user.sees(lineup.id)
    ]


def live_streams(config: Config, channels: Iterable[Channel], user: UserConfig, category: str | None,
                 added: float) -> list[dict[str, Any]]:
    """``get_live_streams``: the account's channels in number order, of one category if asked."""
    positions = _positions(config)
    out = []
    for channel in sorted(channels, key=lambda c: c.number):
        position = positions.get(channel.lineup)
        if position is None or not user.sees(channel.lineup):
            continue
        if category is not None and category != str(position):
            continue
        out.append({
            "num": channel.number,
            "name": channel.name,
            "stream_type": "live",
            "stream_id": channel.number,
            "stream_icon": channel.logo or "",
            "epg_channel_id": channel.id,
            "added": str(int(added)),
            "is_adult": 0,
            "category_id": str(position),
            "category_ids": [position],
            "custom_sid": "",
            "tv_archive": 0,
            "direct_source": "",
            "tv_archive_duration": 0,
        })
    return out


def _listing(channel: Channel, event: Event) -> dict[str, Any]:
    start, stop = event.start.timestamp(), event.stop.timestamp()
    # stable and unique per channel (events on one channel never start together), digits only
    digest = hashlib.sha256(f"{channel.id}|{event.key}|{int(start)}".encode()).hexdigest()
    return {
        "id": str(int(digest[:12], 16)),
        "epg_id": channel.id,
        "title": base64.b64encode(event.title.encode("utf-8")).decode("ascii"),
        "lang": "",
        "start": _utc_text(start),
        "end": _utc_text(stop),
        "description": base64.b64encode((event.desc or event.sub_title).encode("utf-8")).decode("ascii"),
        "channel_id": channel.id,
        "start_timestamp": str(int(start)),
        "stop_timestamp": str(int(stop)),
        "stream_id": str(channel.number),
    }


def short_epg(channel: Channel | None, now: float, limit: int = DEFAULT_SHORT_EPG) -> dict[str, Any]:
    """``get_short_epg``: the event live now (padding included) and the next ones, ``limit`` in all."""
    if channel is None:
        return {"epg_listings": []}
    limit = min(max(1, limit), MAX_LISTINGS)
    events = [e for e in channel.events if e.live_until > now][:limit]
    return {"epg_listings": [_listing(channel, e) for e in events]}


def data_table(channel: Channel | None, now: float, window: tuple[float, float]) -> dict[str, Any]:
    """``get_simple_data_table``: every event of the guide window, the live one marked ``now_playing``."""
    if channel is None:
        return {"epg_listings": []}
    begin, end = window
    listings = []
    for event in channel.events:
        if event.live_until > begin and event.start.timestamp() < end:
            listings.append({**_listing(channel, event), "now_playing": int(event.is_live(now)),
                             "has_archive": 0})
    return {"epg_listings": listings}


def stream_path(user: UserConfig, number: int, extension: str) -> str:
    """``/live/U/P/101.ts``: a stream URL that logs in (the password is the account's own)."""
    return f"/live/{quote(user.name, safe='')}/{quote(user.password, safe='')}/{number}.{extension}"


def live_prefix(user: UserConfig, number: int) -> str:
    """``live/U/P/101/``: where the segments of ``/live/U/P/101.m3u8`` are (relative: no leading slash)."""
    return f"live/{quote(user.name, safe='')}/{quote(user.password, safe='')}/{number}/"


def guide_path(user: UserConfig) -> str:
    return f"/xmltv.php?username={quote(user.name, safe='')}&password={quote(user.password, safe='')}"


def user_playlist(channels: Sequence[Channel], base_url: str, user: UserConfig, extension: str = "ts") -> bytes:
    """
    The account's M3U (SPEC §6.1 shape): its channels, stream URLs that log in, and the
    guide at ``xmltv.php`` with its credentials (``get.php`` and ``/playlist.m3u`` alike).
    """
    base = plain(base_url).rstrip("/")
    guide = attribute(base + guide_path(user))
    lines = [f'#EXTM3U x-tvg-url="{guide}" url-tvg="{guide}"\n']
    for channel in sorted(channels, key=lambda c: c.number):
        if not user.sees(channel.lineup):
            continue
        attrs = [("tvg-id", channel.id), ("tvg-name", channel.name), ("tvg-chno", str(channel.number))]
        if channel.logo:
            attrs.append(("tvg-logo", channel.logo))
        attrs.append(("group-title", channel.group))
        rendered = " ".join(f'{name}="{attribute(value)}"' for name, value in attrs)
        lines.append(f"#EXTINF:-1 {rendered},{plain(channel.name)}\n"
                     f"{base}{stream_path(user, channel.number, extension)}\n")
    return "".join(lines).encode("utf-8")
