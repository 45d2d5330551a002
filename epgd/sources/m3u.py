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
from threading import Event
from typing import IO

from epgd.sources import RawSource, SourceError, open_raw
from epgd.sources.models import Playlist, ProviderChannel

# After "#EXTINF:", an optional duration ("-1", " -1", "0", "16", "-1.0").
_DURATION = re.compile(r"\s*[-+]?\d*(?:\.\d+)?")
# One attribute's name and its "=" (linear: each part is a different class of characters).
_KEY = re.compile(r"\s*([A-Za-z_][\w.:-]*)\s*=\s*")
# Where a double-quoted value may end: a quote followed by another attribute, the name's
# comma, or the end of the line (so quotes inside a value survive). Each lookahead stops at
# the next quote at the latest, so finding all of them in a line costs one pass.
_DQ_END = re.compile(r'"(?=\s+[A-Za-z_][\w.:-]*\s*=|\s*,|\s*$)')
# An unquoted value ends at whitespace, a comma or a quote.
_BARE = re.compile(r"[^\s,\"']*")
# The common, well-formed line in one match (attributes all double-quoted, no quotes inside).
_FAST = re.compile(r'#EXTINF:\s*-?\d+(?:\.\d+)?((?:\s+[A-Za-z_][\w.:-]*="[^"]*")*)\s*,(.*)$', re.I)
_FAST_ATTR = re.compile(r'([A-Za-z_][\w.:-]*)="([^"]*)"')
# A token that is neither an attribute nor the name's comma: skipped.
_JUNK = re.compile(r"\s*[^\s,]+")
_SCHEME_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
# The leading run of a relative URL ("live/1.ts", "../x.m3u8"): it must hold a "." or "/".
_RELATIVE_RUN = re.compile(r"[\w~%./-]*")

#: Longest line read (an #EXTINF line is a few hundred bytes): a longer one is skipped, so
#: no line costs more than a bounded amount of work or memory, however it is built.
MAX_LINE = 64 * 1024
#: How often (in lines) a parse looks at its ``stop`` event.
CHECK_EVERY = 4096


class _Overlong:
    """Stands for a line longer than ``MAX_LINE`` (its bytes are never kept)."""


OVERLONG = _Overlong()


def parse_playlist(source: RawSource, provider: str, stop: Event | None = None) -> Playlist:
    """
    Parse a playlist given as bytes or a file path (gzip recognised by its magic bytes).
    The data is read line by line, so a 200,000-entry playlist is never held whole; the
    work is linear in its size (no line longer than ``MAX_LINE`` is parsed).

    Raises ``SourceError`` when the data is not an M3U playlist at all, or when ``stop`` is
    set (the daemon is shutting down: a parse thread must not hold the process).
    """
    with open_raw(source) as stream:
        try:
            head = stream.read(65536)
            reason = _not_m3u(head)
            if reason:
                raise SourceError(reason)
            return _parse_lines(_lines(head, stream), provider, stop)
        except (OSError, EOFError, zlib.error) as e:
            raise SourceError(f"playlist is unreadable: {e}") from None


def parse_playlist_text(text: str, provider: str) -> Playlist:
    """Parse playlist text already decoded; see ``parse_playlist``."""
    return parse_playlist(text.encode("utf-8"), provider)


def _lines(head: bytes, stream: IO[bytes]) -> Iterator[str | _Overlong]:
    """
    Decoded lines; CRLF, LF and lone CR all end a line (and nothing else does). A line
    longer than ``MAX_LINE`` is ``OVERLONG``: its bytes are dropped as they come, so the
    text carried from one chunk to the next never exceeds ``MAX_LINE``.
    """
    rest = b""
    overlong = False  # the line being read has passed MAX_LINE already
    first = True
    for chunk in itertools.chain((head,), iter(lambda: stream.read(1 << 20), b"")):
        data = rest + chunk
        lines = data.splitlines()  # bytes: splits at \r\n, \n and \r only
        rest = lines.pop() if lines and data[-1:] not in (b"\n", b"\r") else b""
        for line in lines:
            if overlong:  # the end of the overlong line
                overlong = False
                yield OVERLONG
                continue
            if first:
                line, first = line.removeprefix(b"\xef\xbb\xbf"), False
            yield OVERLONG if len(line) > MAX_LINE else _decode(line)
        if len(rest) > MAX_LINE:
            overlong, rest = True, b""
    if overlong:
        yield OVERLONG
    elif rest:
        yield _decode(rest.removeprefix(b"\xef\xbb\xbf") if first else rest)


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


