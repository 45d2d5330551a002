"""
Merging, identity and packing (SPEC §5.3), and the state that carries them from one build
to the next: which channel each event had, when name events without a time were first seen,
which unplaced events were already logged.

Identity: an event's ``key`` is ``"<lineup>:<POSIX start when first seen>:<normalized title>"``,
minted the first time it appears and then inherited. Each build matches its events to the
previous build's records of the same lineup and title, nearest start first, within
``MATCH_WINDOW``; so a game moved by an hour, given new sources, or shown again by a
different provider keeps its key — and its channel — while two airings of one title
the same day stay two events.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from attrs import field, frozen
from twisted.logger import Logger

from epgd.atomicfile import write_atomically
from epgd.schedule.events import Candidate, normalize_title
from epgd.schedule.model import Event, Source

MERGE_WINDOW = 15 * 60  # seconds: same title, starts this close -> one event
MATCH_WINDOW = 3 * 3600  # seconds: how far a start may move and still be "the same event"
KEEP_GONE = 86400  # seconds a record outlives its event's end, for events that blink out
STATE_VERSION = 1

_log = Logger(namespace="epgd.schedule.packing")


@frozen
class Record:
    """What the state remembers of one event: enough to recognise it and to keep its channel."""

    lineup: str
    title: str  # normalized
    start: float
    until: float  # live_until: stop + post_padding
    channel: str  # "" when it fit nowhere


def _frozen_map(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(value))


def _frozen_keys(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@frozen
class PackingState:
    """Immutable; a build takes one and returns the next. Persisted as JSON in state_dir."""

    records: Mapping[str, Record] = field(factory=dict, converter=_frozen_map, hash=False)
    # (provider, channel name) -> POSIX time the playlist first showed that time-less name event
    first_seen: Mapping[tuple[str, str], float] = field(
        factory=dict, converter=_frozen_map, hash=False)
    logged_unplaced: frozenset[str] = field(default=frozenset(), converter=_frozen_keys)

    @classmethod
    def empty(cls) -> PackingState:
        return cls()

    def assignments(self) -> dict[str, str]:
        """Event key -> the channel it had."""
        return {key: r.channel for key, r in self.records.items() if r.channel}

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "records": {key: [r.lineup, r.title, r.start, r.until, r.channel]
                        for key, r in sorted(self.records.items())},
            "first_seen": [[p, n, t] for (p, n), t in sorted(self.first_seen.items())],
            "logged_unplaced": sorted(self.logged_unplaced),
        }

    @classmethod
    def from_json(cls, data: Any) -> PackingState:
        """Raises ValueError (or KeyError/TypeError) on anything that is not a state we wrote."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("not an epgd packing state of version 1")
        records = {}
        for key, (lineup, title, start, until, channel) in data["records"].items():
            records[str(key)] = Record(str(lineup), str(title), float(start), float(until),
                                       str(channel))
        first_seen = {(str(p), str(n)): float(t) for p, n, t in data["first_seen"]}
        logged = frozenset(str(k) for k in data["logged_unplaced"])
        return cls(records=records, first_seen=first_seen, logged_unplaced=logged)

    @classmethod
    def load(cls, path: str) -> PackingState:
        """The saved state; empty when missing, and when corrupt (with a one-line warning)."""
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_json(json.load(f))
        except FileNotFoundError:
            return cls.empty()
        except (OSError, ValueError, KeyError, TypeError) as e:
            _log.warn("ignoring unreadable lane assignments {path}: {error}; starting afresh",
                      path=path, error=f"{type(e).__name__}: {e}")
            return cls.empty()

    def save(self, path: str) -> None:
        """Write atomically: a crash leaves the old assignments or the new, whole."""
        write_atomically(path, json.dumps(self.to_json(), separators=(",", ":")).encode("utf-8"))


def merge(candidates: Iterable[Candidate]) -> list[list[Candidate]]:
    """
    Group candidates with the same normalized title whose starts are within MERGE_WINDOW of
    the group's first; each group is in source order (provider, then playlist position).
    Groups come out in a fixed order (title, start) so a build is reproducible.
    """
    by_title: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        by_title.setdefault(normalize_title(candidate.title), []).append(candidate)
    groups: list[list[Candidate]] = []
    for title in sorted(by_title):
        items = sorted(by_title[title], key=lambda c: (c.start, c.rank, c.stop))
        group = [items[0]]
        for candidate in items[1:]:
            if (candidate.start - group[0].start).total_seconds() <= MERGE_WINDOW:
                group.append(candidate)
            else:
                groups.append(group)
                group = [candidate]
        groups.append(group)
    return [sorted(g, key=lambda c: (c.rank, c.start, c.stop)) for g in groups]


