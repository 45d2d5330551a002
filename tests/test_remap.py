"""Opt-in PID normalization (epgd.stream.remap, ``stream.normalize_pids``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.remap import PidNormalizer, crc32_mpeg2
from epgd.stream.ts import NULL_PACKET, PACKET_SIZE
from tests.tsutil import packet, pids

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP_A = os.path.join(HERE, "data", "ts", "a.ts")
CLIP_B = os.path.join(HERE, "data", "ts", "b.ts")
#: the only PIDs a normalized stream may carry (DVB SI 0x10-0x1F passes as it is)
LAYOUT = {0, 0x1000, 0x100, 0x101, 0x1FFF} | set(range(0x10, 0x20))


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def packets(data: bytes) -> list[bytes]:
    return [data[i:i + PACKET_SIZE] for i in range(0, len(data), PACKET_SIZE)]


def section(pkt: bytes) -> bytes:
    """The PSI section a single-packet PAT/PMT carries (no adaptation field)."""
    start = 5 + pkt[4]
    length = ((pkt[start + 1] & 0x0F) << 8) | pkt[start + 2]
    return pkt[start:start + 3 + length]


def psi(pid: int, body: bytes, counter: int = 0) -> bytes:
    """A PSI packet carrying ``body`` plus its CRC."""
    sec = body + crc32_mpeg2(body).to_bytes(4, "big")
    head = bytes([0x47, 0x40 | (pid >> 8), pid & 0xFF, 0x10 | counter, 0])
    return (head + sec).ljust(PACKET_SIZE, b"\xff")


def pat_body(*programs: tuple[int, int]) -> bytes:
    entries = b"".join(bytes([n >> 8, n & 0xFF, 0xE0 | (p >> 8), p & 0xFF]) for n, p in programs)
    length = 5 + len(entries) + 4
    return bytes([0x00, 0xB0, length, 0x00, 0x07, 0xC1, 0, 0]) + entries


def pmt_body(program: int, pcr: int, *streams: tuple[int, int]) -> bytes:
    loop = b"".join(bytes([t, 0xE0 | (p >> 8), p & 0xFF, 0xF0, 0]) for t, p in streams)
    length = 9 + len(loop) + 4
    return bytes([0x02, 0xB0, length, program >> 8, program & 0xFF, 0xC1, 0, 0,
                  0xE0 | (pcr >> 8), pcr & 0xFF, 0xF0, 0]) + loop


def normalize(*sources: bytes, chunk: int = 43 * PACKET_SIZE) -> bytes:
    """Each source through one normalizer, in chunks, with a reset between sources."""
    normalizer = PidNormalizer("test")
    out = []
    for source in sources:
        normalizer.reset()
        for i in range(0, len(source), chunk):
            out.append(normalizer.feed(source[i:i + chunk]))
    return b"".join(out)


class CrcTests(SynchronousTestCase):
    def test_known_check_value(self) -> None:
        """The catalogue check value of CRC-32/MPEG-2 (zlib.crc32 gives 0xCBF43926)."""
        self.assertEqual(crc32_mpeg2(b"123456789"), 0x0376E6E7)

    def test_real_pat_and_pmt_verify(self) -> None:
        for path in (CLIP_A, CLIP_B):
            first = packets(read(path))
            for pkt in first[:3]:
                if pids(pkt)[0] in (0, 0x100, 0x200):
                    sec = section(pkt)
                    self.assertEqual(crc32_mpeg2(sec[:-4]).to_bytes(4, "big"), sec[-4:])
                    self.assertEqual(crc32_mpeg2(sec), 0)


class RemapTests(SynchronousTestCase):
    def test_two_clips_come_out_in_one_layout(self) -> None:
        a, b = read(CLIP_A), read(CLIP_B)
        self.assertNotEqual(set(pids(a)), set(pids(b)))  # the clips really differ
        out = normalize(a, b)
        self.assertEqual(len(out), len(a) + len(b))  # nothing lost: both start at SDT, PAT, PMT
        self.assertLessEqual(set(pids(out)), LAYOUT)
        programs = []
        for pkt in packets(out):
            pid = pids(pkt)[0]
            if pid in (0, 0x1000):
                sec = section(pkt)
                self.assertEqual(crc32_mpeg2(sec), 0)
                number = (sec[3] << 8) | sec[4] if pid == 0x1000 else (sec[8] << 8) | sec[9]
                programs.append((pid, number))
            if pid == 0:
                self.assertEqual(len(sec), 8 + 4 + 4)  # one program
                self.assertEqual(((sec[10] & 0x1F) << 8) | sec[11], 0x1000)
            if pid == 0x1000:
                self.assertEqual(((sec[8] & 0x1F) << 8) | sec[9], 0x100)  # PCR on the video
                self.assertEqual([((sec[i] & 0x1F) << 8) | sec[i + 1] for i in (13, 18)],
                                 [0x100, 0x101])
        half = len(pids(a)) // 2
        self.assertEqual({n for _, n in programs[:half // 10]}, {1})
        self.assertEqual({n for _, n in programs[-4:]}, {2})  # each source keeps its service id

    def test_chunking_does_not_matter(self) -> None:
        a = read(CLIP_A)
        self.assertEqual(normalize(a, chunk=PACKET_SIZE), normalize(a, chunk=len(a)))

    def test_psi_counters_increment_per_output_pid(self) -> None:
        out = normalize(read(CLIP_A), read(CLIP_B))
        for pid in (0, 0x1000):
            counters = [p[3] & 0x0F for p in packets(out) if pids(p)[0] == pid]
            self.assertEqual(counters, [i % 16 for i in range(len(counters))])

    def test_first_program_only_nit_dropped_unknown_pids_dropped_until_pmt(self) -> None:
        source = b"".join([
            packet(0x310, fill=0xAA),  # before any PAT: dropped
            NULL_PACKET,
            psi(0, pat_body((0, 0x10), (7, 0x300), (8, 0x400))),
            packet(0x310, fill=0xAB),  # PAT seen, PMT not yet: dropped
            packet(0x12, fill=0xEE),  # EIT passes
            psi(0x300, pmt_body(7, 0x320, (0x0F, 0x311), (0x1B, 0x310), (0x06, 0x312))),
            packet(0x310, fill=0xBB), packet(0x311, fill=0xCC), packet(0x312, fill=0xDD),
            packet(0x320, fill=0x99), packet(0x410, fill=0x44),  # PCR-only; other program
        ])
        out = normalize(source)
        self.assertEqual(pids(out), [0x1FFF, 0, 0x12, 0x1000, 0x100, 0x101, 0x110, 0x1FF])
        self.assertEqual([p[4] for p in packets(out)[4:]], [0xBB, 0xCC, 0xDD, 0x99])
        pat = section(packets(out)[1])
        self.assertEqual(pat[8:12], bytes([0, 7, 0xF0, 0x00]))
        pmt = section(packets(out)[3])
        self.assertEqual(crc32_mpeg2(pmt), 0)
        self.assertEqual(((pmt[8] & 0x1F) << 8) | pmt[9], 0x1FF)

    def test_flags_and_payload_are_kept(self) -> None:
        source = psi(0, pat_body((1, 0x100))) + psi(0x100, pmt_body(1, 0x101, (0x1B, 0x101)))
        pes = bytes([0x47, 0xC1, 0x01, 0x37]) + bytes(range(184))  # TEI + PUSI set
        out = normalize(source + pes)
        self.assertEqual(out[-PACKET_SIZE:], bytes([0x47, 0xC1, 0x00, 0x37]) + bytes(range(184)))

    def test_section_spanning_packets_passes_the_source_through(self) -> None:
        body = bytearray(pmt_body(1, 0x101, (0x1B, 0x101)))
        body[1], body[2] = 0xB1, 0x20  # section_length 288: cannot fit one packet
        source = (psi(0, pat_body((1, 0x100))) + psi(0x100, bytes(body))
                  + packet(0x100, fill=0x55) + packet(0x101, fill=0x66) * 3)
        normalizer = PidNormalizer("nhl_1")
        with capturedLogs() as events:
            first = normalizer.feed(source)
            second = normalizer.feed(source)
        self.assertEqual(pids(first), [0] + pids(source)[1:])  # the PAT before it was rewritten
        self.assertEqual(first[PACKET_SIZE:], source[PACKET_SIZE:])
        self.assertEqual(second, source)
        self.assertEqual(len(events), 1)  # logged once
        self.assertIn("spans packets", str(events[0]["why"]))
        normalizer.reset()
        self.assertFalse(normalizer.passthrough)  # the next source gets its chance

    def test_corrupt_pmt_is_dropped_not_passed(self) -> None:
        good = psi(0x100, pmt_body(1, 0x101, (0x1B, 0x101)))
        bad = good[:20] + bytes([good[20] ^ 0xFF]) + good[21:]
        out = normalize(psi(0, pat_body((1, 0x100))) + good + bad + packet(0x101))
        self.assertEqual(pids(out), [0, 0x1000, 0x100])


class FfmpegTests(SynchronousTestCase):
    """What a real FFmpeg reader (Plex, Jellyfin, Emby, Channels DVR) keeps across a switch."""

    def setUp(self) -> None:
        if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
            raise self.skipTest("ffmpeg/ffprobe not installed")
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def video_frames(self, data: bytes) -> int:
        """Video packets an ``ffmpeg -c copy`` recording of ``data`` keeps, in one stream."""
        src, out = os.path.join(self.dir, "f.ts"), os.path.join(self.dir, "out.ts")
        with open(src, "wb") as f:
            f.write(data)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-c", "copy", out],
                       check=True, capture_output=True, timeout=60)
        probe = subprocess.run(
            ["ffprobe", "-v", "quiet", "-select_streams", "v", "-count_packets",
             "-show_entries", "stream=nb_read_packets", "-of", "json", out],
            check=True, capture_output=True, text=True, timeout=60)
        streams = json.loads(probe.stdout)["streams"]
        self.assertEqual(len(streams), 1, probe.stdout)  # ONE video stream
        return int(streams[0]["nb_read_packets"])

    def test_one_video_stream_holds_both_clips(self) -> None:
        a, b = read(CLIP_A), read(CLIP_B)
        only_a, only_b = self.video_frames(a), self.video_frames(b)
        self.assertEqual(self.video_frames(normalize(a, b)), only_a + only_b)
        # Why the feature exists: untouched, the recording stops at the switch.
        self.assertEqual(self.video_frames(a + b), only_a)
