"""
MPEG-TS program tables (PSI): assembling PAT and PMT sections from packets, reading them, and
writing the splicer's own. Pure functions and small value classes: no I/O, no logging.
"""

from __future__ import annotations

from attrs import frozen

from epgd.mpegts.packet import PACKET_SIZE

PAT_PID = 0
NULL_PID = 0x1FFF
#: the longest PSI section (section_length is at most 1021 for PAT/PMT, plus 3 header bytes)
MAX_SECTION = 1024

VIDEO_TYPES = {0x01: "mpeg1", 0x02: "mpeg2", 0x10: "mpeg4", 0x1B: "h264", 0x20: "h264", 0x24: "hevc",
               0x33: "vvc", 0x42: "cavs", 0xD1: "dirac", 0xEA: "vc1"}
AUDIO_TYPES = {0x03: "mp2", 0x04: "mp2", 0x0F: "aac", 0x11: "aac_latm", 0x1C: "aac", 0x2D: "mpegh",
               0x81: "ac3", 0x83: "truehd", 0x84: "eac3", 0x85: "dts", 0x87: "eac3", 0x8A: "dts"}
#: stream types whose payload is PSI-like sections, not PES (no timestamps to shift)
SECTION_TYPES = {0x05: "private", 0x0B: "dsmcc", 0x0C: "dsmcc", 0x0D: "dsmcc", 0x86: "scte35"}
#: descriptor tag -> codec, for private-data streams (type 0x06) in DVB
_DESCRIPTOR_CODECS = {0x6A: ("audio", "ac3"), 0x7A: ("audio", "eac3"), 0x7B: ("audio", "dts"),
                      0x7C: ("audio", "aac"), 0x56: ("other", "teletext"), 0x59: ("other", "dvbsub")}
#: registration descriptor (tag 0x05) format identifiers
_REGISTRATIONS = {b"AC-3": ("audio", "ac3"), b"EAC3": ("audio", "eac3"), b"DTS1": ("audio", "dts"),
                  b"DTS2": ("audio", "dts"), b"DTS3": ("audio", "dts"), b"Opus": ("audio", "opus"),
                  b"HEVC": ("video", "hevc"), b"VC-1": ("video", "vc1"), b"CUEI": ("other", "scte35"),
                  b"ID3 ": ("other", "timed_id3")}


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes | bytearray | memoryview) -> int:
    """MPEG-2 CRC-32 of a PSI section (poly 0x04C11DB7, init all ones, MSB first, no final xor)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def with_crc(body: bytes | bytearray) -> bytes:
    return bytes(body) + crc32_mpeg2(body).to_bytes(4, "big")


def payload_start(packet: bytes | bytearray | memoryview, at: int = 0) -> int:
    """Offset (from ``at``) of the packet's payload, or -1 when it has none."""
    control = (packet[at + 3] >> 4) & 3
    if not control & 1:
        return -1
    start = 4
    if control & 2:
        start += 1 + packet[at + 4]
    return start if start < PACKET_SIZE else -1


class SectionAssembler:
    """
    The complete, CRC-checked sections one PID carries, from its packets in order: sections
    may span packets and several may share one. A lost packet (continuity jump) or a bad CRC
    drops only the section it touched.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._collecting = False
        self._counter = -1

    def feed(self, packet: bytes | bytearray | memoryview, at: int = 0) -> list[bytes]:
        b1, b3 = packet[at + 1], packet[at + 3]
        if b1 & 0x80:
            return []  # transport_error_indicator: nothing in it can be trusted
        start = payload_start(packet, at)
        if start < 0:
            return []
        counter = b3 & 0x0F
        if self._counter >= 0 and counter == self._counter:
            return []  # a duplicate packet
        if self._counter >= 0 and counter != (self._counter + 1) & 0x0F:
            self._buf.clear()
            self._collecting = False
        self._counter = counter
        payload = bytes(packet[at + start:at + PACKET_SIZE])
        out: list[bytes] = []
        if b1 & 0x40:
            pointer = payload[0]
            if self._collecting:
                self._buf += payload[1:1 + pointer]
                out += self._take()
            self._buf = bytearray(payload[1 + pointer:])
            self._collecting = True
        elif self._collecting:
            self._buf += payload
        else:
            return out
        out += self._take()
        return out

    def _take(self) -> list[bytes]:
        """Every whole section at the front of the buffer."""
        out: list[bytes] = []
        buf = self._buf
        while len(buf) >= 3 and buf[0] != 0xFF:
            length = ((buf[1] & 0x0F) << 8) | buf[2]
            if length + 3 > MAX_SECTION:
                buf.clear()
                break
            if len(buf) < length + 3:
                return out
            section = bytes(buf[:length + 3])
            del buf[:length + 3]
            if length >= 9 and crc32_mpeg2(section) == 0:
                out.append(section)
        if buf[:1] == b"\xff":
            buf.clear()
            self._collecting = False  # stuffing: the next section starts at a new pointer
        return out


@frozen
class Stream:
    """One elementary stream a PMT lists."""

    stream_type: int
    pid: int
    descriptors: bytes
    kind: str  # video, audio or other
    codec: str

    @property
    def is_pes(self) -> bool:
        """False for streams that carry sections (SCTE-35, DSM-CC): no timestamps in them."""
        return self.stream_type not in SECTION_TYPES and self.codec != "scte35"


@frozen
class ProgramMap:
    """What a PMT says: the program, its PCR PID and its streams in order."""

    program: int
    pcr_pid: int
    info: bytes  # program_info descriptors
    streams: tuple[Stream, ...]

    @property
    def video(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "video"), None)

    @property
    def sound_pid(self) -> int:
        """The first audio stream's PID beside a video (what a cut's sound follows), else -1."""
        if self.video is None:
            return -1
        return next((s.pid for s in self.streams if s.kind == "audio"), -1)

    @property
    def anchor(self) -> Stream | None:
        """The stream whose frames time a cut: the first video, else the first audio."""
        return self.video or next((s for s in self.streams if s.kind == "audio"), None)


def classify(stream_type: int, descriptors: bytes) -> tuple[str, str]:
    """(kind, codec name) of a stream, from its type and, for private data, its descriptors."""
    if stream_type in VIDEO_TYPES:
        return "video", VIDEO_TYPES[stream_type]
    if stream_type in AUDIO_TYPES:
        return "audio", AUDIO_TYPES[stream_type]
    if stream_type in SECTION_TYPES:
        return "other", SECTION_TYPES[stream_type]
    found: tuple[str, str] | None = None
    for tag, body in descriptor_items(descriptors):
        if tag == 0x05 and body[:4] in _REGISTRATIONS:
            found = found or _REGISTRATIONS[body[:4]]
        elif stream_type == 0x06 and tag in _DESCRIPTOR_CODECS:
            found = found or _DESCRIPTOR_CODECS[tag]
    if found is not None:
        return found
    if stream_type == 0x15:
        return "other", "timed_id3"
    return "other", f"0x{stream_type:02x}"


def descriptor_items(descriptors: bytes) -> list[tuple[int, bytes]]:
    items = []
    at = 0
    while at + 2 <= len(descriptors):
        tag, size = descriptors[at], descriptors[at + 1]
        items.append((tag, descriptors[at + 2:at + 2 + size]))
        at += 2 + size
    return items


def parse_pat(section: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(transport_stream_id, [(program_number, PMT PID)]) of a PAT section; NIT entries left out."""
    if section[0] != 0x00:
        raise ValueError("not a PAT")
    tsid = (section[3] << 8) | section[4]
    programs = []
    for at in range(8, len(section) - 4 - 3, 4):
        number = (section[at] << 8) | section[at + 1]
        if number:
            programs.append((number, ((section[at + 2] & 0x1F) << 8) | section[at + 3]))
    return tsid, programs


