"""
The splicer's hot path: one chunk of the current source's aligned packets onto the output.

A chunk is read whole, not packet by packet: one table lookup (numpy, over the packets'
bytes 1-2) gives every packet its new PID bytes, its code and its continuity counter shift,
which are written back for all packets at once (none at all when the source's PIDs and
counters are the output's already). What is left for Python is a short list: the packets of
the source's PSI, the ones that start a PES, carry a PCR, or belong to a stream whose
counter shift is not known yet. In the steady state (no cut under way, nothing closing) the
PES headers and PCRs among them are restamped by ``steady.Steady``; anything else goes to a
``Rewriter`` handler, one by one. A ``ChunkOutput`` assembles what comes out: runs of rewritten input, our
PAT + PMT between them, and where joiners may start.
"""

from __future__ import annotations

import numpy as np

from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import pcr_packet
from epgd.mpegts.splice.layout import (
    AF_MARKS,
    BULK,
    CC_LUT,
    CC_SHIFT,
    DROP,
    ES,
    OUT_VIDEO,
    PAT,
    PLAIN,
    PMT,
    positions,
)
from epgd.mpegts.splice.rewrite import BEFORE, GONE, KEEP, LAST, PSI, RESYNC, STOP, Rewriter, Verdict
from epgd.mpegts.splice.steady import Steady

#: code -> 1 for the packets a handler reads one by one (the source's PSI, a mapped stream's
#: packet off the fast path, a dropped one): one search finds them all
_OFF_PATH = bytes(1 if code in (PAT, PMT, ES, DROP) else 0 for code in range(256))
#: byte 5 (an adaptation field's flags) -> 1 when it says a PCR or an OPCR follows
_CLOCK_MARKS = bytes(1 if b & 0x18 else 0 for b in range(256))
_BULK = bytes([BULK])


class ChunkOutput:
    """
    What one chunk becomes. Input packets go out as runs of the rewritten buffer; our PAT +
    PMT are inserted between them, always just before the next packet that goes out, so how
    the input is chunked never changes the output. ``entry`` and ``first_entry``: the offsets
    of the last and first places a joiner may start (-1: none); ``stopped``: why the chunk
    ended early (HOLD, STOP, RESYNC) with ``rest``, the input from there on.
    """

    __slots__ = ("pieces", "length", "entry", "first_entry", "stopped", "rest", "_rw", "_buf", "_begin")

    def __init__(self, rw: Rewriter) -> None:
        self.pieces: list[bytes | bytearray] = []
        self.length = 0  # bytes in pieces
        self.entry = -1
        self.first_entry = -1
        self.stopped: Verdict | None = None
        self.rest = b""
        self._rw = rw
        self._buf = bytearray()  # the input being rewritten (after a table change: the rest of it)
        self._begin = 0  # its first packet not yet in pieces

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces)

    @property
    def begin(self) -> int:
        return self._begin

    def start(self, buf: bytearray) -> None:
        """Go on with ``buf``: the input (or, after a table change, the rest of it) rewritten."""
        self._buf = buf
        self._begin = 0

    def upto(self, i: int) -> None:
        """Input packets begin..i-1 go out as they are (rewritten in place)."""
        begin = self._begin
        if i > begin:
            self.pieces.append(self._buf[begin * PACKET_SIZE:i * PACKET_SIZE])
            self.length += (i - begin) * PACKET_SIZE
        self._begin = i

    def drop(self, i: int) -> None:
        """Input packet ``i`` does not go out."""
        self.upto(i)
        self._begin = i + 1

    def psi_before(self, i: int, joinable: bool) -> None:
        """Our PAT + PMT right before input packet ``i``: a joiner's way in before a key frame."""
        self.upto(i)
        rw = self._rw
        psi = rw.out.psi()
        if joinable or rw.layout.video < 0:  # with no video, any PAT + PMT is a place to join
            self.entry = self.length
            if self.first_entry < 0:
                self.first_entry = self.entry
        self.pieces.append(psi)
        self.length += len(psi)
        rw.psi_due = False

    def insert(self, i: int, packet: bytes) -> None:
        """A packet of ours right before input packet ``i`` (the PAT + PMT due go first)."""
        if self._rw.psi_due:
            self.psi_before(i, False)
        self.upto(i)
        self.pieces.append(packet)
        self.length += len(packet)

    def stop(self, why: Verdict, rest: bytes) -> None:
        self.stopped = why
        self.rest = rest

    def finish(self, stop: int, count: int) -> None:
        """The input's packets up to ``stop`` (of ``count``) went through."""
        if not self.pieces and not self._begin:  # nothing dropped or added: the chunk as rewritten
            buf = self._buf
            piece = bytes(buf) if stop == count else bytes(buf[:stop * PACKET_SIZE])
            self.pieces.append(piece)
            self.length += len(piece)
        else:
            self.upto(stop)


