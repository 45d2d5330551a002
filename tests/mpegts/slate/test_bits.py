"""The bit writer, exp-Golomb codes (H.264 9.1) and emulation prevention (7.4.1)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.slate.bits import BitWriter, escape, ue_bits, unescape


def written(*calls: tuple[str, int] | tuple[str, int, int]) -> str:
    """The bits a sequence of writer calls produces, as a string, padded by ``trailing``."""
    w = BitWriter()
    for name, *args in calls:
        getattr(w, name)(*args)
    count = w.bit_length
    w.trailing()
    value = w.getvalue()
    return format(int.from_bytes(value, "big"), f"0{len(value) * 8}b")[:count]


class ExpGolombTests(SynchronousTestCase):
    def test_ue_table_9_2(self) -> None:
        """The codewords of Table 9-2 / the worked examples of 9.1."""
        for value, code in [(0, "1"), (1, "010"), (2, "011"), (3, "00100"), (4, "00101"),
                            (6, "00111"), (7, "0001000"), (14, "0001111"), (15, "000010000"),
                            (25, "000011010")]:
            self.assertEqual(written(("ue", value)), code, value)
            self.assertEqual(ue_bits(value), code)

    def test_se_table_9_3(self) -> None:
        """se(v): 0, 1, -1, 2, -2 are codeNum 0, 1, 2, 3, 4."""
        for value, code in [(0, "1"), (1, "010"), (-1, "011"), (2, "00100"), (-2, "00101"), (-26, "00000110101")]:
            self.assertEqual(written(("se", value)), code, value)

    @given(st.integers(min_value=0, max_value=1 << 40))
    def test_ue_decodes_back(self, value: int) -> None:
        """Any value: leading zeros n, then n+1 bits that are value + 1."""
        code = written(("ue", value))
        zeros = len(code) - len(code.lstrip("0"))
        self.assertEqual(len(code), 2 * zeros + 1)
        self.assertEqual(int(code[zeros:], 2) - 1, value)

    def test_negative_ue_refused(self) -> None:
        self.assertRaises(ValueError, BitWriter().ue, -1)


class BitWriterTests(SynchronousTestCase):
    def test_fields_pack_most_significant_first(self) -> None:
        w = BitWriter()
        w.u(3, 0b101)
        w.flag(True)
        w.u(12, 0xABC)
        self.assertEqual(w.getvalue(), bytes([0b1011_1010, 0xBC]))

    def test_long_runs_spill_correctly(self) -> None:
        """More than 64 pending bits (the writer's spill point) come out intact."""
        w = BitWriter()
        for value in range(100):
            w.u(7, value)
        w.align_zero()
        bits = format(int.from_bytes(w.getvalue(), "big"), f"0{700 + 4}b")
        self.assertEqual([int(bits[7 * k:7 * k + 7], 2) for k in range(100)], list(range(100)))

    def test_raw_bytes_need_alignment(self) -> None:
        w = BitWriter()
        w.u(3, 0)
        self.assertRaises(ValueError, w.raw, b"\x10")
        w.align_zero()
        w.raw(b"\x10\x20")
        w.u(8, 0x30)
        self.assertEqual(w.getvalue(), b"\x00\x10\x20\x30")

    def test_value_too_wide_refused(self) -> None:
        self.assertRaises(ValueError, BitWriter().u, 3, 8)

    def test_trailing_bits(self) -> None:
        """rbsp_trailing_bits: a 1, then zeros to the byte; a whole byte when already aligned."""
        w = BitWriter()
        w.u(2, 0b11)
        w.trailing()
        self.assertEqual(w.getvalue(), bytes([0b1110_0000]))
        w = BitWriter()
        w.u(8, 0xAA)
        w.trailing()
        self.assertEqual(w.getvalue(), b"\xaa\x80")

    def test_unaligned_end_refused(self) -> None:
        w = BitWriter()
        w.u(1, 1)
        self.assertRaises(ValueError, w.getvalue)


class EscapeTests(SynchronousTestCase):
    def test_examples(self) -> None:
        self.assertEqual(escape(b"\x00\x00\x01"), b"\x00\x00\x03\x01")
        self.assertEqual(escape(b"\x00\x00\x00\x00\x01"), b"\x00\x00\x03\x00\x00\x03\x01")
        self.assertEqual(escape(b"\x00\x00\x00\x00\x80"), b"\x00\x00\x03\x00\x00\x80")
        self.assertEqual(escape(b"\x00\x00\x04\x00\x00\x02"), b"\x00\x00\x04\x00\x00\x03\x02")
        self.assertEqual(escape(b"\x12\x00\x34"), b"\x12\x00\x34")

    @given(st.binary(max_size=300).map(lambda b: b + b"\x80"))
    def test_no_start_code_emulation_and_reversible(self, rbsp: bytes) -> None:
        """An RBSP ends with its stop bit; escaped, no 00 00 0x (x <= 3) is left, and it reads back."""
        payload = escape(rbsp)
        for at in range(len(payload) - 2):
            if payload[at] == 0 and payload[at + 1] == 0:
                self.assertGreaterEqual(payload[at + 2], 3, payload.hex())
        self.assertEqual(unescape(payload), rbsp)
