"""
The output program's layout (epgd.mpegts.splice.layout, SPEC §7.1 "Fixed layout"): first video
on 0x100, audio on 0x101.. in the source's order, other streams from 0x110, a PCR-only PID of
its own; our PAT and PMT (the first source's service id, a new PMT version only when what it
says changes, continuity counters that run on); the PID table the hot path rewrites with.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.psi import NULL_PID, ProgramMap, SectionAssembler, parse_pat, parse_pmt, pmt_section
from epgd.mpegts.splice.layout import (
    BULK,
    DROP,
    ES,
    OUT_AUDIO,
    OUT_PCR_ONLY,
    OUT_PMT,
    OUT_VIDEO,
    PAT,
    PLAIN,
    PMT,
    Layout,
    OutputProgram,
    pid_table,
    positions,
    table_key,
)

H264, MPEG2, AAC, MP2, AC3, PRIVATE, SCTE35 = 0x1B, 0x02, 0x0F, 0x03, 0x81, 0x06, 0x86
TELETEXT = bytes([0x56, 5]) + b"eng\x09\x00"


def program(streams: list[tuple[int, int]], pcr_pid: int | None = None, number: int = 1,
            descriptors: dict[int, bytes] | None = None) -> ProgramMap:
    """A source program as its PMT says it: (stream_type, PID) in order; PCR on the first by default."""
    found = [(t, pid, (descriptors or {}).get(pid, b"")) for t, pid in streams]
    return parse_pmt(pmt_section(number, streams[0][1] if pcr_pid is None else pcr_pid, b"", found, 0))


def packets(data: bytes) -> dict[int, list[bytes]]:
    """PID -> its packets, in order."""
    out: dict[int, list[bytes]] = {}
    for p in range(0, len(data), 188):
        out.setdefault(((data[p + 1] & 0x1F) << 8) | data[p + 2], []).append(data[p:p + 188])
    return out


def read_psi(data: bytes) -> tuple[tuple[int, list[tuple[int, int]]], ProgramMap, int]:
    """Our PAT (tsid, programs), PMT and the PMT's version, read back from ``psi()``."""
    by_pid = packets(data)
    assert set(by_pid) == {0, OUT_PMT}, f"PIDs {sorted(by_pid)}"
    pat_sections: list[bytes] = []
    pmt_sections: list[bytes] = []
    pat_reader, pmt_reader = SectionAssembler(), SectionAssembler()
    for packet in by_pid[0]:
        pat_sections += pat_reader.feed(packet)
    for packet in by_pid[OUT_PMT]:
        pmt_sections += pmt_reader.feed(packet)
    assert len(pat_sections) == len(pmt_sections) == 1
    return parse_pat(pat_sections[0]), parse_pmt(pmt_sections[0]), (pmt_sections[0][5] >> 1) & 0x1F


class LayoutTests(SynchronousTestCase):
    def test_first_video_then_audio_in_order_then_the_others(self) -> None:
        source = program([(AAC, 0x30), (H264, 0x31), (AC3, 0x32), (PRIVATE, 0x33), (MPEG2, 0x34), (SCTE35, 0x35)],
                         descriptors={0x33: TELETEXT})
        layout = Layout.of(source)
        self.assertEqual(layout.mapping, {0x31: OUT_VIDEO, 0x30: 0x101, 0x32: 0x102, 0x33: 0x110, 0x34: 0x111,
                                          0x35: 0x112})
        self.assertEqual([(s.pid, s.codec) for s in layout.streams],
                         [(0x100, "h264"), (0x101, "aac"), (0x102, "ac3"), (0x110, "teletext"), (0x111, "mpeg2"),
                          (0x112, "scte35")])
        self.assertEqual((layout.video, layout.pcr_pid, layout.dropped), (0x31, OUT_VIDEO, 0))

    def test_the_pcr_pid_is_always_the_video_pid(self) -> None:
        """Wherever a source carries its PCR, the output's PMT names OUT_VIDEO (SPEC §7.1)."""
        layout = Layout.of(program([(H264, 0x31), (AAC, 0x32)], pcr_pid=0x40))
        self.assertEqual(layout.mapping[0x40], OUT_PCR_ONLY)  # read, for its PCRs
        self.assertEqual(layout.pcr_pid, OUT_VIDEO)
        self.assertNotIn(OUT_PCR_ONLY, [s.pid for s in layout.streams])  # the PMT does not list it
        on_video = Layout.of(program([(H264, 0x31), (AAC, 0x32)], pcr_pid=0x31))
        self.assertEqual((on_video.pcr_pid, len(on_video.mapping)), (OUT_VIDEO, 2))
        on_audio = Layout.of(program([(H264, 0x31), (AAC, 0x32)], pcr_pid=0x32))
        self.assertEqual((on_audio.pcr_pid, on_audio.mapping[0x32]), (OUT_VIDEO, 0x101))
        none = Layout.of(program([(H264, 0x31)], pcr_pid=NULL_PID))
        self.assertEqual((none.pcr_pid, none.mapping), (OUT_VIDEO, {0x31: OUT_VIDEO}))

    def test_streams_beyond_the_layout_are_dropped_and_counted(self) -> None:
        audio = [(AAC, 0x40 + k) for k in range(len(OUT_AUDIO) + 2)]
        layout = Layout.of(program([(H264, 0x31), *audio]))
        self.assertEqual(layout.dropped, 2)
        self.assertEqual(sorted(layout.mapping.values()), [OUT_VIDEO, *OUT_AUDIO])
        self.assertNotIn(0x40 + len(OUT_AUDIO), layout.mapping)  # the last ones go, in order

    def test_audio_only(self) -> None:
        layout = Layout.of(program([(MP2, 0x31), (AAC, 0x32)]))
        self.assertEqual((layout.video, layout.mapping), (-1, {0x31: 0x101, 0x32: 0x102}))


