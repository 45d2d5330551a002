"""
What a channel's slate says (SPEC §14): the channel's number and name, then what is up next
— its title, its start in ``guide.timezone`` ("Today 19:00", "Tue 19:00") and the time left
("in 1 h 20 min") — or why nothing plays. Pure: a channel of the schedule, a time and a zone
in, lines out, with the moment they would next change by themselves (the countdown's next
minute, midnight), so the picture is re-made only when its words change.

The stream layer decides which reason holds; this module only words it. No URL and no
credential ever reaches a line: only titles, names and numbers.
"""

from __future__ import annotations

import datetime as _dt
import math
from zoneinfo import ZoneInfo

from attrs import frozen

from epgd.schedule.model import Channel

#: fixed English names: the slate must not change with the process's locale
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NO_EVENTS = "No events scheduled"
#: between a start and its countdown
SEPARATOR = " · "


@frozen
class SlateText:
    """The lines a slate shows, and when they would change by themselves (None: never)."""

    lines: tuple[str, ...]
    changes_at: float | None = None

    @property
    def text(self) -> str:
        """The lines as one string (``/streams/status`` ``slate``)."""
        return "\n".join(self.lines)


def heading(channel: Channel) -> str:
    """The first line: ``101  NHL PPV 1`` (two spaces: number and name read apart on a TV)."""
    return f"{channel.number}  {channel.name}"


def provider_full(provider: str, limit: int) -> str:
    """``main: all 2 connections in use`` (SPEC §14's "PROVIDER: all N connections in use")."""
    return f"{provider}: all {limit} connections in use"


def user_full(user: str, limit: int) -> str:
    """``alice: all 2 connections in use``: a viewer at ``max_connections`` (SPEC §15)."""
    return f"{user}: all {limit} connections in use"


def reconnecting(provider: str) -> str:
    """``Reconnecting to main…``: a live event whose source gives nothing yet."""
    return f"Reconnecting to {provider}…"


def countdown(seconds: float) -> str:
    """
    ``in 5 min``, ``in 1 h 20 min``, ``in 2 h``, ``in 3 d 4 h``: whole minutes rounded up, so
    it reads like the clocks beside it (19:00 seen at 17:40:30 is "in 1 h 20 min") and never
    says "in 0 min" before the start.
    """
    minutes = max(1, math.ceil(seconds / 60 - 1e-9))
    if minutes < 60:
        return f"in {minutes} min"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"in {hours} h {rest} min" if rest else f"in {hours} h"
    days, rest = divmod(minutes, 24 * 60)
    hours = rest // 60
    return f"in {days} d {hours} h" if hours else f"in {days} d"


def starts(start: float, now: float, zone: ZoneInfo) -> str:
    """``Today 19:00``, or ``Tue 19:00`` for any later day, in ``zone``."""
    when = _dt.datetime.fromtimestamp(start, zone)
    today = _dt.datetime.fromtimestamp(now, zone).date()
    day = "Today" if when.date() == today else WEEKDAYS[when.weekday()]
    return f"{day} {when:%H:%M}"


def _next_midnight(now: float, zone: ZoneInfo) -> float:
    """When "Today" next means another day in ``zone``."""
    local = _dt.datetime.fromtimestamp(now, zone)
    tomorrow = local.date() + _dt.timedelta(days=1)
    return _dt.datetime.combine(tomorrow, _dt.time(), zone).timestamp()


def up_next(channel: Channel, now: float, zone: ZoneInfo) -> SlateText:
    """
    The channel between events: ``Up next: TITLE`` and ``Today 19:00 · in 1 h 20 min``, or
    ``No events scheduled``. The countdown's words change once a minute at most (when the
    minutes rounded up do), and "Today" at midnight.
    """
    following = channel.next(now)
    if following is None:
        return SlateText((heading(channel), NO_EVENTS))
    start = following.start.timestamp()
    left = start - now
    lines = (heading(channel), f"Up next: {following.title}",
             f"{starts(start, now, zone)}{SEPARATOR}{countdown(left)}")
    minutes = max(1, math.ceil(left / 60 - 1e-9))
    tick = start - 60 * (minutes - 1)  # where the rounded-up minutes drop by one
    if tick <= now:
        tick = now + 60
    return SlateText(lines, min(tick, _next_midnight(now, zone)))


def saying(channel: Channel, reason: str) -> SlateText:
    """The channel's heading and one line saying why nothing plays."""
    return SlateText((heading(channel), reason))