def _parse_lines(lines: Iterable[str | _Overlong], provider: str,
                 stop: Event | None = None) -> Playlist:
    channels: list[ProviderChannel] = []
    shared: dict[str, str] = {}  # groups and the like repeat on every line
    skipped = 0
    pending: tuple[str, dict[str, str]] | None = None  # (name, attributes) awaiting its URL
    extgrp = ""
    saw_hls_tag = False
    for count, line in enumerate(lines):
        if stop is not None and count % CHECK_EVERY == 0 and stop.is_set():
            raise SourceError("playlist parse stopped: epgd is shutting down")
        if isinstance(line, _Overlong):
            skipped += 1  # an overlong #EXTINF line, or the overlong URL of the pending entry
            pending = None
            continue
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
        if not _is_url(url) or url.startswith("="):
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


def _is_url(text: str) -> bool:
    """An absolute URL, or a relative one (a path with no spaces holding "." or "/")."""
    if _SCHEME_URL.match(text):
        return True
    run = _RELATIVE_RUN.match(text).group()  # type: ignore[union-attr]
    return ("." in run or "/" in run) and len(text.split(None, 1)) == 1


def _parse_extinf(line: str) -> tuple[str, dict[str, str]] | None:
    """``#EXTINF:-1 key="v" ...,Name`` -> (name, lower-cased attributes); None if nameless."""
    attrs: dict[str, str] = {}
    fast = _FAST.match(line)
    if fast is not None:
        for key, value in _FAST_ATTR.findall(fast.group(1)):
            attrs.setdefault(key.lower(), value.strip())
        name = fast.group(2).strip() or attrs.get("tvg-name", "")
        return (name, attrs) if name else None
    return _parse_extinf_slowly(line)


def _parse_extinf_slowly(line: str) -> tuple[str, dict[str, str]] | None:
    """
    Any quoting, in one pass: each step consumes what it looked at, the ends of
    double-quoted values are found once per line, and the next single quote is looked for
    again only once the scan has passed it. (A regex with a lazy value and a lookahead,
    tried at each attribute, took seconds on a 20 KB line of unclosed quotes.)
    """
    pos = _DURATION.match(line, 8).end()  # type: ignore[union-attr]
    attrs: dict[str, str] = {}
    end = len(line)
    name = ""
    dq_ends = [m.start() for m in _DQ_END.finditer(line, pos)] if '"' in line else []
    dq_next = 0  # index in dq_ends of the first end not behind the scan
    sq_next = -2  # position of the next single quote after the scan; -1: none; -2: unknown
    while pos < end:
        key = _KEY.match(line, pos)
        if key is not None:
            pos = key.end()
            quote = line[pos : pos + 1]
            value = ""
            if quote == '"':
                while dq_next < len(dq_ends) and dq_ends[dq_next] <= pos:
                    dq_next += 1
                if dq_next < len(dq_ends):
                    close = dq_ends[dq_next]
                    value, pos = line[pos + 1 : close], close + 1
            elif quote == "'":
                if sq_next != -1 and sq_next <= pos:
                    sq_next = line.find("'", pos + 1)
                if sq_next > pos:
                    value, pos = line[pos + 1 : sq_next], sq_next + 1
            else:
                bare = _BARE.match(line, pos)
                value, pos = bare.group(), bare.end()  # type: ignore[union-attr]
            attrs.setdefault(key.group(1).lower(), value.strip())
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
