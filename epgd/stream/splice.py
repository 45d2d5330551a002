"""
One splicer per channel: whatever sources a channel cuts between, its clients receive ONE
unbroken program (SPEC §7.1) — the FFmpeg inside Plex, Jellyfin, Emby and Channels DVR keeps
only the streams it probed first and copies timestamps as they come, so a raw splice makes it
lose the picture or break its timeline.

The splicer owns the output layout (PAT, PMT on 0x1000, video 0x100, audio 0x101.., others
0x110..), a continuity counter per output PID that runs on across cuts, the PMT version, and
one clock: at each cut the new source's PCR/PTS/DTS are shifted so they continue the old ones
(modulo 2^33). It is a pure function of its input bytes, the wall-clock times it is given and
its state: no reactor, no I/O, no logging (notes are collected for the channel to log once).

Hot path: most packets only get their PID bytes (one table lookup per packet, written back
with extended-slice assignment) and continuity counter (``bytes.translate``) rewritten; only
packets that start a PES, carry a PCR, belong to audio/other streams or to PSI take a
per-packet path.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable

from epgd.stream.entry import ENTRY_WAIT_BYTES, Entry, EntryFinder
from epgd.stream.pes import (
    HEADER_NEEDED,
    WRAP,
    opcr_offset,
    pcr_offset,
    random_access_flag,
    read_pcr_base,
    read_stamp,
    ring_diff,
    stamp_fields,
    starts_random_access,
    write_pcr_base,
    write_stamp,
)
from epgd.stream.psi import (
    NULL_PID,
    PAT_PID,
    ProgramMap,
    SectionAssembler,
    Stream,
    codecs_of,
    packetize,
    parse_pat,
    parse_pmt,
    pat_section,
    payload_start,
    pmt_section,
)
from epgd.stream.ts import PACKET_SIZE, find_pat, rfind_pat

OUT_PMT = 0x1000
OUT_VIDEO = 0x100
OUT_AUDIO = tuple(range(0x101, 0x110))
OUT_OTHER = tuple(range(0x110, 0x1FF))
OUT_PCR_ONLY = 0x1FF

#: per-packet codes the PID table gives besides the new PID bytes
_BULK, _PAT, _PMT, _ES, _DROP = 0, 1, 2, 3, 4
#: a frame when nothing better is known (25 fps), and the range frame estimates are kept in
_DEFAULT_FRAME = 3600
_FRAME_RANGE = (300, 9000)
#: how far ahead of its PCR a source carries its frames, when the splicer cannot tell
_DEFAULT_LEAD = 45000
#: a source's own clock jumped (it looped a file, its encoder restarted) when its PCR steps
#: back or leaps ahead this far, or a stream's decode timestamps do
_PCR_JUMP = (-9000, 2 * 90000)
_TS_JUMP = (-9000, 10 * 90000)
#: a PES header spread over more packets than this many is passed on unshifted
_HOLD_LIMIT = 64 * PACKET_SIZE
_LITTLE = sys.byteorder == "little"
_AF_MARKS = bytes(1 if b & 0x20 else 0 for b in range(256))


def _cc_table(delta: int) -> bytes:
    """``bytes.translate`` table adding ``delta`` to a byte 3's continuity counter."""
    return bytes((b & 0xF0) | ((b + delta) & 0x0F) for b in range(256))


_CC_TABLES = tuple(_cc_table(d) for d in range(16))


def _key(b1: int, b2: int) -> int:
    """The table index of a packet's bytes 1-2 as ``memoryview.cast("H")`` reads them."""
    return b1 | b2 << 8 if _LITTLE else b1 << 8 | b2


def _positions(code: int, codes: bytes) -> list[int]:
    out = []
    mark = bytes([code])
    at = codes.find(mark)
    while at != -1:
        out.append(at)
        at = codes.find(mark, at + 1)
    return out