def assign_keys(lineup: str, groups: Sequence[Sequence[Candidate]],
                records: Mapping[str, Record]) -> list[str]:
    """One key per group: inherited from the nearest matching record, else newly minted."""
    previous: dict[str, list[tuple[str, Record]]] = {}
    for key, record in records.items():
        if record.lineup == lineup:
            previous.setdefault(record.title, []).append((key, record))
    starts = [g[0].start.timestamp() for g in groups]
    titles = [normalize_title(g[0].title) for g in groups]
    pairs = []
    for i, (title, start) in enumerate(zip(titles, starts, strict=True)):
        for key, record in previous.get(title, ()):
            distance = abs(record.start - start)
            if distance <= MATCH_WINDOW:
                pairs.append((distance, i, key))
    pairs.sort()
    keys: list[str | None] = [None] * len(groups)
    taken: set[str] = set()
    for _, i, key in pairs:
        if keys[i] is None and key not in taken:
            keys[i] = key
            taken.add(key)
    result = []
    for i, inherited in enumerate(keys):
        if inherited is None:
            base = f"{lineup}:{int(starts[i])}:{titles[i]}"
            inherited, n = base, 2
            while inherited in taken or inherited in records:
                inherited, n = f"{base}#{n}", n + 1
            taken.add(inherited)
        result.append(inherited)
    return result


def make_event(key: str, group: Sequence[Candidate], pre_padding: float,
               post_padding: float) -> Event:
    """Title and times from the first source; other details from the first that has them."""
    first = group[0]
    sources: list[Source] = []
    urls: set[str] = set()
    for candidate in group:
        if candidate.source.url and candidate.source.url not in urls:
            urls.add(candidate.source.url)
            sources.append(candidate.source)

    def detail(name: str) -> Any:
        for candidate in group:
            value = getattr(candidate, name)
            if value:
                return value
        return getattr(first, name)

    return Event(key=key, lineup=first.lineup, title=first.title, start=first.start,
                 stop=first.stop, sources=tuple(sources), sub_title=detail("sub_title"),
                 desc=detail("desc"), categories=detail("categories"), icon=detail("icon"),
                 episode_nums=detail("episode_nums"), pre_padding=pre_padding,
                 post_padding=post_padding)


class _Lane:
    """Busy intervals of one channel, sorted, for half-open overlap checks."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.events: list[Event] = []

    def fits(self, event: Event) -> bool:
        i = bisect.bisect_right(self.starts, event.live_from)
        if i > 0 and self.events[i - 1].live_until > event.live_from:
            return False
        return not (i < len(self.events) and self.events[i].live_from < event.live_until)

    def add(self, event: Event) -> None:
        i = bisect.bisect_right(self.starts, event.live_from)
        self.starts.insert(i, event.live_from)
        self.events.insert(i, event)


def pack(channel_ids: Sequence[str], events: Iterable[Event], previous: Mapping[str, str],
         now: float) -> tuple[dict[str, list[Event]], list[Event]]:
    """
    Place events on channels: first every event on the channel it had (``previous``); where
    such events now collide, the one live at ``now``, else the earlier, keeps it. Then the
    rest, greedily by start, on the lowest channel where it fits. Returns (channel id ->
    events by start, unplaced events by start).
    """
    lanes = {cid: _Lane() for cid in channel_ids}
    sticky: dict[str, list[Event]] = {}
    free: list[Event] = []
    for event in events:
        channel = previous.get(event.key)
        if channel in lanes:
            sticky.setdefault(channel, []).append(event)
        else:
            free.append(event)
    for channel in channel_ids:
        holders = sorted(sticky.get(channel, ()),
                         key=lambda e: (not e.is_live(now), e.live_from, e.live_until, e.key))
        for event in holders:
            if lanes[channel].fits(event):
                lanes[channel].add(event)
            else:
                free.append(event)
    unplaced: list[Event] = []
    for event in sorted(free, key=lambda e: (e.live_from, e.live_until, e.key)):
        for channel in channel_ids:
            if lanes[channel].fits(event):
                lanes[channel].add(event)
                break
        else:
            unplaced.append(event)
    return {cid: lanes[cid].events for cid in channel_ids}, unplaced
