"""
Where a lineup's events come from (SPEC §5.1, §5.2 and ``[[event]]``): provider guide
programmes, provider channel names, manual tables. Each yields ``Candidate`` values — one
title, one time, one source — that ``packing`` merges, keys and packs.

Nothing here knows about lanes or the previous build, except the first-seen moments of
name events without a time, which the caller hands in and gets back.
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from collections.abc import Iterable, Mapping, Sequence

from attrs import frozen
from twisted.logger import Logger

from epgd.config import EventConfig, LineupConfig
from epgd.schedule.model import Source
from epgd.sources.models import Guide, Programme, ProviderChannel

UTC = _dt.UTC
_log = Logger(namespace="epgd.schedule.events")

# Date groups of names: SPEC §5.2 lists the first three; the others turn up in real names
# ("(01/17/2025)", "(11.16 10:00PM ET)", "@ Dec 12 06:00 PM ET").
DATE_FORMATS = ("%m/%d", "%Y-%m-%d", "%b %d", "%m/%d/%Y", "%m.%d", "%B %d", "%d %b", "%m/%d/%y")
_EDGE_JUNK = " \t-–—:|,"


class NameTimeError(ValueError):
    """A channel name matched ``name_pattern`` but its time or date group could not be read."""


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str] | None:
    """Compile once per pattern; a broken pattern matches nothing and is reported once."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        _log.error("invalid pattern {pattern!r}: {error}; it matches nothing",
                   pattern=pattern, error=str(e))
        return None


def _search(pattern: str, text: str) -> bool:
    if not pattern:
        return True
    compiled = _compile(pattern)
    return compiled is not None and compiled.search(text) is not None


def normalize_title(title: str) -> str:
    """The title as merging compares it: case- and whitespace-insensitive."""
    return " ".join(title.split()).casefold()


def lineup_takes(lineup: LineupConfig, channel: ProviderChannel) -> bool:
    """Whether ``lineup`` draws on this provider channel (its providers, match_group, match_name)."""
    if lineup.providers and channel.provider not in lineup.providers:
        return False
    return _search(lineup.match_group, channel.group) and _search(lineup.match_name, channel.name)


def title_passes(lineup: LineupConfig, title: str) -> bool:
    """``match_title`` must match and ``exclude_title`` (when set) must not."""
    return _title_passes(lineup.match_title, lineup.exclude_title, title)


@functools.lru_cache(maxsize=65536)
def _title_passes(match_title: str, exclude_title: str, title: str) -> bool:
    # Cached: a week of guide repeats the same titles across days and mirror channels.
    if not _search(match_title, title):
        return False
    return not (exclude_title and _search(exclude_title, title))


@frozen
class Candidate:
    """One would-be event before merging. ``rank`` orders sources: (provider, playlist position)."""

    lineup: str
    title: str
    start: _dt.datetime  # aware, UTC
    stop: _dt.datetime  # aware, UTC, after start
    source: Source
    rank: tuple[int, int]
    sub_title: str = ""
    desc: str = ""
    categories: tuple[str, ...] = ()
    icon: str = ""
    episode_nums: tuple[tuple[str, str], ...] = ()


@frozen
class Window:
    """Which events a build keeps: not over (with padding and hold) and not beyond guide.days."""

    now: float
    days: float
    hold_after_end: float

    def keeps(self, lineup: LineupConfig, start: _dt.datetime, stop: _dt.datetime) -> bool:
        if stop.timestamp() + lineup.post_padding + self.hold_after_end <= self.now:
            return False
        return start.timestamp() <= self.now + self.days * 86400

    def bounds(self, lineup: LineupConfig) -> tuple[_dt.datetime, _dt.datetime]:
        """(stop must be after, start must not be after): ``keeps`` as two datetimes, for speed."""
        earliest_stop = self.now - lineup.post_padding - self.hold_after_end
        latest_start = self.now + self.days * 86400
        return (_dt.datetime.fromtimestamp(earliest_stop, UTC),
                _dt.datetime.fromtimestamp(latest_start, UTC))


def _stop_or_default(lineup: LineupConfig, start: _dt.datetime,
                     stop: _dt.datetime | None) -> _dt.datetime:
    """A missing or non-positive stop means ``default_duration`` (placeholders have stop == start)."""
    if stop is None or stop <= start:
        return start + _dt.timedelta(seconds=lineup.default_duration)
    return stop


def _utc(moment: _dt.datetime) -> _dt.datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _norm_name(name: str) -> str:
    return " ".join(name.split()).casefold()


