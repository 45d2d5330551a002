"""PSI sections (epgd.mpegts.psi): assembling, CRC, reading PAT/PMT, codec names, packetizing."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

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
