"""
The splicer's hot path: one chunk of the current source's aligned packets onto the output.

Most packets only get their PID bytes (one table lookup per packet, written back with
extended-slice assignment) and continuity counter (``bytes.translate``) rewritten; only
packets that start a PES, carry a PCR, belong to a stream whose counter shift is not known
yet or to PSI go to a ``Rewriter`` handler, one by one. A ``ChunkOutput`` assembles what
comes out: runs of rewritten input, our PAT + PMT between them, and where joiners may start.
"""

from __future__ import annotations

import sys
from array import array
from operator import itemgetter

from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import pcr_packet
from epgd.mpegts.splice.layout import AF_MARKS, BULK, DROP, ES, OUT_VIDEO, PAT, PLAIN, PMT, positions
from epgd.mpegts.splice.rewrite import BEFORE, GONE, KEEP, LAST, PSI, RESYNC, STOP, Rewriter, Verdict

_LITTLE = sys.byteorder == "little"
#: code -> 1 for the packets a handler reads one by one (the source's PSI, a mapped stream's
#: packet off the fast path, a dropped one): one search finds them all
_OFF_PATH = bytes(1 if code in (PAT, PMT, ES, DROP) else 0 for code in range(256))


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
    buf = bytearray(data)
    pairs = bytearray(2 * count)
    pairs[0::2] = data[1::PACKET_SIZE]
    pairs[1::2] = data[2::PACKET_SIZE]
    table = rw.table
    mapped = array("I", itemgetter(*memoryview(pairs).cast("H"))(table) if count > 1 else
                   [table[memoryview(pairs).cast("H")[0]]])
    if not _LITTLE:
        mapped.byteswap()
    raw = mapped.tobytes()
    buf[1::PACKET_SIZE] = raw[0::4]
    buf[2::PACKET_SIZE] = raw[1::4]
    codes = raw[2::4]
    bulk = rw.bulk_cc is not None  # this pass's video packets went through the fast path
    if rw.bulk_cc is not None:
        buf[3::PACKET_SIZE] = data[3::PACKET_SIZE].translate(rw.bulk_cc)
    plain = [(positions(code, codes), cc, pid) for code, cc, pid in rw.plain]
    for found, cc, _ in plain:
        for i in found:
            q = i * PACKET_SIZE + 3
            buf[q] = cc[data[q]]
    # the packets off the fast path, in order: PSI, a mapped stream's, dropped, and plain ones
    # that carry an adaptation field (a PCR, maybe)
    todo = [(i, codes[i]) for i in positions(1, codes.translate(_OFF_PATH))]
    marks = data[3::PACKET_SIZE].translate(AF_MARKS)
    todo += [(i, BULK) for i in positions(1, marks) if codes[i] == BULK or codes[i] >= PLAIN]
    todo.sort()
    rw.es_at.clear()
    rw.pes_at.clear()
    out.start(buf)
    stop = count
    for i, code in todo:
        p = i * PACKET_SIZE
        if code == BULK:  # a plain packet with an adaptation field
            if rw.pcr(data, buf, p, now):
                stop = i
                out.stop(RESYNC, data[p:])
                break
            if rw.moved_pcr is not None:
                _send_moved_pcr(rw, buf, codes, i, out, bulk)
                if not data[p + 3] & 0x10:  # nothing but the PCR it carried
                    out.drop(i)
                    continue
            if rw.psi_due:
                out.psi_before(i, False)
            continue
        if code == DROP:
            verdict = GONE
        elif code == ES:
            verdict = rw.es(data, buf, p, i, count, now)
        elif code == PAT:
            verdict = rw.pat(data, p)
        else:
            verdict = rw.pmt(data, p)
        if rw.moved_pcr is not None:
            _send_moved_pcr(rw, buf, codes, i, out, bulk)
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
            _track_plain(rw, buf, plain, out.begin)
            return data[out.begin * PACKET_SIZE:]
    _track_video(rw, buf, stop, codes, bulk)
    _track_plain(rw, buf, plain, stop)
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
    for j in range(stop - 1, rw.es_at.get(video, -1), -1):
        q = j * PACKET_SIZE
        if codes[j] == BULK and buf[q + 1] & 0x1F == hi and buf[q + 2] == lo:
            rw.cc[video] = buf[q + 3] & 0x0F
            return


def _track_plain(rw: Rewriter, buf: bytearray, plain: list[tuple[list[int], bytes, int]], stop: int) -> None:
    """
    Remember each stream's last continuity counter among its plain packets before ``stop``,
    and count what they carried of an audio PES under way (``Rewriter.pes_left``).
    """
    left = rw.pes_left
    for found, _, pid in plain:
        sent = [i for i in found if i < stop]
        if not sent:
            continue
        last = sent[-1]
        if last > rw.es_at.get(pid, -1):
            rw.cc[pid] = buf[last * PACKET_SIZE + 3] & 0x0F
        if pid in left:
            began = rw.pes_at.get(pid, -1)  # the plain packets before belong to a PES that is over
            sent = [i for i in sent if i > began]
            size = 184 * len(sent)
            for i in sent:
                q = i * PACKET_SIZE
                if buf[q + 3] & 0x20:  # an adaptation field (the PES's last packet's stuffing)
                    size -= 1 + buf[q + 4]
            left[pid] -= size