def rewrite(rw: Rewriter, data: bytes, now: float) -> ChunkOutput:
    """
    One chunk of the current source (whole packets) onto the output. A packet that changes
    the PID table (a new layout, a stream's counter shift learned) makes the rest of the chunk
    start over with the new table.
    """
    out = ChunkOutput(rw)
    rest: bytes | None = data
    while rest is not None:
        rest = _walk(rw, rest, now, out)
    return out


def _walk(rw: Rewriter, data: bytes, now: float, out: ChunkOutput) -> bytes | None:
    """``data`` through the current PID table; the input left when the table changed, else None."""
    count = len(data) // PACKET_SIZE
    if not count:
        return None
    table = rw.table
    entries = table[np.ndarray((count,), "<u2", data, 1, (PACKET_SIZE,))]
    codes = entries.tobytes()[2::4]  # each packet's code (``<u4``: bits 16-23 are byte 2)
    buf = bytearray(data)
    headers, counters = rw.table_moves
    if headers:
        np.ndarray((count,), "<u2", buf, 1, (PACKET_SIZE,))[:] = entries  # the low 16 bits
    if counters:
        view = np.ndarray((count,), np.uint8, buf, 3, (PACKET_SIZE,))
        view[:] = CC_LUT[(entries >> (CC_SHIFT - 8)) & 0xF00 | view]
    bulk = rw.bulk_cc is not None  # this pass's video packets went through the fast path
    # the packets off the fast path, in order: PSI, a mapped stream's, dropped, and plain ones
    # whose adaptation field carries a PCR or an OPCR
    todo = positions(1, codes.translate(_OFF_PATH))
    end = count * PACKET_SIZE
    marks = data[3:end:PACKET_SIZE].translate(AF_MARKS)
    if 1 in marks:
        clocks = int.from_bytes(marks, "big") & int.from_bytes(data[5:end:PACKET_SIZE].translate(_CLOCK_MARKS), "big")
        if clocks:
            found = [i for i in positions(1, clocks.to_bytes(count, "big")) if codes[i] == BULK or codes[i] >= PLAIN]
            if found:
                todo += found
                todo.sort()
    rw.es_at.clear()
    rw.pes_at.clear()
    out.start(buf)
    if rw.psi_due and (codes[0] == BULK or codes[0] >= PLAIN):
        out.psi_before(0, False)  # due since the end of the last chunk: right before what comes next
    stop = count
    fast = Steady.of(rw, data, buf, now)
    for i in todo:
        p = i * PACKET_SIZE
        code = codes[i]
        if code == BULK or code >= PLAIN:  # a plain packet with a PCR or an OPCR
            if fast is None or not fast.plain_pcr(p):
                if fast is not None:
                    fast.flush()
                if rw.pcr(data, buf, p, now):
                    stop = i
                    out.stop(RESYNC, data[p:])
                    break
                if rw.moved_pcr is not None:
                    _send_moved_pcr(rw, buf, codes, i, out, bulk)
                    fast = Steady.of(rw, data, buf, now)
                    if not data[p + 3] & 0x10:  # nothing but the PCR it carried
                        out.drop(i)
                        continue
            if rw.psi_due:
                out.psi_before(i, False)
            continue
        verdict: Verdict | None = None
        if code == ES:
            if fast is not None:
                verdict = fast.pes(p, i)
                if verdict is None:
                    fast.flush()
            if verdict is None:
                verdict = rw.es(data, buf, p, i, count, now)
                fast = Steady.of(rw, data, buf, now)
        elif code == DROP:
            verdict = GONE
        else:
            if fast is not None:
                fast.flush()
            # a table change starts the rest over (below); nothing else Steady reads changes
            verdict = rw.pat(data, p) if code == PAT else rw.pmt(data, p)
        if rw.moved_pcr is not None:
            _send_moved_pcr(rw, buf, codes, i, out, bulk)
            fast = Steady.of(rw, data, buf, now)
        if rw.extra:  # sound cut at whole frames: our packets of a held PES
            out.insert(i, b"".join(rw.extra))
            rw.extra.clear()
        if verdict is KEEP:
            if rw.psi_due:
                out.psi_before(i, False)
        elif verdict is LAST:  # it goes out; the closing source ends right after it
            if rw.psi_due:
                out.psi_before(i, False)
            stop = i + 1
            out.stop(STOP, data[stop * PACKET_SIZE:])
            break
        elif verdict is BEFORE:
            out.psi_before(i, True)
        elif verdict is GONE or verdict is PSI:
            out.drop(i)
            if verdict is PSI:
                rw.psi_due = True  # the source's PAT: ours goes before what comes next
            j = i + 1  # a plain packet next takes the PAT + PMT that are due
            if rw.psi_due and j < count and (codes[j] == BULK or codes[j] >= PLAIN):
                out.psi_before(j, False)
        else:  # HOLD, STOP, RESYNC: nothing from here on goes out now
            stop = i
            out.stop(verdict, data[p:])
            break
        if rw.table is not table:
            # a new layout (or a stream's counter learned): the rest takes the new table
            out.upto(max(out.begin, i + 1))
            _track_video(rw, buf, out.begin, codes, bulk)
            _track_plain(rw, data, buf, codes, marks, out.begin)
            return data[out.begin * PACKET_SIZE:]
    if fast is not None:
        fast.flush()
    _track_video(rw, buf, stop, codes, bulk)
    _track_plain(rw, data, buf, codes, marks, stop)
    out.finish(stop, count)
    return None


