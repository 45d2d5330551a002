"""
The splicer's fast path for the steady state (no cut under way, no source closing): the PES
starts of the streams whose packets go through the PID table's fast path, restamped where
they are, and the PCRs that stay on their PID moved onto the output clock — what
``Rewriter.es`` and ``Rewriter.pcr`` would do, for the common packet, in a fraction of the
Python. ``chunk`` asks it first and hands the handlers whatever it declines.
"""

from __future__ import annotations

from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import NO_HEADER_STREAMS, WRAP, pes_random_access, write_pcr_base
from epgd.mpegts.splice.layout import OUT_VIDEO, slot_of
from epgd.mpegts.splice.rewrite import BEFORE, KEEP, Rewriter, Verdict
from epgd.mpegts.splice.timeline import TS_JUMP

#: the last byte a PES header read in place may start at (its PTS and DTS in the packet)
LAST_HEADER = PACKET_SIZE - 19


class Steady:
    """
    The steady state's fast path over one chunk (no cut under way, no source closing): the PES
    starts of the streams on a fast path restamped here, and PCRs that stay on their PID moved
    onto the output clock, as ``Rewriter.es`` and ``Rewriter.pcr`` would, for the common packet
    (whole, not scrambled, its PES header in the packet and with a PTS, no OPCR, its source's
    clock running on). A packet it declines (None, False) is left unchanged for the handlers,
    after ``flush`` hands the clock what was taken so far: each stream's run of PES goes to
    ``Timeline.stamped`` in one call, and each audio stream's last PES start is counted
    (``Rewriter.count_pes``: each start sets it anew).
    """

    __slots__ = ("rw", "clock", "data", "buf", "now", "streams", "pcr_src", "moves", "offset", "spread",
                 "runs", "last", "counts")

    def __init__(self, rw: Rewriter, data: bytes, buf: bytearray, now: float, streams: dict[int, int]) -> None:
        self.rw = rw
        self.clock = rw.timeline
        self.data = data
        self.buf = buf
        self.now = now
        self.streams = streams  # source PID -> output PID of the streams it restamps
        pcr_src = rw.pcr_pid()
        self.pcr_src = pcr_src
        # the PCR PID again when its PCRs move to OUT_VIDEO (-1: they stay): the handler's
        self.moves = pcr_src if rw.layout.mapping.get(pcr_src) != OUT_VIDEO else -1
        self.offset = offset = rw.timeline.ts_offset % WRAP
        # the shift spread over a PTS/DTS field's bits (markers and prefix clear), twice: adding
        # it to a field whose markers are set carries through them (``_shift_stamps``)
        field = (offset & 0x1C0000000) << 3 | (offset & 0x3FFF8000) << 2 | (offset & 0x7FFF) << 1
        self.spread = field << 40 | field
        self.runs: dict[int, list[int]] = {}  # source PID -> [dts, pts, ...] taken, for the clock
        self.last: dict[int, int | None] = {}  # source PID -> its last decode timestamp
        self.counts: dict[int, int] = {}  # output PID -> the index of its last audio PES start taken

    @classmethod
    def of(cls, rw: Rewriter, data: bytes, buf: bytearray, now: float) -> Steady | None:
        """The fast path now, or None while the handlers decide every packet."""
        clock = rw.timeline
        if rw.closing or clock.pending or rw.moved_pcr is not None or not rw.steady:
            return None
        started, delta, held = rw.started, rw.delta, rw.held
        streams = {src: target for src, (target, shift) in rw.steady.items()
                   if src in started and delta.get(src) == shift and src not in held
                   and clock.settled(slot_of(target))}
        return cls(rw, data, buf, now, streams) if streams else None

    def flush(self) -> None:
        """Hand over what was taken, before a handler reads anything (and at the chunk's end)."""
        if self.runs:
            clock, streams = self.clock, self.streams
            for src, run in self.runs.items():
                clock.stamped(src, slot_of(streams[src]), run)
            self.runs = {}
            self.last = {}
        if self.counts:
            rw, data = self.rw, self.data
            for target, i in self.counts.items():
                rw.count_pes(data, i * PACKET_SIZE, i, target, True)
            self.counts = {}

    def pes(self, p: int, i: int) -> Verdict | None:
        """The packet at ``p`` (``i`` in the chunk, coded ES) restamped: KEEP or BEFORE; None: declined."""
        data = self.data
        src = ((data[p + 1] & 0x1F) << 8) | data[p + 2]
        target = self.streams.get(src)
        b3 = data[p + 3]
        if target is None or data[p + 1] & 0x80 or b3 & 0xD0 != 0x10:  # damaged, scrambled or without payload
            return None
        pcr = False
        if b3 & 0x20:
            length = data[p + 4]
            if length and data[p + 5] & 0x18:
                if data[p + 5] & 0x08 or length < 7 or not self._pcr_stays(p, src):
                    return None  # an OPCR, or a PCR the handler reads
                pcr = True
            q = p + 5 + length
        else:
            q = p + 4
        if q - p > LAST_HEADER or data[q:q + 3] != b"\x00\x00\x01" or data[q + 3] in NO_HEADER_STREAMS \
                or data[q + 6] & 0xC0 != 0x80:
            return None
        flags = data[q + 7] >> 6
        if flags == 3 and data[q + 8] >= 10:
            s0, s1, s2, s3, s4, t0, t1, t2, t3, t4 = data[q + 9:q + 19]
            dts = (t0 & 0x0E) << 29 | t1 << 22 | (t2 >> 1) << 15 | t3 << 7 | t4 >> 1
        elif flags == 2 and data[q + 8] >= 5:
            s0, s1, s2, s3, s4 = data[q + 9:q + 14]
            dts = -1
        else:
            return None
        pts = (s0 & 0x0E) << 29 | s1 << 22 | (s2 >> 1) << 15 | s3 << 7 | s4 >> 1
        if dts < 0:
            dts = pts
        last = self.last.get(src, -1)
        if last == -1:
            last = self.last[src] = self.clock.source_ts(src)
        if last is not None and TS_JUMP[1] < (dts - last) % WRAP < WRAP + TS_JUMP[0]:
            return None  # the source's clock jumped: the handler re-enters it
        self.last[src] = dts
        run = self.runs.get(src)
        if run is None:
            self.runs[src] = [dts, pts]
        else:
            run += (dts, pts)
        _shift_stamps(data, self.buf, q + 9, flags == 3, self.spread)
        if pcr:
            self._pcr(p, src)
        rw = self.rw
        rw.cc[target] = self.buf[p + 3] & 0x0F  # shifted with the whole chunk
        rw.es_at[target] = i
        stream = rw.kinds[src]
        if stream.kind == "audio":
            self.counts[target] = i
            if src not in rw.frames_seen:
                rw.look_for_frames(data, p, src)  # whether its sound can be cut at whole frames
        elif target == rw.layout.video_out and pes_random_access(data, p, q - p, stream.codec):
            return BEFORE
        return KEEP

    def plain_pcr(self, p: int) -> bool:
        """A plain packet's PCR onto the output clock; False: declined (an OPCR, a PCR the handler reads)."""
        data = self.data
        if data[p + 4] < 7 or data[p + 5] & 0x18 != 0x10:
            return False
        src = ((data[p + 1] & 0x1F) << 8) | data[p + 2]
        if not self._pcr_stays(p, src):
            return False
        self._pcr(p, src)
        return True

    def _pcr_stays(self, p: int, src: int) -> bool:
        """The PCR at ``p`` goes out where it is, and does not show the source's clock jumping."""
        if src != self.pcr_src:
            return True
        if src == self.moves:
            return False
        data = self.data
        base = data[p + 6] << 25 | data[p + 7] << 17 | data[p + 8] << 9 | data[p + 9] << 1 | data[p + 10] >> 7
        return not self.clock.pcr_jumped(base, bool(data[p + 5] & 0x80))

    def _pcr(self, p: int, src: int) -> None:
        data = self.data
        base = data[p + 6] << 25 | data[p + 7] << 17 | data[p + 8] << 9 | data[p + 9] << 1 | data[p + 10] >> 7
        write_pcr_base(self.buf, p + 6, self.clock.pcr(base, self.now, src == self.pcr_src))


def _shift_stamps(data: bytes, buf: bytearray, at: int, both: bool, spread: int) -> None:
    """
    Add a shift (``spread``: over the fields' bits, ``Steady``) to the PTS at ``at`` and the DTS
    after it (``both``), modulo 2^33: with the marker bits set (and the prefixes clear) a carry
    runs through them from one part of the field into the next, and out of the top into a
    prefix bit that is masked off; prefixes and markers then go back as they were.
    """
    if both:
        x = int.from_bytes(data[at:at + 10], "big")
        buf[at:at + 10] = ((((x & 0x0FFFFFFFFF0FFFFFFFFF) | 0x01000100010100010001) + spread)
                           & 0x0EFFFEFFFE0EFFFEFFFE | x & 0xF100010001F100010001).to_bytes(10, "big")
    else:
        x = int.from_bytes(data[at:at + 5], "big")
        buf[at:at + 5] = ((((x & 0x0FFFFFFFFF) | 0x0100010001) + (spread & 0xFFFFFFFFFF))
                          & 0x0EFFFEFFFE | x & 0xF100010001).to_bytes(5, "big")