def parse_pmt(section: bytes) -> ProgramMap:
    """A PMT section (CRC already checked) as a ``ProgramMap``; ValueError when it does not add up."""
    if section[0] != 0x02 or len(section) < 16:
        raise ValueError("not a PMT")
    program = (section[3] << 8) | section[4]
    pcr_pid = ((section[8] & 0x1F) << 8) | section[9]
    info_length = ((section[10] & 0x0F) << 8) | section[11]
    end = len(section) - 4
    at = 12 + info_length
    if at > end:
        raise ValueError("the PMT's program_info does not fit")
    info = section[12:at]
    streams = []
    while at + 5 <= end:
        stream_type = section[at]
        pid = ((section[at + 1] & 0x1F) << 8) | section[at + 2]
        size = ((section[at + 3] & 0x0F) << 8) | section[at + 4]
        descriptors = section[at + 5:at + 5 + size]
        if at + 5 + size > end:
            raise ValueError("the PMT's stream loop does not add up")
        kind, codec = classify(stream_type, descriptors)
        streams.append(Stream(stream_type, pid, descriptors, kind, codec))
        at += 5 + size
    return ProgramMap(program, pcr_pid, info, tuple(streams))


def pat_section(tsid: int, program: int, pmt_pid: int, version: int) -> bytes:
    body = bytes([0x00, 0xB0, 13, tsid >> 8, tsid & 0xFF, 0xC1 | (version & 0x1F) << 1, 0, 0,
                  program >> 8, program & 0xFF, 0xE0 | pmt_pid >> 8, pmt_pid & 0xFF])
    return with_crc(body)


def pmt_section(program: int, pcr_pid: int, info: bytes, streams: list[tuple[int, int, bytes]],
                version: int) -> bytes:
    """A PMT section; ``streams`` are (stream_type, PID, descriptors)."""
    loop = b"".join(bytes([t, 0xE0 | pid >> 8, pid & 0xFF, 0xF0 | len(d) >> 8, len(d) & 0xFF]) + d
                    for t, pid, d in streams)
    length = 9 + len(info) + len(loop) + 4
    body = bytes([0x02, 0xB0 | length >> 8, length & 0xFF, program >> 8, program & 0xFF,
                  0xC1 | (version & 0x1F) << 1, 0, 0, 0xE0 | pcr_pid >> 8, pcr_pid & 0xFF,
                  0xF0 | len(info) >> 8, len(info) & 0xFF]) + info + loop
    return with_crc(body)


def packetize(pid: int, section: bytes, counter: int) -> list[bytearray]:
    """
    The packets carrying ``section`` (pointer_field 0, stuffed with 0xFF); their continuity
    counters start at ``counter`` (the caller keeps the PID's count).
    """
    out = []
    data = b"\x00" + section
    first = True
    while data:
        head = bytes([0x47, (0x40 if first else 0) | pid >> 8, pid & 0xFF, 0x10 | (counter & 0x0F)])
        out.append(bytearray((head + data[:PACKET_SIZE - 4]).ljust(PACKET_SIZE, b"\xff")))
        data = data[PACKET_SIZE - 4:]
        counter += 1
        first = False
    return out


def codecs_of(streams: list[Stream] | tuple[Stream, ...]) -> str:
    """``h264+aac``: how /streams/status and the log name a program's streams."""
    return "+".join(s.codec for s in streams) or "none"
