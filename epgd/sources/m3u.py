"""
Provider playlists (M3U / "m3u_plus") -> ``Playlist`` of ``ProviderChannel``.

Real playlists are messy: BOMs, CRLF mixed with LF, attributes in any order and any quoting
(double, single, none, upper-case names), commas and quotes inside names and attribute
values, ``#EXTVLCOPT``/``#KODIPROP``/``#EXTGRP`` lines, ``|User-Agent=...`` suffixes on URLs,
junk separator lines, a second ``#EXTM3U`` part-way through. Every entry that can be
understood is kept; one that cannot is counted in ``Playlist.skipped``. Only input that is not
a playlist at all (an HTML login page, a JSON error) is an error.
"""

from __future__ import annotations

import re

from epgd.sources import RawSource, SourceError, open_raw
from epgd.sources.models import Playlist, ProviderChannel

# After "#EXTINF:", an optional duration ("-1", " -1", "0", "16", "-1.0").
_DURATION = re.compile(r"\s*[-+]?\d*(?:\.\d+)?")
# One attribute: key="value" (a double-quoted value ends at the quote that is followed by
# another attribute, the name's comma, or the end of the line, so quotes inside a value
# survive), key='value', or key=value (ends at whitespace or a comma).
_ATTR = re.compile(
    r"""\s*(?P<key>[A-Za-z_][\w.:-]*)\s*=\s*(?:
        "(?P<dq>.*?)"(?=\s+[A-Za-z_][\w.:-]*\s*=|\s*,|\s*$)
      | '(?P<sq>[^']*)'
      | (?P<bare>[^\s,"']*)
    )""",
    re.VERBOSE,
)
# A token that is neither an attribute nor the name's comma: skipped.
_JUNK = re.compile(r"\s*[^\s,]+")
_SCHEME_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
_RELATIVE_URL = re.compile(r"[\w~%./-]*[./][^\s]*$")


def parse_playlist(source: RawSource, provider: str) -> Playlist:
    """
    Parse a playlist given as bytes or a file path (gzip recognised by its magic bytes).

    Raises ``SourceError`` when the data is not an M3U playlist at all.
    """
    with open_raw(source) as stream:
        try:
            raw = stream.read()
        except (OSError, EOFError) as e:
            raise SourceError(f"playlist is unreadable: {e}") from None
    return parse_playlist_text(_decode(raw), provider)


def _decode(raw: bytes) -> str:
    """UTF-8 (BOM or not); a legacy 8-bit playlist is read as Windows-1252 rather than refused."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _not_m3u(text: str) -> str | None:
    """Why ``text`` is not a playlist at all, or None when it looks like one."""
    head = text.lstrip("\ufeff \t\r\n")[:2048]
    if not head:
        return "playlist is empty"
    lower = head.lower()
    if head.startswith("<"):
        if "<html" in lower or "<!doctype html" in lower or "<body" in lower:
            return "playlist is not M3U: got an HTML page"
        return "playlist is not M3U: got an XML document"
    if head[0] in "{[":
        return "playlist is not M3U: got a JSON response"
    if not lower.startswith("#extm3u") and "#extinf" not in text[:1_000_000].lower():
        return "playlist is not M3U: no #EXTM3U header and no #EXTINF entries"
    return None


def parse_playlist_text(text: str, provider: str) -> Playlist:
    """Parse playlist text already decoded; see ``parse_playlist``."""
    reason = _not_m3u(text)
    if reason:
        raise SourceError(reason)
    channels: list[ProviderChannel] = []
    skipped = 0
    pending: tuple[str, dict[str, str]] | None = None  # (name, attributes) awaiting its URL
    extgrp = ""
    saw_hls_tag = False
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line in lines:
        line = line.strip().lstrip("\ufeff")
        if not line:
            continue
        if line[0] == "#":
            tag = line[:8].upper()
            if tag == "#EXTINF:":
                if pending is not None:
                    skipped += 1  # the previous entry never got a URL
                entry = _parse_extinf(line)
                if entry is None:
                    skipped += 1
                    pending = None
                else:
                    pending = entry
            elif tag.startswith("#EXTGRP"):
                extgrp = line.partition(":")[2].strip()
            elif tag.startswith("#EXT-X-"):
                saw_hls_tag = True
            # #EXTM3U (again), #EXTVLCOPT, #KODIPROP, comments: nothing to keep.
            continue
        if pending is None:
            continue  # junk between entries ("=====sudan=====")
        url = line.split("|", 1)[0].strip()
        if not (_SCHEME_URL.match(url) or _RELATIVE_URL.match(url)) or url.startswith("="):
            continue  # not a URL ("[NO PUBLIC STREAM]"); the entry waits for one
        name, attrs = pending
        group = attrs.get("group-title", "") or extgrp
        channels.append(
            ProviderChannel(
                provider=provider,
                name=name,
                url=url,
                tvg_id=attrs.get("tvg-id", ""),
                tvg_name=attrs.get("tvg-name", ""),
                group=group,
                logo=attrs.get("tvg-logo", ""),
                chno=attrs.get("tvg-chno", ""),
            )
        )
        pending = None
        extgrp = ""
    if pending is not None:
        skipped += 1
    if not channels and saw_hls_tag:
        raise SourceError("playlist is an HLS stream playlist, not a list of channels")
    return Playlist(channels=tuple(channels), skipped=skipped)


def _parse_extinf(line: str) -> tuple[str, dict[str, str]] | None:
    """``#EXTINF:-1 key="v" ...,Name`` -> (name, lower-cased attributes); None if nameless."""
    pos = _DURATION.match(line, 8).end()  # type: ignore[union-attr]
    attrs: dict[str, str] = {}
    end = len(line)
    name = ""
    while pos < end:
        match = _ATTR.match(line, pos)
        if match is not None and match.end() > pos:
            value = match.group("dq")
            if value is None:
                value = match.group("sq")
                if value is None:
                    value = match.group("bare") or ""
            attrs.setdefault(match.group("key").lower(), value.strip())
            pos = match.end()
            continue
        while pos < end and line[pos] in " \t":
            pos += 1
        if pos < end and line[pos] == ",":
            name = line[pos + 1 :].strip()
            break
        junk = _JUNK.match(line, pos)
        if junk is None:
            break
        pos = junk.end()
    name = name or attrs.get("tvg-name", "")
    if not name:
        return None
    return name, attrs
