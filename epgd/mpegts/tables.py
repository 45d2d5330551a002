"""
One source's own tables as a splicer reads them: its PAT (which program, which PMT PID) and
its PMT (the program's streams), with the repeats providers send several times a second
passed over unread.
"""

from __future__ import annotations

from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.psi import ProgramMap, SectionAssembler, parse_pat, parse_pmt, payload_start


class SourceTables:
    """The PAT and PMT of the source a splicer is reading now."""

    def __init__(self, program_number: int = 0, pmt_pid: int = -1, tsid: int = 1) -> None:
        self.program_number = program_number
        self.pmt_pid = pmt_pid
        self.tsid = tsid
        self.notes: list[str] = []  # what did not parse, for the splicer to pass on
        self._pat = SectionAssembler()
        self._pmt = SectionAssembler()
        self._pmt_raw = b""
        self._seen: dict[int, bytes] = {}  # PID -> the payload of the last whole table it carried

    def _repeat(self, data: bytes, p: int) -> bool:
        """True for a packet that repeats, byte for byte, the last whole table its PID carried."""
        start = payload_start(data, p)
        if start < 0 or not data[p + 1] & 0x40 or data[p + 1] & 0x80 or data[p + start]:
            return False  # no payload, not a table's start, damaged, or a pointer_field
        if start + 4 + (((data[p + start + 2] & 0x0F) << 8) | data[p + start + 3]) > PACKET_SIZE:
            return False  # a table that goes on in the next packet
        pid = ((data[p + 1] & 0x1F) << 8) | data[p + 2]
        payload = data[p + start:p + PACKET_SIZE]
        if self._seen.get(pid) == payload:
            return True
        self._seen[pid] = payload
        return False

    def pat(self, data: bytes, p: int) -> bool:
        """Read a PAT packet; True when the PMT has moved to another PID."""
        if self._repeat(data, p):
            return False
        moved = False
        for section in self._pat.feed(data, p):
            _, programs = parse_pat(section)
            if not programs:
                continue
            number, pmt_pid = next((x for x in programs if x[0] == self.program_number), programs[0])
            self.program_number = number
            if pmt_pid != self.pmt_pid:
                self.pmt_pid = pmt_pid
                self._pmt = SectionAssembler()
                self._pmt_raw = b""
                moved = True
        return moved

    def pmt(self, data: bytes, p: int, current: ProgramMap | None) -> ProgramMap | None:
        """Read a PMT packet; the program when it changed from ``current`` (a new layout)."""
        if self._repeat(data, p):
            return None
        changed = None
        for section in self._pmt.feed(data, p):
            if section == self._pmt_raw:
                continue
            self._pmt_raw = section
            try:
                program = parse_pmt(section)
            except ValueError as e:
                self.notes.append(f"a PMT that does not parse ({e}): kept the last one")
                continue
            if program.program != self.program_number or program == (changed or current):
                continue
            if program.anchor is None:
                self.notes.append("a PMT with no audio or video: kept the last one")
                continue
            changed = program
        return changed
