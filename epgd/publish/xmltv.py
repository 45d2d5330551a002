"""
The combined channels' guide as XMLTV (SPEC §6.2), built with lxml and valid against
``xmltv.dtd``: children of ``<programme>`` in the DTD's order, times ``YYYYMMDDhhmmss +0000``.

Gaps get filler programmes (``Next: <title> at <HH:MM>``) so that guide grids show when the
next event comes instead of an empty row. The same schedule and ``now`` give the same bytes.

For media servers, which match guide channels by number and sort programmes by category, each
channel has its number as a second display-name, and each event (never a filler) is marked
``Sports``, ``<new/>`` and, without episode numbers of its own, an ``original-air-date``.
"""

from __future__ import annotations

import datetime as _dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree

from epgd.schedule.model import Channel, Event, Schedule

UTC = _dt.UTC
DAY = 86400.0
# Fillers are cut at these boundaries (POSIX multiples) so no guide row holds a week-long block.
FILLER_BLOCK = 6 * 3600.0
GRID = 3600.0  # the guide starts at the hour that holds "now"
NOTHING = "No events scheduled"
SPORTS = "Sports"

# Characters XML 1.0 cannot carry; provider titles do contain them now and then.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    return _INVALID_XML.sub("", value)


def xmltv_time(t: float) -> str:
    """``20261124190000 +0000`` for POSIX time ``t``."""
    return _dt.datetime.fromtimestamp(t, UTC).strftime("%Y%m%d%H%M%S +0000")


def display_zone(name: str) -> _dt.tzinfo:
    """The zone filler titles show times in; an unknown name falls back to UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _add_text(parent: etree._Element, tag: str, text: str, **attrs: str) -> None:
    child = etree.SubElement(parent, tag, **attrs)
    child.text = xml_text(text)


def _programme(
    root: etree._Element,
    channel_id: str,
    start: float,
    stop: float,
    title: str,
    event: Event | None = None,
) -> None:
    element = etree.SubElement(
        root, "programme", start=xmltv_time(start), stop=xmltv_time(stop), channel=channel_id
    )
    _add_text(element, "title", title)
    if event is None:
        return
    if event.sub_title:
        _add_text(element, "sub-title", event.sub_title)
    if event.desc:
        _add_text(element, "desc", event.desc)
    for category in _categories(event.categories):
        _add_text(element, "category", category)
    if event.icon:
        etree.SubElement(element, "icon", src=xml_text(event.icon))
    numbered = False
    for system, value in event.episode_nums:
        if value:
            _add_text(element, "episode-num", value, system=xml_text(system or "onscreen"))
            numbered = True
    if not numbered:
        # "Record new episodes" rules key airings by this; each event is its own episode.
        aired = _dt.datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M:%S")
        _add_text(element, "episode-num", aired, system="original-air-date")
    etree.SubElement(element, "new")  # a live event is never a rerun


def _categories(given: tuple[str, ...]) -> list[str]:
    """
    The provider's categories, each once, then ``Sports`` unless it is among them: media
    servers sort programmes into Sports by it.
    """
    seen: set[str] = set()
    out = []
    for category in (*given, SPORTS):
        key = xml_text(category).strip().casefold()
        if key and key not in seen:
            seen.add(key)
            out.append(category)
    return out


def _fillers(
    root: etree._Element, channel_id: str, start: float, stop: float, title: str
) -> None:
    """Filler programmes over ``[start, stop)``, cut at FILLER_BLOCK boundaries."""
    while stop - start >= 1:
        cut = min(stop, (start // FILLER_BLOCK + 1) * FILLER_BLOCK)
        _programme(root, channel_id, start, cut, title)
        start = cut


def _next_title(event: Event, zone: _dt.tzinfo) -> str:
    at = event.start.astimezone(zone).strftime("%H:%M")
    return f"Next: {event.title} at {at}"


def _channel_programmes(
    root: etree._Element,
    channel: Channel,
    window: tuple[float, float],
    filler: bool,
    zone: _dt.tzinfo,
) -> None:
    begin, end = window
    events = sorted(
        (e for e in channel.events
         if e.stop.timestamp() > begin and e.start.timestamp() < end),
        key=lambda e: (e.start, e.stop, e.key),
    )
    cursor = begin
    for event in events:
        start, stop = event.start.timestamp(), event.stop.timestamp()
        if filler and start > cursor:
            _fillers(root, channel.id, cursor, start, _next_title(event, zone))
        _programme(root, channel.id, start, stop, event.title, event)
        cursor = max(cursor, stop)
    if filler and cursor < end:
        _fillers(root, channel.id, cursor, end, NOTHING)


def render_xmltv(
    schedule: Schedule,
    now: float,
    days: float = 7,
    filler: bool = True,
    timezone: str = "UTC",
) -> bytes:
    """
    The guide from the hour holding ``now`` to the hour ``days`` ahead: every channel, its
    events in that window (one already running is shown whole), and fillers in the gaps.
    Both ends are whole hours, so re-renders within the hour give the same bytes (and ETag).
    """
    begin = (now // GRID) * GRID
    window = (begin, begin + GRID + days * DAY)
    zone = display_zone(timezone)
    root = etree.Element("tv", {"generator-info-name": "epgd"})
    for channel in schedule.channels:
        element = etree.SubElement(root, "channel", id=channel.id)
        _add_text(element, "display-name", channel.name)
        _add_text(element, "display-name", str(channel.number))
        if channel.logo:
            etree.SubElement(element, "icon", src=xml_text(channel.logo))
    for channel in schedule.channels:
        _channel_programmes(root, channel, window, filler, zone)
    # No DOCTYPE: a relative "xmltv.dtd" would send validating readers looking for it.
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
