"""
The clock fields of MPEG-TS packets and the PES headers they carry: PCR/OPCR in adaptation
fields, PTS/DTS in PES headers, and whether a video PES starts at a random-access point.

Everything takes a buffer and byte positions, so the splicer can read and rewrite a PES header
whose bytes are spread over several packets as easily as one that sits in a single packet.
"""

from __future__ import annotations

from collections.abc import Sequence

from epgd.mpegts.psi import payload_start

WRAP = 1 << 33  # PTS, DTS and the PCR base count a 90 kHz clock in 33 bits
HALF = 1 << 32
#: PES stream ids with no PES header extension (no PTS/DTS): padding, private 2, ECM, ...
NO_HEADER_STREAMS = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})
#: bytes of a PES header needed to reach the end of its PTS and DTS
HEADER_NEEDED = 19

Buffer = bytes | bytearray | memoryview


def ring_diff(a: int, b: int) -> int:
    """``a - b`` on the 33-bit ring, in (-2^32, 2^32]: how far a clock value is after another."""
    d = (a - b) % WRAP
    return d - WRAP if d > HALF else d


# -- adaptation field ----------------------------------------------------------------

def pcr_offset(packet: Buffer, at: int = 0) -> int:
    """Offset (from ``at``) of the packet's 6-byte PCR field, or -1."""
    if not packet[at + 3] & 0x20 or packet[at + 4] < 7 or not packet[at + 5] & 0x10:
        return -1
    return 6


def opcr_offset(packet: Buffer, at: int = 0) -> int:
    """Offset of the OPCR field, or -1."""
    if not packet[at + 3] & 0x20:
        return -1
    flags = packet[at + 5] if packet[at + 4] else 0
    if not flags & 0x08:
        return -1
    offset = 12 if flags & 0x10 else 6
    return offset if packet[at + 4] >= offset + 1 else -1


def random_access_flag(packet: Buffer, at: int = 0) -> bool:
    return bool(packet[at + 3] & 0x20 and packet[at + 4] and packet[at + 5] & 0x40)


def read_pcr_base(buf: Buffer, pos: int) -> int:
    return (buf[pos] << 25) | (buf[pos + 1] << 17) | (buf[pos + 2] << 9) | (buf[pos + 3] << 1) | (
        buf[pos + 4] >> 7)


def write_pcr_base(buf: bytearray, pos: int, base: int) -> None:
    """Write a PCR base, keeping the reserved bits and the 27 MHz extension."""
    base %= WRAP
    buf[pos] = base >> 25 & 0xFF
    buf[pos + 1] = base >> 17 & 0xFF
    buf[pos + 2] = base >> 9 & 0xFF
    buf[pos + 3] = base >> 1 & 0xFF
    buf[pos + 4] = (buf[pos + 4] & 0x7F) | (base & 1) << 7


# -- PES header ----------------------------------------------------------------------

def read_stamp(buf: Buffer, pos: Sequence[int]) -> int:
    """A 5-byte PTS/DTS field whose bytes sit at the positions ``pos``."""
    return (
        ((buf[pos[0]] >> 1) & 0x07) << 30
        | buf[pos[1]] << 22
        | (buf[pos[2]] >> 1) << 15
        | buf[pos[3]] << 7
        | buf[pos[4]] >> 1
    )


def write_stamp(buf: bytearray, pos: Sequence[int], value: int) -> None:
    """Write a PTS/DTS, keeping its 4-bit prefix and marker bits as they were."""
    value %= WRAP
    buf[pos[0]] = (buf[pos[0]] & 0xF1) | ((value >> 30) & 0x07) << 1
    buf[pos[1]] = (value >> 22) & 0xFF
    buf[pos[2]] = (buf[pos[2]] & 0x01) | ((value >> 15) & 0x7F) << 1
    buf[pos[3]] = (value >> 7) & 0xFF
    buf[pos[4]] = (buf[pos[4]] & 0x01) | (value & 0x7F) << 1


def read_stamp_at(buf: Buffer, pos: int) -> int:
    """A PTS/DTS whose 5 bytes are contiguous from ``pos`` (``read_stamp`` for a header in one packet)."""
    x = int.from_bytes(buf[pos:pos + 5], "big")
    return (x >> 3 & 0x1C0000000) | (x >> 2 & 0x3FFF8000) | (x >> 1 & 0x7FFF)


