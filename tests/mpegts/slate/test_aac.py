"""The silent AAC frame: what ffmpeg makes of it, and its ADTS header field by field."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.slate import aac
from tests.mpegts.slate import ff


class SilentFrameTests(SynchronousTestCase):
    def test_decodes_to_silence(self) -> None:
        """100 frames: no error line, 102,400 stereo samples, every one zero."""
        data = aac.SILENT_FRAME * 100
        self.assertEqual(ff.errors(data, "aac"), "")
        pcm = ff.decode(data, "aac", stream="a:0", extra=["-f", "s16le", "-ac", "2"])
        self.assertEqual(len(pcm), 100 * 1024 * 2 * 2)
        self.assertEqual(pcm.count(0), len(pcm))

    def test_probed_as_aac_lc_stereo_48k(self) -> None:
        stream = ff.probe(aac.SILENT_FRAME * 10, "aac")["streams"][0]
        self.assertEqual((stream["codec_name"], stream["profile"], stream["sample_rate"], stream["channels"]),
                         ("aac", "LC", "48000", 2))

    def test_adts_header(self) -> None:
        """Sync word, MPEG-4, no CRC, LC, 48 kHz, two channels, the frame's own length, VBR fullness."""
        frame = aac.SILENT_FRAME
        bits = int.from_bytes(frame[:7], "big")
        field = lambda start, size: (bits >> (56 - start - size)) & ((1 << size) - 1)  # noqa: E731
        self.assertEqual(field(0, 12), 0xFFF)
        self.assertEqual(field(12, 1), 0)  # MPEG-4
        self.assertEqual(field(15, 1), 1)  # protection_absent
        self.assertEqual(field(16, 2), 1)  # AAC LC
        self.assertEqual(field(18, 4), 3)  # 48 kHz
        self.assertEqual(field(23, 3), 2)  # stereo
        self.assertEqual(field(30, 13), len(frame))
        self.assertEqual(field(43, 11), 0x7FF)
        self.assertEqual(field(54, 2), 0)  # one raw data block
        self.assertLessEqual(len(frame), 16)
