"""One subscription of a channel to an Upstream: a switch briefly holds two."""

from __future__ import annotations

from typing import Protocol

from epgd.stream.upstream import Upstream


class TapOwner(Protocol):
    """What a tap reports to: its channel."""

    def tap_data(self, tap: Tap, data: bytes) -> None: ...

    def tap_cut(self, tap: Tap) -> None: ...

    def tap_failed(self, tap: Tap, reason: str) -> None: ...


class Tap:
    """Forwards one Upstream's packets and signals to the channel, naming itself."""

    __slots__ = ("owner", "upstream")

    def __init__(self, owner: TapOwner, upstream: Upstream) -> None:
        self.owner = owner
        self.upstream = upstream

    def write(self, data: bytes) -> None:
        self.owner.tap_data(self, data)

    def upstream_cut(self, upstream: Upstream) -> None:
        self.owner.tap_cut(self)

    def upstream_failed(self, upstream: Upstream, reason: str) -> None:
        self.owner.tap_failed(self, reason)

    def __repr__(self) -> str:
        return f"<Tap {self.upstream.name}>"
