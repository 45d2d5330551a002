"""
Provider guides (XMLTV) -> ``Guide`` of ``GuideChannel`` and ``Programme``.

A guide can be 500 MB, so it is read with ``lxml.etree.iterparse`` and every element is
cleared (with its already-seen siblings) as soon as it has been turned into a value; with a
``wanted`` filter, programmes of unwanted channels are dropped without being looked at.

A guide is untrusted input: the parser never loads a DTD, never touches the network and never
expands entities (an ``<!ENTITY x SYSTEM "file:///etc/passwd">`` stays an unexpanded reference).
It is tolerant of what real providers send: malformed programmes are skipped and counted, a
truncated file yields what came before the break; only input that is not XMLTV at all (an HTML
page, a JSON error, an empty body, another XML root) raises ``SourceError``.
"""

from __future__ import annotations

import datetime as _dt
import io
import re
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from lxml import etree
from twisted.logger import Logger

from epgd.sources import RawSource, SourceError, open_raw
from epgd.sources.models import Guide, GuideChannel, Programme

log = Logger(namespace="epgd.sources.xmltv")

UTC = _dt.UTC

# Zone abbreviations seen in real guides (XMLTV allows them; most tools emit offsets).
NAMED_ZONES: dict[str, int] = {  # minutes east of UTC
    "UTC": 0, "UT": 0, "GMT": 0, "Z": 0, "WET": 0, "BST": 60, "WEST": 60, "CET": 60,
    "MET": 60, "CEST": 120, "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180, "SAST": 120,
    "EST": -300, "EDT": -240, "CST": -360, "CDT": -300, "MST": -420, "MDT": -360,
    "PST": -480, "PDT": -420, "AKST": -540, "AKDT": -480, "HST": -600, "AST": -240,
    "ADT": -180, "NST": -210, "NDT": -150, "AWST": 480, "ACST": 570, "ACDT": 630,
    "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780, "JST": 540, "KST": 540,
    "HKT": 480, "SGT": 480, "IST": 330,
}

#: Programmes held while their ``<channel>`` is not yet seen (the DTD puts channels first, so
#: real guides need none; this bounds memory for a huge guide that declares none at all).
MAX_PENDING = 100_000

TAIL = 4096  # bytes kept to see whether a guide ends with its closing </tv>
_ROOT_END = re.compile(rb"</\s*tv\s*>\Z")

_TIME = re.compile(
    r"\s*(?P<digits>\d{8}(?:\d\d){0,3})\s*"
    r"(?:(?P<sign>[+-])(?P<hh>\d\d):?(?P<mm>\d\d)|(?P<name>[A-Za-z]{1,5}))?\s*$"
)


def parse_xmltv_time(value: str, offset: float = 0.0) -> _dt.datetime:
    """
    ``20261124190000 -0500`` (also 12-, 10- or 8-digit, no zone = UTC, ``+05:30``, named zones
    such as ``BST``, stray spaces) -> aware UTC datetime, ``offset`` seconds added.
    Raises ValueError for anything else.
    """
    match = _TIME.match(value)
    if match is None:
        raise ValueError(f"not an XMLTV time: {value!r}")
    digits = match.group("digits").ljust(14, "0")
    zone_minutes = 0
    if match.group("sign"):
        zone_minutes = int(match.group("hh")) * 60 + int(match.group("mm"))
        if match.group("sign") == "-":
            zone_minutes = -zone_minutes
    elif match.group("name"):
        name = match.group("name").upper()
        if name not in NAMED_ZONES:
            raise ValueError(f"unknown time zone in XMLTV time: {value!r}")
        zone_minutes = NAMED_ZONES[name]
    local = _dt.datetime(
        int(digits[0:4]), int(digits[4:6]), int(digits[6:8]),
        int(digits[8:10]), int(digits[10:12]), int(digits[12:14]), tzinfo=UTC,
    )
    return local - _dt.timedelta(minutes=zone_minutes) + _dt.timedelta(seconds=offset)


