"""
Provider guides (XMLTV) -> ``Guide`` of ``GuideChannel`` and ``Programme``.

A guide can be 500 MB, so it is read with ``lxml.etree.iterparse`` and the elements already
turned into values are taken out of the tree as it grows; with a ``wanted`` filter, programmes
of unwanted channels are dropped without being looked at. Without one, half a million
programmes are read at 50 MB/s or so: see ``_GuideParser`` and bench/guide_ingest.py.

A guide is untrusted input: the parser never loads a DTD, never touches the network and never
expands entities (an ``<!ENTITY x SYSTEM "file:///etc/passwd">`` stays an unexpanded reference).
It is tolerant of what real providers send: malformed programmes are skipped and counted, a
truncated file yields what came before the break; only input that is not XMLTV at all (an HTML
page, a JSON error, an empty body, another XML root) raises ``SourceError``.
"""

from __future__ import annotations

import datetime as _dt
import gc
import io
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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

#: Elements already read are taken out of the tree this many at a time: one slice deletion
#: costs much less than clearing each element and looking for its previous sibling, and
#: the tree never holds more than this many programmes.
DROP_EVERY = 1024

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
    """
    One parse. Turning elements into values is the hot path of a big guide (half a million
    programmes): each child is visited once and its text read once, the language of a title
    is only asked when there are several to choose from, and what repeats is parsed once and
    shared: times (every stop is the next start), titles, icons, categories, episode numbers.
    """

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self._strings: dict[str, str] = {}
        self._times: dict[str, _dt.datetime] = {}
        self._titles: dict[str, str] = {}  # raw text -> squeezed
        # Raw text (or system and text) of a lone category (episode-num) -> its tuple; and
        # every tuple of several -> itself, so that equal ones are shared.
        self._categories_of: dict[Any, tuple[str, ...]] = {}
        self._episodes_of: dict[Any, tuple[tuple[str, str], ...]] = {}

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
                name = _squeeze(_text(child))
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
        times = self._times
        try:
            start = times.get(start_attr) or self.time(start_attr)
        except ValueError:
            return None
        stop: _dt.datetime | None = None
        stop_attr = el.get("stop")
        if stop_attr:
            try:
                stop = times.get(stop_attr) or self.time(stop_attr)
            except ValueError:
                stop = None
            if stop is not None and stop < start:
                stop = None
        # The raw text of the first child of each kind; a second one of a kind sends that kind
        # down the slower path below (choosing by language, or keeping several).
        title = sub_title = desc = category = None
        episode: tuple[str | None, str] | None = None  # (system, raw text)
        several = several_categories = several_episodes = False
        icon = ""
        for child in el:
            tag = child.tag
            if tag == "icon":
                if not icon:
                    src = child.get("src") or ""
                    icon = self._strings.get(src) or self.share(src.strip())
                continue
            # An element with children holds entity references (or markup): see _text.
            text = _text(child) if len(child) else child.text or ""
            if tag == "title":
                if title is None:
                    title = text
                else:
                    several = True
            elif tag == "desc":
                if desc is None:
                    desc = text
                else:
                    several = True
            elif tag == "sub-title":
                if sub_title is None:
                    sub_title = text
                else:
                    several = True
            elif tag == "category":
                if category is None:
                    category = text
                else:
                    several_categories = True
            elif tag == "episode-num":
                if episode is None:
                    episode = (child.get("system"), text)
                else:
                    several_episodes = True
        if several:
            title = _pick(el, "title", _squeeze)
            sub_title = _pick(el, "sub-title", _squeeze)
            desc = _pick(el, "desc", str.strip)
        if not title:
            return None
        shared_title = self._titles.get(title)
        if shared_title is None:
            shared_title = self._titles[title] = self.share(_squeeze(title))
        if not shared_title:
            return None
        categories: tuple[str, ...] = ()
        if several_categories:
            categories = self._categories(el)
        elif category is not None:
            categories = self._categories_of.get(category) or self._category(category)
        episode_nums: tuple[tuple[str, str], ...] = ()
        if several_episodes:
            episode_nums = self._episodes(el)
        elif episode is not None:
            episode_nums = self._episodes_of.get(episode) or self._episode(episode)
        # Positional, in field order: half a million of these are made, and the keywords
        # would cost a third of the (frozen) construction.
        return Programme(
            channel, start, stop, shared_title,
            _squeeze(sub_title) if sub_title else "",
            desc.strip() if desc else "",
            categories, icon, episode_nums,
        )

    def _category(self, raw: str) -> tuple[str, ...]:
        text = _squeeze(raw)
        category = self._categories_of[raw] = (text,) if text else ()
        return category

    def _categories(self, el: Any) -> tuple[str, ...]:
        """English (or unlabelled) categories when there are any, else all; no duplicates."""
        found = [(child.get("lang") or "", _squeeze(_text(child)))
                 for child in el.iterchildren("category")]
        preferred = [t for lang, t in found if t and (not lang or lang[:2].lower() == "en")]
        chosen = tuple(dict.fromkeys(preferred or [t for _, t in found if t]))
        return self._categories_of.setdefault(chosen, chosen)

    def _episode(self, key: tuple[str | None, str]) -> tuple[tuple[str, str], ...]:
        system, value = (key[0] or "onscreen").strip(), key[1].strip()
        numbers = self._episodes_of[key] = ((system, value),) if value else ()
        return numbers

    def _episodes(self, el: Any) -> tuple[tuple[str, str], ...]:
        """(system, value) of each episode-num with a value; a missing system is onscreen."""
        numbers = tuple(
            ((child.get("system") or "onscreen").strip(), value)
            for child in el.iterchildren("episode-num")
            if (value := _text(child).strip())
        )
        return self._episodes_of.setdefault(numbers, numbers)


