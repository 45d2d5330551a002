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

import itertools
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import IO

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
# The common, well-formed line in one match (attributes all double-quoted, no quotes inside).
_FAST = re.compile(r'#EXTINF:\s*-?\d+(?:\.\d+)?((?:\s+[A-Za-z_][\w.:-]*="[^"]*")*)\s*,(.*)$', re.I)
_FAST_ATTR = re.compile(r'([A-Za-z_][\w.:-]*)="([^"]*)"')
# A token that is neither an attribute nor the name's comma: skipped.
_JUNK = re.compile(r"\s*[^\s,]+")
_SCHEME_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
_RELATIVE_URL = re.compile(r"[\w~%./-]*[./][^\s]*$")


def parse_playlist(source: RawSource, provider: str) -> Playlist:
    """
    Parse a playlist given as bytes or a file path (gzip recognised by its magic bytes).
    The data is read line by line, so a 200,000-entry playlist is never held whole.

    Raises ``SourceError`` when the data is not an M3U playlist at all.
    """
    with open_raw(source) as stream:
        try:
            head = stream.read(65536)
            reason = _not_m3u(head)
            if reason:
                raise SourceError(reason)
            return _parse_lines(_lines(head, stream), provider)
        except (OSError, EOFError, zlib.error) as e:
            raise SourceError(f"playlist is unreadable: {e}") from None


def parse_playlist_text(text: str, provider: str) -> Playlist:
    """Parse playlist text already decoded; see ``parse_playlist``."""
    return parse_playlist(text.encode("utf-8"), provider)


def _lines(head: bytes, stream: IO[bytes]) -> Iterator[str]:
    """Decoded lines; CRLF, LF and lone CR all end a line (and nothing else does)."""
    rest = b""
    first = True
    for chunk in itertools.chain((head,), iter(lambda: stream.read(1 << 20), b"")):
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for part in parts:
            for line in part.split(b"\r"):
                if first:
                    line, first = line.removeprefix(b"\xef\xbb\xbf"), False
                yield _decode(line)
    for line in rest.split(b"\r"):
        yield _decode(line)


def _decode(raw: bytes) -> str:
    """UTF-8; a legacy 8-bit line is read as Windows-1252 rather than refused."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _not_m3u(head: bytes) -> str | None:
    """Why the first bytes show the data is not a playlist at all, or None when it may be."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:4096]
    if not text:
        return "playlist is empty"
    lower = text.lower()
    if text.startswith(b"<"):
        if b"<html" in lower or b"<!doctype html" in lower or b"<body" in lower:
            return "playlist is not M3U: got an HTML page"
        return "playlist is not M3U: got an XML document"
    if text[:1] in (b"{", b"["):
        return "playlist is not M3U: got a JSON response"
    if not lower.startswith(b"#extm3u") and b"#extinf" not in head.lower():
        return "playlist is not M3U: no #EXTM3U header and no #EXTINF entries"
    return None


def _parse_lines(lines: Iterable[str], provider: str) -> Playlist:
    channels: list[ProviderChannel] = []
    shared: dict[str, str] = {}  # groups and the like repeat on every line
    skipped = 0
    pending: tuple[str, dict[str, str]] | None = None  # (name, attributes) awaiting its URL
    extgrp = ""
    saw_hls_tag = False
    for line in lines:
        line = line.strip()
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
        group = shared.setdefault(group, group)
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
    attrs: dict[str, str] = {}
    fast = _FAST.match(line)
    if fast is not None:
        for key, value in _FAST_ATTR.findall(fast.group(1)):
            attrs.setdefault(key.lower(), value.strip())
        name = fast.group(2).strip() or attrs.get("tvg-name", "")
        return (name, attrs) if name else None
    pos = _DURATION.match(line, 8).end()  # type: ignore[union-attr]
    attrs = {}
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
