"""
The output program a splicer writes (SPEC §7.1): the fixed PID layout a source's streams are
mapped onto, our PAT and PMT (versions, continuity counters, the service id of the first
source), and the per-packet lookup table the splicer's hot path rewrites PIDs with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from attrs import frozen

from epgd.mpegts.psi import (
    NULL_PID,
    PAT_PID,
    ProgramMap,
    Stream,
    codecs_of,
    packetize,
    pat_section,
    pmt_section,
)

OUT_PMT = 0x1000
OUT_VIDEO = 0x100  # the first video, and the output's one PCR PID
OUT_AUDIO = tuple(range(0x101, 0x110))
OUT_OTHER = tuple(range(0x110, 0x120))
OUT_PCR_ONLY = 0x1FF  # a source's PCR-only PID: read, never sent (its PCRs move to OUT_VIDEO)
#: with a PID per codec (``stream.on_codec_change = "new_pid"``), another codec in a stream's
#: place goes on its PID plus this many times the codecs that place has had before it
GENERATION_STEP = 0x20
GENERATIONS = 7  # 0x100 .. 0x1FF


def slot_of(pid: int) -> int:
    """A stream's place in the layout whatever its codec: its first codec's PID."""
    return OUT_VIDEO + (pid - OUT_VIDEO) % GENERATION_STEP if OUT_VIDEO <= pid < OUT_PCR_ONLY else pid

#: per-packet codes the PID table gives besides the new PID bytes
BULK, PAT, PMT, ES, DROP = 0, 1, 2, 3, 4


def _cc_table(delta: int) -> bytes:
    """``bytes.translate`` table adding ``delta`` to a byte 3's continuity counter."""
    return bytes((b & 0xF0) | ((b + delta) & 0x0F) for b in range(256))


CC_TABLES = tuple(_cc_table(d) for d in range(16))
#: (counter shift << 8 | byte 3) -> byte 3 with its continuity counter shifted, for a whole
#: chunk's bytes 3 at once (the shift comes from the PID table: ``CC_SHIFT``)
CC_LUT = np.frombuffer(b"".join(CC_TABLES), dtype=np.uint8)
#: byte 3 -> 1 when the packet has an adaptation field
AF_MARKS = bytes(1 if b & 0x20 else 0 for b in range(256))
#: a PID table entry's bits: the new bytes 1-2 (``<u2``), the code, the counter shift
CODE_SHIFT = 16
CC_SHIFT = 24


def table_key(b1: int, b2: int) -> int:
    """The table index of a packet's bytes 1-2, as a little-endian ``<u2`` view reads them."""
    return b1 | b2 << 8


def positions(code: int, codes: bytes) -> list[int]:
    """Where ``code`` occurs in ``codes`` (one byte per packet), found at C speed."""
    out = []
    mark = bytes([code])
    at = codes.find(mark)
    while at != -1:
        out.append(at)
        at = codes.find(mark, at + 1)
    return out


#: codes from here on: the plain packets of one other stream (``pid_table``'s ``plain``)
PLAIN = 16


def pid_table(mapping: dict[int, int], pmt_pid: int, bulk: int, plain: dict[int, int] | None = None,
              shifts: dict[int, int] | None = None) -> np.ndarray:
    """
    For every value of a packet's bytes 1-2 (``table_key``): the new bytes 1-2 and a code —
    BULK for the video's packets that start nothing (``bulk``, when its counter shift is
    known; -1: none) and null packets, ``plain[src]`` (PLAIN and up) for the packets of other
    streams that start nothing, ES for every other packet of a mapped stream, PAT/PMT for the
    source's tables, DROP for everything else — and, for the streams on a fast path (``bulk``
    and ``plain``), their counter shift (``shifts[src]``) at ``CC_SHIFT``, which the hot path
    adds to every one of their packets at once. A ``<u4`` array of 65,536 entries, filled from
    a few hundred, not 65,536 steps.
    """
    plain = plain or {}
    shifts = shifts or {}
    table = np.full(65536, DROP << CODE_SHIFT, dtype="<u4")
    entries = [(NULL_PID, NULL_PID, BULK), (PAT_PID, PAT_PID, PAT)]
    if pmt_pid >= 0:
        entries.append((pmt_pid, OUT_PMT, PMT))
    entries += [(src, out, ES) for src, out in mapping.items()]
    for src, out, code in entries:
        fast = BULK if src == bulk else plain.get(src, ES)
        shift = shifts.get(src, 0) if code == ES and (src == bulk or src in plain) else 0
        for flags in range(8):  # transport_error, payload_unit_start, priority
            b1 = flags << 5 | src >> 8
            this = fast if code == ES and not flags & 0x6 else code
            table[table_key(b1, src & 0xFF)] = (table_key(flags << 5 | out >> 8, out & 0xFF)
                                               | this << CODE_SHIFT | shift << CC_SHIFT)
    return table


def table_moves(mapping: dict[int, int], shifts: dict[int, int]) -> tuple[bool, bool]:
    """
    Whether a PID table built from ``mapping`` and these counter ``shifts`` changes any bytes
    1-2 of a packet that goes out, and any counter: a source whose PIDs are the output's
    already (ffmpeg's defaults are) and whose counters need no shift (its first source) goes
    through with neither written.
    """
    return any(src != out for src, out in mapping.items() if out != OUT_PCR_ONLY), any(shifts.values())


