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
            if anchor is None or pid != anchor.pid or (b1 & 0xC0) != 0x40 or data[p + 3] & 0xC0:
                continue  # not the anchor, not a PES start, damaged or scrambled
            if mode is EntryMode.ANY or anchor.kind != "video" or self._random_access(data, p, anchor.codec):
                return self._found(data, p)
        self.seen += len(data)
        return None

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