class GuideIndex:
    """One provider's guide, indexed so each provider channel finds its programmes at once."""

    def __init__(self, guide: Guide) -> None:
        self._by_channel: dict[str, list[Programme]] = {}
        for programme in guide.programmes:
            self._by_channel.setdefault(programme.channel, []).append(programme)
        self._ids = set(self._by_channel) | {c.id for c in guide.channels}
        # Players match tvg-id to the guide's id regardless of case; providers' casing drifts.
        self._folded: dict[str, str] = {}
        for guide_id in sorted(self._ids):
            self._folded.setdefault(guide_id.casefold(), guide_id)
        self._by_name: dict[str, str] = {}
        for channel in guide.channels:
            for name in channel.display_names:
                self._by_name.setdefault(_norm_name(name), channel.id)

    def link(self, channel: ProviderChannel) -> str | None:
        """The XMLTV channel id: tvg-id when the guide has it (any case), else a display-name equal to the name."""
        tvg_id = channel.tvg_id.strip()
        if tvg_id:
            if tvg_id in self._ids:
                return tvg_id
            if tvg_id.casefold() in self._folded:
                return self._folded[tvg_id.casefold()]
        for name in (channel.name, channel.tvg_name):
            if name and _norm_name(name) in self._by_name:
                return self._by_name[_norm_name(name)]
        return None

    def programmes_for(self, channel: ProviderChannel) -> Sequence[Programme]:
        guide_id = self.link(channel)
        return self._by_channel.get(guide_id, ()) if guide_id is not None else ()


def guide_events(lineup: LineupConfig, channel: ProviderChannel, rank: tuple[int, int],
                 index: GuideIndex, window: Window) -> list[Candidate]:
    """§5.1: every programme of the linked guide channel whose title passes the lineup's filters."""
    source = Source(provider=channel.provider, channel=channel.name, url=channel.url)
    earliest_stop, latest_start = window.bounds(lineup)
    found = []
    # This loop sees every programme of every linked channel: cheap datetime comparisons
    # first, everything else only for what survives the window.
    for programme in index.programmes_for(channel):
        start = programme.start if programme.start.tzinfo else _utc(programme.start)
        if start > latest_start:
            continue
        stop = programme.stop
        if stop is not None and stop.tzinfo is None:
            stop = _utc(stop)
        stop = _stop_or_default(lineup, start, stop)
        if stop <= earliest_stop:
            continue
        start, stop = _utc(start), _utc(stop)
        title = " ".join(programme.title.split())
        if not title or not title_passes(lineup, title):
            continue
        found.append(Candidate(
            lineup=lineup.id, title=title, start=start, stop=stop, source=source, rank=rank,
            sub_title=programme.sub_title, desc=programme.desc, categories=programme.categories,
            icon=programme.icon, episode_nums=programme.episode_nums))
    return found


@frozen
class NameMatch:
    """What a channel name says: a title and, when it carries a time, the start."""

    title: str
    start: _dt.datetime | None  # aware, UTC; None: no time, live from first seen


def _parse_time(text: str, formats: Iterable[str]) -> _dt.time:
    for fmt in formats:
        try:
            return _dt.datetime.strptime(text, fmt).time()
        except ValueError:
            continue
    raise NameTimeError(f"time {text!r} matches none of name_time_formats")


def _parse_date(text: str) -> tuple[int | None, int, int]:
    """(year or None, month, day). Year-less formats are read in a leap year so 02/29 parses."""
    for fmt in DATE_FORMATS:
        has_year = "%Y" in fmt or "%y" in fmt
        try:
            if has_year:
                parsed = _dt.datetime.strptime(text, fmt)
                return parsed.year, parsed.month, parsed.day
            parsed = _dt.datetime.strptime(f"{text} 2000", f"{fmt} %Y")
            return None, parsed.month, parsed.day
        except ValueError:
            continue
    raise NameTimeError(f"date {text!r} is none of {', '.join(DATE_FORMATS)}")


def _nearest(candidates: Iterable[_dt.datetime], now: float) -> _dt.datetime | None:
    """The candidate closest to ``now``; on a tie the later one."""
    best = None
    for moment in candidates:
        if best is None or (abs(moment.timestamp() - now), -moment.timestamp()) < (
                abs(best.timestamp() - now), -best.timestamp()):
            best = moment
    return best


