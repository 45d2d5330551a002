"""
An audio PES held at a cut (``epgd.mpegts.splice.soundcut``) and how it goes out cut at whole
frames: which of its bytes a new source begins with (``head_start``) and a closing one ends
with (``tail_keep``), its header rewritten (``pes_bytes``), as our packets (``packets``). Pure
functions of bytes and 90 kHz times.
"""

from __future__ import annotations

from attrs import define, field

from epgd.mpegts.audioframes import first_frame, frame_at
from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import HEADER_NEEDED, WRAP, read_stamp, ring_diff, stamp_fields, write_stamp
from epgd.mpegts.psi import payload_start
from epgd.mpegts.splice.timeline import SOUND_OVERLAP

__all__ = ["FRAME_LOOKS", "HEAD", "MAX_HELD", "TAIL", "Held", "head_start", "held_pes", "packets", "pes_bytes",
           "tail_keep"]

HEAD, TAIL = "head", "tail"
#: a PES longer than this (bytes) is not held: it is cut at whole PES
MAX_HELD = 64 << 10
#: an audio stream whose first packets of this many PES show no frame of its codec is cut at whole PES
FRAME_LOOKS = 8


@define
class Held:
    """An audio PES held at a cut until it can go out cut at whole frames."""

    kind: str  # HEAD or TAIL
    codec: str
    header: bytearray  # its PES header as it came: 00 00 01, stream id, length, flags, fields
    length: int  # its PES_packet_length (0: unbounded)
    pts: int | None  # the source's PTS (and DTS) of its first frame that starts in it
    dts: int | None
    payload: bytearray = field(factory=bytearray)

    @property
    def complete(self) -> bool:
        return self.length > 0 and len(self.header) + len(self.payload) >= 6 + self.length


def held_pes(data: bytes, p: int, kind: str, codec: str) -> Held | None:
    """A ``Held`` for the audio PES that starts in packet ``p``; None when its header is not all in it."""
    start = payload_start(data, p)
    if start < 0 or start + HEADER_NEEDED > PACKET_SIZE:
        return None
    q = p + start
    if data[q:q + 3] != b"\x00\x00\x01" or data[q + 6] & 0xC0 != 0x80:
        return None
    size = 9 + data[q + 8]
    if start + size > PACKET_SIZE:
        return None
    fields = stamp_fields(data, range(q, q + HEADER_NEEDED))
    pts = dts = None
    if fields is not None and fields[0] >= 0:
        pts = read_stamp(data, range(q + fields[0], q + fields[0] + 5))
        dts = read_stamp(data, range(q + fields[1], q + fields[1] + 5)) if fields[1] >= 0 else None
    length = (data[q + 4] << 8) | data[q + 5]
    held = Held(kind, codec, bytearray(data[q:q + size]), length, pts, dts)
    held.payload += data[q + size:p + PACKET_SIZE]
    return held


def pes_bytes(held: Held, keep: slice, pts: int | None, dts: int | None, whole: bool) -> bytes:
    """
    The held PES with ``keep`` of its payload: its header with ``pts``/``dts`` (output times)
    written in, or none at all when ``pts`` is None; its length what it keeps (``whole``: the
    rest of it still comes from the source).
    """
    payload = held.payload[keep]
    if pts is None:
        header = bytearray(b"\x00\x00\x01" + bytes([held.header[3]]) + b"\x00\x00\x80\x00\x00")
    else:
        header = bytearray(held.header)
        write_stamp(header, range(9, 14), pts)
        if dts is not None and held.header[7] >> 6 == 3:
            write_stamp(header, range(14, 19), dts)
    if held.length or pts is None:  # an unbounded PES whose rest still comes stays unbounded
        rest = held.length + 6 - len(held.header) - len(held.payload) if whole and held.length else 0
        length = len(header) - 6 + len(payload) + max(rest, 0)
        header[4:6] = (length if length <= 0xFFFF else 0).to_bytes(2, "big")
    return bytes(header + payload)


def packets(pid: int, pes: bytes, counter: int) -> tuple[bytes, int]:
    """``pes`` as packets of ``pid`` (the first starts it), stuffing in the last; the last counter used."""
    out = bytearray()
    for at in range(0, len(pes), 184):
        chunk = pes[at:at + 184]
        counter = (counter + 1) & 0x0F
        head = bytes([0x47, (0x40 if at == 0 else 0) | pid >> 8, pid & 0xFF])
        stuffing = 184 - len(chunk)
        if not stuffing:
            out += head + bytes([0x10 | counter]) + chunk
        else:
            adaptation = bytes([stuffing - 1]) + (b"\x00" + b"\xff" * (stuffing - 2) if stuffing > 1 else b"")
            out += head + bytes([0x30 | counter]) + adaptation + chunk
    return bytes(out), counter


def head_start(held: Held, offset: int, old_end: int) -> tuple[int, int] | None:
    """
    Where a new source's first PES may begin (``HEAD``): (payload offset, its source PTS) of
    its first whole frame shown no earlier than ``old_end`` (output time, give or take
    ``SOUND_OVERLAP``); None while what is held does not tell yet, (-1, 0) when none of it does.
    """
    codec, payload = held.codec, held.payload
    at = first_frame(codec, payload)
    if at < 0 or held.pts is None:
        return (-1, 0) if held.complete or held.pts is None else None
    if not _confirmed(held, at):
        return None
    ticks = 0.0
    while True:
        stamp = (held.pts + round(ticks)) % WRAP
        if ring_diff((stamp + offset) % WRAP, old_end) >= -SOUND_OVERLAP:
            return at, stamp
        frame = frame_at(codec, payload, at)
        if frame is None or at + frame.size > len(payload):
            return (-1, 0) if held.complete else None
        at += frame.size
        ticks += frame.ticks


def tail_keep(held: Held, offset: int, until: int | None) -> tuple[int, bool, int] | None:
    """
    What of a closing source's PES goes out (``TAIL``): (payload bytes kept, whether its sound
    ends there, how long its kept frames last in ticks) — the bytes that finish the previous
    PES's last frame, then each frame that ends by ``until`` (output time); None while what is
    held does not tell yet.
    """
    codec, payload = held.codec, held.payload
    at = first_frame(codec, payload)
    if at < 0 or not _confirmed(held, at):
        return None  # not known yet, or (held whole) not framed as its codec says: see ``_tail_done``
    if held.pts is None or until is None:
        return at, True, 0
    ticks = 0.0
    while True:
        frame = frame_at(codec, payload, at)
        if frame is None:
            return (at, True, round(ticks)) if held.complete else None
        end = (held.pts + round(ticks + frame.ticks) + offset) % WRAP
        if ring_diff(end, until) > SOUND_OVERLAP:
            return at, True, round(ticks)  # this frame would run past the new sound's start
        if at + frame.size > len(payload):
            if held.complete:  # a frame the next PES finishes, that fits: it goes on there
                return len(payload), False, round(ticks + frame.ticks)
            return None
        at += frame.size
        ticks += frame.ticks
        if at == len(payload) and held.complete:
            return at, False, round(ticks)


def _confirmed(held: Held, at: int) -> bool:
    """
    The frame found at payload byte ``at`` is one: the next frame's header follows it, or the
    PES is whole. While more is to come, a frame running past what is held may be a sync
    pattern in the end of the frame the PES before began (mid-PES, frames of one PES spread
    over the next), and a PES begun there tears a frame.
    """
    if held.complete or not held.length:  # whole, or of no stated length (it ends unannounced)
        return True
    frame = frame_at(held.codec, held.payload, at)
    return frame is not None and at + frame.size < len(held.payload)
