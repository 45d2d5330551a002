"""
The schedule as JSON (SPEC §6.3), for scripts and for people asking "what is on where?".

Key names and order follow the SPEC exactly; times are UTC ``...Z``; source URLs are masked.
The file reaches from the event still live or held on each channel now to ``days`` ahead.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from typing import Any

from epgd.schedule.model import Channel, Event, Schedule, utc_iso

UTC = _dt.UTC
DAY = 86400.0


def event_object(event: Event, now: float, mask: Callable[[str], str]) -> dict[str, Any]:
    return {
        "title": event.title,
        "start": utc_iso(event.start),
        "stop": utc_iso(event.stop),
        "live": event.is_live(now),
        "sources": [
            {"provider": s.provider, "channel": s.channel, "url": mask(s.url)}
            for s in event.sources
        ],
    }


def _in_window(event: Event, now: float, horizon: float) -> bool:
    """Not over yet (padding included) and starting by the horizon."""
    return event.live_until > now and event.start.timestamp() <= horizon


def channel_events(channel: Channel, now: float, horizon: float, hold: float) -> list[Event]:
    """The events of ``channel`` to show: the one held after its end now, then what is to come."""
    shown = [e for e in channel.events if _in_window(e, now, horizon)]
    playing = channel.playing(now, hold)
    if playing is not None and playing.live_until <= now:
        shown.insert(0, playing)
    return shown


def render_schedule_json(
    schedule: Schedule,
    now: float,
    days: float,
    hold_after_end: float,
    mask: Callable[[str], str],
) -> bytes:
    horizon = now + days * DAY
    body = {
        "generated_at": utc_iso(schedule.generated_at),
        "channels": [
            {
                "id": channel.id,
                "name": channel.name,
                "number": channel.number,
                "lineup": channel.lineup,
                "events": [
                    event_object(e, now, mask)
                    for e in channel_events(channel, now, horizon, hold_after_end)
                ],
            }
            for channel in schedule.channels
        ],
        "unplaced": [
            {**event_object(e, now, mask), "lineup": e.lineup}
            for e in schedule.unplaced
            if _in_window(e, now, horizon)
        ],
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def change_points(
    schedule: Schedule, days: float, hold_after_end: float
) -> list[float]:
    """
    Every moment at which ``render_schedule_json`` may give different bytes: an event going
    live, ending, its hold running out, or coming within ``days`` of now.
    """
    points: set[float] = set()
    events = [e for c in schedule.channels for e in c.events] + list(schedule.unplaced)
    for event in events:
        points.update((
            event.live_from,
            event.live_until,
            event.live_until + hold_after_end,
            event.start.timestamp() - days * DAY,
        ))
    return sorted(points)