def _local_start(zone: _dt.tzinfo, now: float, clock: _dt.time,
                 date: tuple[int | None, int, int] | None) -> _dt.datetime:
    today = _dt.datetime.fromtimestamp(now, zone).date()
    if date is None:
        days: Iterable[_dt.date] = (today + _dt.timedelta(days=d) for d in (-1, 0, 1))
    else:
        year, month, day = date
        years = (year,) if year is not None else (today.year - 1, today.year, today.year + 1)
        valid = []
        for y in years:
            try:
                valid.append(_dt.date(y, month, day))
            except ValueError:
                continue
        days = valid
    best = _nearest((_dt.datetime.combine(d, clock, tzinfo=zone) for d in days), now)
    if best is None:
        raise NameTimeError(f"date {date[1]:02d}/{date[2]:02d} does not exist" if date else "no date")
    return best.astimezone(UTC)


def parse_name(lineup: LineupConfig, name: str, zone: _dt.tzinfo, now: float) -> NameMatch | None:
    """
    §5.2: read a provider channel name with ``name_pattern``. None when the name does not
    match or its title is empty (empty slots like ``NHL 07:``); ``NameTimeError`` when the
    time or date group holds something unreadable. A time without date is the occurrence
    nearest to ``now``; a date without year the nearest such day.
    """
    if not lineup.name_pattern:
        return None
    pattern = _compile(lineup.name_pattern)
    match = pattern.search(name) if pattern is not None else None
    if match is None:
        return None
    groups = match.groupdict()
    title = " ".join((groups.get("title") or "").split()).strip(_EDGE_JUNK)
    if not title:
        return None
    time_text = " ".join((groups.get("time") or "").split())
    if not time_text:
        return NameMatch(title=title, start=None)
    clock = _parse_time(time_text, lineup.name_time_formats)
    date_text = " ".join((groups.get("date") or "").split())
    date = _parse_date(date_text) if date_text else None
    return NameMatch(title=title, start=_local_start(zone, now, clock, date))


REFRESH_MARGIN = 900.0  # seconds a fetch and rebuild may lag behind refresh_interval


def live_stop(lineup: LineupConfig, first_seen: float, now: float,
              refresh_interval: float) -> float:
    """
    Stop of a name event without a time: first seen + default_duration, but never before
    the next refresh (plus a margin) can say whether the playlist still shows it — such an
    event is live "until a refresh no longer shows it" (SPEC §5.2).
    """
    return max(first_seen + lineup.default_duration, now + refresh_interval + REFRESH_MARGIN)


def name_event(lineup: LineupConfig, channel: ProviderChannel, rank: tuple[int, int],
               match: NameMatch, first_seen: float, now: float,
               refresh_interval: float) -> Candidate:
    """
    The event a parsed name describes; ``first_seen`` and ``refresh_interval`` (of the
    channel's provider) matter only when the name has no time.
    """
    if match.start is not None:
        start = match.start
        stop = start + _dt.timedelta(seconds=lineup.default_duration)
    else:
        start = _dt.datetime.fromtimestamp(first_seen, UTC)
        stop = _dt.datetime.fromtimestamp(
            live_stop(lineup, first_seen, now, refresh_interval), UTC)
    return Candidate(lineup=lineup.id, title=match.title, start=start, stop=stop,
                     source=Source(provider=channel.provider, channel=channel.name, url=channel.url),
                     rank=rank)


def manual_event(lineup: LineupConfig, event: EventConfig, position: int,
                 channels: Mapping[str, Sequence[ProviderChannel]],
                 provider_rank: Mapping[str, int]) -> Candidate | None:
    """
    A ``[[event]]`` table: its url (provider ""), or the url of the named provider channel.
    Manual url sources rank before every provider's: the user chose them by hand.
    None, logged, when the provider channel is not in that provider's playlist.
    """
    start = _utc(event.start)
    stop = _stop_or_default(lineup, start, _utc(event.stop) if event.stop else None)
    if event.url:
        source = Source(provider="", channel="", url=event.url)
        rank = (-1, position)
    else:
        wanted = _norm_name(event.channel)
        playlist = channels.get(event.provider, ())
        found = [(i, c) for i, c in enumerate(playlist) if _norm_name(c.name) == wanted]
        if not found:
            _log.warn("event {title!r}: provider {provider!r} has no channel {channel!r}; skipped",
                      title=event.title, provider=event.provider, channel=event.channel)
            return None
        i, chosen = found[0]
        source = Source(provider=chosen.provider, channel=chosen.name, url=chosen.url)
        rank = (provider_rank.get(event.provider, len(provider_rank)), i)
    return Candidate(lineup=lineup.id, title=" ".join(event.title.split()), start=start,
                     stop=stop, source=source, rank=rank)
