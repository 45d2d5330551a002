"""
What the demo provider has on: events rolling forward forever from the moment the demo
started, as a playlist and an XMLTV guide that agree with each other.

Two kinds of provider channels, as real providers have:

* **PPV event channels** (group ``DEMO PPV``): nine slots whose *names* carry the event and
  its time, ``DEMO PPV 03: Bears vs Wolves (PPV 3) @ 07:41 PM``, and no guide. One event
  after another, each ``event_length`` long; event ``j`` sits on slot ``j mod 9``, so a slot
  keeps its event for the event's whole life and its stream id never changes meaning. The
  names change as the scenario rolls forward, so the ``demo_ppv`` lineup shows §5.2 working.
* **Sports arenas** (group ``DEMO SPORTS``): three linear channels with a guide (``tvg-id``),
  each carrying games ``2 * event_length`` long and a "No Event Scheduled" gap, staggered so
  that exactly two games are on at any time and one ends (and another starts) every
  ``event_length``. The ``demo_sports`` lineup (2 channels, §5.1) packs them: each of its
  channels switches every ``2 * event_length``, the two channels half a game apart.

Every stream id always plays the same clip, and consecutive events on any combined channel
come from different clips, so each switch is visible and audible. Titles carry a running
number: same-title events within 15 minutes would be merged into one (§5.3).
"""

from __future__ import annotations

import datetime as _dt
import math

from attrs import frozen
from lxml import etree

from epgd.demo.clip import CLIP_FILES

MATCHUPS: tuple[str, ...] = tuple(title for _, title in CLIP_FILES)
PPV_SLOTS = 9  # a multiple of the clip count: a slot always plays the same clip
ARENAS = 3
PPV_GROUP = "DEMO PPV"
SPORTS_GROUP = "DEMO SPORTS"
PPV_PATTERN = (
    r"^DEMO PPV \d+: (?P<title>.+?) @ (?P<time>\d{1,2}:\d{2}(?::\d{2})? ?[AP]M)"
)
PPV_TIME_FORMATS = ("%I:%M %p", "%I:%M:%S %p")
NO_EVENT = "No Event Scheduled"
SPORTS_STREAM_BASE = 1001  # arena a streams as 1001 + a
PPV_STREAM_BASE = 2001  # ppv slot s streams as 2001 + s


@frozen
class DemoEvent:
    """One event (or gap) on one provider channel; times are POSIX seconds."""

    title: str
    start: float
    stop: float
    channel: str  # the provider channel's name
    tvg_id: str  # "" for PPV slots (no guide)
    stream_id: int
    clip: int  # index into CLIP_FILES
    desc: str = ""
    categories: tuple[str, ...] = ()


def stream_clip(stream_id: int) -> int | None:
    """The clip a provider stream id plays, or ``None`` for an id the demo does not have."""
    if SPORTS_STREAM_BASE <= stream_id < SPORTS_STREAM_BASE + ARENAS:
        return (stream_id - SPORTS_STREAM_BASE) % len(MATCHUPS)
    if PPV_STREAM_BASE <= stream_id < PPV_STREAM_BASE + PPV_SLOTS:
        return (stream_id - PPV_STREAM_BASE) % len(MATCHUPS)
    return None


def arena_name(arena: int) -> str:
    return f"Demo Arena {arena + 1}"


def arena_id(arena: int) -> str:
    return f"arena{arena + 1}.demo"


#: the first switch comes this long after start, rounded up to a multiple of FIRST_SWITCH_STEP
FIRST_SWITCH_AFTER = 20.0
FIRST_SWITCH_STEP = 10.0


def start_epoch(now: float, event_length: float) -> float:
    """
    Where a scenario started at ``now`` puts its clock: the first switch 20–30 s away (on a
    multiple of 10 s), soon enough that a newcomer who opens VLC right away sees one, late
    enough for the first fetch and for the player to start. Short events (tests, under a
    minute) start at the current second instead: their first switch is one event away.
    """
    if event_length >= 60:
        first_switch = math.ceil((now + FIRST_SWITCH_AFTER) / FIRST_SWITCH_STEP) * FIRST_SWITCH_STEP
        return first_switch - event_length
    return float(math.floor(now))


