"""
What the switching machine's waiting states own (machine.py): a timer and the Deferred a
state watches, cancelled when the state is left, and what each wait has gathered so far.
"""

from __future__ import annotations

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall

from epgd.mpegts.entry import Entry, EntryFinder
from epgd.mpegts.liveedge import LiveEdge
from epgd.net.timers import cancel
from epgd.schedule.model import Source
from epgd.stream.channel.core import SwitchCore


@define
class Wait:
    """A waiting state's timer (and the Deferred it watches), cancelled when it is left."""

    timer: IDelayedCall | None = None
    watching: Deferred[None] | None = None

    def leave(self, core: SwitchCore) -> None:
        cancel(self.timer)
        self.timer = None
        watching, self.watching = self.watching, None
        if watching is not None and not watching.called:
            watching.cancel()


@define(kw_only=True)
class Seek(Wait):
    """The search for a new source's way in: its first key frame, or a later one in real time."""

    finder: EntryFinder
    edge: LiveEdge
    waits: int = 0


@define(kw_only=True)
class Ready(Wait):
    entry: Entry
    more: list[bytes] = field(factory=list)  # what the new source sent since


@define(kw_only=True)
class SlotWait(Wait):
    source: Source

    def leave(self, core: SwitchCore) -> None:
        super().leave(core)
        core.awaiting = None
