"""
The byte-level pieces under the splicer: PSI sections (epgd.mpegts.psi), clock fields and
random access (epgd.mpegts.pes), entry points (epgd.mpegts.entry).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.entry import EntryFinder
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
from epgd.mpegts.psi import (
    SectionAssembler,
    classify,
    codecs_of,
    crc32_mpeg2,
    packetize,
    parse_pat,
    parse_pmt,
    pat_section,
    pmt_section,
)
from tests.tsgen import Source, pcr_field, stamp


class PsiTests(SynchronousTestCase):
    def test_crc_of_a_known_pat(self) -> None:
        """The PAT ffmpeg writes for service 1 on PMT 0x1000 (its CRC is 0x2AB104B2)."""
        body = bytes.fromhex("00b00d0001c100000001f000")
        self.assertEqual(crc32_mpeg2(body), 0x2AB104B2)
        self.assertEqual(pat_section(1, 1, 0x1000, 0), body + bytes.fromhex("2ab104b2"))

    def test_a_section_over_three_packets_with_stuffing_and_a_duplicate(self) -> None:
        streams = [(0x06, 0x110 + k, bytes([0x0A, 4]) + b"eng\x00" + b"\x05\x04ABCD" * 10) for k in range(8)]
        section = pmt_section(7, 0x100, b"", [(0x1B, 0x100, b""), *streams], 3)
        packets = packetize(0x1000, section, 14)
        self.assertGreater(len(packets), 2)
        assembler = SectionAssembler()
        found = []
        for k, packet in enumerate(packets):
            found += assembler.feed(bytes(packet))
            if k == 0:
                found += assembler.feed(bytes(packet))  # a duplicate packet is ignored
        self.assertEqual(found, [section])
        program = parse_pmt(section)
        self.assertEqual((program.program, program.pcr_pid, len(program.streams)), (7, 0x100, 9))
        self.assertEqual(program.video.pid if program.video else None, 0x100)

    def test_a_lost_packet_drops_only_its_section(self) -> None:
        section = pmt_section(1, 0x101, b"x" * 200, [(0x1B, 0x101, b"")], 0)
        first, second = packetize(0x1000, section, 0)
        assembler = SectionAssembler()
        assembler.feed(bytes(first))
        second[3] = (second[3] & 0xF0) | 5  # a counter jump: the packet between was lost
        self.assertEqual(assembler.feed(bytes(second)), [])
        again = packetize(0x1000, section, 6)
        self.assertEqual(assembler.feed(bytes(again[0])) + assembler.feed(bytes(again[1])), [section])

    def test_a_bad_crc_or_a_cut_short_pmt_is_refused(self) -> None:
        section = bytearray(pmt_section(1, 0x101, b"", [(0x1B, 0x101, b"")], 0))
        section[-1] ^= 1
        self.assertEqual(SectionAssembler().feed(bytes(packetize(0x1000, bytes(section), 0)[0])), [])
        with self.assertRaises(ValueError):
            parse_pmt(bytes.fromhex("02b00d0001c10000e101f000") + b"\x1b\xe1\x01\xf0\x09" + b"\x00" * 4)

    def test_codec_names(self) -> None:
        self.assertEqual(classify(0x1B, b""), ("video", "h264"))
        self.assertEqual(classify(0x24, b""), ("video", "hevc"))
        self.assertEqual(classify(0x02, b""), ("video", "mpeg2"))
        self.assertEqual(classify(0x0F, b""), ("audio", "aac"))
        self.assertEqual(classify(0x81, b""), ("audio", "ac3"))
        self.assertEqual(classify(0x06, b"\x7a\x00"), ("audio", "eac3"))
        self.assertEqual(classify(0x06, b"\x05\x04AC-3"), ("audio", "ac3"))
        self.assertEqual(classify(0x06, b"\x59\x08eng\x10\x00\x01\x00\x01"), ("other", "dvbsub"))
        self.assertEqual(classify(0x86, b""), ("other", "scte35"))
        self.assertEqual(classify(0x99, b""), ("other", "0x99"))
        streams = parse_pmt(pmt_section(1, 0x100, b"", [(0x1B, 0x100, b""), (0x03, 0x101, b"")], 0)).streams
        self.assertEqual(codecs_of(streams), "h264+mp2")

    def test_pat_lists_programs_not_the_nit(self) -> None:
        body = bytes.fromhex("00b0110001c10000" "0000e010" "0005e100")
        tsid, programs = parse_pat(body + crc32_mpeg2(body).to_bytes(4, "big"))
        self.assertEqual((tsid, programs), (1, [(5, 0x100)]))


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


class EntryFinderTests(SynchronousTestCase):
    def test_rap_mode_waits_for_pat_pmt_and_a_key_frame(self) -> None:
        source = Source(gop=5, psi_every=5)
        data = source.frames(1, 10)  # PSI at frames 5 and 10; key frames at 5 and 10
        finder = EntryFinder()
        entry = finder.feed(data)
        assert entry is not None and entry.program is not None
        self.assertEqual(data.index(entry.data), data.index(source_frame_start(data, 5)))
        self.assertEqual((entry.program.program, entry.pmt_pid), (1, 0x100))
        self.assertEqual(entry.pcr, source.clock + 5 * 3600 - source.lead)  # the key frame's own PCR

    def test_pat_mode_and_relaxed_modes(self) -> None:
        source = Source(gop=1000, psi_every=4)
        data = source.frames(1, 6)
        self.assertEqual(EntryFinder("pat").feed(data), EntryFinder("pat").feed(data))
        pat_entry = EntryFinder("pat").feed(data)
        assert pat_entry is not None
        self.assertEqual(pat_entry.data[1:3], b"\x40\x00")
        finder = EntryFinder()
        self.assertIsNone(finder.feed(data))  # no key frame in sight
        finder.relax()
        later = source.frames(7, 2)
        relaxed = finder.feed(later)
        assert relaxed is not None
        self.assertEqual(relaxed.data, later[later.index(source_frame_start(later, 7)):])


def source_frame_start(data: bytes, frame: int) -> bytes:
    """The first video PES packet of ``frame`` (its DTS tells) in ``data``."""
    for i in range(0, len(data), 188):
        if (data[i + 1] & 0x5F) << 8 | data[i + 2] == 0x4101:
            start = i + 4 + (1 + data[i + 4] if data[i + 3] & 0x20 else 0)
            if read_stamp(data, range(start + 14, start + 19)) == Source().clock + frame * 3600:
                return data[i:i + 188]
    raise AssertionError(f"frame {frame} is not in the data")
