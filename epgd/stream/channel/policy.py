"""
What a channel should do, as plain functions of what it holds and what the schedule says: the
façade asks these before it tells the switching machine anything, so the machine's states
stay free of decisions about sources and provider slots.
"""

from __future__ import annotations

from epgd.schedule.model import Event, Source
from epgd.stream.registry import UpstreamRegistry
from epgd.stream.upstream import Upstream

#: viewers who have had no media this long get the slate (SPEC §14)
STALL_SECONDS = 3.0


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


def slate_due(now: float, media_at: float | None, tuned_at: float, first_wait: float, refused: bool) -> bool:
    """
    The viewers have waited long enough to be shown the slate (SPEC §14): at once when the
    event's source was ``refused`` (its provider's connections all in use: where §7 said 503);
    ``STALL_SECONDS`` after the last media; before any media came, ``first_wait``
    (``connect_timeout``) after the tune — media servers probe the first seconds to choose
    codecs, so a tune to a live event gets the event's own first picture when one comes.
    """
    if refused:
        return True
    if media_at is None:
        return now - tuned_at >= first_wait - 1e-6
    return now - media_at >= STALL_SECONDS - 1e-6