def _not_xmltv(head: bytes) -> str | None:
    """Why the first bytes show the data is not XMLTV at all, or None when it may be."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None  # UTF-16: leave it to libxml2
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "guide is empty"
    lower = text.lower()
    if text[:1] in (b"{", b"["):
        return "guide is not XMLTV: got a JSON response"
    if b"<html" in lower or b"<!doctype html" in lower or b"<body" in lower:
        return "guide is not XMLTV: got an HTML page"
    if text[:1] != b"<":
        return "guide is not XMLTV: the data is not XML"
    return None


class _Reader:
    """
    What iterparse reads from: replays the sniffed head, then the stream. A gzip stream cut
    short (or corrupt) ends the data instead of failing it, so the programmes before the break
    are kept; ``error`` says what happened.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._read = getattr(stream, "read1", stream.read)  # read1: no data lost on a break
        self._head = b""
        self.error: str | None = None
        self.tail = b""  # the last bytes read: does the document end with </tv>?

    def head(self, size: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < size:
            data = self.read(size - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        self._head = b"".join(parts)
        return self._head

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        if self.error is not None:
            return b""
        try:
            data = self._read(size if size and size > 0 else 1 << 16)
        except (OSError, EOFError, zlib.error) as e:
            self.error = _one_line(e)
            return b""
        self.tail = data[-TAIL:] if len(data) >= TAIL else (self.tail + data)[-TAIL:]
        return data


def _text(el: Any) -> str:
    """Element text without unexpanded entity references (``&x;`` contributes nothing)."""
    text = el.text or ""
    if len(el):
        parts = [text]
        for child in el:
            if child.tag is not etree.Entity and isinstance(child.tag, str):
                parts.append(child.text or "")
            parts.append(child.tail or "")
        text = "".join(parts)
    return text


class _GuideParser:
    """One parse: the string/time caches live here so that repeated values are shared."""

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self._strings: dict[str, str] = {}
        self._times: dict[str, _dt.datetime] = {}
        self._tuples: dict[Any, Any] = {}  # categories and episode numbers repeat a lot

    def share(self, value: str) -> str:
        return self._strings.setdefault(value, value)

    def time(self, value: str) -> _dt.datetime:
        cached = self._times.get(value)
        if cached is None:
            cached = self._times[value] = parse_xmltv_time(value, self.offset)
        return cached

    def channel(self, el: Any) -> GuideChannel | None:
        cid = (el.get("id") or "").strip()
        if not cid:
            return None
        names: list[str] = []
        icon = ""
        for child in el:
            if child.tag == "display-name":
                name = " ".join(_text(child).split())
                if name and name not in names:
                    names.append(name)
            elif child.tag == "icon" and not icon:
                icon = (child.get("src") or "").strip()
        return GuideChannel(id=self.share(cid), display_names=tuple(names), icon=icon)

    def programme(self, el: Any, channel: str) -> Programme | None:
        """The programme, or None when it is malformed (no channel, start or title)."""
        start_attr = el.get("start")
        if not channel or not start_attr:
            return None
        try:
            start = self.time(start_attr)
        except ValueError:
            return None
        stop: _dt.datetime | None = None
        stop_attr = el.get("stop")
        if stop_attr:
            try:
                stop = self.time(stop_attr)
            except ValueError:
                stop = None
            if stop is not None and stop < start:
                stop = None
        titles: list[Any] = []
        subs: list[Any] = []
        descs: list[Any] = []
        categories: list[Any] = []
        episodes: list[Any] = []
        icon = ""
        for child in el:
            tag = child.tag
            if tag == "title":
                titles.append(child)
            elif tag == "desc":
                descs.append(child)
            elif tag == "sub-title":
                subs.append(child)
            elif tag == "category":
                categories.append(child)
            elif tag == "episode-num":
                episodes.append(child)
            elif tag == "icon" and not icon:
                icon = (child.get("src") or "").strip()
        title = _pick(titles, _squeeze)
        if not title:
            return None
        return Programme(
            channel=channel,
            start=start,
            stop=stop,
            title=self.share(title),
            sub_title=_pick(subs, _squeeze) if subs else "",
            desc=_pick(descs, str.strip) if descs else "",
            categories=self._categories(categories) if categories else (),
            icon=self.share(icon) if icon else "",
            episode_nums=self._episodes(episodes) if episodes else (),
        )

    def _categories(self, elements: list[Any]) -> tuple[str, ...]:
        """English (or unlabelled) categories when there are any, else all; no duplicates."""
        if len(elements) == 1:
            text = _squeeze(_text(elements[0]))
            single = (text,) if text else ()
            return self._tuples.setdefault(single, single)
        found = [(el.get("lang") or "", _squeeze(_text(el))) for el in elements]
        preferred = [t for lang, t in found if t and (not lang or lang[:2].lower() == "en")]
        chosen = tuple(dict.fromkeys(preferred or [t for _, t in found if t]))
        return self._tuples.setdefault(chosen, chosen)

    def _episodes(self, elements: list[Any]) -> tuple[tuple[str, str], ...]:
        found = tuple(
            ((el.get("system") or "onscreen").strip(), value)
            for el in elements
            if (value := _text(el).strip())
        )
        return self._tuples.setdefault(found, found)


def _squeeze(text: str) -> str:
    """One line, single spaces: titles and categories are compared and shown on one line."""
    return " ".join(text.split())


def _pick(elements: list[Any], clean: Callable[[str], str]) -> str:
    """The English text if there is one (``en``, ``en_NZ``, ``en-GB``), else the first."""
    if len(elements) == 1:
        return clean(_text(elements[0]))
    first = ""
    for el in elements:
        text = clean(_text(el))
        if not text:
            continue
        if (el.get("lang") or "")[:2].lower() == "en":
            return text
        if not first:
            first = text
    return first


def parse_guide(
    source: RawSource,
    *,
    offset: float = 0.0,
    wanted: Callable[[GuideChannel], bool] | None = None,
) -> Guide:
    """
    Parse a guide given as bytes or a file path (gzip recognised by its magic bytes).

    ``offset`` seconds are added to every time (a provider's ``guide_offset``). With
    ``wanted``, only the channels it accepts, and their programmes, are kept; a programme
    whose channel id is never declared is decided by ``wanted(GuideChannel(id=...))``.
    A missing stop is the next programme's start on the same channel, else None.
    """
    parser = _GuideParser(offset)
    channels: list[GuideChannel] = []
    programmes: list[Programme] = []
    decided: dict[str, bool] = {}  # channel id -> keep its programmes?
    declared: set[str] = set()  # ids of the <channel> elements seen
    pending: dict[str, list[Programme]] = {}  # programmes whose <channel> may still come
    npending = 0
    skipped = 0
    with open_raw(source) as stream:
        reader = _Reader(stream)
        head = reader.head(8192)
        reason = _not_xmltv(head)
        if reason:
            raise SourceError(reader.error and f"guide is unreadable: {reader.error}" or reason)
        # libxml2 reads a plain file by itself much faster than through Python reads.
        feed: Any = reader
        if isinstance(stream, io.BufferedReader) and _plain_path(stream.name):
            feed = stream.name
        cut_short = ""
        context = etree.iterparse(
            feed,
            events=("end",),
            tag=("channel", "programme"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=True,
            recover=True,
            remove_comments=True,
            remove_pis=True,
        )
        try:
            for _, el in context:
                if el.tag == "programme":
                    cid = (el.get("channel") or "").strip()
                    keep = decided.get(cid) if wanted is not None else True
                    if keep is None and cid not in pending:
                        # Not declared (yet): its id alone may already say "wanted".
                        if wanted is not None and wanted(GuideChannel(id=cid)):
                            keep = decided[cid] = True
                    if keep is not False:
                        programme = parser.programme(el, parser.share(cid))
                        if programme is None:
                            skipped += 1
                        elif keep:
                            programmes.append(programme)
                        elif npending < MAX_PENDING:
                            pending.setdefault(cid, []).append(programme)
                            npending += 1
                        elif npending == MAX_PENDING:
                            npending += 1
                            log.warn("guide lists programmes before their channels; "
                                     "dropping those of channels not declared yet")
                else:
                    channel = parser.channel(el)
                    if channel is not None and channel.id not in declared:
                        declared.add(channel.id)
                        keep = True if wanted is None else decided.get(channel.id)
                        if keep is None:
                            keep = bool(wanted(channel))  # type: ignore[misc]
                        decided[channel.id] = keep
                        orphans = pending.pop(channel.id, [])
                        npending -= min(npending, len(orphans))
                        if keep:
                            channels.append(channel)
                            programmes.extend(orphans)
                el.clear(keep_tail=False)
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
        except etree.XMLSyntaxError as e:
            if context.root is None:
                raise SourceError(f"guide is not XMLTV: {_one_line(e)}") from None
            cut_short = _one_line(e)
        if reader.error is not None:
            if context.root is None:
                raise SourceError(f"guide is unreadable: {reader.error}")
            cut_short = reader.error
        root = context.root
        utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff")
        if not cut_short and root is not None and not utf16:
            tail = _file_tail(feed) if isinstance(feed, str) else reader.tail
            if not ends_whole(tail):
                cut_short = "the data ends before </tv>"
        if cut_short and root is not None:
            log.warn("guide cut short, keeping what came before: {error}", error=cut_short)
    if root is None:
        raise SourceError("guide is not XMLTV: no <tv> element")
    if root.tag != "tv":
        raise SourceError(f"guide is not XMLTV: the root element is <{root.tag}>, not <tv>")
    return Guide(
        channels=tuple(channels),
        programmes=tuple(_fill_stops(programmes)),
        skipped=skipped,
        cut_short=cut_short,
    )


def _file_tail(path: str) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, 2) - TAIL))
        return f.read()


