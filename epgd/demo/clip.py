"""
The demo's MPEG-TS clips: loaded once, looped forever with continuous timestamps.

A clip played back to back would make every timestamp jump back 12 s at each loop, which
players survive but show as a hiccup. Instead each repetition ``n`` is a copy of the clip
with its PCRs, PTSs and DTSs advanced by ``n`` clip durations and its continuity counters
carried on, so the stream the demo provider sends is one endless, seamless programme, as a
real channel is. Only the positions of those fields are found at load time; a loop is a
bytearray copy plus a few thousand small patches.
"""

from __future__ import annotations

from importlib import resources

from attrs import frozen

from epgd.mpegts.packet import PACKET_SIZE, find_pat, find_sync
from epgd.mpegts.pes import ring_diff

#: (file name, the event its label names): the order is the clip index used by the scenario
CLIP_FILES: tuple[tuple[str, str], ...] = (
    ("tigers_lions.ts", "Tigers vs Lions"),
    ("eagles_sharks.ts", "Eagles vs Sharks"),
    ("bears_wolves.ts", "Bears vs Wolves"),
)

_WRAP = 1 << 33  # PTS, DTS and PCR base are 33-bit counters of a 90 kHz clock
#: where each clip's clock starts, as real providers' channels differ: one far from the
#: others and one 10 s before the 33-bit wrap, so the demo shows epgd's splicer joining
#: unrelated clocks into one timeline and carrying it across a wrap
CLIP_CLOCKS: dict[str, int] = {
    "tigers_lions.ts": 0,
    "eagles_sharks.ts": 3 << 31,
    "bears_wolves.ts": _WRAP - 10 * 90000,
}
_PES_WITHOUT_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})


class ClipError(ValueError):
    """A clip file that cannot be looped (not MPEG-TS, no PAT, no timestamps)."""


@frozen
class Clip:
    """
    One loopable clip. ``data`` starts at a PAT and holds whole packets; ``duration`` is in
    90 kHz ticks, the amount every timestamp advances per loop.
    """

    name: str
    title: str
    data: bytes
    duration: int
    pcrs: tuple[int, ...]  # offsets of 6-byte PCR fields
    stamps: tuple[int, ...]  # offsets of 5-byte PTS/DTS fields
    counters: tuple[tuple[int, int], ...]  # (offset of byte 3, per-loop continuity step)
    clock: int = 0  # added to every timestamp of every loop

    def __attrs_post_init__(self) -> None:
        if self.clock % _WRAP:
            object.__setattr__(self, "data", self._shifted(0))
            object.__setattr__(self, "clock", 0)

    @property
    def seconds(self) -> float:
        return self.duration / 90000

    @property
    def byte_rate(self) -> float:
        """Bytes per second that play the clip at its real speed."""
        return len(self.data) / self.seconds

    def loop(self, n: int) -> bytes:
        """The ``n``-th repetition (0 = the clip as it is), continuing repetition ``n - 1``."""
        if n == 0:
            return self.data
        return self._shifted(n)

    def _shifted(self, n: int) -> bytes:
        out = bytearray(self.data)
        delta = (self.clock + self.duration * n) % _WRAP
        for pos in self.pcrs:
            _add_pcr(out, pos, delta)
        for pos in self.stamps:
            _add_stamp(out, pos, delta)
        for pos, step in self.counters:
            byte = out[pos]
            out[pos] = (byte & 0xF0) | ((byte + step * n) & 0x0F)
        return bytes(out)


def _read_stamp(buf: bytes | bytearray, pos: int) -> int:
    return (
        ((buf[pos] >> 1) & 0x07) << 30
        | buf[pos + 1] << 22
        | (buf[pos + 2] >> 1) << 15
        | buf[pos + 3] << 7
        | buf[pos + 4] >> 1
    )


def _add_stamp(buf: bytearray, pos: int, delta: int) -> None:
    value = (_read_stamp(buf, pos) + delta) % _WRAP
    buf[pos] = (buf[pos] & 0xF1) | ((value >> 29) & 0x0E)
    buf[pos + 1] = (value >> 22) & 0xFF
    buf[pos + 2] = ((value >> 14) & 0xFE) | 1
    buf[pos + 3] = (value >> 7) & 0xFF
    buf[pos + 4] = ((value << 1) & 0xFE) | 1


