"""Clock fields and random access (epgd.mpegts.pes): PTS/DTS, PCR, the 33-bit ring, split PES headers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.pes import (
    WRAP,
    header_positions,
    read_pcr_base,
    read_stamp,
    ring_diff,
    starts_random_access,
    write_pcr_base,
    write_stamp,
)
from tests.tsgen import Source, pcr_field, stamp


class ClockFieldTests(SynchronousTestCase):
    @given(st.integers(0, WRAP - 1), st.sampled_from([1, 2, 3]))
    def test_a_stamp_reads_back_and_keeps_its_prefix_and_markers(self, value: int, prefix: int) -> None:
        buf = bytearray(stamp(prefix, 12345))
        write_stamp(buf, range(5), value)
        self.assertEqual(read_stamp(buf, range(5)), value)
        self.assertEqual(bytes(buf), stamp(prefix, value))

    @given(st.integers(0, WRAP - 1))
    def test_a_pcr_base_reads_back_and_keeps_its_extension(self, base: int) -> None:
        field = bytearray(pcr_field(0))
        field[4] |= 0x01
        field[5] = 0x2B  # extension 0x12B
        write_pcr_base(field, 0, base)
        self.assertEqual(read_pcr_base(field, 0), base)
        self.assertEqual((field[4] & 0x7F, field[5]), (0x7F, 0x2B))

    def test_ring_diff_across_the_wrap(self) -> None:
        self.assertEqual(ring_diff(100, WRAP - 100), 200)
        self.assertEqual(ring_diff(WRAP - 100, 100), -200)
        self.assertEqual(ring_diff(5, 5), 0)

    def test_random_access(self) -> None:
        self.assertTrue(starts_random_access("h264", b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x42"))
        self.assertTrue(starts_random_access("h264", b"\x00\x00\x01\x09\xf0\x00\x00\x01\x06\x05\x00\x00\x01\x65"))
        self.assertFalse(starts_random_access("h264", b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x41\x9a"))
        self.assertTrue(starts_random_access("hevc", b"\x00\x00\x01\x46\x01\x10\x00\x00\x01\x40\x01"))  # AUD, VPS
        self.assertFalse(starts_random_access("hevc", b"\x00\x00\x01\x46\x01\x10\x00\x00\x01\x02\x01"))
        self.assertTrue(starts_random_access("mpeg2", b"\x00\x00\x01\xb3\x14\x00"))
        self.assertTrue(starts_random_access("mpeg2", b"\x00\x00\x01\x00\x00\x0f\xff"))  # an I-picture
        self.assertFalse(starts_random_access("mpeg2", b"\x00\x00\x01\x00\x00\x17\xff"))  # a P-picture
        self.assertTrue(starts_random_access("vc1", b"anything"))  # codecs it cannot read never block

    def test_a_parameter_set_is_a_way_in_only_before_an_intra_picture(self) -> None:
        aud_sps = b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x4d\x40\x1f\x00\x00\x00\x01\x68\xee"
        # eac3-first-h264-720p25.ts sends an SPS and PPS before every picture
        self.assertFalse(starts_random_access("h264", aud_sps + b"\x00\x00\x01\x41\x9a"))  # P (slice_type 5)
        self.assertFalse(starts_random_access("h264", aud_sps + b"\x00\x00\x01\x01\x9e"))  # B (slice_type 6)
        self.assertTrue(starts_random_access("h264", aud_sps + b"\x00\x00\x01\x41\x88"))  # I (slice_type 7), no IDR
        self.assertTrue(starts_random_access("h264", aud_sps + b"\x00\x00\x01\x41\xb0"))  # I (slice_type 2)
        self.assertFalse(starts_random_access("h264", b"\x00\x00\x01\x41\x88"))  # an I slice without its SPS
        self.assertTrue(starts_random_access("h264", aud_sps + b"\x00\x00\x01\x65\x88"))  # IDR
        self.assertTrue(starts_random_access("h264", aud_sps + b"\x00\x00\x01\x06\x05"))  # the slice beyond: as before
        self.assertTrue(starts_random_access("h264", aud_sps + b"\x00\x00\x01\x41"))  # its header cut off
        vps = b"\x00\x00\x01\x46\x01\x10\x00\x00\x01\x40\x01\x0c"
        self.assertFalse(starts_random_access("hevc", vps + b"\x00\x00\x01\x02\x01\xd0"))  # TRAIL_R
        self.assertTrue(starts_random_access("hevc", vps + b"\x00\x00\x01\x2a\x01\xaf"))  # CRA
        sequence = b"\x00\x00\x01\xb3\x2d\x02\x40\x33\x00\x00\x01\xb8\x00\x08"
        self.assertFalse(starts_random_access("mpeg2", sequence + b"\x00\x00\x01\x00\x00\x17\xff"))  # P
        self.assertTrue(starts_random_access("mpeg2", sequence + b"\x00\x00\x01\x00\x00\x0f\xff"))  # I

    def test_a_pes_header_split_across_packets_is_found_in_both(self) -> None:
        source = Source(split_header=True)
        data = source.frames(0, 1)
        video = [i for i in range(0, len(data), 188) if (data[i + 1] & 0x1F) << 8 | data[i + 2] == 0x101]
        first = video[0]
        start = first + 188 - 10  # ten header bytes in the first packet, the rest in the next
        positions, more = header_positions(data, start, first // 188, len(data) // 188, 0x101)
        self.assertFalse(more)
        self.assertGreaterEqual(len(positions), 19)
        self.assertGreater(positions[10], first + 188)  # from the tenth byte on: the next packet
        self.assertEqual(read_stamp(data, positions[14:19]), source.clock)
        cut, more = header_positions(data[:first + 188], start, first // 188, first // 188 + 1, 0x101)
        self.assertTrue(more)  # the chunk ends before the header does