class OutputProgramTests(SynchronousTestCase):
    def test_nothing_before_a_first_source(self) -> None:
        self.assertEqual(OutputProgram().psi(), b"")

    def test_the_first_sources_service_id_stays(self) -> None:
        out = OutputProgram()
        out.adopt(program([(H264, 0x31), (AAC, 0x32)], number=11), tsid=5)
        out.adopt(program([(H264, 0x51), (AAC, 0x52)], number=22), tsid=6)
        (tsid, programs), pmt, _ = read_psi(out.psi())
        self.assertEqual((tsid, programs, pmt.program), (5, [(11, OUT_PMT)], 11))

    def test_the_pmt_version_changes_only_when_what_it_says_does(self) -> None:
        out = OutputProgram()
        first = program([(H264, 0x31), (AAC, 0x32)])
        out.adopt(first, 1)
        self.assertEqual(read_psi(out.psi())[2], 0)
        out.adopt(program([(H264, 0x71), (AAC, 0x72)], number=9), 1)  # other PIDs, the same output
        self.assertEqual(read_psi(out.psi())[2], 0)
        out.adopt(program([(H264, 0x31), (AAC, 0x32), (AAC, 0x33)]), 1)
        _, pmt, version = read_psi(out.psi())
        self.assertEqual((version, [s.pid for s in pmt.streams]), (1, [0x100, 0x101, 0x102]))
        out.adopt(first, 1)
        self.assertEqual(read_psi(out.psi())[2], 2)

    def test_continuity_counters_run_on(self) -> None:
        out = OutputProgram()
        big = b"".join(bytes([0x0A, 4]) + b"eng\x00" for _ in range(3))  # a PMT over two packets
        found = [(PRIVATE, 0x40 + k) for k in range(8)]
        out.adopt(parse_pmt(pmt_section(1, 0x31, b"", [(H264, 0x31, b""), *[(t, p, big) for t, p in found]], 0)), 1)
        counters: dict[int, list[int]] = {}
        for _ in range(10):
            for pid, found_packets in packets(out.psi()).items():
                counters.setdefault(pid, []).extend(p[3] & 0x0F for p in found_packets)
        self.assertEqual(counters[0], [k & 0x0F for k in range(10)])
        self.assertEqual(len(packets(out.psi())[OUT_PMT]), 2)
        self.assertEqual(counters[OUT_PMT], [k & 0x0F for k in range(20)])

    def test_a_codec_change_is_told(self) -> None:
        changes: list[tuple[str, str]] = []
        out = OutputProgram(lambda old, new: changes.append((old, new)))
        out.adopt(program([(H264, 0x31), (AAC, 0x32)]), 1)
        out.adopt(program([(H264, 0x41), (AAC, 0x42)]), 1)
        self.assertEqual(changes, [])
        out.adopt(program([(MPEG2, 0x31), (MP2, 0x32)]), 1)
        self.assertEqual((changes, out.codecs), ([("h264+aac", "mpeg2+mp2")], "mpeg2+mp2"))


def lookup(table: list[int], pid: int, flags: int = 0) -> tuple[int, int, int]:
    """(new PID, flags kept, code) the table gives a packet of ``pid`` with header ``flags`` (TEI, PUSI, prio)."""
    entry = table[table_key(flags << 5 | pid >> 8, pid & 0xFF)]
    b1, b2, code = entry & 0xFF, (entry >> 8) & 0xFF, entry >> 16
    return ((b1 & 0x1F) << 8) | b2, b1 >> 5, code


class PidTableTests(SynchronousTestCase):
    def test_each_packet_gets_its_new_pid_and_its_path(self) -> None:
        table = pid_table({0x31: OUT_VIDEO, 0x32: 0x101, 0x33: 0x102}, 0x50, bulk=0x31, plain={0x32: PLAIN})
        self.assertEqual(lookup(table, 0x31), (OUT_VIDEO, 0, BULK))  # the video's plain packets: fast
        self.assertEqual(lookup(table, 0x31, 0b010), (OUT_VIDEO, 0b010, ES))  # a PES starts
        self.assertEqual(lookup(table, 0x31, 0b100), (OUT_VIDEO, 0b100, ES))  # damaged: looked at
        self.assertEqual(lookup(table, 0x31, 0b001), (OUT_VIDEO, 0b001, BULK))  # priority: still plain
        self.assertEqual(lookup(table, 0x32), (0x101, 0, PLAIN))
        self.assertEqual(lookup(table, 0x33), (0x102, 0, ES))  # its counter shift not known yet
        self.assertEqual(lookup(table, 0, 0b010), (0, 0b010, PAT))
        self.assertEqual(lookup(table, 0x50, 0b010), (OUT_PMT, 0b010, PMT))
        self.assertEqual(lookup(table, NULL_PID), (NULL_PID, 0, BULK))
        self.assertEqual(lookup(table, 0x34)[2], DROP)

    def test_without_a_known_video_shift_its_packets_are_read_one_by_one(self) -> None:
        table = pid_table({0x31: OUT_VIDEO}, -1, bulk=-1)
        self.assertEqual(lookup(table, 0x31)[2], ES)
        self.assertEqual(lookup(table, 0x1000)[2], DROP)  # no PMT PID: nothing is taken for one

    def test_positions(self) -> None:
        self.assertEqual(positions(ES, bytes([BULK, ES, DROP, ES, ES])), [1, 3, 4])
        self.assertEqual(positions(PAT, bytes([BULK] * 5)), [])
