"""
The output program a splicer writes (SPEC §7.1): the fixed PID layout a source's streams are
mapped onto, our PAT and PMT (versions, continuity counters, the service id of the first
source), and the per-packet lookup table the splicer's hot path rewrites PIDs with.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

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
OUT_VIDEO = 0x100
OUT_AUDIO = tuple(range(0x101, 0x110))
OUT_OTHER = tuple(range(0x110, 0x1FF))
OUT_PCR_ONLY = 0x1FF  # a source's PCR-only PID: read, never sent (its PCRs move to OUT_VIDEO)

#: per-packet codes the PID table gives besides the new PID bytes
BULK, PAT, PMT, ES, DROP = 0, 1, 2, 3, 4
_LITTLE = sys.byteorder == "little"


def _cc_table(delta: int) -> bytes:
    """``bytes.translate`` table adding ``delta`` to a byte 3's continuity counter."""
    return bytes((b & 0xF0) | ((b + delta) & 0x0F) for b in range(256))


CC_TABLES = tuple(_cc_table(d) for d in range(16))
#: byte 3 -> 1 when the packet has an adaptation field
AF_MARKS = bytes(1 if b & 0x20 else 0 for b in range(256))


def table_key(b1: int, b2: int) -> int:
    """The table index of a packet's bytes 1-2 as ``memoryview.cast("H")`` reads them."""
    return b1 | b2 << 8 if _LITTLE else b1 << 8 | b2


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


def pid_table(mapping: dict[int, int], pmt_pid: int, bulk: int, plain: dict[int, int] | None = None) -> list[int]:
    """
    For every value of a packet's bytes 1-2: the new bytes 1-2 and a code — BULK for the
    video's packets that start nothing (``bulk``, when its counter shift is known; -1: none)
    and null packets, ``plain[src]`` (PLAIN and up) for the packets of other streams that
    start nothing, ES for every other packet of a mapped stream, PAT/PMT for the source's
    tables, DROP for everything else. Built from a few hundred entries, not 65,536 steps.
    """
    plain = plain or {}
    table = [DROP << 16] * 65536
    entries = [(NULL_PID, NULL_PID, BULK), (PAT_PID, PAT_PID, PAT)]
    if pmt_pid >= 0:
        entries.append((pmt_pid, OUT_PMT, PMT))
    entries += [(src, out, ES) for src, out in mapping.items()]
    for src, out, code in entries:
        fast = BULK if src == bulk else plain.get(src, ES)
        for flags in range(8):  # transport_error, payload_unit_start, priority
            b1 = flags << 5 | src >> 8
            this = fast if code == ES and not flags & 0x6 else code
            table[table_key(b1, src & 0xFF)] = (flags << 5 | out >> 8) | (out & 0xFF) << 8 | this << 16
    return table


@frozen
class Layout:
    """A source program mapped onto the output's PIDs."""

    mapping: dict[int, int]  # source PID -> output PID (streams, and a PCR-only PID)
    streams: tuple[Stream, ...]  # the output's streams, on their output PIDs, in PID order
    pcr_pid: int  # the output's PCR PID: always OUT_VIDEO
    video: int  # the source PID of the video on OUT_VIDEO, or -1
    dropped: int  # streams beyond what the layout holds

    @classmethod
    def of(cls, program: ProgramMap) -> Layout:
        """First video on 0x100, audio on 0x101.. in order, everything else from 0x110."""
        mapping: dict[int, int] = {}
        audio, other = iter(OUT_AUDIO), iter(OUT_OTHER)
        streams = []
        dropped = 0
        for stream in program.streams:
            if stream.pid in mapping or stream.pid in (PAT_PID, NULL_PID):
                continue
            if stream.kind == "video" and OUT_VIDEO not in mapping.values():
                target = OUT_VIDEO
            else:
                target = next(audio if stream.kind == "audio" else other, -1)
            if target < 0:
                dropped += 1
                continue
            mapping[stream.pid] = target
            streams.append(Stream(stream.stream_type, target, stream.descriptors, stream.kind, stream.codec))
        if program.pcr_pid != NULL_PID and program.pcr_pid not in mapping:
            mapping[program.pcr_pid] = OUT_PCR_ONLY  # read for its PCRs, which move to OUT_VIDEO
        video = next((src for src, out in mapping.items() if out == OUT_VIDEO), -1)
        # The output's PCR PID never changes (GStreamer's tsdemux reads a new one as a new
        # program): PCRs the source carries elsewhere move onto OUT_VIDEO.
        return cls(mapping, tuple(sorted(streams, key=lambda s: s.pid)), OUT_VIDEO, video, dropped)


class OutputProgram:
    """
    Our PAT and PMT: one program (the first source's service id) with its PMT on 0x1000, a new
    PMT version whenever what it says changes, continuity counters that run on.
    """

    def __init__(self, on_codecs: Callable[[str, str], None] | None = None) -> None:
        self.on_codecs = on_codecs
        self.codecs = ""
        self._service: int | None = None
        self._pat = b""
        self._pmt = b""
        self._pmt_key: tuple[object, ...] | None = None
        self._version = 0
        self._cc = {PAT_PID: 15, OUT_PMT: 15}
        self._packets: tuple[tuple[bytes, bytes], list[list[bytearray]]] | None = None

    def adopt(self, program: ProgramMap, tsid: int) -> Layout:
        """The layout for ``program``; our PMT follows it (and says so when the codecs change)."""
        if self._service is None:
            self._service = program.program
            self._pat = pat_section(tsid, program.program, OUT_PMT, 0)
        layout = Layout.of(program)
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

    def psi(self) -> bytes:
        """Our PAT and PMT as packets, their PIDs' continuity counters run on."""
        if not self._pat:
            return b""
        if self._packets is None or self._packets[0] != (self._pat, self._pmt):
            self._packets = ((self._pat, self._pmt), [packetize(PAT_PID, self._pat, 0),
                                                      packetize(OUT_PMT, self._pmt, 0)])
        out = []
        for pid, packets in zip((PAT_PID, OUT_PMT), self._packets[1], strict=True):
            counter = self._cc[pid]
            for packet in packets:
                counter = (counter + 1) & 0x0F
                packet[3] = 0x10 | counter
                out.append(bytes(packet))
            self._cc[pid] = counter
        return b"".join(out)
