"""
Provider data + configuration + the previous build's state -> the next ``Schedule``.

``build_schedule`` is a pure function (no I/O, no reactor; it only logs): the Catalog calls
it after every refresh and persists the returned ``PackingState``; ``python -m epgd build``
calls it once. Same input, same output.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from twisted.logger import Logger

from epgd.config import Config, LineupConfig
from epgd.schedule.events import (
    UTC,
    Candidate,
    GuideIndex,
    NameTimeError,
    Window,
    guide_events,
    lineup_takes,
    manual_event,
    name_event,
    normalize_title,
    parse_name,
    title_passes,
)
from epgd.schedule.model import Channel, Event, Schedule, utc_iso
from epgd.schedule.packing import (
    KEEP_GONE,
    PackingState,
    Record,
    assign_keys,
    make_event,
    merge,
    pack,
)
from epgd.sources.models import ProviderChannel, ProviderData

_log = Logger(namespace="epgd.schedule.build")
# A lineup drawing on a whole event group may leave hundreds unplaced: name a few, count the rest.
MAX_UNPLACED_LOGGED = 10


def _zone(name: str) -> _dt.tzinfo:
    """guide.timezone; config validation should have caught a bad name, but never crash here."""
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError) as e:  # ZoneInfoNotFoundError is a KeyError
        _log.error("guide.timezone {zone!r} is unknown ({error}); using UTC", zone=name, error=e)
        return UTC


class _Builder:
    """The working state of one build; discarded when it returns."""

    def __init__(self, config: Config, data: Mapping[str, ProviderData], state: PackingState,
                 now: float) -> None:
        self.config = config
        self.state = state
        self.now = now
        self.zone = _zone(config.guide.timezone)
        self.window = Window(now=now, days=config.guide.days,
                             hold_after_end=config.stream.hold_after_end)
        self.rank = {p.name: i for i, p in enumerate(config.providers)}
        self.playlists: dict[str, Sequence[ProviderChannel]] = {}
        self.indexes: dict[str, GuideIndex] = {}
        for provider in config.providers:
            pdata = data.get(provider.name)
            if pdata is not None and pdata.playlist is not None:
                self.playlists[provider.name] = pdata.playlist.channels
            if pdata is not None and pdata.guide is not None:
                self.indexes[provider.name] = GuideIndex(pdata.guide)
        self.first_seen: dict[tuple[str, str], float] = {}

    def candidates(self, lineup: LineupConfig) -> list[Candidate]:
        found: list[Candidate] = []
        unreadable: list[str] = []
        for provider in self.config.providers:
            index = self.indexes.get(provider.name)
            for position, channel in enumerate(self.playlists.get(provider.name, ())):
                if not lineup_takes(lineup, channel):
                    continue
                rank = (self.rank[provider.name], position)
                if index is not None:
                    found += guide_events(lineup, channel, rank, index, self.window)
                if lineup.name_pattern:
                    try:
                        event = self._from_name(lineup, channel, rank)
                    except NameTimeError as e:
                        unreadable.append(f"{channel.name!r}: {e}")
                        continue
                    if event is not None:
                        found.append(event)
        if unreadable:
            _log.warn("lineup {lineup}: {count} channel names matched name_pattern but their "
                      "time could not be read, e.g. {example}",
                      lineup=lineup.id, count=len(unreadable), example=unreadable[0])
        for position, event_config in enumerate(self.config.events):
            if event_config.lineup != lineup.id:
                continue
            manual = manual_event(lineup, event_config, position, self.playlists, self.rank)
            if manual is not None and self.window.keeps(lineup, manual.start, manual.stop):
                found.append(manual)
        return found

    def _from_name(self, lineup: LineupConfig, channel: ProviderChannel,
                   rank: tuple[int, int]) -> Candidate | None:
        match = parse_name(lineup, channel.name, self.zone, self.now)
        if match is None or not title_passes(lineup, match.title):
            return None
        seen_key = (channel.provider, channel.name)
        first_seen = self.now
        if match.start is None:
            first_seen = self.first_seen.get(seen_key, self.state.first_seen.get(seen_key, self.now))
            self.first_seen[seen_key] = first_seen
        provider = self.config.provider(channel.provider)
        refresh = provider.refresh_interval if provider is not None else lineup.default_duration
        event = name_event(lineup, channel, rank, match, first_seen, self.now, refresh)
        return event if self.window.keeps(lineup, event.start, event.stop) else None

    def lineup(self, lineup: LineupConfig) -> tuple[list[Channel], list[Event]]:
        groups = merge(self.candidates(lineup))
        keys = assign_keys(lineup.id, groups, self.state.records)
        events = [make_event(key, group, lineup.pre_padding, lineup.post_padding)
                  for key, group in zip(keys, groups, strict=True)]
        ids = lineup.channel_ids()
        lanes, unplaced = pack(ids, events, self.state.assignments(), self.now)
        channels = [
            Channel(id=cid, name=lineup.channel_name(i), number=lineup.channel_number(i),
                    lineup=lineup.id, group=lineup.group_title, logo=lineup.logo,
                    events=tuple(lanes[cid]))
            for i, cid in enumerate(ids, start=1)
        ]
        return channels, unplaced

    def next_state(self, channels: Sequence[Channel], unplaced: Sequence[Event]) -> PackingState:
        records: dict[str, Record] = {}
        lineups = {lineup.id for lineup in self.config.lineups}
        for key, record in self.state.records.items():
            # Events that blinked out of one refresh keep their channel for a while.
            if record.lineup in lineups and record.until + KEEP_GONE > self.now:
                records[key] = record
        for channel in channels:
            for event in channel.events:
                records[event.key] = _record(event, channel.id)
        for event in unplaced:
            records[event.key] = _record(event, "")
        first_seen = dict(self.first_seen)
        for (provider, name), moment in self.state.first_seen.items():
            # A provider without a playlist right now cannot say the channel is gone.
            if provider in self.rank and provider not in self.playlists:
                first_seen.setdefault((provider, name), moment)
        return PackingState(records=records, first_seen=first_seen,
                            logged_unplaced=frozenset(e.key for e in unplaced))


def _record(event: Event, channel: str) -> Record:
    return Record(lineup=event.lineup, title=normalize_title(event.title),
                  start=event.start.timestamp(), until=event.live_until, channel=channel)


def _log_unplaced(lineup: LineupConfig, new: Sequence[Event]) -> None:
    """Each newly unplaced event once; past MAX_UNPLACED_LOGGED a lineup gets one summary line."""
    for event in new[:MAX_UNPLACED_LOGGED]:
        _log.warn("lineup {lineup}: no free channel for {title!r} at {start}; "
                  "listed as unplaced", lineup=lineup.id, title=event.title,
                  start=utc_iso(event.start))
    if len(new) > MAX_UNPLACED_LOGGED:
        _log.warn("lineup {lineup}: {count} more events found no free channel among its "
                  "{channels}; all are listed as unplaced in schedule.json",
                  lineup=lineup.id, count=len(new) - MAX_UNPLACED_LOGGED,
                  channels=lineup.channels)


def build_schedule(config: Config, data: Mapping[str, ProviderData], state: PackingState,
                   now: float) -> tuple[Schedule, PackingState]:
    """
    Build the schedule of every lineup (SPEC §5) at POSIX time ``now``, keeping the channels
    ``state`` remembers. Returns the schedule and the state to keep for the next build.
    """
    builder = _Builder(config, data, state, now)
    channels: list[Channel] = []
    unplaced: list[Event] = []
    for lineup in config.lineups:
        lineup_channels, lineup_unplaced = builder.lineup(lineup)
        channels += lineup_channels
        unplaced += lineup_unplaced
        _log_unplaced(lineup, [e for e in lineup_unplaced if e.key not in state.logged_unplaced])
    schedule = Schedule(generated_at=_dt.datetime.fromtimestamp(now, UTC),
                        channels=tuple(channels), unplaced=tuple(unplaced))
    return schedule, builder.next_state(channels, unplaced)
