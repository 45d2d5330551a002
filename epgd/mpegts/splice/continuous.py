"""
One splicer per channel: whatever sources a channel cuts between, its clients receive ONE
unbroken program (SPEC §7.1) — the FFmpeg inside Plex, Jellyfin, Emby and Channels DVR keeps
only the streams it probed first and copies timestamps as they come, so a raw splice makes it
lose the picture or break its timeline.

The splicer reads each source (its PAT and PMT, its way in, its own clock jumping) and writes
the output: the layout and our PAT/PMT (``layout.OutputProgram``), a continuity counter per
output PID that runs on across cuts, and one clock (``timeline.Timeline``). It is a pure
function of its input bytes, the wall-clock times it is given and its state: no reactor, no
I/O, no logging (notes are collected for the channel to log once).

Hot path: most packets only get their PID bytes (one table lookup per packet, written back
with extended-slice assignment) and continuity counter (``bytes.translate``) rewritten; only
packets that start a PES, carry a PCR, belong to audio/other streams or to PSI take a
per-packet path.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable
from operator import itemgetter

from epgd.mpegts.entry import ENTRY_WAIT_BYTES, Entry, EntryFinder
from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import (
    header_positions,
    opcr_offset,
    pcr_offset,
    random_access_flag,
    read_pcr_base,
    read_stamp,
    stamp_fields,
    starts_random_access,
    write_pcr_base,
    write_stamp,
)
from epgd.mpegts.psi import (
    NULL_PID,
    ProgramMap,
    Stream,
    payload_start,
)
from epgd.mpegts.splice.layout import (
    AF_MARKS,
    BULK,
    CC_TABLES,
    DROP,
    ES,
    OUT_AUDIO,
    OUT_OTHER,
    OUT_PCR_ONLY,
    OUT_PMT,
    OUT_VIDEO,
    PAT,
    PLAIN,
    PMT,
    Layout,
    OutputProgram,
    pid_table,
    positions,
)
from epgd.mpegts.splice.timeline import Timeline
from epgd.mpegts.tables import SourceTables

__all__ = ["OUT_AUDIO", "OUT_OTHER", "OUT_PCR_ONLY", "OUT_PMT", "OUT_VIDEO", "Splicer"]

#: a PES header spread over more packets than this many is passed on unshifted
_HOLD_LIMIT = 64 * PACKET_SIZE
_LITTLE = sys.byteorder == "little"


class Splicer:
    """
    The output program of one channel. ``cut()`` (or ``enter()`` with an entry found on the
    side) whenever the next bytes come from another source or the same one anew; ``feed()``
    the current source's aligned packets. ``entry`` is where, in the last output, a joining
    client may start (a PAT + PMT right before a random-access point), or -1.
    """

    def __init__(self, on_codecs: Callable[[str, str], None] | None = None) -> None:
        self.entry = -1
        self.first_entry = -1  # ... and where the first one is, for viewers waiting for one
        self._first_entry = -1
        self.notes: list[str] = []  # things worth one log line, for the channel to drain
        self._noted: set[str] = set()
        self.closed = False
        self._closing = False
        # the output
        self._out = OutputProgram(on_codecs)
        self._timeline = Timeline()
        self._cc: dict[int, int] = {}  # output PID -> continuity counter of its last packet
        self._psi_due = False  # our PAT + PMT go before the next packet out
        # the current source
        self._finder: EntryFinder | None = EntryFinder()
        self._program: ProgramMap | None = None
        self._tables = SourceTables()
        self._layout = Layout({}, (), NULL_PID, -1, 0)
        self._kinds: dict[int, Stream] = {}  # source PID -> its stream
        self._delta: dict[int, int] = {}  # source PID -> continuity counter shift
        self._started: set[int] = set()  # source PIDs whose first PES went out
        self._bulk_cc: bytes | None = None
        self._table: list[int] = pid_table({}, -1, -1)
        self._held = b""  # a packet whose PES header the next chunk completes, and what follows
        self._resync_rest = b""  # input still to read after the source's clock jumped
        self._es_at: dict[int, int] = {}  # in the chunk being read: each output PID's last packet off the fast path
        self._plain: list[tuple[int, bytes, int]] = []  # (code, counter shift table, output PID)
        self._plain_srcs: set[int] = set()

    @property
    def codecs(self) -> str:
        """The output's streams as its PMT declares them: ``h264+aac``."""
        return self._out.codecs

    @property
    def on_codecs(self) -> Callable[[str, str], None] | None:
        return self._out.on_codecs

    @on_codecs.setter
    def on_codecs(self, callback: Callable[[str, str], None] | None) -> None:
        self._out.on_codecs = callback

    # -- cuts ------------------------------------------------------------------------

    def close(self) -> None:
        """
        A switch is ready: the current source ends at its next frame boundary, so its last
        frame reaches the decoder whole. ``closed`` turns true once it has (at once when
        nothing is flowing); what the source sends after that is dropped.
        """
        self._closing = True
        if self._finder is not None or self._program is None:
            self.closed = True

    def cut(self) -> None:
        """The next bytes come from another source (or this one anew): find its entry."""
        self._finder = EntryFinder()
        self._held = b""
        self._closing = self.closed = False

    def enter(self, entry: Entry, now: float) -> bytes:
        """Start the source whose entry point was found on the side (make-before-break)."""
        self._finder = None
        self._held = b""
        self._closing = self.closed = False
        self.entry = self.first_entry = -1
        out, first, last = self._start(entry, now)
        rest, first2, last2 = self._resume(now)
        self._entries(len(out), first, last, first2, last2)
        return out + rest

    def finder(self) -> EntryFinder:
        """What a channel uses to look for a new source's entry while the old one flows."""
        return EntryFinder()

    @property
    def entering(self) -> bool:
        return self._finder is not None

    # -- data ------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> bytes:
        """The output for ``data`` (whole packets of the current source); may be empty."""
        self.entry = self.first_entry = -1
        if self.closed:
            return b""
        self._resync_rest = data
        out, first, last = self._resume(now)
        self._entries(0, first, last, -1, -1)
        return out

    def _entries(self, base: int, first: int, last: int, first2: int, last2: int) -> None:
        """Where joiners may start in output made of two parts (the second at ``base``)."""
        self.first_entry = first if first >= 0 else (base + first2 if first2 >= 0 else -1)
        self.entry = base + last2 if last2 >= 0 else last

    def _resume(self, now: float) -> tuple[bytes, int, int]:
        """
        Read what is waiting (``_resync_rest``): through the entry finder while one looks for
        the way in, else through the hot path; a jump in the source's own clock makes the hot
        path stop and hand the rest back to a finder. (output, first entry, last entry)
        """
        pieces: list[bytes] = []
        length = 0
        first = last = -1
        for _ in range(64):  # each turn consumes input; a source cannot make this spin
            data, self._resync_rest = self._resync_rest, b""
            if not data:
                break
            finder = self._finder
            if finder is not None:
                found = finder.feed(data)
                if found is None:
                    if finder.seen >= ENTRY_WAIT_BYTES and finder.mode == "rap":
                        finder.relax()
                        self._note("no random-access point within 4 MiB: entering at the next frame")
                    break
                self._finder = None
                out, f, e = self._start(found, now)
            else:
                if self._held:
                    data, self._held = self._held + data, b""
                out, entry = self._run(data, now)
                f = self._first_entry if entry is not None else -1
                e = entry if entry is not None else -1
            if f >= 0 and first < 0:
                first = length + f
            if e >= 0:
                last = length + e
            pieces.append(out)
            length += len(out)
        return b"".join(pieces), first, last

    def _start(self, entry: Entry, now: float) -> tuple[bytes, int, int]:
        """A source starts at its entry point: map it, shift its counters, wait for its clock."""
        program = entry.program
        assert program is not None and program.anchor is not None  # what "rap"/"any" entries hold
        self._tables = SourceTables(program.program, entry.pmt_pid, entry.tsid)
        self._delta = {}
        self._started = set()
        self._adopt(program)
        anchor = program.anchor.pid
        out = self._layout.mapping[anchor]
        last = self._cc.get(out)
        self._delta[anchor] = 0 if last is None else (last + 1 - entry.data[3]) & 0x0F
        self._started.add(anchor)
        self._timeline.cut(entry.pcr, out)
        self._build_table()
        self._psi_due = True  # the new source starts at our PAT + PMT and its key frame
        data, entry_at = self._run(entry.data, now)
        return data, 0, (entry_at if entry_at is not None else 0)

    def _adopt(self, program: ProgramMap) -> None:
        """Map a source program onto the output's layout (our PMT follows it)."""
        self._layout = self._out.adopt(program, self._tables.tsid)
        if self._layout.dropped:
            self._note("the PMT lists more streams than the output layout holds; extra ones dropped")
        self._program = program
        self._kinds = {s.pid: s for s in program.streams}

    def _build_table(self) -> None:
        """
        The PID table, and the fast paths it allows: the video's plain packets (BULK) and each
        started stream's plain packets (a PLAIN code each) take only a counter shift.
        """
        video = self._layout.video
        ready = video >= 0 and video in self._delta
        self._bulk_cc = CC_TABLES[self._delta[video]] if ready else None
        plain: dict[int, int] = {}
        self._plain = []
        for src, out in self._layout.mapping.items():
            if src != video and src in self._started and src in self._delta and len(plain) < 200:
                code = PLAIN + len(plain)
                plain[src] = code
                self._plain.append((code, CC_TABLES[self._delta[src]], out))
        self._plain_srcs = set(plain)
        self._table = pid_table(self._layout.mapping, self._tables.pmt_pid, video if ready else -1, plain)

    # -- the hot path ----------------------------------------------------------------

    def _run(self, data: bytes, now: float) -> tuple[bytes, int | None]:
        """
        One chunk of the current source: its output, and the offset there of its last entry
        point (None: none; ``_first_entry`` holds the first).

        Our PAT + PMT replace the source's PAT wherever it has one and go right before every
        random-access point, where they mark a place joiners start; they are always written
        just before the next packet that goes out, so how the input is chunked never changes
        the output.
        """
        count = len(data) // PACKET_SIZE
        self._first_entry = -1
        if not count:
            return b"", None
        buf = bytearray(data)
        pairs = bytearray(2 * count)
        pairs[0::2] = data[1::PACKET_SIZE]
        pairs[1::2] = data[2::PACKET_SIZE]
        table = self._table
        mapped = array("I", itemgetter(*memoryview(pairs).cast("H"))(table) if count > 1 else
                       [table[memoryview(pairs).cast("H")[0]]])
        if not _LITTLE:
            mapped.byteswap()
        raw = mapped.tobytes()
        buf[1::PACKET_SIZE] = raw[0::4]
        buf[2::PACKET_SIZE] = raw[1::4]
        codes = raw[2::4]
        if self._bulk_cc is not None:
            buf[3::PACKET_SIZE] = data[3::PACKET_SIZE].translate(self._bulk_cc)
        plain = [(positions(code, codes), cc, out) for code, cc, out in self._plain]
        for found, cc, _ in plain:
            for i in found:
                q = i * PACKET_SIZE + 3
                buf[q] = cc[data[q]]
        todo = [(i, code) for code in (PAT, PMT, ES, DROP) for i in positions(code, codes)]
        marks = data[3::PACKET_SIZE].translate(AF_MARKS)
        todo += [(i, BULK) for i in positions(1, marks) if codes[i] == BULK or codes[i] >= PLAIN]
        todo.sort()
        self._es_at.clear()
        pieces: list[bytes | bytearray] = []
        length = 0  # bytes in pieces
        begin = 0  # first input packet not yet in pieces
        entry: int | None = None

        def upto(i: int) -> None:
            """Input packets begin..i-1 go out as they are (rewritten in place)."""
            nonlocal begin, length
            if i > begin:
                pieces.append(buf[begin * PACKET_SIZE:i * PACKET_SIZE])
                length += (i - begin) * PACKET_SIZE
            begin = i

        def psi_before(i: int, joinable: bool) -> None:
            """Our PAT + PMT right before input packet ``i``."""
            nonlocal length, entry
            upto(i)
            psi = self._out.psi()
            if joinable or self._layout.video < 0:  # with no video, any PAT + PMT is a place to join
                entry = length
                if self._first_entry < 0:
                    self._first_entry = entry
            pieces.append(psi)
            length += len(psi)
            self._psi_due = False

        def due_at(j: int) -> None:
            """After a dropped packet: a plain packet next takes the PAT + PMT that are due."""
            if self._psi_due and j < count and (codes[j] == BULK or codes[j] >= PLAIN):
                psi_before(j, False)

        stop = count
        for i, code in todo:
            p = i * PACKET_SIZE
            if code == BULK:  # a plain packet with an adaptation field
                if self._pcr(data, buf, p, now):
                    stop = i
                    self._resync(data[p:])
                    break
                if self._psi_due:
                    psi_before(i, False)
                continue
            if code == DROP:
                action = _GONE
            elif code == ES:
                action = self._es(data, buf, p, i, count, now)
            elif code == PAT:
                action = self._pat_packet(data, p)
            else:
                action = self._pmt_packet(data, p)
            if action is _HOLD:
                stop = i
                self._held = data[p:]
                break
            if action is _STOP:
                stop = i
                self.closed = True
                break
            if action is _RESYNC:
                stop = i
                self._resync(data[p:])
                break
            if action is _PSI or action is _GONE:
                upto(i)
                begin = i + 1
                if action is _PSI:
                    self._psi_due = True  # the source's PAT: ours goes before what comes next
                due_at(i + 1)
            elif action is _BEFORE:
                psi_before(i, True)
            elif self._psi_due:
                psi_before(i, False)
            if self._table is not table:
                # a new layout (or a stream's counter learned): the rest takes the new table
                upto(max(begin, i + 1))
                self._track_video(buf, begin, codes)
                self._track_plain(buf, plain, begin)
                first = self._first_entry
                tail, tail_entry = self._run(data[begin * PACKET_SIZE:], now)
                if first >= 0:
                    self._first_entry = first
                elif self._first_entry >= 0:
                    self._first_entry += length
                pieces.append(tail)
                return b"".join(pieces), (length + tail_entry if tail_entry is not None else entry)
        self._track_video(buf, stop, codes)
        self._track_plain(buf, plain, stop)
        if not pieces and not begin:  # nothing dropped or added: the chunk as rewritten
            return (bytes(buf) if stop == count else bytes(buf[:stop * PACKET_SIZE])), None
        upto(stop)
        return b"".join(pieces), entry

    def _track_video(self, buf: bytearray, stop: int, codes: bytes) -> None:
        """Remember the continuity counter of the last plain video packet before ``stop``."""
        if self._bulk_cc is None:
            return
        hi, lo = OUT_VIDEO >> 8, OUT_VIDEO & 0xFF
        for j in range(stop - 1, self._es_at.get(OUT_VIDEO, -1), -1):
            q = j * PACKET_SIZE
            if codes[j] == BULK and buf[q + 1] & 0x1F == hi and buf[q + 2] == lo:
                self._cc[OUT_VIDEO] = buf[q + 3] & 0x0F
                return

    def _track_plain(self, buf: bytearray, plain: list[tuple[list[int], bytes, int]], stop: int) -> None:
        """Remember each stream's last continuity counter among its plain packets before ``stop``."""
        for found, _, out in plain:
            last = next((i for i in reversed(found) if i < stop), -1)
            if last >= 0 and last > self._es_at.get(out, -1):
                self._cc[out] = buf[last * PACKET_SIZE + 3] & 0x0F

    # -- packets off the fast path ---------------------------------------------------

    def _es(self, data: bytes, buf: bytearray, p: int, i: int, count: int, now: float) -> object:
        """A packet of a mapped stream that is not a plain video packet."""
        b1, b3 = data[p + 1], data[p + 3]
        src = ((b1 & 0x1F) << 8) | data[p + 2]
        out = self._layout.mapping[src]
        payload = b3 & 0x10
        damaged = b1 & 0x80
        before = newly = False
        if self._closing and payload and b1 & 0x40 and not damaged:
            if src == self._anchor_pid():
                return _STOP  # the old source's last frame is complete: the switch goes here
            self._started.discard(src)  # no new audio frame of the old source begins
            return _GONE
        if payload and src not in self._started:
            if damaged or not b1 & 0x40:
                return _GONE  # a stream starts at its first PES, never in the middle of one
            self._started.add(src)
            newly = True
        if b3 & 0x20 and not damaged and self._pcr_jumped(data, p):
            return _RESYNC  # before anything of this packet is read onto the old clock
        if payload and b1 & 0x40 and not damaged:
            verdict = self._pes(data, buf, p, i, count, src, out, now)
            if verdict is _GONE:
                self._started.discard(src)
                return _GONE
            if verdict is _HOLD or verdict is _RESYNC:
                if newly:
                    self._started.discard(src)
                return verdict
            before = verdict is _BEFORE
        if b3 & 0x20 and not damaged and self._pcr(data, buf, p, now):
            return _RESYNC
        delta = self._delta.get(src)
        if delta is None:
            last = self._cc.get(out)
            delta = 0 if last is None else ((last + (1 if payload else 0)) - b3) & 0x0F
            self._delta[src] = delta
            if src == self._layout.video:
                self._build_table()  # the video's shift is known: its plain packets go fast
        counter = (b3 + delta) & 0x0F
        buf[p + 3] = (b3 & 0xF0) | counter
        if not damaged:  # a damaged packet's counter is noise: the next cut must not follow it
            self._cc[out] = counter
            self._es_at[out] = i
        if (src not in self._plain_srcs and src != self._layout.video and src in self._started
                and len(self._plain) < 200):
            self._build_table()  # a stream started and its counter is known: its plain packets go fast
        return _BEFORE if before else _KEEP

    def _anchor_pid(self) -> int:
        anchor = self._program.anchor if self._program is not None else None
        return anchor.pid if anchor is not None else -1

    def _pes(self, data: bytes, buf: bytearray, p: int, i: int, count: int, src: int, out: int,
             now: float) -> object:
        """Shift a PES header's PTS/DTS; GONE for a PES that would step back; BEFORE at random access."""
        stream = self._kinds.get(src)
        if stream is None or not stream.is_pes:
            return _KEEP
        if data[p + 3] & 0xC0:
            self._note("scrambled packets: passed on without shifting their timestamps")
            return _KEEP
        start = payload_start(data, p)
        if start < 0:
            return _KEEP
        at, more = header_positions(data, p + start, i, count, src)
        if more and len(data) - p < _HOLD_LIMIT:
            return _HOLD
        fields = stamp_fields(data, at)
        if fields is None:
            if more:
                self._note("a PES header spread over too many packets: passed on unshifted")
            return _KEEP
        pts_at, dts_at = fields
        if pts_at < 0:
            return _KEEP
        pts = read_stamp(data, at[pts_at:pts_at + 5])
        dts = read_stamp(data, at[dts_at:dts_at + 5]) if dts_at >= 0 else pts
        clock = self._timeline
        if clock.ts_jumped(src, dts):
            return _RESYNC
        if clock.pending and src == self._anchor_pid():
            pcr = read_pcr_base(data, p + 6) if src == self._pcr_pid() and pcr_offset(data, p) > 0 else None
            clock.place(dts, pcr, out, now)
        new_dts = clock.stamp(out, dts)
        if new_dts is None:
            return _GONE  # this stream's first PES after a cut overlaps the old stream's last
        write_stamp(buf, at[pts_at:pts_at + 5], pts + clock.ts_offset)
        if dts_at >= 0:
            write_stamp(buf, at[dts_at:dts_at + 5], new_dts)
        if out == OUT_VIDEO and self._is_random_access(data, p, start, stream.codec):
            return _BEFORE
        return _KEEP

    @staticmethod
    def _is_random_access(data: bytes, p: int, start: int, codec: str) -> bool:
        if random_access_flag(data, p):
            return True
        header = 9 + data[p + start + 8] if start + 9 <= PACKET_SIZE else PACKET_SIZE
        if start + header >= PACKET_SIZE:
            return False
        return starts_random_access(codec, data[p + start + header:p + PACKET_SIZE])

    def _pcr_pid(self) -> int:
        return self._program.pcr_pid if self._program is not None else -1

    def _pcr(self, data: bytes, buf: bytearray, p: int, now: float) -> bool:
        """Shift a packet's PCR (and OPCR) onto the output clock; True when the source's jumped."""
        clock = self._timeline
        if clock.pending:
            return False  # before the anchor's first PES: nothing of this source goes out yet
        if pcr_offset(data, p) > 0:
            on_pcr_pid = ((data[p + 1] & 0x1F) << 8) | data[p + 2] == self._pcr_pid()
            if on_pcr_pid and self._pcr_jumped(data, p):
                return True
            write_pcr_base(buf, p + 6, clock.pcr(read_pcr_base(data, p + 6), now, on_pcr_pid))
        at = opcr_offset(data, p)
        if at > 0:
            write_pcr_base(buf, p + at, read_pcr_base(data, p + at) + clock.pcr_offset)
        return False

    def _pcr_jumped(self, data: bytes, p: int) -> bool:
        """The packet's PCR (on the PCR PID) steps back or leaps ahead: the source's clock jumped."""
        if pcr_offset(data, p) < 0 or ((data[p + 1] & 0x1F) << 8) | data[p + 2] != self._pcr_pid():
            return False
        return self._timeline.pcr_jumped(read_pcr_base(data, p + 6), bool(data[p + 5] & 0x80))

    def _resync(self, rest: bytes) -> None:
        """
        The source's own clock jumped: re-enter it at its next key frame, as at a cut, so the
        output's timeline runs on instead of jumping with it.
        """
        self._note("the source's clock jumped: re-entered it at its next key frame")
        self._resync_rest = rest
        tables = self._tables
        self._finder = EntryFinder(program=self._program, pmt_pid=tables.pmt_pid, tsid=tables.tsid)

    def _pat_packet(self, data: bytes, p: int) -> object:
        if self._tables.pat(data, p):
            self._build_table()  # the PMT moved
        return _PSI

    def _pmt_packet(self, data: bytes, p: int) -> object:
        program = self._tables.pmt(data, p, self._program)
        for note in self._tables.notes:
            self._note(note)
        self._tables.notes.clear()
        if program is None:
            return _GONE
        self._adopt(program)  # a PMT that changed mid-source
        self._build_table()
        return _PSI

    def _note(self, text: str) -> None:
        if text not in self._noted:
            self._noted.add(text)
            self.notes.append(text)


#: what the per-packet handlers answer
_KEEP = object()  # rewritten in place
_GONE = object()  # dropped
_HOLD = object()  # needs the next chunk: hold from here
_STOP = object()  # the end of a closing source: nothing from here on
_RESYNC = object()  # the source's clock jumped here: find a new way in
_BEFORE = object()  # a random-access point: our PAT + PMT go right before it
_PSI = object()  # replaced by our PAT + PMT
