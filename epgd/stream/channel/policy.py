"""
What a channel should do, as plain functions of what it holds and what the schedule says: the
façade asks these before it tells the switching machine anything, so the machine's states
stay free of decisions about sources and provider slots.
"""

from __future__ import annotations

from epgd.schedule.model import Event, Source
from epgd.stream.registry import UpstreamRegistry
from epgd.stream.upstream import Upstream


def breaks_before_make(registry: UpstreamRegistry, current: Upstream | None, source: Source) -> bool:
    """
    The new source can only open once the old one is closed: its provider has no free
    connection, and the old connection is one of that provider's, held by this channel
    alone (single-connection plans are common).
    """
    return (
        current is not None
        and registry.get(source.url) is None
        and not registry.has_room(source.provider)
        and current.provider == source.provider
        and registry.refs(current) == 1
    )


def keeps_playing(event: Event, previous: Event | None, playing_url: str | None, alive: bool) -> bool:
    """
    The schedule still wants what plays (or is about to): the same event, with the source in
    hand among its sources and still alive. A schedule check then changes nothing.
    """
    same = previous is not None and event.key == previous.key
    return same and alive and playing_url in {s.url for s in event.sources}


def next_source(event: Event, index: int) -> int | None:
    """The index of the source to fail over to after ``index``; None when none is left."""
    following = index + 1
    return following if following < len(event.sources) else None
