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

from epgd.mpegts.audioframes import FRAMED, first_frame
from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import (
    HEADER_NEEDED,
    pcr_offset,
    random_access_flag,
    read_pcr_base,
    read_stamp,
    ring_diff,
    stamp_fields,
    starts_random_access,
)
from epgd.mpegts.psi import PAT_PID, ProgramMap, SectionAssembler, parse_pat, parse_pmt, payload_start

#: make-before-break waits at most this long / this much for a random-access point ...
ENTRY_WAIT_SECONDS = 5.0
ENTRY_WAIT_BYTES = 4 << 20
#: ... and a source that shows no way in at all (no PAT/PMT, its video scrambled) after this
#: many times the wait has failed
ENTRY_GIVE_UP = 3


#: a sound lead further off than this (ticks) is a source's oddity, not its muxing: ignored
MAX_SOUND_LEAD = 45000


def _stamps(data: bytes, p: int) -> tuple[int, int] | None:
    """(PTS, DTS) of the PES that starts in packet ``p`` (DTS = PTS when absent), when its header is all there."""
    start = payload_start(data, p)
    if start < 0 or start + HEADER_NEEDED > PACKET_SIZE:
        return None
    at = range(p + start, p + start + HEADER_NEEDED)
    fields = stamp_fields(data, at)
    if fields is None or fields[0] < 0:
        return None
    pts = read_stamp(data, at[fields[0]:fields[0] + 5])
    return pts, read_stamp(data, at[fields[1]:fields[1] + 5]) if fields[1] >= 0 else pts


def _pts(data: bytes, p: int) -> int | None:
    stamps = _stamps(data, p)
    return stamps[0] if stamps is not None else None


def next_stamps(data: bytes, at: int, pid: int) -> tuple[int, int] | None:
    """(PTS, DTS) of the first PES of ``pid`` that starts in aligned ``data`` from offset ``at`` on."""
    for p in range(at, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
        b1 = data[p + 1]
        if b1 & 0x40 and not b1 & 0x80 and ((b1 & 0x1F) << 8 | data[p + 2]) == pid and not data[p + 3] & 0xC0:
            return _stamps(data, p)
    return None


def entry_clock(entry: Entry) -> tuple[int, int, int | None] | None:
    """
    (PTS, DTS, PCR) the splicer places an entry's first frame with: its anchor's first PES
    header, and the PCR that packet carries (on a PCR PID that is the anchor's), else the
    entry's last one before it. None without such a header.
    """
    program = entry.program
    anchor = program.anchor if program is not None else None
    if program is None or anchor is None:
        return None
    data = entry.data
    for p in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
        b1 = data[p + 1]
        if b1 & 0x40 and not b1 & 0x80 and ((b1 & 0x1F) << 8 | data[p + 2]) == anchor.pid and not data[p + 3] & 0xC0:
            stamps = _stamps(data, p)
            if stamps is None:
                return None
            carrier = program.pcr_pid if program.pcr_pid != 0x1FFF else anchor.pid
            own = read_pcr_base(data, p + 6) if carrier == anchor.pid and pcr_offset(data, p) > 0 else None
            return stamps[0], stamps[1], own if own is not None else entry.pcr
    return None


def next_pts(data: bytes, at: int, pid: int) -> int | None:
    """The PTS of the first PES of ``pid`` that starts in aligned ``data`` from offset ``at`` on."""
    stamps = next_stamps(data, at, pid)
    return stamps[0] if stamps is not None else None


def sound_lead(data: bytes, at: int, program: ProgramMap, foreseen: int | None = None) -> int | None:
    """
    How far after the entry frame (at ``at`` in ``data``) the first audio PES after it starts
    (``Entry.sound_lead``), from ``data`` or else the ``foreseen`` PTS of it; None when unknown.
    """
    if program.anchor is None or program.sound_pid < 0:
        return None
    shown = next_pts(data, at, program.anchor.pid)
    after = next_pts(data, at, program.sound_pid)
    if after is None:
        after = foreseen
    if shown is None or after is None:
        return None
    lead = ring_diff(after, shown)
    return lead if abs(lead) <= MAX_SOUND_LEAD else None


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
    #: how far after the entry frame's presentation time the source's sound goes on (its first
    #: audio stream's next PES, read or, from the steps before the entry, foreseen), in 90 kHz
    #: ticks; None when unknown. The old source's sound ends there (``Rewriter.close``).
    sound_lead: int | None = None
    #: the source PIDs whose audio frames were seen in a PES before the entry (their sound can
    #: be cut at whole frames at once: ``epgd.mpegts.splice.soundcut``)
    framed: frozenset[int] = frozenset()


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
        #: PID -> the last two PTS of its audio PES starts (told by stream_id: read before a PMT too)
        self._sound: dict[int, list[int]] = {}
        self._heard: dict[int, bytes] = {}  # PID -> the payload of its last audio PES's first packet
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
            if b1 & 0x40:
                self._hear(data, p, pid)
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
        framed = frozenset(
            stream.pid for stream in (self.program.streams if self.program is not None else ())
            if stream.kind == "audio" and stream.codec in FRAMED
            and first_frame(stream.codec, self._heard.get(stream.pid, b"")) >= 0)
        return Entry(data[at:] if at else data, self.program, self.tsid, self.pcr, self._pmt_pid,
                     self._sound_lead(data, at), framed)

    def _hear(self, data: bytes, p: int, pid: int) -> None:
        """Remember the PTS of an audio PES (MPEG audio or private stream 1) starting at ``p``."""
        start = payload_start(data, p)
        if start < 0 or start + 4 > PACKET_SIZE or data[p + 3] & 0xC0:
            return
        stream_id = data[p + start + 3]
        if not (0xC0 <= stream_id <= 0xDF or stream_id in (0xBD, 0xFD)):
            return
        stamp = _pts(data, p)
        if stamp is not None and (pid in self._sound or len(self._sound) < 16):
            self._sound[pid] = [*self._sound.get(pid, [])[-1:], stamp]
            if start + 9 <= PACKET_SIZE:
                self._heard[pid] = bytes(data[p + start + 9 + data[p + start + 8]:p + PACKET_SIZE])

    def _sound_lead(self, data: bytes, at: int) -> int | None:
        """``Entry.sound_lead``: the next audio PES after the entry, read if ``data`` holds it."""
        program = self.program
        if program is None or program.anchor is None or program.sound_pid < 0:
            return None
        heard = self._sound.get(program.sound_pid, [])
        foreseen = (2 * heard[1] - heard[0]) % (1 << 33) if len(heard) == 2 else None  # one more step
        return sound_lead(data, at, program, foreseen)

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
