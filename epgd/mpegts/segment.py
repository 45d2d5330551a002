"""
HLS output's segmenter (SPEC §16): a channel's output program, as it leaves the splicer, cut
at key frames into segments of about a target length, each starting with PAT, PMT and a key
frame, so any of them can be a player's first.

It reads only what it needs: the PAT, the PMT (the anchor stream — the video, else the first
audio — and the codecs) and the first packet of each of the anchor's PES (its DTS, and whether
it starts a random-access point). A segment ends at the first key frame at or after the target
length; its duration is the anchor's DTS distance to the next segment's first frame, so the
EXTINF durations add up to the media's own timeline. Continuous output puts our PAT + PMT right
before every key frame (the join logic), and a cut goes before them; where a stream has none
there (passthrough output), the latest PAT and PMT packets are put in front of the segment.

Discontinuities: a change of codecs (a new PMT naming other streams), a step of the anchor's
clock (backwards, or forwards past ``JUMP``, a hole) and ``cut()`` (the caller's word that a new
program follows: every cut in passthrough output). Pure: bytes and the times given in, segments
out; ``notes`` are for the caller to log.
"""

from __future__ import annotations

import functools

from attrs import frozen

from epgd.mpegts.packet import PACKET_SIZE, SYNC_BYTE
from epgd.mpegts.pes import (
    random_access_flag,
    read_stamp,
    ring_diff,
    stamp_fields,
    starts_random_access,
)
from epgd.mpegts.psi import (
    PAT_PID,
    ProgramMap,
    SectionAssembler,
    Stream,
    codecs_of,
    parse_pat,
    parse_pmt,
    payload_start,
)

CLOCK = 90_000
#: with no key frame within this many target lengths, a segment ends at the next frame anyway
FORCE_AFTER = 3
#: an anchor clock step forwards larger than this (in 90 kHz ticks) is a hole, not a frame
JUMP = 10 * CLOCK
#: an open segment past this size (no key frame, no timestamps) is dropped, not kept growing
MAX_SEGMENT_BYTES = 64 << 20
#: a PSI section's packets kept for the segments that need them put in front (bounded)
MAX_PSI_PACKETS = 8
_DEFAULT_FRAME = 3600  # 25 frames/s, until the stream shows its own spacing


@frozen
class Segment:
    """One complete segment: its bytes and what its playlist entry says about it."""

    data: bytes
    duration: float  # seconds of media
    discontinuity: bool  # EXT-X-DISCONTINUITY before it
    started: float  # the caller's clock when its first byte was fed
    key_frame: bool = True  # False: cut at a plain frame, the stream had no key frame for too long


@functools.cache
def _b1_table(high: int, starts_only: bool) -> bytes:
    """Byte 1 of a packet -> 1 when its PID's top bits are ``high`` (and, maybe, it starts a unit)."""
    return bytes(
        1 if b & 0x1F == high and not b & 0x80 and (b & 0x40 or not starts_only) else 0
        for b in range(256)
    )


@functools.cache
def _equal_table(value: int) -> bytes:
    return bytes(1 if b == value else 0 for b in range(256))


def _marks(b0: bytes, b1: bytes, b2: bytes, pid: int, starts_only: bool) -> int:
    """One bit per packet (first packet highest): packets of ``pid`` (that start a unit)."""
    return (int.from_bytes(b0.translate(_equal_table(SYNC_BYTE)), "big")
            & int.from_bytes(b1.translate(_b1_table(pid >> 8, starts_only)), "big")
            & int.from_bytes(b2.translate(_equal_table(pid & 0xFF)), "big"))


def _key(stream: Stream | None) -> tuple[int, str] | None:
    return (stream.pid, stream.codec) if stream is not None else None


class _Section:
    """One PSI PID: its sections, and the raw packets of the last complete one."""

    def __init__(self) -> None:
        self.assembler = SectionAssembler()
        self.packets: list[bytes] = []
        self.raw = b""

    def feed(self, data: bytes, p: int) -> list[bytes]:
        packet = data[p:p + PACKET_SIZE]
        if packet[1] & 0x40:
            self.packets = [packet]
        elif self.packets and len(self.packets) < MAX_PSI_PACKETS:
            self.packets.append(packet)
        sections = self.assembler.feed(packet)
        if sections and self.packets:
            self.raw = b"".join(self.packets)
        return sections