def _send_moved_pcr(rw: Rewriter, buf: bytearray, codes: bytes, i: int, out: ChunkOutput, bulk: bool) -> None:
    """
    The PCR taken off packet ``i`` goes out first, alone, on OUT_VIDEO (the output's one PCR
    PID), its continuity counter repeating the last video packet's (no payload: no step).
    """
    assert rw.moved_pcr is not None
    base, extension = rw.moved_pcr
    rw.moved_pcr = None
    counter = _video_counter(rw, buf, codes, i, bulk)
    if counter is None:
        counter = rw.cc[OUT_VIDEO] = 0
    out.insert(i, pcr_packet(OUT_VIDEO, counter, base, extension))


def _video_counter(rw: Rewriter, buf: bytearray, codes: bytes, i: int, bulk: bool) -> int | None:
    """The continuity counter of the last packet on OUT_VIDEO (the PCR PID) out before input packet ``i``."""
    if bulk and rw.layout.video_out == OUT_VIDEO:
        hi, lo = OUT_VIDEO >> 8, OUT_VIDEO & 0xFF
        for j in range(i - 1, rw.es_at.get(OUT_VIDEO, -1), -1):
            q = j * PACKET_SIZE
            if codes[j] == BULK and buf[q + 1] & 0x1F == hi and buf[q + 2] == lo:
                return buf[q + 3] & 0x0F
    return rw.cc.get(OUT_VIDEO)


def _track_video(rw: Rewriter, buf: bytearray, stop: int, codes: bytes, bulk: bool) -> None:
    """
    Remember the continuity counter of the last plain video packet before ``stop``, when this
    pass sent video through the fast path (``bulk``: read before a table change that may have
    taken the video off it, as a closing source's does).
    """
    if not bulk:
        return
    video = rw.layout.video_out
    hi, lo = video >> 8, video & 0xFF
    after = rw.es_at.get(video, -1) + 1
    j = codes.rfind(_BULK, after, stop)
    while j >= 0:  # BULK is the video's and the null packets'
        q = j * PACKET_SIZE
        if buf[q + 1] & 0x1F == hi and buf[q + 2] == lo:
            rw.cc[video] = buf[q + 3] & 0x0F
            return
        j = codes.rfind(_BULK, after, j)


def _track_plain(rw: Rewriter, data: bytes, buf: bytearray, codes: bytes, marks: bytes, stop: int) -> None:
    """
    Remember each stream's last continuity counter among its plain packets before ``stop``,
    and count what they carried of an audio PES under way (``Rewriter.pes_left``); ``marks``:
    1 for each packet with an adaptation field.
    """
    left = rw.pes_left
    for code, _, pid in rw.plain:
        mark = bytes([code])
        last = codes.rfind(mark, 0, stop)
        if last < 0:
            continue
        if last > rw.es_at.get(pid, -1):
            rw.cc[pid] = buf[last * PACKET_SIZE + 3] & 0x0F
        if pid in left:
            began = rw.pes_at.get(pid, -1)  # the plain packets before belong to a PES that is over
            size = 184 * codes.count(mark, began + 1, stop)
            j = marks.find(1, began + 1, stop)
            while j >= 0:
                if codes[j] == code:  # an adaptation field (the PES's last packet's stuffing)
                    size -= 1 + data[j * PACKET_SIZE + 4]
                j = marks.find(1, j + 1, stop)
            left[pid] -= size
