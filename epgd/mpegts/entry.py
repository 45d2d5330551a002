"""
Where a source may be cut in: the first packet from which a decoder starts clean.

For ``continuous`` output that is a video PES that starts a random-access point (after a PAT
and the PMT it points to, so the layout is known); a source without video enters at its first
audio PES. ``passthrough`` output enters at a PAT, as players that follow PMTs need. An
``EntryFinder`` reads a source's packets until it meets that point and hands over the program
it learned on the way, so the splicer can start at once.
"""

from __future__ import annotations

from enum import StrEnum

from attrs import frozen

from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import pcr_offset, random_access_flag, read_pcr_base, stamp_fields, starts_random_access
from epgd.mpegts.psi import PAT_PID, ProgramMap, SectionAssembler, parse_pat, parse_pmt, payload_start

#: make-before-break waits at most this long / this much for a random-access point ...
ENTRY_WAIT_SECONDS = 5.0
ENTRY_WAIT_BYTES = 4 << 20
#: ... and a source that shows no way in at all (no PAT/PMT, its video scrambled) after this
#: many times the wait has failed
ENTRY_GIVE_UP = 3


class EntryMode(StrEnum):
    """
    What an ``EntryFinder`` waits for. A ``StrEnum``, so a mode still compares equal to its
    word (``finder.mode == "rap"``) wherever one is logged or tested.
    """

    RAP = "rap"  # PAT + PMT + a video random-access point: a decoder starts clean there
    ANY = "any"  # PAT + PMT + the anchor's next PES: the fallback once the wait for random access is over
    PAT = "pat"  # the next PAT: passthrough output, as players that follow PMTs need
    NOW = "now"  # the next packet: the fallback for a source that sends no PAT


#: what ``relax`` falls back to once a wait is over
_RELAXED = {EntryMode.RAP: EntryMode.ANY, EntryMode.PAT: EntryMode.NOW}


@frozen
class Entry:
    """A source's entry point: ``data`` starts with the entry packet."""

    data: bytes
    program: ProgramMap | None
    tsid: int
    pcr: int | None  # the source's latest PCR base before the entry, if one was seen
    pmt_pid: int = -1


