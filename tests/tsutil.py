"""Synthetic MPEG-TS packets for the stream unit tests (no files needed)."""

from __future__ import annotations

from epgd.mpegts.packet import PACKET_SIZE


def packet(pid: int, start: bool = False, fill: int = 0x11, counter: int = 0) -> bytes:
    """One 188-byte packet of ``pid``; ``start`` sets payload_unit_start."""
    header = bytes([
        0x47,
        (0x40 if start else 0x00) | ((pid >> 8) & 0x1F),
        pid & 0xFF,
        0x10 | (counter & 0x0F),
    ])
    return header + bytes([fill]) * (PACKET_SIZE - 4)


def pat() -> bytes:
    return packet(0, start=True, fill=0x00)


def stream(count: int, pid: int = 0x100, fill: int = 0x11, pat_every: int = 10) -> bytes:
    """``count`` packets of ``pid``, a PAT first and every ``pat_every`` packets."""
    out = []
    for i in range(count):
        if i % pat_every == 0:
            out.append(pat())
        else:
            out.append(packet(pid, fill=fill, counter=i))
    return b"".join(out)


def pids(data: bytes) -> list[int]:
    """The PID of every packet of aligned ``data``."""
    return [((data[i + 1] & 0x1F) << 8) | data[i + 2] for i in range(0, len(data), PACKET_SIZE)]


def fills(data: bytes) -> set[int]:
    """The payload fill bytes of the non-PAT, non-null packets (tells sources apart)."""
    return {
        data[i + 4] for i in range(0, len(data), PACKET_SIZE)
        if pids(data[i:i + PACKET_SIZE])[0] not in (0, 0x1FFF)
    }
