"""
The combined channels as an M3U playlist (SPEC §6.1).

The list depends only on the lineups, never on what is on: every channel of every lineup is
always present, so a player's channel list stays put from one refresh to the next.
"""

from __future__ import annotations

import re

from epgd.schedule.model import Channel, Schedule

# Any line break a player might honour (CR, LF, VT, FF, NEL, LS, PS) and other control chars.
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def attribute(value: str) -> str:
    """An attribute value players parse safely: no quote to end it early, no line break."""
    return _BREAKS.sub(" ", value).replace('"', "'").strip()


def plain(value: str) -> str:
    """Text after the comma or on the URL line: one line whatever the input."""
    return _BREAKS.sub(" ", value).strip()


def _entry(channel: Channel, base_url: str) -> str:
    attrs = [
        ("tvg-id", channel.id),
        ("tvg-name", channel.name),
        ("tvg-chno", str(channel.number)),
    ]
    if channel.logo:
        attrs.append(("tvg-logo", channel.logo))
    attrs.append(("group-title", channel.group))
    rendered = " ".join(f'{name}="{attribute(value)}"' for name, value in attrs)
    return (
        f"#EXTINF:-1 {rendered},{plain(channel.name)}\n"
        f"{base_url}/stream/{plain(channel.id)}.ts\n"
    )


def render_playlist(schedule: Schedule, base_url: str) -> bytes:
    """
    The playlist of ``schedule``'s channels, with URLs under ``base_url`` (``http://host:port``,
    no trailing slash needed).
    """
    base = plain(base_url).rstrip("/")
    guide = attribute(f"{base}/epg.xml")
    lines = [f'#EXTM3U x-tvg-url="{guide}" url-tvg="{guide}"\n']
    lines.extend(_entry(channel, base) for channel in schedule.channels)
    return "".join(lines).encode("utf-8")


def for_ffmpeg(playlist: bytes) -> bytes:
    """
    The same playlist in a form FFmpeg's HLS demuxer opens (``ffprobe -i .../playlist.m3u``).

    FFmpeg reads an M3U only as HLS: the first line must be exactly ``#EXTM3U`` and an
    ``#EXT-X-`` tag must appear, so the ``x-tvg-url`` header that IPTV players want would be
    refused. Each entry becomes a "segment" and FFmpeg plays the first channel, which is
    what a user probing the playlist expects.
    """
    _header, _, entries = playlist.partition(b"\n")
    return (
        b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        + entries
        + b"#EXT-X-ENDLIST\n"
    )


def hls_urls(playlist: bytes) -> bytes:
    """
    The playlist with every stream URL as HLS (SPEC §16, ``/playlist.m3u?output=m3u8``): a
    URL line ending in ``.ts`` ends in ``.m3u8``; the channels and their tags stay as they are.
    """
    lines = playlist.split(b"\n")
    for i, line in enumerate(lines):
        if line.endswith(b".ts") and not line.startswith(b"#"):
            lines[i] = line[:-3] + b".m3u8"
    return b"\n".join(lines)
