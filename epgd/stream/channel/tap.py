"""
One subscription of a channel to a source — a provider's ``Upstream`` or the channel's own
``SlateFeed`` — forwarding its packets and signals; a switch briefly holds two.
"""

from __future__ import annotations

from typing import Protocol

from epgd.stream.channel.slate import SlateFeed
from epgd.stream.upstream import Upstream

#: what a tap reads from: the two offer the same subscribe/start/close/fanout face
Feed = Upstream | SlateFeed


class TapOwner(Protocol):
    """What a tap reports to: its channel."""

    def tap_data(self, tap: Tap, data: bytes) -> None: ...

    def tap_cut(self, tap: Tap) -> None: ...

    def tap_failed(self, tap: Tap, reason: str) -> None: ...


class Tap:
    """Forwards one source's packets and signals to the channel, naming itself."""

    __slots__ = ("owner", "upstream")

    def __init__(self, owner: TapOwner, upstream: Feed) -> None:
        self.owner = owner
        self.upstream = upstream

    def write(self, data: bytes) -> None:
        self.owner.tap_data(self, data)

    @property
    def slate(self) -> bool:
        """This is the channel's slate, not a provider's stream."""
        return isinstance(self.upstream, SlateFeed)

    def upstream_cut(self, upstream: Upstream) -> None:
        self.owner.tap_cut(self)

    def upstream_failed(self, upstream: Upstream, reason: str) -> None:
        self.owner.tap_failed(self, reason)

    def __repr__(self) -> str:
        return f"<Tap {self.upstream.name}>"
