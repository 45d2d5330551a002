"""
Audio frames inside PES payloads (epgd.mpegts.audioframes), read from the real captures'
sound: every frame found, one after the other, exactly as many as ffprobe counts, each as long
as its codec says, whatever the PES boundaries (one capture spreads frames across them, one is
labelled MPEG audio and carries ADTS AAC).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.audioframes import Frame, first_frame, frame_at, frames_in
from epgd.mpegts.entry import EntryFinder
from tests import realclips

#: capture -> (audio PID, codec as its PMT says, frames ffprobe -count_packets finds, ticks each)
SOUND = {
    "aac44k-h264-720p2997.ts": (0x102, "aac", 429, 90000 * 1024 / 44100),
    "hevc-aac44k-30.ts": (0x101, "aac", 215, 90000 * 1024 / 44100),
    "rollover-h264-aac48k.ts": (0x102, "aac", 281, 1920),
    "aac-first-h264-576p25.ts": (0x64, "mp2", 559, 1920),  # labelled MPEG audio, ADTS AAC inside
    "mpeg2-576i25-mp2.ts": (0x1001, "mp2", 101, 2160),
    "ac3dvb-h264-576p25.ts": (0x101, "ac3", 63, 2880),
    "eac3-first-h264-720p25.ts": (0x101, "eac3", 188, 2880),
}


def elementary(data: bytes, pid: int) -> bytes:
    """The PES payloads of ``pid`` joined: its elementary stream, as a decoder reads it."""
    pes: list[bytearray] = []
    for p in range(0, len(data) - 187, 188):
        if ((data[p + 1] & 0x1F) << 8 | data[p + 2]) != pid or not data[p + 3] & 0x10:
            continue
        start = 4 + (1 + data[p + 4] if data[p + 3] & 0x20 else 0)
        if data[p + 1] & 0x40:
            pes.append(bytearray(data[p + start:p + 188]))
        elif pes:
            pes[-1] += data[p + start:p + 188]
    return b"".join(bytes(x[9 + x[8]:]) for x in pes)


class RealSoundTests(SynchronousTestCase):
    def test_every_frame_of_every_capture(self) -> None:
        for name, (pid, codec, count, ticks) in SOUND.items():
            data = realclips.load(name)
            finder = EntryFinder()
            finder.feed(data)
            assert finder.program is not None
            self.assertEqual({s.pid: s.codec for s in finder.program.streams}[pid], codec, name)
            sound = elementary(data, pid)
            start = first_frame(codec, sound)
            frames = frames_in(codec, sound, start)
            self.assertEqual((start, len(frames)), (0, count), name)
            if name != "aac-first-h264-576p25.ts":  # its PES lengths are wrong: bytes after its last frame
                self.assertEqual(frames[-1][0] + frames[-1][1].size, len(sound), name)  # nothing left over
            self.assertAlmostEqual(frames[0][1].ticks, ticks, places=3, msg=name)

    def test_frames_spread_across_pes_are_found_from_any_pes(self) -> None:
        """aac44k's PES each end inside a frame: the next one's first bytes finish it."""
        data = realclips.load("aac44k-h264-720p2997.ts")
        sound = elementary(data, 0x102)
        frames = frames_in("aac", sound, 0)
        middle = frames[100][0] + 5  # somewhere inside frame 100
        self.assertEqual(first_frame("aac", sound, middle), frames[101][0])


class SyncTests(SynchronousTestCase):
    def test_a_sync_word_inside_a_frame_is_not_a_frame(self) -> None:
        frame = bytes.fromhex("fff15080") + bytes([0x03, 0x1F, 0xFC]) + b"\xff\xf1" + b"\x00" * 15
        self.assertEqual(frame_at("aac", frame, 0), Frame(24, 90000 * 1024 / 44100))  # 24 bytes, 44.1 kHz
        stream = b"\x12\x34" + frame + frame
        self.assertEqual(first_frame("aac", stream), 2)
        self.assertEqual(first_frame("aac", stream, 3), 26)  # the 0xFFF1 at 9 has no frame after it

    def test_unknown_and_broken_headers(self) -> None:
        self.assertIsNone(frame_at("dts", b"\x7f\xfe\x80\x01\x00\x00\x00\x00", 0))
        self.assertIsNone(frame_at("ac3", b"\x0b\x77\x00\x00\xff\x40\x00\x00", 0))  # reserved rate
        self.assertIsNone(frame_at("mp2", b"\xff\xfb\xf0\x00\x00\x00\x00\x00", 0))  # bitrate index 15
        self.assertEqual(first_frame("aac", b"\x00" * 50), -1)
