"""
The schedule: an immutable value answering "what is on combined channel X at time t?".

A refresh builds a new ``Schedule`` and swaps it in whole; the stream code holds no other
link to the guide side. Times passed in are POSIX seconds (``reactor.seconds()``), so tests
drive everything with ``task.Clock``.
"""

from __future__ import annotations

import bisect
import datetime as _dt

from attrs import field, frozen


def utc_iso(when: _dt.datetime | float) -> str:
    """``2026-11-24T19:00:00Z`` (whole seconds, UTC) for a datetime or a POSIX time."""
    if not isinstance(when, _dt.datetime):
        when = _dt.datetime.fromtimestamp(when, _dt.UTC)
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@frozen
class Source:
    """One provider stream carrying an event. ``url`` is the real URL: mask it before showing it."""

    provider: str
    channel: str
    url: str


@frozen
class Event:
    """
    One event on one lineup. ``key`` is its identity across rebuilds (used for the sticky
    channel assignment); ``sources`` are tried in order (fail-over).
    """

    key: str
    lineup: str
    title: str
    start: _dt.datetime  # aware, UTC
    stop: _dt.datetime  # aware, UTC
    sources: tuple[Source, ...]
    sub_title: str = ""
    desc: str = ""
    categories: tuple[str, ...] = ()
    icon: str = ""
    episode_nums: tuple[tuple[str, str], ...] = ()
    pre_padding: float = 0.0
    post_padding: float = 0.0

    @property
    def live_from(self) -> float:
        """POSIX time the event goes live (start less pre-padding)."""
        return self.start.timestamp() - self.pre_padding

    @property
    def live_until(self) -> float:
        """POSIX time the event stops being live (stop plus post-padding); half-open."""
        return self.stop.timestamp() + self.post_padding

    def is_live(self, t: float) -> bool:
        return self.live_from <= t < self.live_until


@frozen
class Channel:
    """One combined channel (``nhl_ppv_1``) and its events, sorted by start, never overlapping."""

    id: str
    name: str
    number: int
    lineup: str
    group: str
    logo: str = ""
    events: tuple[Event, ...] = ()
    _starts: tuple[float, ...] = field(init=False, repr=False, eq=False, hash=False)
    _bounds: tuple[float, ...] = field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        # Lookups bisect on live_from, so the events must be in that order whatever we were given.
        events = tuple(sorted(self.events, key=lambda e: (e.live_from, e.live_until)))
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "_starts", tuple(e.live_from for e in events))
        points = {e.live_from for e in events} | {e.live_until for e in events}
        object.__setattr__(self, "_bounds", tuple(sorted(points)))

    def live(self, t: float) -> Event | None:
        """The event whose padded interval holds ``t``."""
        index = bisect.bisect_right(self._starts, t) - 1
        if index >= 0 and self.events[index].is_live(t):
            return self.events[index]
        return None

    def next(self, t: float) -> Event | None:
        """The first event that goes live after ``t``."""
        index = bisect.bisect_right(self._starts, t)
        return self.events[index] if index < len(self.events) else None

    def playing(self, t: float, hold_after_end: float) -> Event | None:
        """
        What a stream of this channel should carry at ``t``: the live event, else the latest
        ended event while within ``hold_after_end`` of its end (games overrun) and nothing
        else is live.
        """
        live = self.live(t)
        if live is not None:
            return live
        index = bisect.bisect_right(self._starts, t) - 1
        if index >= 0:
            last = self.events[index]
            if last.live_until <= t < last.live_until + hold_after_end:
                return last
        return None

    def boundaries(self) -> list[float]:
        """Every moment something changes on this channel."""
        return list(self._bounds)

    def next_boundary(self, t: float, hold_after_end: float = 0.0) -> float | None:
        """The first moment after ``t`` at which ``playing(t, hold_after_end)`` may change."""
        index = bisect.bisect_right(self._bounds, t)
        best = self._bounds[index] if index < len(self._bounds) else None
        if hold_after_end > 0:
            for event in self.events:
                end = event.live_until + hold_after_end
                if end > t and (best is None or end < best):
                    best = end
        return best


@frozen
class Schedule:
    """Every combined channel of every lineup, plus the events that fit nowhere."""

    generated_at: _dt.datetime
    channels: tuple[Channel, ...] = ()
    unplaced: tuple[Event, ...] = ()
    _by_id: dict[str, Channel] = field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {c.id: c for c in self.channels})

    def channel(self, channel_id: str) -> Channel | None:
        return self._by_id.get(channel_id)

    def live(self, channel_id: str, t: float) -> Event | None:
        channel = self.channel(channel_id)
        return channel.live(t) if channel else None

    def next(self, channel_id: str, t: float) -> Event | None:
        channel = self.channel(channel_id)
        return channel.next(t) if channel else None

    def playing(self, channel_id: str, t: float, hold_after_end: float) -> Event | None:
        channel = self.channel(channel_id)
        return channel.playing(t, hold_after_end) if channel else None

    def next_boundary(self, channel_id: str, t: float, hold_after_end: float = 0.0) -> float | None:
        """
        The first moment after ``t`` at which ``playing(channel_id, ...)`` may change:
        an event going live, one ending, or a hold running out.
        """
        channel = self.channel(channel_id)
        return channel.next_boundary(t, hold_after_end) if channel else None

    def all_events(self) -> list[Event]:
        """Every placed event of every channel, channel by channel."""
        return [event for channel in self.channels for event in channel.events]
