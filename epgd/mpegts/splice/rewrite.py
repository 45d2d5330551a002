"""
What a splicer rewrites each packet of the current source with: the source mapped onto the
output (PIDs, a continuity counter shift per stream, which streams have started), the PID
table the hot path (``chunk``) rewrites most packets with, the output's continuity counters
and clock, and the handlers for the packets that table cannot rewrite alone — a PES start,
a PCR, a stream's first packets, the source's own PAT and PMT. Each handler rewrites its
packet in the chunk's buffer and answers a ``Verdict``.
"""

from __future__ import annotations

from collections.abc import Callable

from epgd.mpegts.entry import Entry
from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import (
    header_positions,
    opcr_offset,
    pcr_offset,
    pes_random_access,
    read_pcr_base,
    read_stamp,
    stamp_fields,
    strip_pcr,
    write_pcr_base,
    write_stamp,
)
from epgd.mpegts.psi import NULL_PID, ProgramMap, Stream, payload_start
from epgd.mpegts.splice.heldpes import Held
from epgd.mpegts.splice.layout import (
    CC_TABLES,
    OUT_PCR_ONLY,
    OUT_VIDEO,
    PLAIN,
    Layout,
    OutputProgram,
    pid_table,
    slot_of,
    table_moves,
)
from epgd.mpegts.splice.soundcut import SoundEnds
from epgd.mpegts.splice.timeline import Timeline
from epgd.mpegts.splice.verdict import BEFORE, GONE, HOLD, KEEP, LAST, PSI, RESYNC, STOP, Verdict
from epgd.mpegts.tables import SourceTables

#: a PES header spread over more packets than this many is passed on unshifted
HOLD_LIMIT = 64 * PACKET_SIZE
#: streams besides the video whose plain packets get a fast-path code of their own (``PLAIN`` + n)
PLAIN_STREAMS = 200


