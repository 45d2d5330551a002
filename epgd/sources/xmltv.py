"""
Provider guides (XMLTV) -> ``Guide`` of ``GuideChannel`` and ``Programme``.

A guide can be 500 MB, so it is read with ``lxml.etree.iterparse`` and the elements already
turned into values are taken out of the tree as it grows; with a ``wanted`` filter, programmes
of unwanted channels are dropped without being looked at. Without one, half a million
programmes are read at 50 MB/s or so: see ``_GuideParser`` and bench/guide_ingest.py.

A guide is untrusted input: the parser never loads a DTD, never touches the network and never
expands entities (an ``<!ENTITY x SYSTEM "file:///etc/passwd">`` stays an unexpanded reference).
It is tolerant of what real providers send: malformed programmes are skipped and counted, a
truncated file yields what came before the break, XML errors the recovering parser repaired
are reported (``Guide.damaged``: its repair may have lost programmes); only input that is not XMLTV at all (an HTML
page, a JSON error, an empty body, another XML root) raises ``SourceError``.
"""

from __future__ import annotations

import datetime as _dt
import gc
import io
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from threading import Event
from typing import Any

import attrs
from lxml import etree
from twisted.logger import Logger

from epgd.sources import RawSource, SourceError, open_raw
from epgd.sources.models import Guide, GuideChannel, Programme
from epgd.sources.xmltvread import (
    Reader,
    ends_whole,
    file_tail,
    not_xmltv,
    one_line,
    plain_path,
    repaired,
)
from epgd.sources.xmltvtime import parse_xmltv_time

log = Logger(namespace="epgd.sources.xmltv")

UTC = _dt.UTC

#: Programmes held while their ``<channel>`` is not yet seen (the DTD puts channels first, so
#: real guides need none; this bounds memory for a huge guide that declares none at all).
MAX_PENDING = 100_000

#: Elements already read are taken out of the tree this many at a time: one slice deletion
#: costs much less than clearing each element and looking for its previous sibling, and
#: the tree never holds more than this many programmes.
DROP_EVERY = 1024

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
    max_bytes: int | None = None,
    stop: Event | None = None,
) -> Guide:
    """
    Parse a guide given as bytes or a file path (gzip recognised by its magic bytes).

    ``offset`` seconds are added to every time (a provider's ``guide_offset``). With
    ``wanted``, only the channels it accepts, and their programmes, are kept; a programme
    whose channel id is never declared is decided by ``wanted(GuideChannel(id=...))``.
    A missing stop is the next programme's start on the same channel, else None.

    A guide whose data, once decompressed, passes ``max_bytes`` is refused (counted as it is
    read, never held). XML damage the parser had to repair is kept in ``Guide.damaged``.
    ``stop`` set (the daemon is shutting down) ends the parse with ``SourceError``.
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
        reader = Reader(stream, max_bytes, stop)
        head = reader.head(8192)
        reader.raise_refusal()
        reason = not_xmltv(head)
        if reason:
            raise SourceError(reader.error and f"guide is unreadable: {reader.error}" or reason)
        # libxml2 reads a plain file by itself much faster than through Python reads.
        feed: Any = reader
        if isinstance(stream, io.BufferedReader) and plain_path(stream.name):
            feed = stream.name
            reader.check_size(os.fstat(stream.fileno()).st_size)
        cut_short = ""
        context = etree.iterparse(
            feed,
            events=("end",),
            tag=("channel", "programme"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,  # keeps libxml2's limits: no 10 MB text node, no 1 GB of blanks
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
                if done % DROP_EVERY == 0:
                    if (parent := el.getparent()) is not None:
                        del parent[:-1]  # the elements read (and anything skipped) before it
                    reader.check_stop()
        except etree.XMLSyntaxError as e:
            if context.root is None:
                raise SourceError(f"guide is not XMLTV: {one_line(e)}") from None
            cut_short = one_line(e)
        reader.raise_refusal()
        if reader.error is not None:
            if context.root is None:
                raise SourceError(f"guide is unreadable: {reader.error}")
            cut_short = reader.error
        root = context.root
        utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff")
        if not cut_short and root is not None and not utf16:
            tail = file_tail(feed) if isinstance(feed, str) else reader.tail
            if not ends_whole(tail):
                cut_short = "the data ends before </tv>"
        if cut_short and root is not None:
            log.warn("guide cut short, keeping what came before: {error}", error=cut_short)
        damaged = repaired(context.error_log, bool(cut_short))
    if root is None:
        raise SourceError("guide is not XMLTV: no <tv> element")
    if root.tag != "tv":
        raise SourceError(f"guide is not XMLTV: the root element is <{root.tag}>, not <tv>")
    return Guide(
        channels=tuple(channels),
        programmes=tuple(_fill_stops(programmes)),
        skipped=skipped,
        cut_short=cut_short,
        damaged=damaged,
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
