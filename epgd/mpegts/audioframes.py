"""
Audio frames inside a PES payload, for cutting sound at whole frames (SPEC §7.1): where each
frame starts, how long it is in bytes and in 90 kHz ticks. ADTS AAC, MPEG audio (layers I-III),
AC-3 and E-AC-3 are read from their own headers; other codecs (LATM AAC, DTS, Opus, ...) are
not, and are cut at whole PES instead.

A PES's PTS belongs to the first frame that *starts* in it; bytes before that (the end of a
frame the previous PES began, as some muxers spread frames across PES) are its
continuation. Pure functions of bytes.
"""

from __future__ import annotations

from attrs import frozen

from epgd.mpegts.pes import Buffer

#: codecs whose frames can be found
FRAMED = frozenset({"aac", "mp2", "ac3", "eac3"})

_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_MPA_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits
_MPA_KBPS = {  # (version is MPEG-1, layer) -> bitrate index 1..14 in kbit/s
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_AC3_RATES = (48000, 44100, 32000)
#: AC-3 frame sizes in 16-bit words, by frmsizecod // 2, for 48, 44.1 and 32 kHz (A/52 table 5.18);
#: at 44.1 kHz an odd frmsizecod adds one word
_AC3_WORDS = (
    (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1152, 1280),
    (69, 87, 104, 121, 139, 174, 208, 243, 278, 348, 417, 487, 557, 696, 835, 975, 1114, 1253, 1393),
    (96, 120, 144, 168, 192, 240, 288, 336, 384, 480, 576, 672, 768, 960, 1152, 1344, 1536, 1728, 1920),
)
_EAC3_BLOCKS = (1, 2, 3, 6)


@frozen
class Frame:
    """One audio frame: its length in bytes and its duration in 90 kHz ticks."""

    size: int
    ticks: float


def frame_at(codec: str, data: Buffer, at: int) -> Frame | None:
    """The frame whose header starts at ``at`` of ``data``, or None when none does (or is cut off)."""
    view = memoryview(data)
    head = bytes(view[at:at + 8])
    if len(head) < 7:
        return None
    if codec in ("aac", "mp2"):
        # ADTS and MPEG audio share a sync word and differ in their layer bits: a stream
        # labelled one way and sent the other (it happens) is still read
        return _adts(head) if not head[1] & 0x06 else _mpeg_audio(head)
    if codec in ("ac3", "eac3"):
        return _ac3(head)
    return None


def first_frame(codec: str, data: Buffer, start: int = 0) -> int:
    """
    Where the first frame at or after ``start`` begins: a header whose next frame's header
    follows right after it (or that reaches the end of ``data``), so a sync pattern inside a
    frame's payload is not taken for one. -1 when none is found.
    """
    raw = bytes(data)
    end = len(raw)
    sync = b"\x0b\x77" if codec in ("ac3", "eac3") else b"\xff"
    at = start
    while True:
        at = raw.find(sync, at)
        if at < 0:
            return -1
        frame = frame_at(codec, raw, at)
        if frame is not None and (at + frame.size >= end or frame_at(codec, raw, at + frame.size) is not None):
            return at
        at += 1


def frames_in(codec: str, data: Buffer, start: int) -> list[tuple[int, Frame]]:
    """The whole frames from ``start`` (a frame's start) on, one after the other: (offset, frame)."""
    out: list[tuple[int, Frame]] = []
    at = start
    while True:
        frame = frame_at(codec, data, at)
        if frame is None or at + frame.size > len(data):
            return out
        out.append((at, frame))
        at += frame.size


def _adts(h: bytes) -> Frame | None:
    if h[0] != 0xFF or h[1] & 0xF6 != 0xF0:  # syncword, layer 0
        return None
    rate_index = (h[2] >> 2) & 0x0F
    size = ((h[3] & 0x03) << 11) | (h[4] << 3) | (h[5] >> 5)
    blocks = (h[6] & 0x03) + 1
    if rate_index >= len(_ADTS_RATES) or size < 7:
        return None
    return Frame(size, 90000 * 1024 * blocks / _ADTS_RATES[rate_index])


def _mpeg_audio(h: bytes) -> Frame | None:
    if h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (h[1] >> 3) & 0x03, (h[1] >> 1) & 0x03
    rate_index, kbps_index, padding = (h[2] >> 2) & 0x03, h[2] >> 4, (h[2] >> 1) & 0x01
    if version == 1 or layer_bits == 0 or rate_index == 3 or kbps_index in (0, 15):
        return None  # reserved, or free format (no length in the header)
    layer = 4 - layer_bits
    mpeg1 = version == 3
    rate = _MPA_RATES[version][rate_index]
    bitrate = _MPA_KBPS[(mpeg1, layer)][kbps_index - 1] * 1000
    if layer == 1:
        return Frame((12 * bitrate // rate + padding) * 4, 90000 * 384 / rate)
    samples = 1152 if layer == 2 or mpeg1 else 576
    return Frame(samples // 8 * bitrate // rate + padding, 90000 * samples / rate)


def _ac3(h: bytes) -> Frame | None:
    if h[0] != 0x0B or h[1] != 0x77:
        return None
    bsid = h[5] >> 3
    if bsid <= 10:  # AC-3
        fscod, frmsizecod = h[4] >> 6, h[4] & 0x3F
        if fscod == 3 or frmsizecod >= 38:
            return None
        words = _AC3_WORDS[fscod][frmsizecod // 2] + (frmsizecod & 1 if fscod == 1 else 0)
        return Frame(2 * words, 90000 * 1536 / _AC3_RATES[fscod])
    if 11 <= bsid <= 16:  # E-AC-3
        size = 2 * ((((h[2] & 0x07) << 8) | h[3]) + 1)
        fscod = h[4] >> 6
        if fscod == 3:
            fscod2 = (h[4] >> 4) & 0x03
            if fscod2 == 3:
                return None
            rate, blocks = _AC3_RATES[fscod2] // 2, 6
        else:
            rate, blocks = _AC3_RATES[fscod], _EAC3_BLOCKS[(h[4] >> 4) & 0x03]
        return Frame(size, 90000 * 256 * blocks / rate)
    return None