def ends_whole(tail: bytes) -> bool:
    """
    Whether data ending in ``tail`` ends with the root's ``</tv>`` (trailing whitespace,
    comments and PIs allowed). The recovering parser closes a cut document by itself, so
    this is how a truncated download is told from a whole one.
    """
    text = tail.rstrip()
    while text.endswith((b"-->", b"?>")):
        opener = b"<!--" if text.endswith(b"-->") else b"<?"
        index = text.rfind(opener)
        if index < 0:
            return False
        text = text[:index].rstrip()
    return _ROOT_END.search(text) is not None


def _plain_path(path: Any) -> bool:
    """A path libxml2 will not mistake for a URL or percent-decode."""
    return isinstance(path, str) and path.isascii() and not any(c in path for c in "%:?#")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or error.__class__.__name__


def _fill_stops(programmes: list[Programme]) -> Iterable[Programme]:
    """A programme without a stop ends when the next one on its channel starts."""
    open_channels = {p.channel for p in programmes if p.stop is None}
    if not open_channels:
        return programmes
    by_channel: dict[str, list[int]] = {}
    for index, programme in enumerate(programmes):
        if programme.channel in open_channels:
            by_channel.setdefault(programme.channel, []).append(index)
    for indices in by_channel.values():
        indices.sort(key=lambda i: programmes[i].start)
        for position, index in enumerate(indices):
            programme = programmes[index]
            if programme.stop is not None:
                continue
            for later in indices[position + 1 :]:
                if programmes[later].start > programme.start:
                    programmes[index] = attrs.evolve(programme, stop=programmes[later].start)
                    break
    return programmes