@frozen
class Scenario:
    """
    The demo's programme as a pure function of time. ``epoch`` is when the first PPV event
    started (the sports game begun half a game before it is also on); ``horizon`` is how far
    ahead the guide reaches.
    """

    epoch: float
    event_length: float = 180.0
    horizon: float = 7200.0

    @property
    def with_seconds(self) -> bool:
        """Names need seconds when events do not start on whole minutes."""
        return self.event_length % 60 != 0 or self.epoch % 60 != 0

    def _slot_index(self, now: float) -> int:
        return math.floor((now - self.epoch) / self.event_length)

    def ppv_events(self, now: float) -> list[DemoEvent]:
        """The PPV events the playlist shows at ``now``: the one on, then the next eight."""
        first = max(0, self._slot_index(now))
        events = []
        for j in range(first, first + PPV_SLOTS):
            start = self.epoch + j * self.event_length
            clip = j % len(MATCHUPS)
            slot = j % PPV_SLOTS
            title = f"{MATCHUPS[clip]} (PPV {j + 1})"
            events.append(DemoEvent(
                title=title, start=start, stop=start + self.event_length,
                channel=f"DEMO PPV {slot + 1:02d}: {title} @ {self._clock(start)}",
                tvg_id="", stream_id=PPV_STREAM_BASE + slot, clip=clip,
            ))
        return events

    def _clock(self, t: float) -> str:
        moment = _dt.datetime.fromtimestamp(t, _dt.UTC)
        return moment.strftime("%I:%M:%S %p" if self.with_seconds else "%I:%M %p")

    def sports_events(self, now: float, include_gaps: bool = False) -> list[DemoEvent]:
        """
        Games (and, with ``include_gaps``, the gaps between them) that have not ended a slot
        before ``now``, up to ``horizon`` ahead, sorted by start. Game ``k`` starts at slot
        ``k`` on arena ``(k - 1) mod 3`` and lasts two slots; each arena is idle in the slot
        before its next game. Nothing before game -1 (under way when the demo starts) exists,
        so a fresh schedule packs game -1 onto the first channel, whose switch comes first.
        """
        length = self.event_length
        current = self._slot_index(now)
        last = self._slot_index(now + self.horizon)
        events = []
        for k in range(max(-3, current - 3), last + 1):
            arena = (k - 1) % ARENAS
            start = self.epoch + k * length
            clip = arena % len(MATCHUPS)
            home, _, away = MATCHUPS[clip].partition(" vs ")
            if k >= -1:
                events.append(DemoEvent(
                    title=f"{MATCHUPS[clip]} (game {k + 2})", start=start,
                    stop=start + 2 * length, channel=arena_name(arena), tvg_id=arena_id(arena),
                    stream_id=SPORTS_STREAM_BASE + arena, clip=clip,
                    desc=f"Live from {arena_name(arena)}: the {home} host the {away} "
                         f"in a {_minutes(2 * length)} epgd demo game.",
                    categories=("Sports", "Ice Hockey"),
                ))
            if include_gaps:
                # game k + 3 is the arena's next: the slot between (k + 2) is a gap
                gap_start = start + 2 * length
                events.append(DemoEvent(
                    title=NO_EVENT, start=gap_start, stop=gap_start + length,
                    channel=arena_name(arena), tvg_id=arena_id(arena),
                    stream_id=SPORTS_STREAM_BASE + arena, clip=clip,
                    desc="Nothing on this arena right now.",
                ))
        cutoff, end = now - length, now + self.horizon
        kept = (e for e in events if e.stop > cutoff and e.start < end)
        return sorted(kept, key=lambda e: (e.start, e.channel))

    def playlist(self, stream_base: str, now: float) -> str:
        """
        The provider's ``m3u_plus`` playlist at ``now``; ``stream_base`` is the Xtream stream
        prefix (``http://HOST/live/USER/PASS``).
        """
        lines = ["#EXTM3U"]
        for arena in range(ARENAS):
            lines.append(
                f'#EXTINF:-1 tvg-id="{arena_id(arena)}" tvg-name="{arena_name(arena)}" '
                f'group-title="{SPORTS_GROUP}",{arena_name(arena)}'
            )
            lines.append(f"{stream_base}/{SPORTS_STREAM_BASE + arena}.ts")
        for event in sorted(self.ppv_events(now), key=lambda e: e.stream_id):
            lines.append(
                f'#EXTINF:-1 tvg-id="" tvg-name="{event.channel}" '
                f'group-title="{PPV_GROUP}",{event.channel}'
            )
            lines.append(f"{stream_base}/{event.stream_id}.ts")
        return "\n".join(lines) + "\n"

    def guide(self, now: float) -> bytes:
        """The provider's XMLTV guide at ``now``: the arenas' games and gaps (PPV has none)."""
        tv = etree.Element("tv", {"generator-info-name": "epgd demo provider"})
        for arena in range(ARENAS):
            channel = etree.SubElement(tv, "channel", id=arena_id(arena))
            etree.SubElement(channel, "display-name").text = arena_name(arena)
        for event in self.sports_events(now, include_gaps=True):
            programme = etree.SubElement(tv, "programme", {
                "start": _xmltv_time(event.start),
                "stop": _xmltv_time(event.stop),
                "channel": event.tvg_id,
            })
            etree.SubElement(programme, "title", lang="en").text = event.title
            if event.desc:
                etree.SubElement(programme, "desc", lang="en").text = event.desc
            for category in event.categories:
                etree.SubElement(programme, "category", lang="en").text = category
        return etree.tostring(tv, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _xmltv_time(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y%m%d%H%M%S +0000")


def _minutes(seconds: float) -> str:
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}-minute"
    return f"{seconds:g}-second"