class Rewriter(SoundEnds):
    """
    The current source as the output sees it, and the output's counters and clock that run on
    across sources. ``begin()`` maps a new source at its entry point; ``closing`` makes the
    source end at its anchor's next frame (``STOP``). ``note`` is told what is worth one log line.
    """

    def __init__(self, out: OutputProgram, note: Callable[[str], None]) -> None:
        self.out = out
        self.note = note
        self.timeline = Timeline()
        self.cc: dict[int, int] = {}  # output PID -> continuity counter of its last packet
        self.psi_due = False  # our PAT + PMT go before the next packet out
        self.closing = False  # the source ends as its streams' PES end (``close()``)
        self.sound_lead = 0  # ... its sound where the next source's begins: this long after its first picture,
        self.sound_from: int | None = None  # ... which is shown then (output time; None: as ours ends)
        #: output PID -> bytes its audio PES under way still has to come (bounded PES only): a
        #: closing source's sound ends when its PES is whole, not at a next one that may be far
        self.pes_left: dict[int, int] = {}
        self.pes_at: dict[int, int] = {}  # in the chunk being read: where each one's PES under way began
        # the current source
        self.program: ProgramMap | None = None  # None until a first source starts
        self.tables = SourceTables()
        self.layout = Layout({}, (), NULL_PID, -1, 0)
        self.kinds: dict[int, Stream] = {}  # source PID -> its stream
        self.delta: dict[int, int] = {}  # source PID -> continuity counter shift
        self.started: set[int] = set()  # source PIDs whose first PES went out
        # the fast paths the PID table allows (``build_table``)
        self.table = pid_table({}, -1, -1)
        self.table_moves = (False, False)  # whether it changes packets' PIDs, their counters (``table_moves``)
        #: source PID -> (output PID, counter shift) of the streams on a fast path whose PES
        #: headers the chunk may restamp itself while the clock is settled (``steady.Steady``)
        self.steady: dict[int, tuple[int, int]] = {}
        self.bulk_cc: bytes | None = None  # the video's counter shift, once known
        self.plain: list[tuple[int, bytes, int]] = []  # (code, counter shift table, output PID)
        self.plain_srcs: set[int] = set()
        self.es_at: dict[int, int] = {}  # in the chunk being read: each output PID's last packet off the fast path
        #: a PCR moved off its packet (the source carries it on a PID other than its video):
        #: (output base, the 27 MHz extension's bytes), for the chunk to send on OUT_VIDEO first
        self.moved_pcr: tuple[int, bytes] | None = None
        # sound cut at whole frames at cuts (``soundcut``)
        self.held: dict[int, Held] = {}  # source PID -> its audio PES held at a cut
        self.frames_seen: set[int] = set()  # source PIDs whose audio frames were seen: cut at whole frames
        self.frame_misses: dict[int, int] = {}  # ... PES looked at for them in vain
        self.unframed: set[int] = set()  # source PIDs whose frames could not be found: cut at whole PES
        self.extra: list[bytes] = []  # our packets to go out before the packet just read

    # -- a source --------------------------------------------------------------------

    def begin(self, entry: Entry) -> None:
        """A source starts at its entry point: map it, shift its counters, wait for its clock."""
        program = entry.program
        assert program is not None and program.anchor is not None  # what "rap"/"any" entries hold
        self.tables = SourceTables(program.program, entry.pmt_pid, entry.tsid)
        self.delta = {}
        self.started = set()
        self.pes_left = {}
        self.held = {}  # what a closing source still held goes with it
        self.frames_seen = set(entry.framed)
        self.frame_misses = {}
        self.unframed = set()
        self.adopt(program)
        anchor = program.anchor.pid
        out = self.layout.mapping[anchor]
        last = self.cc.get(out)
        self.delta[anchor] = 0 if last is None else (last + 1 - entry.data[3]) & 0x0F
        self.started.add(anchor)
        self.timeline.cut(entry.pcr, slot_of(out))
        self.build_table()
        self.psi_due = True  # the new source starts at our PAT + PMT and its key frame

    def adopt(self, program: ProgramMap) -> None:
        """Map a source program onto the output's layout (our PMT follows it)."""
        self.layout = self.out.adopt(program, self.tables.tsid)
        if self.layout.dropped:
            self.note("the PMT lists more streams than the output layout holds; extra ones dropped")
        self.program = program
        self.kinds = {s.pid: s for s in program.streams}

    def build_table(self) -> None:
        """
        The PID table, and the fast paths it allows: the video's plain packets (BULK) and each
        started stream's plain packets (a PLAIN code each) take only a counter shift.
        """
        video = self.layout.video
        ready = video >= 0 and video in self.delta and video in self.started
        self.bulk_cc = CC_TABLES[self.delta[video]] if ready else None
        plain: dict[int, int] = {}
        self.plain = []
        for src, out in self.layout.mapping.items():
            if self.closing:
                break  # a closing source's every packet is counted (``pes_left``)
            if src != video and src in self.started and src in self.delta and len(plain) < PLAIN_STREAMS:
                code = PLAIN + len(plain)
                plain[src] = code
                self.plain.append((code, CC_TABLES[self.delta[src]], out))
        self.plain_srcs = set(plain)
        shifts = {src: self.delta[src] for src in (*plain, *([video] if ready else []))}
        self.table = pid_table(self.layout.mapping, self.tables.pmt_pid, video if ready else -1, plain, shifts)
        self.table_moves = table_moves(self.layout.mapping, shifts)
        kinds, mapping = self.kinds, self.layout.mapping
        self.steady = {src: (mapping[src], shift) for src, shift in shifts.items()
                       if src in kinds and kinds[src].is_pes and mapping[src] != OUT_PCR_ONLY}

    def anchor_pid(self) -> int:
        anchor = self.program.anchor if self.program is not None else None
        return anchor.pid if anchor is not None else -1

    def pcr_pid(self) -> int:
        """The source's PCR PID; its video's when its PMT names none (0x1FFF) but it has one."""
        if self.program is None:
            return -1
        if self.program.pcr_pid == NULL_PID and self.layout.video >= 0:
            return self.layout.video
        return self.program.pcr_pid

    # -- packets off the fast path ---------------------------------------------------

    def es(self, data: bytes, buf: bytearray, p: int, i: int, count: int, now: float) -> Verdict:
        """A packet of a mapped stream that is not a plain video packet (packet ``i`` of ``count``)."""
        b1, b3 = data[p + 1], data[p + 3]
        src = ((b1 & 0x1F) << 8) | data[p + 2]
        out = self.layout.mapping[src]
        payload = b3 & 0x10
        damaged = b1 & 0x80
        before = newly = False
        kind = self.holds(data, p, src, out, bool(b1 & 0x40)) if payload and not damaged else None
        if kind is not None or src in self.held:  # sound cut at whole frames (``soundcut``)
            verdict = self.hold(data, p, src, out, kind) if payload and not damaged else GONE
            moved = self.only_pcr(data, buf, p, now)  # a PCR it carries still goes out, alone
            return moved if moved is RESYNC else verdict
        if self.closing and payload and b1 & 0x40 and not damaged and not self.sound_needed(data, p, src, out):
            verdict = self.end_stream(src)
            return verdict if verdict is STOP else self.only_pcr(data, buf, p, now)
        closing_end = False
        if out == OUT_PCR_ONLY:
            return self.only_pcr(data, buf, p, now)  # its PCRs go out on OUT_VIDEO, nothing else
        if src not in self.started:
            if not payload or damaged or not b1 & 0x40:
                # a stream starts at its first PES, never in the middle of one (and an
                # adaptation-only packet's counter would follow packets that never went out);
                # a closing source's clock runs on while its sound finishes
                return self.only_pcr(data, buf, p, now) if self.closing else GONE
            self.started.add(src)
            newly = True
        if b3 & 0x20 and not damaged and self.pcr_jumped(data, p):
            return RESYNC  # before anything of this packet is read onto the old clock
        if payload and b1 & 0x40 and not damaged:
            verdict = self.pes(data, buf, p, i, count, src, out, now)
            if verdict is GONE:
                self.started.discard(src)
                # its next packet out continues the output's counter (the source's steps on)
                self.delta.pop(src, None)
                if src == self.layout.video and self.bulk_cc is not None:
                    self.build_table()  # the rest of that picture leaves the fast path, to be dropped
                return GONE
            if verdict is HOLD or verdict is RESYNC:
                if newly:
                    self.started.discard(src)
                return verdict
            before = verdict is BEFORE
        if b3 & 0x20 and not damaged and self.pcr(data, buf, p, now):
            return RESYNC
        if self.moved_pcr is not None and not payload:
            return GONE  # its PCR goes out on OUT_VIDEO; nothing else of it is wanted
        delta = self.delta.get(src)
        if delta is None:
            last = self.cc.get(out)
            delta = 0 if last is None else ((last + (1 if payload else 0)) - b3) & 0x0F
            self.delta[src] = delta
            if src == self.layout.video:
                self.build_table()  # the video's shift is known: its plain packets go fast
        counter = (b3 + delta) & 0x0F
        buf[p + 3] = (b3 & 0xF0) | counter
        if not damaged:  # a damaged packet's counter is noise: the next cut must not follow it
            self.cc[out] = counter
            self.es_at[out] = i
            if payload:
                closing_end = self.count_pes(data, p, i, out, bool(b1 & 0x40))
        if closing_end:
            self.started.discard(src)  # this packet ends its last PES
            if not self.awaited():
                return LAST
        if src == self.layout.video:
            if self.bulk_cc is None and src in self.started and not self.closing:
                self.build_table()  # the video goes on after a dropped picture: back on the fast path
        elif src not in self.plain_srcs and src in self.started and len(self.plain) < PLAIN_STREAMS:
            self.build_table()  # a stream started and its counter is known: its plain packets go fast
        return BEFORE if before else KEEP

    def pes(self, data: bytes, buf: bytearray, p: int, i: int, count: int, src: int, out: int,
            now: float) -> Verdict:
        """Shift a PES header's PTS/DTS; GONE for a PES that would step back; BEFORE at random access."""
        stream = self.kinds.get(src)
        if stream is None or not stream.is_pes:
            return KEEP
        if data[p + 3] & 0xC0:
            self.note("scrambled packets: passed on without shifting their timestamps")
            return KEEP
        start = payload_start(data, p)
        if start < 0:
            return KEEP
        at, more = header_positions(data, p + start, i, count, src)
        if more and len(data) - p < HOLD_LIMIT:
            return HOLD
        fields = stamp_fields(data, at)
        if fields is None:
            if more:
                self.note("a PES header spread over too many packets: passed on unshifted")
            return KEEP
        pts_at, dts_at = fields
        if pts_at < 0:
            return KEEP
        pts = read_stamp(data, at[pts_at:pts_at + 5])
        dts = read_stamp(data, at[dts_at:dts_at + 5]) if dts_at >= 0 else pts
        clock = self.timeline
        if clock.ts_jumped(src, dts):
            return RESYNC
        if clock.pending and src == self.anchor_pid():
            pcr = read_pcr_base(data, p + 6) if src == self.pcr_pid() and pcr_offset(data, p) > 0 else None
            clock.place(dts, pcr, slot_of(out), now, pts)
        new_dts = clock.stamp(slot_of(out), dts, pts)
        if new_dts is None:
            return GONE  # this stream's first PES after a cut overlaps the old stream's last
        if src not in self.frames_seen:
            self.look_for_frames(data, p, src)
        write_stamp(buf, at[pts_at:pts_at + 5], pts + clock.ts_offset)
        if dts_at >= 0:
            write_stamp(buf, at[dts_at:dts_at + 5], new_dts)
        if out == self.layout.video_out and pes_random_access(data, p, start, stream.codec):
            return BEFORE
        return KEEP

    def only_pcr(self, data: bytes, buf: bytearray, p: int, now: float) -> Verdict:
        """
        A packet that does not go out: a PCR it carries still does, alone (``moved_pcr``), so
        the output's clock runs on while a closing source's sound finishes or a stream waits
        for its first PES. RESYNC when that PCR shows the source's clock jumped.
        """
        if data[p + 3] & 0x20 and not data[p + 1] & 0x80 and self.pcr(data, buf, p, now, detach=True):
            return RESYNC
        return GONE

    def pcr(self, data: bytes, buf: bytearray, p: int, now: float, detach: bool = False) -> bool:
        """
        Shift a packet's PCR (and OPCR) onto the output clock; True when the source's jumped.
        A PCR on the source's PCR PID that is not the output's (or ``detach``: the packet is
        dropped) is taken off the packet for the chunk to send alone on OUT_VIDEO.
        """
        clock = self.timeline
        if clock.pending:
            return False  # before the anchor's first PES: nothing of this source goes out yet
        if pcr_offset(data, p) > 0:
            src = ((data[p + 1] & 0x1F) << 8) | data[p + 2]
            on_pcr_pid = src == self.pcr_pid()
            if on_pcr_pid and self.pcr_jumped(data, p):
                return True
            base = clock.pcr(read_pcr_base(data, p + 6), now, on_pcr_pid)
            if on_pcr_pid and (detach or self.layout.mapping.get(src) != OUT_VIDEO):
                self.moved_pcr = (base, bytes(data[p + 10:p + 12]))
                strip_pcr(buf, p)
            else:
                write_pcr_base(buf, p + 6, base)
        at = opcr_offset(buf, p)  # read where it is now: a moved PCR's OPCR moved up
        if at > 0:
            write_pcr_base(buf, p + at, read_pcr_base(buf, p + at) + clock.pcr_offset)
        return False

    def pcr_jumped(self, data: bytes, p: int) -> bool:
        """The packet's PCR (on the PCR PID) steps back or leaps ahead: the source's clock jumped."""
        if pcr_offset(data, p) < 0 or ((data[p + 1] & 0x1F) << 8) | data[p + 2] != self.pcr_pid():
            return False
        return self.timeline.pcr_jumped(read_pcr_base(data, p + 6), bool(data[p + 5] & 0x80))

    def pat(self, data: bytes, p: int) -> Verdict:
        """The source's PAT: read (the PMT may have moved), then replaced by ours."""
        if self.tables.pat(data, p):
            self.build_table()  # the PMT moved
        return PSI

    def pmt(self, data: bytes, p: int) -> Verdict:
        """The source's PMT: a new layout when it changed mid-source, then replaced by ours."""
        program = self.tables.pmt(data, p, self.program)
        for note in self.tables.notes:
            self.note(note)
        self.tables.notes.clear()
        if program is None:
            return GONE
        self.adopt(program)  # a PMT that changed mid-source
        self.build_table()
        return PSI