class EntryFinder:
    """
    Reads one source's aligned packets until its entry point, the one ``mode`` waits for.
    """

    def __init__(self, mode: EntryMode = EntryMode.RAP, program: ProgramMap | None = None,
                 pmt_pid: int = -1, tsid: int = 1) -> None:
        """``program`` and ``pmt_pid``: the source's layout, when it is known already."""
        self.mode = EntryMode(mode)  # a mode's word ("pat") is taken too, and a wrong one refused here
        self.program = program
        self.tsid = tsid
        self.pcr: int | None = None
        self.seen = 0  # bytes read so far without an entry
        self.since: float | None = None  # when the first of them came (set by ``wait``)
        self.scrambled = 0  # packets of the stream to enter at that came scrambled
        self._pat = SectionAssembler()
        self._pmt = SectionAssembler()
        self._pmt_pid = pmt_pid if program is not None else -1
        self._program_number = program.program if program is not None else 0

    def relax(self) -> None:
        """Stop waiting for random access (or a PAT): take the next frame (or packet)."""
        self.mode = _RELAXED.get(self.mode, self.mode)

    def feed(self, data: bytes) -> Entry | None:
        """The entry, with ``data`` from its packet on, once ``data`` reaches it."""
        mode = self.mode
        if mode is EntryMode.NOW and data:
            return self._found(data, 0)
        anchor = self.program.anchor if self.program is not None else None
        for p in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
            b1 = data[p + 1]
            pid = ((b1 & 0x1F) << 8) | data[p + 2]
            if pid == PAT_PID:
                if mode is EntryMode.PAT and b1 & 0x40 and not b1 & 0x80:
                    return self._found(data, p)
                for section in self._pat.feed(data, p):
                    self._read_pat(section)
                continue
            if pid == self._pmt_pid:
                for section in self._pmt.feed(data, p):
                    self._read_pmt(section)
                anchor = self.program.anchor if self.program is not None else None
                continue
            if self.program is None:
                continue
            if pid == self.program.pcr_pid and pcr_offset(data, p) > 0:
                self.pcr = read_pcr_base(data, p + 6)
            if anchor is None or pid != anchor.pid or (b1 & 0xC0) != 0x40:
                continue  # not the anchor, not a PES start, or damaged
            if data[p + 3] & 0xC0:
                self.scrambled += 1  # encrypted: nothing in it can be read
                continue
            if mode is EntryMode.ANY or anchor.kind != "video" or self._random_access(data, p, anchor.codec):
                return self._found(data, p)
        self.seen += len(data)
        return None

    def wait(self, data: bytes, now: float) -> tuple[Entry | None, str | None]:
        """
        ``feed`` with the SPEC §7.1 bounds, for a splicer finding a source's way in itself
        (the first entry, every re-entry): past ``ENTRY_WAIT_SECONDS`` (or
        ``ENTRY_WAIT_BYTES``) without random access it ``relax``es (the second item says so,
        once). See ``given_up`` for the end of the wait.
        """
        if self.since is None and data:
            self.since = now
        note = None
        if self.mode in _RELAXED and self.since is not None and (
                self.seen >= ENTRY_WAIT_BYTES or now - self.since >= ENTRY_WAIT_SECONDS):
            wanted = "random-access point" if self.mode is EntryMode.RAP else "PAT"
            self.relax()  # before reading ``data``: what came after the wait is read relaxed
            note = f"no {wanted} within {ENTRY_WAIT_SECONDS:g} s: entering at the next " + (
                "frame" if self.mode is EntryMode.ANY else "packet")
        return self.feed(data), note

    def given_up(self, now: float) -> str | None:
        """Why the source has no way in, once it has sent data for ``ENTRY_GIVE_UP`` waits; else None."""
        if self.since is None or now - self.since < ENTRY_WAIT_SECONDS * ENTRY_GIVE_UP:
            return None
        return self.why_not()

    def why_not(self) -> str:
        """One line on why no entry was found in what came (SPEC: never dropped without saying why)."""
        within = f"within {ENTRY_WAIT_SECONDS * ENTRY_GIVE_UP:g}s"
        if self.scrambled:
            return f"its stream is scrambled (encrypted; {self.scrambled} packets): no way in {within}"
        if self.program is None:
            return f"sent no PAT and PMT {within}"
        return f"sent no PAT, PMT and frame to cut in at {within}"

    def _found(self, data: bytes, at: int) -> Entry:
        return Entry(data[at:] if at else data, self.program, self.tsid, self.pcr, self._pmt_pid)

    @staticmethod
    def _random_access(data: bytes, p: int, codec: str) -> bool:
        if random_access_flag(data, p):
            return True
        start = payload_start(data, p)
        if start < 0:
            return False
        positions = range(p + start, p + PACKET_SIZE)
        fields = stamp_fields(data, positions)
        length = 9 + data[p + start + 8] if fields is not None else 0
        if not fields or start + length >= PACKET_SIZE:
            return False  # the header spans packets: wait for the next key frame
        return starts_random_access(codec, data[p + start + length:p + PACKET_SIZE])

    def _read_pat(self, section: bytes) -> None:
        tsid, programs = parse_pat(section)
        if not programs:
            return
        number, pmt_pid = programs[0]
        self.tsid = tsid
        if (number, pmt_pid) != (self._program_number, self._pmt_pid):
            self._program_number, self._pmt_pid = number, pmt_pid
            self._pmt = SectionAssembler()
            self.program = None

    def _read_pmt(self, section: bytes) -> None:
        try:
            program = parse_pmt(section)
        except ValueError:
            return
        if program.program == self._program_number:
            self.program = program
