"""
Opt-in PID normalization (``stream.normalize_pids``): every source a channel carries comes out
with the same PIDs, so FFmpeg-based clients (Plex, Jellyfin, Emby, Channels DVR), which keep
only the streams they probed at the start, follow a switch instead of losing the picture.

Output layout: PMT on 0x1000; the first video on 0x100; audio on 0x101, 0x102, ...; any other
stream (subtitles, teletext, data, SCTE-35, more videos) from 0x110 up; a PCR-only PID on 0x1FF.
PAT and PMT keep the source's program_number (service id) and are rewritten with a fresh CRC.
Null packets and DVB SI (PIDs 0x10-0x1F) pass unchanged; anything else is dropped.

Hot path: the two PID bytes of every packet are gathered with extended slices, looked up as one
16-bit value in a 65536-entry table built once per source layout, and written back with slice
assignment; only PAT/PMT and dropped packets take a per-packet Python path.
"""

from __future__ import annotations

import sys
from array import array

from twisted.logger import Logger

from epgd.stream.ts import PACKET_SIZE

OUT_PMT = 0x1000
OUT_VIDEO = 0x100
OUT_AUDIO = range(0x101, 0x110)
OUT_OTHER = range(0x110, 0x1FF)
OUT_PCR_ONLY = 0x1FF
NULL_PID = 0x1FFF
SI_PIDS = range(0x10, 0x20)

#: table codes above any 16-bit value: the packet needs the slow path
_DROP = 0x10000
_PAT = 0x20000
_PMT = 0x30000

_VIDEO_TYPES = frozenset({0x01, 0x02, 0x10, 0x1B, 0x20, 0x24, 0x33, 0x42, 0xD1, 0xEA})
_AUDIO_TYPES = frozenset({0x03, 0x04, 0x0F, 0x11, 0x1C, 0x2D, 0x2E, 0x80, 0x81, 0x82, 0x83,
                          0x84, 0x85, 0x86, 0x87, 0x8A})
#: descriptors that make a private stream (type 0x06) audio: AC-3, E-AC-3, DTS, AAC (DVB)
_AUDIO_DESCRIPTORS = frozenset({0x6A, 0x7A, 0x7B, 0x7C})
_AUDIO_REGISTRATIONS = frozenset({b"AC-3", b"EAC3", b"DTS1", b"DTS2", b"DTS3", b"Opus"})
_VIDEO_REGISTRATIONS = frozenset({b"HEVC", b"VC-1"})

