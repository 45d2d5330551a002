"""
Where a new source may be entered without running the channel ahead of real time (issue 17).

IPTV providers send every new connection a few seconds of media at once, then real time. A
switch that enters such a source at a key frame of that burst sends the rest of the burst at
once: the channel's stream (and every viewer's delay) runs that much further ahead of the
wall clock at every switch. ``LiveEdge`` reads the new source beside its ``EntryFinder``,
keeps the latest key frame it sent and the source's pace (its PCR against the times its bytes
came), and hands that key frame over once the source has been read ``WATCH`` with no burst
under way: at once when it sent no more media than wall time since its first byte (give or
take ``AHEAD``), else (it burst) once at most ``AHEAD`` of media follows the key frame.
A caller that is not ``patient`` gets the first key frame at once.

Pure: the arrival times are given (``now``), as ``EntryFinder.wait`` takes them.
"""

from __future__ import annotations

import attrs

from epgd.mpegts.entry import Entry, EntryFinder, sound_lead
from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import pcr_offset, read_pcr_base, ring_diff

#: entering a key frame sends everything the source sent after it at once: at most this (s)
AHEAD = 0.3
#: a source is read this long (s) before its pace is trusted: a burst shows within it ...
WATCH = 0.15
#: ... and over that long it sent at most this much (s) more media than wall time passed (a
#: source paced by its byte rate runs its PCR a little ahead or behind with the picture's VBR)
CALM = 0.25
#: a PCR step further than this (s) is the source's clock jumping, not media sent
_JUMP = 10.0


class LiveEdge:
    """A new source's latest key frame, handed over once it is not ahead of real time."""

    def __init__(self, finder: EntryFinder) -> None:
        self.finder = finder
        self.entry: Entry | None = None  # the latest key frame (with the rest of its chunk)
        self.skipped = 0  # key frames passed over for a later one
        self._after: list[bytes] = []  # the chunks that came after it
        self._at = 0.0  # the source's media time (s) at it
        self._began: float | None = None  # when the source's first bytes came
        self._media = 0.0  # the source's media time: seconds of its clock since its first PCR
        self._pcr: int | None = None
        self._points: list[tuple[float, float]] = []  # (arrival, media time) after each chunk

    @property
    def ahead(self) -> float:
        """Seconds of media that entering the latest key frame would send at once."""
        return self._media - self._at if self.entry is not None else 0.0

    def feed(self, data: bytes, now: float, patient: bool = True) -> Entry | None:
        """
        Read ``data`` (aligned packets that came at ``now``): the entry, with everything from
        its packet on, once it is due; ``patient=False``: as soon as there is one.
        """
        if not patient and self.entry is not None:
            self._after.append(data)
            return self.take()
        calm = self._calm(now)
        rest, tail = data, False  # tail: ``rest`` is inside the latest entry's data already
        while rest:
            found = self.finder.feed(rest)
            if found is not None and not patient:
                self.entry = found
                return found
            if found is None:
                self._clock(rest)
                if self.entry is not None and not tail:
                    self._after.append(rest)
                break
            at = len(rest) - len(found.data)
            self._clock(rest[:at])
            if self.entry is not None:
                self.skipped += 1
                if not tail and at:
                    self._after.append(rest[:at])
            self.entry, self._after, self._at, tail = found, [], self._media, True
            self._clock(rest[at:at + PACKET_SIZE])
            rest = rest[at + PACKET_SIZE:]
        self._points.append((now, self._media))
        if self.entry is None:
            return None
        if self._began is None:
            self._began = now
        # a source that burst (more media than wall time since its first byte) is entered
        # where little follows; one that did not, as soon as its pace is known
        burst = self._media - (now - self._began) > AHEAD
        if not patient or (calm and (not burst or self.ahead <= AHEAD)):
            return self.take()
        return None

    def take(self) -> Entry:
        """The latest key frame, with all that came after it (the wait is over)."""
        entry = self.entry
        assert entry is not None, "no key frame yet"
        if not self._after:
            return entry
        data = entry.data + b"".join(self._after)
        lead = entry.sound_lead
        if lead is None and entry.program is not None:
            lead = sound_lead(data, 0, entry.program)
        return attrs.evolve(entry, data=data, sound_lead=lead)

    def _calm(self, now: float) -> bool:
        """
        Whether the source had been read ``WATCH`` by the chunk that comes at ``now``, and
        sent no more than ``CALM`` beyond real time over the ``WATCH`` before it (a burst
        comes at once, at the connection's start: what comes after a quiet spell is none).
        """
        points = self._points
        base = -1
        for i, (t, _) in enumerate(points):
            if now - t < WATCH - 1e-6:  # (a clock's float sum is no exact WATCH)
                break
            base = i
        if base < 0:
            return False
        del points[:base]
        (t0, m0), (t1, m1) = points[0], points[-1]
        return (m1 - m0) - (t1 - t0) <= CALM

    def _clock(self, data: bytes) -> None:
        """Move the source's media time on by the PCRs in ``data``."""
        program = self.finder.program
        if program is None:
            return
        pid = program.pcr_pid if program.pcr_pid != 0x1FFF else (
            program.anchor.pid if program.anchor is not None else -1)
        hi, lo = pid >> 8, pid & 0xFF
        for p in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
            if data[p + 2] != lo or data[p + 1] & 0x1F != hi or pcr_offset(data, p) < 0:
                continue
            pcr = read_pcr_base(data, p + 6)
            if self._pcr is not None:
                step = ring_diff(pcr, self._pcr) / 90_000
                if 0 <= step <= _JUMP:
                    self._media += step
            self._pcr = pcr