def _add_pcr(buf: bytearray, pos: int, delta: int) -> None:
    base = (
        buf[pos] << 25 | buf[pos + 1] << 17 | buf[pos + 2] << 9 | buf[pos + 3] << 1
        | buf[pos + 4] >> 7
    )
    base = (base + delta) % _WRAP
    buf[pos] = (base >> 25) & 0xFF
    buf[pos + 1] = (base >> 17) & 0xFF
    buf[pos + 2] = (base >> 9) & 0xFF
    buf[pos + 3] = (base >> 1) & 0xFF
    buf[pos + 4] = ((base & 1) << 7) | (buf[pos + 4] & 0x7F)


def parse_clip(name: str, title: str, raw: bytes, clock: int = 0) -> Clip:
    """
    Make ``raw`` loopable: cut it to start at its first PAT (so every connection and every
    loop starts where a decoder can), and find every field a loop must patch; ``clock``
    moves all its timestamps.
    """
    start = find_sync(raw)
    if start == -1:
        raise ClipError(f"{name}: not MPEG-TS (no 0x47 sync bytes)")
    aligned = raw[start:]
    aligned = aligned[: len(aligned) - len(aligned) % PACKET_SIZE]
    first_pat = find_pat(aligned)
    if first_pat == -1:
        raise ClipError(f"{name}: no PAT, so no clean place to start a loop")
    data = aligned[first_pat:]
    pcrs: list[int] = []
    stamps: list[int] = []
    cc_offsets: dict[int, list[int]] = {}
    payloads: dict[int, int] = {}
    video: dict[int, list[int]] = {}  # pid -> PTS of each PES (video drives the duration)
    others: dict[int, list[int]] = {}
    for pos in range(0, len(data), PACKET_SIZE):
        if data[pos] != 0x47:
            raise ClipError(f"{name}: lost sync at byte {pos}")
        pid = (data[pos + 1] & 0x1F) << 8 | data[pos + 2]
        afc = (data[pos + 3] >> 4) & 0x03
        if pid == 0x1FFF:
            continue
        cc_offsets.setdefault(pid, []).append(pos + 3)
        payload = pos + 4
        if afc & 0x02:
            length = data[pos + 4]
            if length and data[pos + 5] & 0x10 and length >= 7:
                pcrs.append(pos + 6)
            payload += 1 + length
        if not afc & 0x01:
            continue
        payloads[pid] = payloads.get(pid, 0) + 1
        if not data[pos + 1] & 0x40 or payload + 19 > pos + PACKET_SIZE:
            continue
        if data[payload : payload + 3] != b"\x00\x00\x01":
            continue
        stream_id = data[payload + 3]
        if stream_id in _PES_WITHOUT_HEADER:
            continue
        flags = data[payload + 7] >> 6
        if flags & 0x02:
            stamps.append(payload + 9)
            target = video if 0xE0 <= stream_id <= 0xEF else others
            target.setdefault(pid, []).append(_read_stamp(data, payload + 9))
        if flags == 0x03:
            stamps.append(payload + 14)
    duration = _span(video) or _span(others)
    if not duration:
        raise ClipError(f"{name}: no timestamps, so its duration is unknown")
    counters = tuple(
        (offset, payloads.get(pid, 0) % 16)
        for pid, offsets in cc_offsets.items()
        for offset in offsets
        if payloads.get(pid, 0) % 16
    )
    return Clip(name, title, bytes(data), duration, tuple(pcrs), tuple(stamps), counters, clock)


def _span(by_pid: dict[int, list[int]]) -> int:
    """
    Duration of the longest stream: first to last timestamp plus one frame, on the 33-bit ring
    (a clip whose clock wraps inside it is as long as it plays, not 26 hours).
    """
    best = 0
    for values in by_pid.values():
        if not values:
            continue
        base = values[0]
        ordered = sorted({base + ring_diff(value, base) for value in values})
        if len(ordered) < 2:
            continue
        frame = min(b - a for a, b in zip(ordered, ordered[1:], strict=False))
        best = max(best, ordered[-1] - ordered[0] + frame)
    return best


def load_clips() -> tuple[Clip, ...]:
    """The clips shipped with the package, in ``CLIP_FILES`` order."""
    folder = resources.files("epgd.demo")
    return tuple(
        parse_clip(name, title, folder.joinpath(name).read_bytes(), CLIP_CLOCKS.get(name, 0))
        for name, title in CLIP_FILES
    )
