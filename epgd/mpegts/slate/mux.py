"""
PES packets and their TS packets as templates: bytes laid out once, with the places that change
from one sending to the next (continuity counters, PCR, PTS) known, so sending a frame again
costs a copy and a few patched bytes. References: ISO/IEC 13818-1 (H.222.0) 2.4.3.2-2.4.3.5
(transport packet, adaptation field) and 2.4.3.6-2.4.3.7 (PES packet).
"""

from __future__ import annotations

from attrs import frozen

from epgd.mpegts.packet import PACKET_SIZE, SYNC_BYTE
from epgd.mpegts.pes import write_pcr_base, write_stamp

PAYLOAD = PACKET_SIZE - 4
#: adaptation field bytes for a PCR: length, flags, 6 PCR bytes
PCR_FIELD = 8
#: adaptation_field flags (2.4.3.4)
_RANDOM_ACCESS = 0x40
_PCR_FLAG = 0x10
#: continuity_counter tables for ``bytes.translate`` over byte 3 of each packet: add ``d``
CC_TABLES = tuple(bytes((b & 0xF0) | ((b + d) & 0x0F) for b in range(256)) for d in range(16))
#: a PCR field with base 0, the 6 reserved bits set, extension 0 (patched with write_pcr_base)
_PCR_BLANK = bytes([0, 0, 0, 0, 0x7E, 0])


def pes_header(stream_id: int, payload_length: int) -> bytes:
    """
    A PES header with a PTS and no DTS (PTS_DTS_flags '10'): decoding and presentation times
    are equal in a stream without reordering, and a DTS equal to its PTS is left out
    (2.4.3.7). data_alignment_indicator is set: each PES starts with an access unit (an AUD,
    an ADTS header). PES_packet_length is 0 (unbounded, allowed for video in TS) when the
    packet is longer than 16 bits can say. The PTS, at byte 9, reads 0 until patched.
    """
    length = 3 + 5 + payload_length
    if length > 0xFFFF:
        length = 0
    return bytes([0, 0, 1, stream_id, length >> 8, length & 0xFF, 0x84, 0x80, 5,
                  0x21, 0, 1, 0, 1])  # '0010' PTS[32..30] marker, PTS[29..15] marker, PTS[14..0] marker


@frozen
class Template:
    """
    The TS packets of one PES with continuity counters from 0: ``pcr`` lists the packets whose
    adaptation field holds a PCR, ``pts`` the byte offset of the PES header's PTS (or -1).
    """

    data: bytes
    pcr: tuple[int, ...]
    pts: int

    @property
    def count(self) -> int:
        return len(self.data) // PACKET_SIZE

    def stamp(self, counter: int, pts: int | None = None, pcrs: tuple[int, ...] | list[int] = ()) -> bytearray:
        """
        A copy with continuity counters from ``counter`` (all at C speed: one translate of
        every fourth byte), the PTS (90 kHz, modulo 2^33) and one PCR base per entry of
        ``pcr`` (90 kHz; the 27 MHz extension stays 0).
        """
        buf = bytearray(self.data)
        if counter & 0x0F:
            buf[3::PACKET_SIZE] = bytes(buf[3::PACKET_SIZE]).translate(CC_TABLES[counter & 0x0F])
        if pts is not None and self.pts >= 0:
            at = self.pts
            write_stamp(buf, (at, at + 1, at + 2, at + 3, at + 4), pts)
        for index, base in zip(self.pcr, pcrs, strict=True):
            write_pcr_base(buf, index * PACKET_SIZE + 6, base)
        return buf


def packetize(pid: int, pes: bytes, pcr_every: int = 0, random_access: bool = False) -> Template:
    """
    ``pes`` in TS packets of ``pid`` (payload_unit_start on the first), the last one filled
    out with adaptation field stuffing (2.4.3.5; PES data cannot be padded). With
    ``pcr_every`` > 0 the first packet, every ``pcr_every``-th and the last carry a PCR, so
    the packets of a long PES sent over some time keep the PCR spacing short up to their
    end. ``random_access`` sets random_access_indicator on the first packet (2.4.3.5: the
    PES starts a point a decoder can start from).
    """
    out = bytearray()
    pcr_packets: list[int] = []
    pts_at = -1
    pos = 0
    index = 0
    while pos < len(pes) or index == 0:
        remaining = len(pes) - pos
        # a packet that could be the last takes a PCR; if its data then spills over, the
        # spill-over packet is the last, and takes one too
        pcr = pcr_every > 0 and (index % pcr_every == 0 or remaining <= PAYLOAD)
        flags = (_PCR_FLAG if pcr else 0) | (_RANDOM_ACCESS if random_access and index == 0 else 0)
        fixed = (2 + (6 if pcr else 0)) if flags else 0
        chunk = pes[pos:pos + PAYLOAD - fixed]
        field_size = PAYLOAD - len(chunk)  # adaptation field bytes, its length byte included
        head = bytes([SYNC_BYTE, (0x40 if index == 0 else 0) | pid >> 8, pid & 0xFF,
                      (0x30 if field_size else 0x10) | (index & 0x0F)])
        if not field_size:
            field = b""
        elif not flags and field_size == 1:
            field = b"\x00"  # adaptation_field_length 0: one byte of stuffing
        else:
            field = (bytes([field_size - 1, flags]) + (_PCR_BLANK if pcr else b"")
                     + b"\xff" * (field_size - fixed if flags else field_size - 2))
        if pcr:
            pcr_packets.append(index)
        if index == 0:
            pts_at = 4 + len(field) + 9
        out += head + field + chunk
        pos += len(chunk)
        index += 1
    return Template(bytes(out), tuple(pcr_packets), pts_at)


def section_template(pid: int, section: bytes) -> Template:
    """One PSI section (at most 183 bytes) in one packet, pointer_field 0, stuffed with 0xFF (2.4.4.2)."""
    if len(section) > PAYLOAD - 1:
        raise ValueError("a slate's PSI section fits one packet")
    data = bytes([SYNC_BYTE, 0x40 | pid >> 8, pid & 0xFF, 0x10, 0]) + section
    return Template(data.ljust(PACKET_SIZE, b"\xff"), (), -1)