@frozen
class Layout:
    """A source program mapped onto the output's PIDs."""

    mapping: dict[int, int]  # source PID -> output PID (streams, and a PCR-only PID)
    streams: tuple[Stream, ...]  # the output's streams, on their output PIDs, in PID order
    pcr_pid: int  # the output's PCR PID: always OUT_VIDEO
    video: int  # the source PID of the first video, or -1
    dropped: int  # streams beyond what the layout holds
    video_out: int = OUT_VIDEO  # the output PID of that video (another with a PID per codec)

    @classmethod
    def of(cls, program: ProgramMap,
           generation: Callable[[int, str], int] | None = None) -> Layout:
        """
        First video on 0x100, audio on 0x101.. in order, everything else from 0x110.
        ``generation(place, codec)``: how many other codecs that place had before this one
        (a PID per codec); its PID is then moved on by that many ``GENERATION_STEP``s.
        """
        mapping: dict[int, int] = {}
        audio, other = iter(OUT_AUDIO), iter(OUT_OTHER)
        streams = []
        dropped = 0
        video_out = -1
        for stream in program.streams:
            if stream.pid in mapping or stream.pid in (PAT_PID, NULL_PID):
                continue
            if stream.kind == "video" and video_out < 0:
                target = OUT_VIDEO
            else:
                target = next(audio if stream.kind == "audio" else other, -1)
            if target < 0:
                dropped += 1
                continue
            if generation is not None:
                target += GENERATION_STEP * (generation(target, stream.codec) % GENERATIONS)
            if stream.kind == "video" and video_out < 0:
                video_out = target
            mapping[stream.pid] = target
            streams.append(Stream(stream.stream_type, target, stream.descriptors, stream.kind, stream.codec))
        if program.pcr_pid != NULL_PID and program.pcr_pid not in mapping:
            mapping[program.pcr_pid] = OUT_PCR_ONLY  # read for its PCRs, which move to OUT_VIDEO
        video = next((src for src, out in mapping.items() if out == video_out), -1) if video_out >= 0 else -1
        # The output's PCR PID never changes (GStreamer's tsdemux reads a new one as a new
        # program): PCRs the source carries elsewhere move onto OUT_VIDEO.
        return cls(mapping, tuple(sorted(streams, key=lambda s: s.pid)), OUT_VIDEO, video, dropped,
                   video_out if video_out >= 0 else OUT_VIDEO)


class OutputProgram:
    """
    Our PAT and PMT: one program (the first source's service id) with its PMT on 0x1000, a new
    PMT version whenever what it says changes, continuity counters that run on.
    """

    def __init__(self, on_codecs: Callable[[str, str], None] | None = None, pid_per_codec: bool = False) -> None:
        self.on_codecs = on_codecs
        #: (place, codec) -> its generation, with a PID per codec: a codec keeps its PID forever
        self._generations: dict[tuple[int, str], int] | None = {} if pid_per_codec else None
        self.codecs = ""
        self._service: int | None = None
        self._pat = b""
        self._pmt = b""
        self._pmt_key: tuple[object, ...] | None = None
        self._version = 0
        self._cc = {PAT_PID: 15, OUT_PMT: 15}
        self._packets: tuple[tuple[bytes, bytes], list[list[bytearray]]] | None = None
        self._made: dict[tuple[int, int], tuple[bytes, int, int]] = {}  # (PAT, PMT counters) -> psi()

    def adopt(self, program: ProgramMap, tsid: int) -> Layout:
        """The layout for ``program``; our PMT follows it (and says so when the codecs change)."""
        if self._service is None:
            self._service = program.program
            self._pat = pat_section(tsid, program.program, OUT_PMT, 0)
        layout = Layout.of(program, self._generation if self._generations is not None else None)
        key = (layout.pcr_pid, program.info, tuple((s.stream_type, s.pid, s.descriptors) for s in layout.streams))
        if key != self._pmt_key:
            if self._pmt_key is not None:
                self._version = (self._version + 1) & 0x1F
            self._pmt_key = key
            self._pmt = pmt_section(self._service, layout.pcr_pid, program.info,
                                    [(s.stream_type, s.pid, s.descriptors) for s in layout.streams],
                                    self._version)
        old, self.codecs = self.codecs, codecs_of(layout.streams)
        if old and old != self.codecs and self.on_codecs is not None:
            self.on_codecs(old, self.codecs)
        return layout

    def _generation(self, place: int, codec: str) -> int:
        """The generation of ``codec`` in ``place``: the first codec seen there is 0, the next 1."""
        generations = self._generations
        assert generations is not None
        key = (place, codec)
        if key not in generations:
            generations[key] = sum(1 for p, _ in generations if p == place)
        return generations[key]

    def psi(self) -> bytes:
        """Our PAT and PMT as packets, their PIDs' continuity counters run on."""
        if not self._pat:
            return b""
        if self._packets is None or self._packets[0] != (self._pat, self._pmt):
            self._packets = ((self._pat, self._pmt), [packetize(PAT_PID, self._pat, 0),
                                                      packetize(OUT_PMT, self._pmt, 0)])
            self._made = {}
        cc = self._cc
        key = (cc[PAT_PID], cc[OUT_PMT])
        made = self._made.get(key)  # sent ten times a second: made once per pair of counters
        if made is None:
            out = []
            counters = []
            for pid, packets in zip((PAT_PID, OUT_PMT), self._packets[1], strict=True):
                counter = cc[pid]
                for packet in packets:
                    counter = (counter + 1) & 0x0F
                    packet[3] = 0x10 | counter
                    out.append(bytes(packet))
                counters.append(counter)
            made = self._made[key] = (b"".join(out), counters[0], counters[1])
        cc[PAT_PID], cc[OUT_PMT] = made[1], made[2]
        return made[0]