class Splicer:
    """
    The output program of one channel. ``cut()`` (or ``enter()`` with an entry found on the
    side) whenever the next bytes come from another source or the same one anew; ``feed()``
    the current source's aligned packets. ``entry`` is where, in the last output, a joining
    client may start (a PAT + PMT right before a random-access point), or -1.
    """

    def __init__(self, on_codecs: Callable[[str, str], None] | None = None) -> None:
        self.on_codecs = on_codecs
        self.entry = -1
        self.first_entry = -1  # ... and where the first one is, for viewers waiting for one
        self._first_entry = -1
        self.codecs = ""
        self.notes: list[str] = []  # things worth one log line, for the channel to drain
        self._noted: set[str] = set()
        # the output program
        self._service: int | None = None
        self._tsid = 1
        self._layout: tuple[Stream, ...] = ()  # output streams (output PIDs)
        self._pmt_key: tuple[object, ...] | None = None
        self._pmt_version = 0
        self._pmt: bytes = b""
        self._pat: bytes = b""
        self._cc: dict[int, int] = {}  # output PID -> continuity counter of its last packet
        self._psi_due = False  # our PAT + PMT go before the next packet out
        # the clock
        self._ts_offset = 0
        self._pcr_offset = 0
        self._last_pcr: int | None = None
        self._last_pcr_at = 0.0
        self._last_ts: dict[int, int] = {}  # output PID -> last decode timestamp
        self._frame: dict[int, int] = {}  # output PID -> last decode-timestamp step (a frame)
        self._span: dict[int, int] = {}  # output PID -> how long its last PES lasted
        # the current source
        self._finder: EntryFinder | None = EntryFinder()
        self._program: ProgramMap | None = None
        self._program_number = 0
        self._pmt_pid = -1
        self._pat_in = SectionAssembler()
        self._pmt_in = SectionAssembler()
        self._pmt_raw = b""
        self._map: dict[int, int] = {}  # source PID -> output PID
        self._kinds: dict[int, Stream] = {}  # source PID -> its stream
        self._delta: dict[int, int] = {}  # source PID -> continuity counter shift
        self._started: set[int] = set()
        self._guard: set[int] = set()  # output PIDs whose timestamps must pass their last one
        self._offset_pending = False
        self._pcr_pending = False
        self._frame_now = _DEFAULT_FRAME
        self._entry_pcr: int | None = None
        self._bulk = -1  # source PID of the video, rewritten on the fast path
        self._bulk_cc: bytes | None = None
        self._table: list[int] = []
        self._held = b""
        self._video_es_at = -1  # in the chunk being read: the last video packet off the fast path
        self._closing = False
        self.closed = False
        self._resync_rest = b""  # input still to read after the source's clock jumped
        self._src_pcr: int | None = None  # the source's last PCR and decode timestamps,
        self._src_ts: dict[int, int] = {}  # to notice when its own clock jumps

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
        the way in, else through the hot path; a discontinuity in the source's own clock makes
        the hot path stop and hand the rest back to a finder. (output, first entry, last entry)
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
        program = entry.program
        assert program is not None and program.anchor is not None  # what "rap"/"any" entries hold
        if self._service is None:
            self._service, self._tsid = program.program, entry.tsid
            self._pat = pat_section(self._tsid, self._service, OUT_PMT, 0)
        self._program_number = program.program
        self._pmt_pid = entry.pmt_pid
        self._reset_source()
        self._set_program(program)
        anchor = program.anchor
        first_cc = entry.data[3] & 0x0F
        last = self._cc.get(self._map[anchor.pid])
        self._delta[anchor.pid] = 0 if last is None else (last + 1 - first_cc) & 0x0F
        self._started.add(anchor.pid)
        self._offset_pending = self._last_pcr is not None or bool(self._last_ts)
        self._entry_pcr = entry.pcr
        self._guard = set(self._last_ts) - {self._map[anchor.pid]}
        self._build_table()
        self._psi_due = True  # the new source starts at our PAT + PMT and its key frame
        out, entry_at = self._run(entry.data, now)
        return out, 0, (entry_at if entry_at is not None else 0)

    def _reset_source(self) -> None:
        self._pat_in = SectionAssembler()
        self._pmt_in = SectionAssembler()
        self._pmt_raw = b""
        self._map = {}
        self._kinds = {}
        self._delta = {}
        self._started = set()
        self._guard = set()
        self._bulk = -1
        self._bulk_cc = None
        self._src_pcr = None
        self._src_ts = {}
        self._build_table()

    # -- the output program ----------------------------------------------------------

    def _set_program(self, program: ProgramMap) -> None:
        """Map a source program onto the fixed layout; a new PMT version when it differs."""
        mapping: dict[int, int] = {}
        audio = iter(OUT_AUDIO)
        other = iter(OUT_OTHER)
        layout = []
        for stream in program.streams:
            if stream.pid in mapping or stream.pid in (PAT_PID, NULL_PID):
                continue
            if stream.kind == "video" and OUT_VIDEO not in mapping.values():
                target = OUT_VIDEO
            elif stream.kind == "audio":
                target = next(audio, -1)
            else:
                target = next(other, -1)
            if target < 0:
                self._note("the PMT lists more streams than the output layout holds; extra ones dropped")
                continue
            mapping[stream.pid] = target
            layout.append(Stream(stream.stream_type, target, stream.descriptors, stream.kind, stream.codec))
        pcr = program.pcr_pid
        if pcr != NULL_PID and pcr not in mapping:
            mapping[pcr] = OUT_PCR_ONLY
        pcr_out = mapping.get(pcr, NULL_PID)
        layout.sort(key=lambda s: s.pid)
        key = (pcr_out, program.info, tuple((s.stream_type, s.pid, s.descriptors) for s in layout))
        old_codecs = self.codecs
        self.codecs = codecs_of(layout)
        if key != self._pmt_key:
            if self._pmt_key is not None:
                self._pmt_version = (self._pmt_version + 1) & 0x1F
            self._pmt_key = key
            self._pmt = pmt_section(self._service or program.program, pcr_out, program.info,
                                    [(s.stream_type, s.pid, s.descriptors) for s in layout],
                                    self._pmt_version)
        if old_codecs and old_codecs != self.codecs and self.on_codecs is not None:
            self.on_codecs(old_codecs, self.codecs)
        self._program = program
        self._layout = tuple(layout)
        self._map = mapping
        self._kinds = {s.pid: s for s in program.streams}
        video = program.video
        self._bulk = video.pid if video is not None and mapping.get(video.pid) == OUT_VIDEO else -1
        self._build_table()

    def _psi(self) -> bytes:
        """Our PAT and PMT, with their PIDs' continuity counters run on."""
        if not self._pat or not self._pmt:
            return b""
        out = []
        for pid, section in ((PAT_PID, self._pat), (OUT_PMT, self._pmt)):
            packets = packetize(pid, section, (self._cc.get(pid, 15) + 1) & 0x0F)
            self._cc[pid] = packets[-1][3] & 0x0F
            out += packets
        return b"".join(out)

    def _build_table(self) -> None:
        """
        For every value of a packet's bytes 1-2: the new bytes 1-2 and a code — BULK for the
        video's packets that start nothing (and null packets), ES for every other packet of a
        mapped stream, PAT/PMT for the source's tables, DROP for everything else.
        """
        table = [_DROP << 16] * 65536
        bulk_ready = self._bulk >= 0 and self._bulk in self._delta
        self._bulk_cc = _CC_TABLES[self._delta[self._bulk]] if bulk_ready else None
        entries = [(NULL_PID, NULL_PID, _BULK), (PAT_PID, PAT_PID, _PAT)]
        if self._pmt_pid >= 0:
            entries.append((self._pmt_pid, OUT_PMT, _PMT))
        entries += [(src, out, _ES) for src, out in self._map.items()]
        for src, out, code in entries:
            for flags in range(8):  # transport_error, payload_unit_start, priority
                b1 = flags << 5 | src >> 8
                value_b1 = flags << 5 | out >> 8
                this = code
                if code == _ES and src == self._bulk and bulk_ready and not flags & 0x6:
                    this = _BULK  # the video's plain packets: no error, no PES start
                table[_key(b1, src & 0xFF)] = value_b1 | (out & 0xFF) << 8 | this << 16
        self._table = table

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
        mapped = array("I", [table[v] for v in memoryview(pairs).cast("H")])
        if not _LITTLE:
            mapped.byteswap()
        raw = mapped.tobytes()
        buf[1::PACKET_SIZE] = raw[0::4]
        buf[2::PACKET_SIZE] = raw[1::4]
        codes = raw[2::4]
        if self._bulk_cc is not None:
            buf[3::PACKET_SIZE] = data[3::PACKET_SIZE].translate(self._bulk_cc)
        todo = [(i, code) for code in (_PAT, _PMT, _ES, _DROP) for i in _positions(code, codes)]
        marks = data[3::PACKET_SIZE].translate(_AF_MARKS)
        todo += [(i, _BULK) for i in _positions(1, marks) if codes[i] == _BULK]
        todo.sort()
        self._video_es_at = -1
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
            psi = self._psi()
            if joinable or self._bulk < 0:  # with no video, any PAT + PMT is a place to join
                entry = length
                if self._first_entry < 0:
                    self._first_entry = entry
            pieces.append(psi)
            length += len(psi)
            self._psi_due = False

        def due_at(j: int) -> None:
            """After a dropped packet: a plain packet next takes the PAT + PMT that are due."""
            if self._psi_due and j < count and codes[j] == _BULK:
                psi_before(j, False)

        stop = count
        for i, code in todo:
            p = i * PACKET_SIZE
            if code == _BULK:  # a plain video packet with an adaptation field
                if self._pcr(data, buf, p, now):
                    stop = i
                    self._resync(data[p:])
                    break
                if self._psi_due:
                    psi_before(i, False)
                continue
            if code == _DROP:
                action = _GONE
            elif code == _ES:
                action = self._es(data, buf, p, i, count, now)
            elif code == _PAT:
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
                # a new layout (or the video's counter learned): the rest takes the new table
                upto(max(begin, i + 1))
                self._track_video(buf, begin, codes)
                first = self._first_entry
                tail, tail_entry = self._run(data[begin * PACKET_SIZE:], now)
                if first >= 0:
                    self._first_entry = first
                elif self._first_entry >= 0:
                    self._first_entry += length
                pieces.append(tail)
                return b"".join(pieces), (length + tail_entry if tail_entry is not None else entry)
        self._track_video(buf, stop, codes)
        if not pieces and not begin:  # nothing dropped or added: the chunk as rewritten
            return (bytes(buf) if stop == count else bytes(buf[:stop * PACKET_SIZE])), None
        upto(stop)
        return b"".join(pieces), entry

    def _track_video(self, buf: bytearray, stop: int, codes: bytes) -> None:
        """Remember the continuity counter of the last plain video packet before ``stop``."""
        if self._bulk_cc is None:
            return
        hi, lo = OUT_VIDEO >> 8, OUT_VIDEO & 0xFF
        for j in range(stop - 1, self._video_es_at, -1):
            q = j * PACKET_SIZE
            if codes[j] == _BULK and buf[q + 1] & 0x1F == hi and buf[q + 2] == lo:
                self._cc[OUT_VIDEO] = buf[q + 3] & 0x0F
                return

    # -- packets off the fast path ---------------------------------------------------

    def _es(self, data: bytes, buf: bytearray, p: int, i: int, count: int, now: float) -> object:
        """A packet of a mapped stream that is not a plain video packet."""
        b1, b3 = data[p + 1], data[p + 3]
        src = ((b1 & 0x1F) << 8) | data[p + 2]
        out = self._map[src]
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
            if src == self._bulk:
                self._build_table()  # the video's shift is known: its plain packets go fast
        counter = (b3 + delta) & 0x0F
        buf[p + 3] = (b3 & 0xF0) | counter
        if not damaged:  # a damaged packet's counter is noise: the next cut must not follow it
            self._cc[out] = counter
        if out == OUT_VIDEO:
            self._video_es_at = i
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
        positions = list(range(p + start, p + PACKET_SIZE))
        need = HEADER_NEEDED
        if len(positions) >= 8:
            flags = data[positions[7]] >> 6
            need = 19 if flags == 3 else 14 if flags == 2 else 9
        j = i + 1
        while len(positions) < need and j < count:  # a PES header split across packets
            q = j * PACKET_SIZE
            if ((data[q + 1] & 0x1F) << 8) | data[q + 2] == src:
                if data[q + 1] & 0xC0 or (s := payload_start(data, q)) < 0:
                    break
                positions += range(q + s, q + PACKET_SIZE)
            j += 1
        if len(positions) < need and j >= count and len(data) - p < _HOLD_LIMIT:
            return _HOLD
        fields = stamp_fields(data, positions)
        if fields is None:
            if len(positions) < need:
                self._note("a PES header spread over too many packets: passed on unshifted")
            return _KEEP
        pts_at, dts_at = fields
        if pts_at < 0:
            return _KEEP
        pts = read_stamp(data, positions[pts_at:pts_at + 5])
        dts = read_stamp(data, positions[dts_at:dts_at + 5]) if dts_at >= 0 else pts
        last_source = self._src_ts.get(src)
        if last_source is not None and not _TS_JUMP[0] <= ring_diff(dts, last_source) <= _TS_JUMP[1]:
            return _RESYNC
        self._src_ts[src] = dts
        if self._offset_pending and src == self._anchor_pid():
            pcr = read_pcr_base(data, p + 6) if src == self._pcr_pid() and pcr_offset(data, p) > 0 else None
            self._set_offsets(dts, pcr if pcr is not None else self._entry_pcr, out, now)
        offset = self._ts_offset
        new_dts = (dts + offset) % WRAP
        last = self._last_ts.get(out)
        if out in self._guard:
            # This stream's first PES after a cut must start after the old stream's last one
            # ended (a PES of audio holds several frames): else drop it and wait for the next.
            if last is not None and ring_diff(new_dts, last) < max(1, self._span.get(out, 1)):
                return _GONE
            self._guard.discard(out)
        write_stamp(buf, positions[pts_at:pts_at + 5], pts + offset)
        if dts_at >= 0:
            write_stamp(buf, positions[dts_at:dts_at + 5], new_dts)
        if last is not None:
            step = ring_diff(new_dts, last)
            if _FRAME_RANGE[0] <= step <= _FRAME_RANGE[1]:
                self._frame[out] = step
            if 0 < step <= 2 * 90000:
                self._span[out] = step
        self._last_ts[out] = new_dts
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
        if self._offset_pending:
            return False  # before the anchor's first PES: nothing of this source goes out yet
        if pcr_offset(data, p) > 0:
            source = read_pcr_base(data, p + 6)
            if ((data[p + 1] & 0x1F) << 8) | data[p + 2] == self._pcr_pid():
                if self._pcr_jumped(data, p):
                    return True
                self._src_pcr = source
                if self._pcr_pending:
                    self._place_pcr(source, now)
                base = (source + self._pcr_offset) % WRAP
                self._last_pcr = base
                self._last_pcr_at = now
            else:
                base = (source + self._pcr_offset) % WRAP
            write_pcr_base(buf, p + 6, base)
        at = opcr_offset(data, p)
        if at > 0:
            write_pcr_base(buf, p + at, read_pcr_base(data, p + at) + self._pcr_offset)
        return False

    def _pcr_jumped(self, data: bytes, p: int) -> bool:
        """The packet's PCR (on the PCR PID) steps back or leaps ahead: the source's clock jumped."""
        if self._src_pcr is None or pcr_offset(data, p) < 0:
            return False
        if ((data[p + 1] & 0x1F) << 8) | data[p + 2] != self._pcr_pid():
            return False
        step = ring_diff(read_pcr_base(data, p + 6), self._src_pcr)
        return not _PCR_JUMP[0] <= step <= _PCR_JUMP[1] or bool(data[p + 5] & 0x80)

    def _resync(self, rest: bytes) -> None:
        """
        The source's own clock jumped: re-enter it at its next key frame, as at a cut, so the
        output's timeline runs on instead of jumping with it.
        """
        self._note("the source's clock jumped: re-entered it at its next key frame")
        self._resync_rest = rest
        self._finder = EntryFinder(program=self._program, pmt_pid=self._pmt_pid, tsid=self._tsid)

    def _set_offsets(self, dts: int, pcr: int | None, out: int, now: float) -> None:
        """
        The new source's clock onto the output's: its PCR continues the last output PCR in
        real time; its first frame comes at least one frame after the last one out. When
        those disagree (the new source carries its frames closer to its clock than the old
        one), the frames win and the PCR takes at most one frame more than real time, so
        neither goes backwards and the PCR never leaps ahead.
        """
        self._offset_pending = False
        frame = self._frame.get(out, _DEFAULT_FRAME)
        last = self._last_ts.get(out)
        if pcr is None:
            lead = _DEFAULT_LEAD
            if last is not None and self._last_pcr is not None:
                lead = min(max(ring_diff(last, self._last_pcr), 0), 2 * 90000)
            pcr = (dts - lead) % WRAP
        real = None
        if self._last_pcr is not None:
            waited = max(0, round((now - self._last_pcr_at) * 90000))
            real = (self._last_pcr + waited - pcr) % WRAP
        need = (last + frame - dts) % WRAP if last is not None else None
        if real is None:
            ts = need if need is not None else 0
        elif need is None or ring_diff(need, real) <= 0:
            ts = real
        else:
            ts = need
        self._ts_offset = self._pcr_offset = ts
        self._frame_now = frame
        self._pcr_pending = self._last_pcr is not None  # settled at the first PCR that goes out

    def _place_pcr(self, source: int, now: float) -> None:
        """
        The PCR's shift, at the first PCR of a new source that goes out (which may come some
        packets after its way in): the frames' shift, unless that would take the PCR more than
        a frame past the wall clock; then real time plus a frame.
        """
        self._pcr_pending = False
        assert self._last_pcr is not None
        waited = max(0, round((now - self._last_pcr_at) * 90000))
        real = (self._last_pcr + waited - source) % WRAP
        if ring_diff(self._ts_offset, real) > self._frame_now:
            self._pcr_offset = (real + self._frame_now) % WRAP

    def _pat_packet(self, data: bytes, p: int) -> object:
        for section in self._pat_in.feed(data, p):
            _, programs = parse_pat(section)
            if not programs:
                continue
            number, pmt_pid = next((x for x in programs if x[0] == self._program_number), programs[0])
            self._program_number = number
            if pmt_pid != self._pmt_pid:
                self._pmt_pid = pmt_pid
                self._pmt_in = SectionAssembler()
                self._pmt_raw = b""
                self._build_table()
        return _PSI

    def _pmt_packet(self, data: bytes, p: int) -> object:
        changed = False
        for section in self._pmt_in.feed(data, p):
            if section == self._pmt_raw:
                continue
            self._pmt_raw = section
            try:
                program = parse_pmt(section)
            except ValueError as e:
                self._note(f"a PMT that does not parse ({e}): kept the last one")
                continue
            if program.program != self._program_number or program == self._program:
                continue
            if program.anchor is None:
                self._note("a PMT with no audio or video: kept the last one")
                continue
            self._set_program(program)  # a PMT that changed mid-source
            changed = True
        return _PSI if changed else _GONE

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
        self._finder: EntryFinder | None = EntryFinder("pat")
        self._probe: EntryFinder | None = EntryFinder()

    def close(self) -> None:
        self.closed = True  # passthrough cuts at any packet boundary

    def cut(self) -> None:
        self._finder = EntryFinder("pat")
        self.closed = False

    def finder(self) -> EntryFinder:
        return EntryFinder("pat")

    @property
    def entering(self) -> bool:
        return self._finder is not None

    def enter(self, entry: Entry, now: float) -> bytes:
        self._finder = None
        self.closed = False
        self._probe = EntryFinder()
        out = self._pass(entry.data)
        self.first_entry = 0  # a new source starts here, at its PAT
        return out

    def feed(self, data: bytes, now: float) -> bytes:
        self.entry = self.first_entry = -1
        if self.closed:
            return b""
        if self._finder is not None:
            found = self._finder.feed(data)
            if found is None:
                return b""
            return self.enter(found, now)
        return self._pass(data)

    def _pass(self, data: bytes) -> bytes:
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