class Segmenter:
    """
    Cuts one output program into HLS segments. ``feed`` it the program's bytes (whole packets)
    with the time they came; it returns the segments each feed completed. ``cut()`` when the
    next bytes start another program (passthrough output's cuts).
    """

    def __init__(self, target: float) -> None:
        self.target = target
        self.notes: list[str] = []
        self.codecs = ""
        self._noted: set[str] = set()
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._total = 0  # stream offset of the end of what was fed
        self._rest = b""  # a packet's first bytes, until the rest comes
        self._pat = _Section()
        self._pmt = _Section()
        self._pmt_pid = -1
        self._program_number = -1
        self._program: ProgramMap | None = None
        # a run of PSI packets (PAT first) with nothing else between: a cut may go before it
        self._run_start = -1
        self._run_end = -1
        self._run_pmt = False
        # the open segment
        self._open = -1  # its stream offset; -1: waiting for a key frame to start one
        self._open_prefix = b""
        self._open_dts: int | None = None
        self._open_time = 0.0
        self._open_disc = False
        self._open_key = True
        self._pending_disc = False
        self._last_dts: int | None = None
        self._frame = _DEFAULT_FRAME

    @property
    def waiting(self) -> bool:
        """No segment is open: the next key frame starts one."""
        return self._open < 0

    # -- input -----------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[Segment]:
        """The segments ``data`` completed (usually none)."""
        if self._rest:
            data = self._rest + data
            self._rest = b""
        whole = len(data) - len(data) % PACKET_SIZE
        if whole != len(data):
            data, self._rest = data[:whole], data[whole:]
        out: list[Segment] = []
        if not data:
            return out
        start = self._total
        self._buf += data
        self._total += len(data)
        first = 0
        count = whole // PACKET_SIZE
        while first < count:
            first = self._scan(data, first, count, start, now, out)
        if self._open >= 0 and self._total - self._open > MAX_SEGMENT_BYTES:
            self._note("a segment grew past 64 MiB without a frame to end it: dropped")
            self._open = -1
            self._pending_disc = True
        if self._open < 0:
            self._trim()
        return out

    def cut(self, now: float) -> list[Segment]:
        """Another program follows: end the open segment here; the next starts discontinuous."""
        out: list[Segment] = []
        if self._open >= 0:
            self._end(self._total, self._duration_to(self._last_dts, now), out)
        self._open = -1
        self._pending_disc = True
        self._rest = b""
        self._pat = _Section()
        self._pmt = _Section()
        self._run_start = -1
        self._pmt_pid = self._program_number = -1
        self._program = None  # the new program's own PMT names its anchor
        self._last_dts = None
        self._trim()
        return out

    # -- reading ---------------------------------------------------------------------

    def _scan(self, data: bytes, first: int, count: int, start: int, now: float,
              out: list[Segment]) -> int:
        """
        Read packets ``first``.. of ``data`` (at stream offset ``start``) that matter; returns
        where to go on: ``count`` when done, else just past a packet that changed what matters.
        """
        offset = first * PACKET_SIZE
        b0 = data[offset::PACKET_SIZE]
        b1 = data[offset + 1::PACKET_SIZE]
        b2 = data[offset + 2::PACKET_SIZE]
        marks = _marks(b0, b1, b2, PAT_PID, False)
        if self._pmt_pid >= 0:
            marks |= _marks(b0, b1, b2, self._pmt_pid, False)
        anchor = self._program.anchor if self._program is not None else None
        if anchor is not None:
            marks |= _marks(b0, b1, b2, anchor.pid, True)
        if not marks:
            return count
        flags = marks.to_bytes(count - first, "big")
        i = flags.find(1)
        while i >= 0:
            p = offset + i * PACKET_SIZE
            pid = ((data[p + 1] & 0x1F) << 8) | data[p + 2]
            at = start + p
            if pid == PAT_PID:
                if self._read_pat(data, p, at):
                    return first + i + 1
            elif pid == self._pmt_pid:
                if self._read_pmt(data, p, at):
                    return first + i + 1
            elif anchor is not None:
                self._frame_start(data, p, at, now, out)
            i = flags.find(1, i + 1)
        return count

    def _run(self, at: int, opens: bool) -> None:
        """A PSI packet at stream offset ``at``: it extends the run before it, or starts one."""
        if at == self._run_end and self._run_start >= 0:
            self._run_end = at + PACKET_SIZE
        elif opens:
            self._run_start, self._run_end, self._run_pmt = at, at + PACKET_SIZE, False
        else:
            self._run_start = -1

    def _read_pat(self, data: bytes, p: int, at: int) -> bool:
        """True when the PMT moved (what to look for changed)."""
        self._run(at, bool(data[p + 1] & 0x40))
        changed = False
        for section in self._pat.feed(data, p):
            _tsid, programs = parse_pat(section)
            if programs and programs[0] != (self._program_number, self._pmt_pid):
                self._program_number, self._pmt_pid = programs[0]
                self._pmt = _Section()
                changed = True
        return changed

    def _read_pmt(self, data: bytes, p: int, at: int) -> bool:
        """True when the anchor stream changed."""
        self._run(at, False)
        if self._run_start >= 0:
            self._run_pmt = True
        changed = False
        for section in self._pmt.feed(data, p):
            try:
                program = parse_pmt(section)
            except ValueError:
                continue
            if program.program != self._program_number:
                continue
            codecs = codecs_of(program.streams)
            if self.codecs and codecs != self.codecs:
                self._pending_disc = True  # the next key frame starts a discontinuous segment
            self.codecs = codecs
            old = self._program.anchor if self._program is not None else None
            self._program = program
            new = program.anchor
            if _key(old) != _key(new):
                changed = True
        return changed

    def _frame_start(self, data: bytes, p: int, at: int, now: float, out: list[Segment]) -> None:
        """The first packet of an anchor PES at stream offset ``at``: maybe a place to cut."""
        if data[p + 3] & 0xC0:
            return  # scrambled: nothing in it can be read
        dts, random_access = self._read_frame(data, p)
        last, self._last_dts = self._last_dts, dts if dts is not None else self._last_dts
        jumped = False
        if dts is not None and last is not None:
            step = ring_diff(dts, last)
            jumped = step < 0 or step > JUMP
            if 0 < step <= CLOCK:
                self._frame = step
        if self._open >= 0 and jumped:
            self._note("the output's clock stepped: a discontinuity in the HLS output")
            self._end(self._cut_point(at), self._duration_to(last, now), out)
            self._open = -1
            self._pending_disc = True
        if self._open < 0:
            if random_access:
                self._begin(self._cut_point(at), at, dts, now, True)
            return
        elapsed = self._elapsed(dts, now)
        due = elapsed >= self.target - 0.001 or self._pending_disc
        forced = not random_access and elapsed >= FORCE_AFTER * self.target
        if (random_access and due) or forced:
            if forced:
                self._note("no key frame for 3 segment lengths: a segment starts at a plain frame")
            cut = self._cut_point(at)
            self._end(cut, elapsed, out)
            self._begin(cut, at, dts, now, random_access)

    def _read_frame(self, data: bytes, p: int) -> tuple[int | None, bool]:
        """(DTS, or PTS, or None; whether it starts a random-access point) of a PES's first packet."""
        anchor = self._program.anchor if self._program is not None else None
        video = anchor is not None and anchor.kind == "video"
        start = payload_start(data, p)
        if start < 0:
            return None, not video
        at = p + start
        header = range(at, min(p + PACKET_SIZE, at + 19))
        fields = stamp_fields(data, header)
        dts = None
        length = 0
        if fields is not None:
            pts_at, dts_at = fields
            if pts_at >= 0:
                use = dts_at if dts_at >= 0 else pts_at
                dts = read_stamp(data, header[use:use + 5])
            length = 9 + data[at + 8]
        if not video or anchor is None:
            return dts, True
        if random_access_flag(data, p):
            return dts, True
        if not fields or start + length >= PACKET_SIZE:
            return dts, False  # the header runs into the next packet: not a place we can see
        return dts, starts_random_access(anchor.codec, data[at + length:p + PACKET_SIZE])

    # -- segments --------------------------------------------------------------------

    def _cut_point(self, at: int) -> int:
        """Where a segment starting with the frame at ``at`` begins: before the PAT + PMT just before it."""
        if self._run_start >= 0 and self._run_end == at and self._run_pmt:
            return self._run_start
        return at

    def _elapsed(self, dts: int | None, now: float) -> float:
        if dts is not None and self._open_dts is not None:
            return ring_diff(dts, self._open_dts) / CLOCK
        return now - self._open_time

    def _duration_to(self, last: int | None, now: float) -> float:
        """The open segment's length when no next frame closes it: up to its ``last`` frame, and that frame."""
        if last is not None and self._open_dts is not None:
            return (ring_diff(last, self._open_dts) + self._frame) / CLOCK
        return max(0.0, now - self._open_time)

    def _begin(self, cut: int, at: int, dts: int | None, now: float, key_frame: bool) -> None:
        self._open = cut
        self._open_prefix = self._pat.raw + self._pmt.raw if cut == at else b""
        self._open_dts = dts
        self._open_time = now
        self._open_disc = self._pending_disc
        self._open_key = key_frame
        self._pending_disc = False
        self._trim()

    def _end(self, cut: int, duration: float, out: list[Segment]) -> None:
        data = bytes(self._buf[self._open - self._base:cut - self._base])
        if data:
            out.append(Segment(self._open_prefix + data if self._open_prefix else data,
                               max(duration, 0.0), self._open_disc, self._open_time,
                               self._open_key))

    def _trim(self) -> None:
        """Keep only what a segment may still need: the open one, or the PSI run at the end."""
        if self._open >= 0:
            keep = self._open
        elif self._run_start >= 0 and self._run_end == self._total:
            keep = self._run_start
        else:
            keep = self._total
        if keep > self._base:
            del self._buf[:keep - self._base]
            self._base = keep

    def _note(self, text: str) -> None:
        if text not in self._noted:
            self._noted.add(text)
            self.notes.append(text)
