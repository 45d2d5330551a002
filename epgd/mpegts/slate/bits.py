"""
Bit-level writing for H.264 and AAC headers: a big-endian bit writer with the exp-Golomb codes
of H.264 clause 9.1, RBSP trailing bits (7.3.2.11) and the emulation prevention of 7.4.1 that
turns an RBSP into NAL unit payload bytes.

The writer keeps pending bits in one Python int and turns them into bytes only when asked, so a
slice of a few thousand macroblocks costs a few thousand int shifts, and raw sample bytes
(I_PCM) are appended at C speed once the writer is byte-aligned.
"""

from __future__ import annotations


class BitWriter:
    """Bits in, most significant first; ``bytes()`` once the caller has aligned the end."""

    __slots__ = ("_acc", "_count", "_out")

    def __init__(self) -> None:
        self._out = bytearray()
        self._acc = 0  # pending bits, the oldest highest
        self._count = 0  # how many bits ``_acc`` holds (kept below 64 by ``_spill``)

    @property
    def bit_length(self) -> int:
        """Bits written so far."""
        return len(self._out) * 8 + self._count

    @property
    def aligned(self) -> bool:
        return self._count % 8 == 0

    def u(self, bits: int, value: int) -> None:
        """``u(n)``: ``value`` as an unsigned ``bits``-bit number (H.264 7.2)."""
        if value < 0 or value >> bits:
            raise ValueError(f"{value} does not fit in {bits} bits")
        self._acc = (self._acc << bits) | value
        self._count += bits
        if self._count >= 64:
            self._spill()

    def flag(self, value: bool) -> None:
        """``u(1)`` for a flag."""
        self.u(1, 1 if value else 0)

    def ue(self, value: int) -> None:
        """``ue(v)``: unsigned exp-Golomb (H.264 9.1): ``value + 1`` in binary after as many zeros as it has bits less one."""
        if value < 0:
            raise ValueError(f"ue(v) of a negative number: {value}")
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        """``se(v)``: signed exp-Golomb, mapped to ue(v) as Table 9-3 says (k > 0 -> 2k - 1, k <= 0 -> -2k)."""
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def bits(self, code: str) -> None:
        """A literal bit string such as ``"000011"``, as the spec's VLC tables print them."""
        self.u(len(code), int(code, 2))

    def align_zero(self) -> None:
        """Zero bits up to the next byte boundary (``pcm_alignment_zero_bit``, 7.3.5)."""
        pad = -self._count % 8
        if pad:
            self.u(pad, 0)

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        """Whole bytes, written as they are; the writer must be byte-aligned."""
        if self._count % 8:
            raise ValueError("raw bytes need a byte-aligned writer")
        self._spill()
        self._out += data

    def trailing(self) -> None:
        """``rbsp_trailing_bits()`` (7.3.2.11): a stop bit 1, then zeros to the byte boundary."""
        self.u(1, 1)
        self.align_zero()

    def _spill(self) -> None:
        whole = self._count // 8
        if whole:
            rest = self._count - whole * 8
            self._out += (self._acc >> rest).to_bytes(whole, "big")
            self._acc &= (1 << rest) - 1
            self._count = rest

    def getvalue(self) -> bytes:
        """The bytes written; the writer must be byte-aligned (call ``trailing`` first)."""
        if self._count % 8:
            raise ValueError("the bit string does not end on a byte boundary")
        self._spill()
        return bytes(self._out)


def ue_bits(value: int) -> str:
    """The ue(v) code of ``value`` as a bit string (for tests and precomputed codes)."""
    code = value + 1
    return "0" * (code.bit_length() - 1) + format(code, "b")


def escape(rbsp: bytes) -> bytes:
    """
    NAL payload from an RBSP: an ``emulation_prevention_three_byte`` (0x03) after every two zero
    bytes that a byte 0x00-0x03 follows (H.264 7.4.1, 7.3.1), so no start code prefix
    ``00 00 01`` appears inside a NAL unit. A trailing ``00 00`` cannot occur (an RBSP ends with
    its stop bit), so the end needs no extra byte.
    """
    at = rbsp.find(b"\x00\x00")
    if at < 0:
        return rbsp
    out = bytearray()
    start = 0
    while at >= 0:
        after = at + 2
        if after < len(rbsp) and rbsp[after] <= 3:
            out += rbsp[start:after]
            out.append(3)
            start = after
            at = rbsp.find(b"\x00\x00", after)
        else:
            at = rbsp.find(b"\x00\x00", at + 1)
    out += rbsp[start:]
    return bytes(out)


def unescape(payload: bytes) -> bytes:
    """The RBSP of a NAL payload: every 0x03 after two zero bytes removed (the inverse of ``escape``)."""
    out = bytearray()
    start = 0
    at = payload.find(b"\x00\x00\x03")
    while at >= 0:
        out += payload[start:at + 2]
        start = at + 3
        at = payload.find(b"\x00\x00\x03", start)
    out += payload[start:]
    return bytes(out)
