"""
The outputs a viewer account sees (SPEC §15): the same playlist, guide and schedule.json,
made of the channels of its lineups only.

A scoped view is a ``Published`` of the schedule cut down to those lineups, rendered at the
same moment as the whole one (same guide window, same ``Last-Modified``), once per published
schedule and lineup set, on first use: accounts that see everything share the whole outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from epgd.config import Config
from epgd.publish.outputs import Published
from epgd.schedule.model import Channel, Schedule

__all__ = ["LineupViews", "config_channels", "only_lineups"]

#: lineup sets whose rendering is kept per schedule (accounts usually share a few)
MAX_VIEWS = 16


class Rendered(Protocol):
    """What a scoped view is made from: the whole outputs of one schedule."""

    schedule: Schedule
    rendered_at: float


def only_lineups(schedule: Schedule, lineups: Iterable[str]) -> Schedule:
    """``schedule`` with the channels and unplaced events of ``lineups`` alone."""
    keep = frozenset(lineups)
    return Schedule(
        generated_at=schedule.generated_at,
        channels=tuple(c for c in schedule.channels if c.lineup in keep),
        unplaced=tuple(e for e in schedule.unplaced if e.lineup in keep),
    )


def config_channels(config: Config) -> list[Channel]:
    """Every combined channel as the configuration names it, no events: lists before the first schedule."""
    return [
        Channel(id=cid, name=lineup.channel_name(i), number=lineup.channel_number(i),
                lineup=lineup.id, group=lineup.group_title, logo=lineup.logo)
        for lineup in config.lineups
        for i, cid in enumerate(lineup.channel_ids(), start=1)
    ]


class LineupViews:
    """Scoped ``Published`` outputs, kept for the current whole outputs only."""

    def __init__(self, config: Config, mask: Callable[[str], str]) -> None:
        self._config = config
        self._mask = mask
        self._whole: Rendered | None = None
        self._views: dict[frozenset[str], Published] = {}

    def view(self, whole: Rendered, lineups: frozenset[str]) -> Published:
        """The outputs of ``whole`` cut down to ``lineups``."""
        if whole is not self._whole:
            self._whole, self._views = whole, {}
        view = self._views.get(lineups)
        if view is None:
            view = Published(only_lineups(whole.schedule, lineups), self._config, self._mask,
                             rendered_at=whole.rendered_at)
            if len(self._views) >= MAX_VIEWS:
                del self._views[next(iter(self._views))]
            self._views[lineups] = view
        return view