_LITTLE = sys.byteorder == "little"


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes | bytearray | memoryview) -> int:
    """MPEG-2 CRC-32 of a PSI section (poly 0x04C11DB7, init all ones, MSB first, no final xor)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


class Unsupported(Exception):
    """A PSI layout this module does not rewrite (the source then passes through)."""


def section_of(packet: bytes, table_id: int) -> bytes | None:
    """
    The whole PSI section a packet starts, CRC included; ``None`` for a packet to drop
    (no payload, transport error, bad CRC, another table); ``Unsupported`` if it spans packets.
    """
    b1, b3 = packet[1], packet[3]
    if b1 & 0x80:
        return None  # transport_error_indicator: a damaged packet
    if not b1 & 0x40:
        raise Unsupported("a PSI section spans packets")
    control = (b3 >> 4) & 3
    if not control & 1:
        return None  # adaptation field only
    start = 4
    if control & 2:
        start += 1 + packet[4]
    if start >= PACKET_SIZE:
        raise Unsupported("adaptation field fills the PSI packet")
    start += 1 + packet[start]  # pointer_field
    if start + 3 > PACKET_SIZE:
        raise Unsupported("a PSI section spans packets")
    if packet[start] != table_id:
        return None
    length = ((packet[start + 1] & 0x0F) << 8) | packet[start + 2]
    end = start + 3 + length
    if end > PACKET_SIZE:
        raise Unsupported("a PSI section spans packets")
    if length < 9:
        raise Unsupported(f"PSI section_length {length} is too short")
    section = bytes(packet[start:end])
    if crc32_mpeg2(section) != 0:  # a section with its CRC appended checks to zero
        return None
    return section


def _kind(stream_type: int, descriptors: bytes) -> str:
    """video, audio or other, from the stream type (and, for private data, its descriptors)."""
    if stream_type in _VIDEO_TYPES:
        return "video"
    if stream_type in _AUDIO_TYPES:
        return "audio"
    position = 0
    while position + 2 <= len(descriptors):
        tag, size = descriptors[position], descriptors[position + 1]
        body = descriptors[position + 2:position + 2 + size]
        if stream_type == 0x06 and tag in _AUDIO_DESCRIPTORS:
            return "audio"
        if tag == 0x05 and body[:4] in _AUDIO_REGISTRATIONS:
            return "audio"
        if tag == 0x05 and body[:4] in _VIDEO_REGISTRATIONS:
            return "video"
        position += 2 + size
    return "other"


def _packet(pid: int, counter: int, section: bytes) -> bytes:
    """One PSI packet (pointer_field 0) carrying ``section``, stuffed with 0xFF."""
    head = bytes([0x47, 0x40 | (pid >> 8), pid & 0xFF, 0x10 | (counter & 0x0F), 0])
    return (head + section).ljust(PACKET_SIZE, b"\xff")


def _with_crc(body: bytes | bytearray) -> bytes:
    return bytes(body) + crc32_mpeg2(body).to_bytes(4, "big")


class PidNormalizer:
    """Rewrites one channel's packets to the fixed layout; ``reset()`` at every source change."""

    log = Logger()

    def __init__(self, label: str = "") -> None:
        self._label = label
        self._counters = {0: 0, OUT_PMT: 0}
        self.reset()

    def reset(self) -> None:
        """A new source starts: its next PAT and PMT build a fresh mapping (same output PIDs)."""
        self._passthrough = False
        self._program = 0
        self._pmt_pid = -1
        self._pat_in: bytes | None = None
        self._pat_out: bytes | None = None
        self._pmt_in: bytes | None = None
        self._pmt_out: bytes | None = None
        self._pat_raw = self._pmt_raw = b""  # the last good PAT/PMT packet after its header
        self._pids: dict[int, int] = {}  # source PID -> output PID (elementary streams, PCR)
        self._table = self._build_table()

    @property
    def passthrough(self) -> bool:
        """True when the current source fell back to passing through untouched."""
        return self._passthrough

    # -- hot path --------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """The rewritten packets of ``data`` (whole aligned packets); may be shorter or empty."""
        if self._passthrough or not data:
            return data
        whole = len(data) - len(data) % PACKET_SIZE
        buf = bytearray(data[:whole]) if whole != len(data) else bytearray(data)
        pairs = bytearray(2 * (whole // PACKET_SIZE))
        pairs[0::2] = buf[1::PACKET_SIZE]
        pairs[1::2] = buf[2::PACKET_SIZE]
        table = self._table
        mapped = [table[v] for v in memoryview(pairs).cast("H")]
        if max(mapped) > 0xFFFF:
            return self._slow(buf, mapped)
        out = array("H", mapped).tobytes()
        buf[1::PACKET_SIZE] = out[0::2]
        buf[2::PACKET_SIZE] = out[1::2]
        return bytes(buf)

    def _slow(self, buf: bytearray, mapped: list[int]) -> bytes:
        """A chunk holding PAT/PMT or packets to drop: rewrite the rest, then splice."""
        specials = [(k, code) for k, code in enumerate(mapped) if code > 0xFFFF]
        original = bytes(buf)
        for k, _ in specials:
            mapped[k] = 0
        out = array("H", mapped).tobytes()
        buf[1::PACKET_SIZE] = out[0::2]
        buf[2::PACKET_SIZE] = out[1::2]
        pieces: list[bytes | bytearray] = []
        begin = 0
        for k, code in specials:
            at = k * PACKET_SIZE
            pieces.append(buf[begin:at])
            begin = at + PACKET_SIZE
            if code == _DROP:
                continue
            packet = original[at:at + PACKET_SIZE]
            table = self._table
            try:
                replacement = self._pat(packet) if code == _PAT else self._pmt(packet)
            except Unsupported as e:
                return self._fall_back(str(e), buf[:at], original[at:])
            if replacement is not None:
                pieces.append(replacement)
            if self._table is not table:  # a new layout: the rest goes through the new table
                pieces.append(self.feed(original[begin:]))
                return b"".join(pieces)
        pieces.append(buf[begin:])
        return b"".join(pieces)

    def _fall_back(self, why: str, done: bytearray, rest: bytes) -> bytes:
        self._passthrough = True
        self.log.warn("[PROXY] {channel}: cannot normalize PIDs ({why}); passing this source "
                      "through unchanged", channel=self._label, why=why)
        return bytes(done) + rest

    # -- PAT / PMT -------------------------------------------------------------------

    def _pat(self, packet: bytes) -> bytes | None:
        if self._pat_out is not None and packet[4:] == self._pat_raw and not packet[1] & 0x80:
            return self._emit(0, self._pat_out)  # the same PAT again (the usual case)
        section = section_of(packet, 0x00)
        if section is None:
            return None
        if section != self._pat_in:
            if section[6] or section[7]:
                raise Unsupported("the PAT has several sections")
            program = pmt_pid = 0
            for at in range(8, len(section) - 4, 4):
                number = (section[at] << 8) | section[at + 1]
                if number:
                    program = number
                    pmt_pid = ((section[at + 2] & 0x1F) << 8) | section[at + 3]
                    break
            if not program:
                raise Unsupported("the PAT lists no program")
            body = bytearray(section[:8])
            body[1] = 0xB0  # section_syntax 1, '0', reserved; section_length 13 below
            body[2] = 13
            body[6] = body[7] = 0
            body += bytes([program >> 8, program & 0xFF, 0xE0 | (OUT_PMT >> 8), OUT_PMT & 0xFF])
            self._pat_in, self._pat_out = section, _with_crc(body)
            if (program, pmt_pid) != (self._program, self._pmt_pid):
                self._program, self._pmt_pid = program, pmt_pid
                self._pmt_in = self._pmt_out = None
                self._pids = {}
                self._table = self._build_table()
        self._pat_raw = packet[4:]
        assert self._pat_out is not None
        return self._emit(0, self._pat_out)

    def _pmt(self, packet: bytes) -> bytes | None:
        if self._pmt_out is not None and packet[4:] == self._pmt_raw and not packet[1] & 0x80:
            return self._emit(OUT_PMT, self._pmt_out)
        section = section_of(packet, 0x02)
        if section is None or ((section[3] << 8) | section[4]) != self._program:
            return None
        if section != self._pmt_in:
            body = bytearray(section[:-4])
            pcr = ((body[8] & 0x1F) << 8) | body[9]
            position = 12 + (((body[10] & 0x0F) << 8) | body[11])
            entries: list[tuple[int, int, str]] = []  # offset of the PID, source PID, kind
            while position + 5 <= len(body):
                stream_type = body[position]
                pid = ((body[position + 1] & 0x1F) << 8) | body[position + 2]
                size = ((body[position + 3] & 0x0F) << 8) | body[position + 4]
                descriptors = bytes(body[position + 5:position + 5 + size])
                entries.append((position + 1, pid, _kind(stream_type, descriptors)))
                position += 5 + size
            if position != len(body):
                raise Unsupported("the PMT's stream loop does not add up")
            pids = self._assign(entries)
            if pcr != NULL_PID and pcr not in pids:
                pids[pcr] = OUT_PCR_ONLY
            for offset, pid, _ in entries:
                self._set_pid(body, offset, pids[pid])
            self._set_pid(body, 8, pids.get(pcr, NULL_PID))
            self._pmt_in, self._pmt_out = section, _with_crc(body)
            if pids != self._pids:
                self._pids = pids
                self._table = self._build_table()
        self._pmt_raw = packet[4:]
        assert self._pmt_out is not None
        return self._emit(OUT_PMT, self._pmt_out)

    @staticmethod
    def _assign(entries: list[tuple[int, int, str]]) -> dict[int, int]:
        """Output PIDs by kind and order: first video, then audio, then everything else."""
        pids: dict[int, int] = {}
        audio = iter(OUT_AUDIO)
        other = iter(OUT_OTHER)
        for _, pid, kind in entries:
            if pid in pids:
                continue
            if kind == "video" and OUT_VIDEO not in pids.values():
                pids[pid] = OUT_VIDEO
            elif kind == "audio" and (target := next(audio, None)) is not None:
                pids[pid] = target
            elif (target := next(other, None)) is not None:
                pids[pid] = target
            else:
                raise Unsupported("the PMT lists more streams than the layout holds")
        return pids

    @staticmethod
    def _set_pid(body: bytearray, offset: int, pid: int) -> None:
        body[offset] = (body[offset] & 0xE0) | (pid >> 8)
        body[offset + 1] = pid & 0xFF

    def _emit(self, pid: int, section: bytes) -> bytes:
        counter = self._counters[pid]
        self._counters[pid] = (counter + 1) & 0x0F
        return _packet(pid, counter, section)

    # -- lookup table ----------------------------------------------------------------

    def _build_table(self) -> list[int]:
        """
        For every 16-bit value of a packet's bytes 1-2 (as ``memoryview.cast("H")`` reads them)
        the value to write back, or a code for the slow path.
        """
        by_pid = [_DROP] * 8192
        for pid in SI_PIDS:
            by_pid[pid] = pid
        by_pid[NULL_PID] = NULL_PID
        by_pid[0] = _PAT
        for source, target in self._pids.items():
            by_pid[source] = target
        if self._pmt_pid >= 0:
            by_pid[self._pmt_pid] = _PMT
        table = [0] * 65536
        for value in range(65536):
            first, second = (value & 0xFF, value >> 8) if _LITTLE else (value >> 8, value & 0xFF)
            target = by_pid[((first & 0x1F) << 8) | second]
            if target > 0xFFFF:
                table[value] = target
                continue
            first = (first & 0xE0) | (target >> 8)
            second = target & 0xFF
            table[value] = (second << 8) | first if _LITTLE else (first << 8) | second
        return table
