"""
The seam between a channel and its output program: what a channel does with a splicer,
whichever ``stream.output`` it runs — ``ContinuousSplicer`` (one unbroken program, SPEC §7.1)
or ``PassthroughSplicer`` (the provider's packets unchanged). A channel holds a ``Splicer``
and never asks which one it has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from epgd.mpegts.entry import Entry, EntryFinder

#: told (old, new) when the output's codecs change (``h264+aac``, ``mpeg2+mp2``), for the log
#: line and /streams/status
OnCodecs = Callable[[str, str], None]


class Splicer(Protocol):
    """
    One channel's output across cuts. The channel ``feed``s the current source's aligned
    packets and sends on what comes back; on a switch it either ``cut``s (the splicer finds
    the new source's entry itself) or looks for the entry on the side with a ``finder()``
    while the old source flows, ``close``s the old one and, once ``closed``, ``enter``s the
    new one there.
    """

    #: told when the output's codecs change; settable, so a channel can hand it over later
    on_codecs: OnCodecs | None

    @property
    def entry(self) -> int:
        """Where, in the last output, a joining client may start; -1: nowhere."""

    @property
    def first_entry(self) -> int:
        """The first such place in the last output, for viewers waiting for one; -1: none."""

    @property
    def closed(self) -> bool:
        """After ``close()``: the old source has ended at a clean point; its bytes are dropped."""

    @property
    def entering(self) -> bool:
        """Looking for the current source's way in: nothing of it goes out yet."""

    @property
    def codecs(self) -> str:
        """The output's streams (``h264+aac``), for /streams/status; ``""`` before any."""

    @property
    def notes(self) -> list[str]:
        """Things worth one log line each; the channel logs and clears them."""

    def stuck(self, now: float) -> str | None:
        """
        Why the current source still has no way in after the whole wait (data has come for
        ``ENTRY_GIVE_UP`` x ``ENTRY_WAIT_SECONDS``: no PAT/PMT, or scrambled), for the channel to
        fail it with; None while it is in, or may still come in.
        """

    def feed(self, data: bytes, now: float) -> bytes:
        """The output for ``data``, whole packets of the current source (may be empty)."""

    def cut(self) -> None:
        """The next bytes come from another source (or the same one anew)."""

    def finder(self) -> EntryFinder:
        """A finder for the entry a new source may be ``enter``ed at, fed on the side."""

    def close(self, upcoming: Entry | None = None) -> None:
        """
        A switch is ready: end the current source at its next clean point (its sound where
        the ``upcoming`` source's begins, when that is known).
        """

    def foresee(self, data: bytes) -> None:
        """More of the upcoming source (whose entry ``close`` was told), while the current one closes."""

    def enter(self, entry: Entry, now: float) -> bytes:
        """Start the source whose ``entry`` a ``finder()`` found; its first output."""


if TYPE_CHECKING:  # both splicers fill the seam: mypy holds them to it, nothing runs here
    from epgd.mpegts.splice.continuous import ContinuousSplicer
    from epgd.mpegts.splice.passthrough import PassthroughSplicer

    _continuous: type[Splicer] = ContinuousSplicer
    _passthrough: type[Splicer] = PassthroughSplicer
