"""
A source's own tables as the splicer reads them (epgd.mpegts.tables): its PAT (which program,
which PMT PID) and its PMT (the program's streams); the repeats providers send several times
a second passed over unread; a PMT that does not parse, or lists no audio or video, kept out
so the output's layout does not collapse.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts import tables
from epgd.mpegts.psi import SectionAssembler, packetize, parse_pat, pat_section, pmt_section, with_crc
from epgd.mpegts.tables import SourceTables

H264, AAC, TELETEXT = 0x1B, 0x0F, 0x06


def packet(pid: int, section: bytes, counter: int = 0) -> bytes:
    """``section`` in one packet of ``pid``."""
    packets = packetize(pid, section, counter)
    assert len(packets) == 1
    return bytes(packets[0])


def pat(program: int, pmt_pid: int, counter: int = 0, tsid: int = 1) -> bytes:
    return packet(0, pat_section(tsid, program, pmt_pid, 0), counter)


def pmt(pid: int, program: int, streams: list[tuple[int, int]], counter: int = 0, version: int = 0) -> bytes:
    return packet(pid, pmt_section(program, streams[0][1], b"", [(t, p, b"") for t, p in streams], version),
                  counter)


def two_programs(counter: int = 0) -> bytes:
    """A PAT listing program 5 on PMT 0x500, then program 7 on PMT 0x700."""
    body = bytes([0x00, 0xB0, 17, 0, 1, 0xC1, 0, 0, 0, 5, 0xE5, 0x00, 0, 7, 0xE7, 0x00])
    return packet(0, with_crc(body), counter)


class PatTests(SynchronousTestCase):
    def test_a_pat_that_moves_the_pmt(self) -> None:
        reader = SourceTables(1, 0x100)
        self.assertFalse(reader.pat(pat(1, 0x100), 0))  # where it was
        self.assertTrue(reader.pat(pat(1, 0x200, counter=1), 0))
        self.assertEqual(reader.pmt_pid, 0x200)
        self.assertFalse(reader.pat(pat(1, 0x200, counter=2, tsid=9), 0))  # a new tsid does not move it

    def test_the_program_it_follows_is_kept_among_several(self) -> None:
        following = SourceTables(7, 0x700)
        self.assertFalse(following.pat(two_programs(), 0))
        self.assertEqual((following.program_number, following.pmt_pid), (7, 0x700))
        unknown = SourceTables(9, -1)  # not listed: the first program
        self.assertTrue(unknown.pat(two_programs(), 0))
        self.assertEqual((unknown.program_number, unknown.pmt_pid), (5, 0x500))

    def test_repeats_are_passed_over_unread(self) -> None:
        """Providers repeat their PAT and PMT several times a second: each is read once."""
        parsed: list[bytes] = []

        def counting(section: bytes) -> tuple[int, list[tuple[int, int]]]:
            parsed.append(section)
            return parse_pat(section)

        self.patch(tables, "parse_pat", counting)
        reader = SourceTables(1, 0x100)
        data = b"".join(pat(1, 0x100, counter=k % 16) for k in range(20))
        for p in range(0, len(data), 188):
            reader.pat(data, p)
        self.assertEqual(len(parsed), 1)
        self.assertTrue(reader.pat(pat(1, 0x300, counter=4), 0))  # a different one is read
        self.assertEqual(len(parsed), 2)


class PmtTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reader = SourceTables(1, 0x100)
        self.first = self.reader.pmt(pmt(0x100, 1, [(H264, 0x101), (AAC, 0x102)]), 0, None)

    def test_the_first_pmt_is_the_program(self) -> None:
        assert self.first is not None
        self.assertEqual([(s.pid, s.codec) for s in self.first.streams], [(0x101, "h264"), (0x102, "aac")])
        self.assertEqual(self.reader.notes, [])

    def test_only_a_change_is_a_new_program(self) -> None:
        same = pmt(0x100, 1, [(H264, 0x101), (AAC, 0x102)], counter=1)
        self.assertIsNone(self.reader.pmt(same, 0, self.first))
        changed = self.reader.pmt(pmt(0x100, 1, [(H264, 0x101), (AAC, 0x102), (AAC, 0x103)], counter=2,
                                      version=1), 0, self.first)
        assert changed is not None
        self.assertEqual([s.pid for s in changed.streams], [0x101, 0x102, 0x103])

    def test_repeats_are_passed_over_unread(self) -> None:
        """A repeated PMT packet is not even assembled, let alone parsed."""
        fed: list[int] = []

        class Counting(SectionAssembler):
            def feed(self, packet: bytes | bytearray | memoryview, at: int = 0) -> list[bytes]:
                fed.append(at)
                return super().feed(packet, at)

        self.patch(tables, "SectionAssembler", Counting)
        reader = SourceTables(1, 0x100)
        first = reader.pmt(pmt(0x100, 1, [(H264, 0x101), (AAC, 0x102)]), 0, None)
        self.assertIsNotNone(first)
        self.assertEqual(len(fed), 1)
        for k in range(1, 10):
            self.assertIsNone(reader.pmt(pmt(0x100, 1, [(H264, 0x101), (AAC, 0x102)], counter=k), 0, first))
        self.assertEqual(len(fed), 1)
        self.assertIsNotNone(reader.pmt(pmt(0x100, 1, [(H264, 0x101)], counter=10, version=1), 0, first))
        self.assertEqual(len(fed), 2)

    def test_a_pmt_that_does_not_parse_is_kept_out(self) -> None:
        # a stream that claims 9 bytes of descriptors the section does not hold (its CRC is right)
        broken = with_crc(bytes.fromhex("02b0120001c30000e101f000") + bytes.fromhex("1be101f009"))
        self.assertIsNone(self.reader.pmt(packet(0x100, broken, counter=1), 0, self.first))
        self.assertEqual(self.reader.notes, ["a PMT that does not parse (the PMT's stream loop does not add up): "
                                             "kept the last one"])

    def test_a_pmt_without_audio_or_video_is_kept_out(self) -> None:
        teletext_only = pmt(0x100, 1, [(TELETEXT, 0x101)], counter=1, version=1)
        self.assertIsNone(self.reader.pmt(teletext_only, 0, self.first))
        self.assertEqual(self.reader.notes, ["a PMT with no audio or video: kept the last one"])

    def test_another_programs_pmt_is_not_ours(self) -> None:
        other = pmt(0x100, 2, [(H264, 0x201), (AAC, 0x202)], counter=1)
        self.assertIsNone(self.reader.pmt(other, 0, self.first))
        self.assertEqual(self.reader.notes, [])

    def test_a_moved_pmt_is_read_afresh(self) -> None:
        self.assertTrue(self.reader.pat(pat(1, 0x200), 0))
        moved = self.reader.pmt(pmt(0x200, 1, [(H264, 0x201), (AAC, 0x202)]), 0, self.first)
        assert moved is not None
        self.assertEqual([s.pid for s in moved.streams], [0x201, 0x202])