def write_stamp_at(buf: bytearray, pos: int, value: int) -> None:
    """``write_stamp`` for 5 contiguous bytes from ``pos``: prefix and marker bits kept."""
    value %= WRAP
    x = int.from_bytes(buf[pos:pos + 5], "big") & 0xF100010001
    buf[pos:pos + 5] = (x | (value & 0x1C0000000) << 3 | (value & 0x3FFF8000) << 2
                        | (value & 0x7FFF) << 1).to_bytes(5, "big")


def stamp_fields(buf: Buffer, pos: Sequence[int]) -> tuple[int, int] | None:
    """
    Where the PTS and DTS of a PES header start, as indexes into ``pos`` (the positions of
    the header's first bytes in order; at least ``HEADER_NEEDED`` of them, or all the PES
    has): (pts, dts), -1 for a field that is absent; None when it is not a PES header with
    timestamps to shift.
    """
    if len(pos) < 9 or buf[pos[0]] or buf[pos[1]] or buf[pos[2]] != 1:
        return None
    if buf[pos[3]] in NO_HEADER_STREAMS or buf[pos[6]] & 0xC0 != 0x80:
        return None
    flags = buf[pos[7]] >> 6
    pts = 9 if flags & 2 else -1
    dts = 14 if flags == 3 else -1
    need = max(pts, dts) + 5 if pts >= 0 else 9
    if need > len(pos) or 9 + buf[pos[8]] < need:
        return None  # cut short, or a header too short for the fields it claims
    return pts, dts


def header_positions(data: Buffer, start: int, index: int, count: int, pid: int) -> tuple[Sequence[int], bool]:
    """
    The positions of a PES header's first bytes, from ``start`` in packet ``index`` of aligned
    ``data`` (``count`` packets) on through the PID's next packets when the header is split
    across them; and True when the chunk ran out before enough of the header was found (the
    next chunk may complete it).
    """
    end = (index + 1) * 188
    if end - start >= HEADER_NEEDED:
        return range(start, start + HEADER_NEEDED), False  # the usual case: all in one packet
    positions = list(range(start, end))
    need = HEADER_NEEDED
    if len(positions) >= 8:
        flags = data[positions[7]] >> 6
        need = 19 if flags == 3 else 14 if flags == 2 else 9
    j = index + 1
    while len(positions) < need and j < count:
        q = j * 188
        if ((data[q + 1] & 0x1F) << 8) | data[q + 2] == pid:
            if data[q + 1] & 0xC0 or (s := payload_start(data, q)) < 0:
                return positions, False  # a new PES (or a damaged packet): no more of this header
            positions += range(q + s, q + 188)
        j += 1
    return positions, len(positions) < need and j >= count


def header_length(buf: Buffer, pos: Sequence[int]) -> int:
    """Bytes of a PES header (9 + PES_header_data_length); 0 when unknown."""
    return 9 + buf[pos[8]] if len(pos) >= 9 else 0


# -- random access -------------------------------------------------------------------

_H264_IDR = 5
_H264_SPS = 7
_H264_I_SLICES = frozenset({2, 4, 7, 9})  # slice_type I or SI (+5: every slice of the picture is)
_HEVC_IRAP = range(16, 24)  # BLA, IDR, CRA (and the reserved IRAP types)
_HEVC_PARAMETER_SETS = frozenset({32, 33})  # VPS, SPS
_MPEG2_HEADERS = frozenset({0xB3, 0xB8})  # sequence header, group of pictures