def _squeeze(text: str) -> str:
    """One line, single spaces: titles and categories are compared and shown on one line."""
    return " ".join(text.split())


def _pick(el: Any, tag: str, clean: Callable[[str], str]) -> str:
    """
    The text of the ``tag`` child in English if there is one (``en``, ``en_NZ``, ``en-GB``),
    else of the first with any text.
    """
    first = ""
    for child in el.iterchildren(tag):
        text = clean(_text(child))
        if not text:
            continue
        if (child.get("lang") or "")[:2].lower() == "en":
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
    ids: dict[str, str] = {}  # channel attribute of a programme -> channel id
    decided: dict[str, bool] = {}  # channel id -> keep its programmes?
    declared: set[str] = set()  # ids of the <channel> elements seen
    pending: dict[str, list[Programme]] = {}  # programmes whose <channel> may still come
    npending = 0
    skipped = 0
    done = 0  # elements cleared
    with open_raw(source) as stream, _collector_paused():
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
            remove_blank_text=True,  # fewer nodes to make and free; texts are stripped anyway
        )
        try:
            for _, el in context:
                if el.tag == "programme":
                    raw_id = el.get("channel") or ""
                    cid = ids.get(raw_id)
                    if cid is None:
                        cid = ids[raw_id] = parser.share(raw_id.strip())
                    keep = decided.get(cid) if wanted is not None else True
                    if keep is None and cid not in pending:
                        # Not declared (yet): its id alone may already say "wanted".
                        if wanted is not None and wanted(GuideChannel(id=cid)):
                            keep = decided[cid] = True
                    if keep is not False:
                        programme = parser.programme(el, cid)
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
                done += 1
                if done % DROP_EVERY == 0 and (parent := el.getparent()) is not None:
                    del parent[:-1]  # the elements read (and anything skipped) before this one
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


@contextmanager
def _collector_paused() -> Iterator[None]:
    """
    No cyclic garbage collection while a guide is read. A big guide allocates half a million
    long-lived values that cannot form cycles, and the collector, triggered by those
    allocations, would walk all of them again and again: a quarter of the parse time.
    Reference counting frees everything as usual meanwhile; the collector is back on at the
    end (unless it was off before, or another parse still runs and turned it off first).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
