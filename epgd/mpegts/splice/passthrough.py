"""
``stream.output = "passthrough"``: the provider's packets as they are, behind the same seam
as the splicer, so the channel does not know which one it holds.
"""

from __future__ import annotations

from collections.abc import Callable

from epgd.mpegts.entry import ENTRY_WAIT_BYTES, Entry, EntryFinder, EntryMode
from epgd.mpegts.packet import find_pat, rfind_pat
from epgd.mpegts.psi import codecs_of


class PassthroughSplicer:
    """
    ``output = "passthrough"``: the provider's packets unchanged; a cut re-enters at the
    next PAT, and joining clients start at the latest one. It still reads each source's PMT
    once, for /streams/status ``codecs`` and the codec-change log line.
    """

    def __init__(self, on_codecs: Callable[[str, str], None] | None = None) -> None:
        self.on_codecs = on_codecs
        self.entry = -1
        self.first_entry = -1
        self.codecs = ""
        self.notes: list[str] = []
        self.closed = False
        self._finder: EntryFinder | None = EntryFinder(EntryMode.PAT)
        self._probe: EntryFinder | None = EntryFinder()

    def close(self, upcoming: Entry | None = None) -> None:
        """Passthrough cuts at any packet boundary: the old source is closed at once."""
        self.closed = True

    def foresee(self, data: bytes) -> None:
        """Passthrough does not look ahead: its cuts take no account of the sound."""

    def cut(self) -> None:
        """The next bytes come from another source: it goes out from its next PAT."""
        self._finder = EntryFinder(EntryMode.PAT)
        self.closed = False

    def finder(self) -> EntryFinder:
        """What a channel uses to find a new source's next PAT while the old one flows."""
        return EntryFinder(EntryMode.PAT)

    @property
    def entering(self) -> bool:
        return self._finder is not None

    def stuck(self, now: float) -> str | None:
        """Why the current source has no way in after the whole wait, or None."""
        finder = self._finder
        return finder.given_up(now) if finder is not None else None

    def enter(self, entry: Entry, now: float) -> bytes:
        """Start the source whose PAT was found on the side; its codecs are read anew."""
        self._finder = None
        self.closed = False
        self._probe = EntryFinder()
        out = self._pass(entry.data)
        self.first_entry = 0  # a new source starts here, at its PAT
        return out

    def feed(self, data: bytes, now: float) -> bytes:
        """``data`` as it is, once the current source's first PAT has come."""
        self.entry = self.first_entry = -1
        if self.closed:
            return b""
        if self._finder is not None:
            found, relaxed = self._finder.wait(data, now)
            if relaxed:
                self.notes.append(relaxed)
            if found is None:
                return b""
            return self.enter(found, now)
        return self._pass(data)

    def _pass(self, data: bytes) -> bytes:
        """Pass ``data`` on: joiners start at its PATs; the source's first PMT names its codecs."""
        self.entry = rfind_pat(data)
        self.first_entry = find_pat(data) if self.entry > 0 else self.entry
        probe = self._probe
        if probe is not None:
            probe.feed(data)
            if probe.program is not None or probe.seen >= ENTRY_WAIT_BYTES:
                self._probe = None
                if probe.program is not None:
                    old, self.codecs = self.codecs, codecs_of(probe.program.streams)
                    if old and old != self.codecs and self.on_codecs is not None:
                        self.on_codecs(old, self.codecs)
        return data