def starts_random_access(codec: str, es: Buffer) -> bool:
    """
    True when the start of a video PES payload ``es`` (the bytes after its PES header that
    one packet holds) shows a decoder can start there: an H.264 IDR, or an SPS before an intra
    picture; an HEVC IRAP, or a VPS/SPS before one; an MPEG-2 I-picture, or a sequence or GOP
    header before one. A parameter set alone is no way in: some encoders repeat the SPS
    before every picture (eac3-first-h264-720p25.ts does), and entering at a P- or B-picture
    loses everything up to the next key frame. When the picture after a parameter set lies
    beyond ``es``, the parameter set is taken as its sign. Codecs it cannot read count as
    random access at every PES, so a stream of them is never refused.
    """
    data = bytes(es)
    if codec not in ("h264", "hevc", "mpeg2", "mpeg1"):
        return True
    headed = False  # a parameter set (sequence header) came first: the picture it heads decides
    at = data.find(b"\x00\x00\x01")
    while 0 <= at < len(data) - 3:
        code = data[at + 3]
        if codec == "h264":
            nal = code & 0x1F
            if nal == _H264_IDR:
                return True
            if nal == _H264_SPS:
                headed = True
            elif nal == 1:  # a non-IDR slice: a start only when intra and given its parameters
                if not headed:
                    return False
                intra = _h264_intra(data, at + 4)
                return intra if intra is not None else True
        elif codec == "hevc":
            nal = (code >> 1) & 0x3F
            if nal in _HEVC_IRAP:
                return True
            if nal in _HEVC_PARAMETER_SETS:
                headed = True
            elif nal < 16:
                return False  # a picture that is no IRAP
        else:
            if code in _MPEG2_HEADERS:
                headed = True
            elif code == 0x00:
                if at + 5 < len(data):
                    return (data[at + 5] >> 3) & 0x07 == 1  # picture_coding_type I
                return headed
        at = data.find(b"\x00\x00\x01", at + 3)
    return headed


def _h264_intra(data: bytes, at: int) -> bool | None:
    """
    Whether the H.264 slice header at ``at`` (after its NAL header byte) is an I or SI slice;
    None when ``data`` ends before its slice_type. Two Exp-Golomb codes, first_mb_in_slice
    and slice_type, read from the raw bytes (no emulation prevention byte can come that soon:
    a picture's first slice begins with a 1 bit).
    """
    bits = int.from_bytes(data[at:at + 8], "big")
    total = 8 * len(data[at:at + 8])
    position = 0
    value = 0
    for _ in range(2):
        zeros = 0
        while position + zeros < total and not bits >> (total - 1 - position - zeros) & 1:
            zeros += 1
        if position + 2 * zeros + 1 > total:
            return None
        code = bits >> (total - position - 2 * zeros - 1) & ((1 << (2 * zeros + 1)) - 1)
        value = code - 1
        position += 2 * zeros + 1
    return value in _H264_I_SLICES


def pes_random_access(packet: Buffer, p: int, start: int, codec: str) -> bool:
    """
    Whether the video PES starting in the packet at ``p`` (its payload at ``start``) is a way
    in: its ``random_access_indicator``, or what its first bytes show (``starts_random_access``).
    """
    if random_access_flag(packet, p):
        return True
    header = 9 + packet[p + start + 8] if start + 9 <= 188 else 188
    if start + header >= 188:
        return False
    return starts_random_access(codec, packet[p + start + header:p + 188])


# -- moving a PCR to the output's PCR PID --------------------------------------------

def strip_pcr(buf: bytearray, p: int) -> None:
    """
    Take the PCR out of packet ``p``'s adaptation field (another PID carries it now): the flag
    goes, the fields after it move up, and stuffing fills the end of the field, whose length
    stays. The packet's payload is untouched.
    """
    length = buf[p + 4]
    flags = buf[p + 5]
    if not flags & 0x10 or length < 7:
        return
    end = p + 5 + length
    buf[p + 5] = flags & ~0x10
    buf[p + 6:end - 6] = buf[p + 12:end]
    buf[end - 6:end] = b"\xff" * 6


def pcr_packet(pid: int, counter: int, base: int, extension: bytes) -> bytes:
    """
    A packet carrying only a PCR (adaptation field, no payload): legal on any PID, and with
    no payload its continuity counter repeats the PID's last one. ``extension``: the 27 MHz
    part as the source sent it (the two bytes after the base's first four).
    """
    head = bytes([0x47, pid >> 8 & 0x1F, pid & 0xFF, 0x20 | (counter & 0x0F), 183, 0x10])
    packet = bytearray(head + b"\x00" * 6 + b"\xff" * 176)
    packet[10] = (extension[0] & 0x7F) | 0x7E
    packet[11] = extension[1]
    write_pcr_base(packet, 6, base)
    return bytes(packet)
