"""
The hand-written H.264 judged by real ffmpeg: no error line at any size, every decoded frame
equal to the planes sample for sample, the picture a viewer sees matching what Pillow drew,
and the stream described (profile, level, colour, rate) as the SPS means it.
"""

from __future__ import annotations

import random

from attrs import evolve
from PIL import Image
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.slate import h264
from epgd.mpegts.slate.bits import unescape
from epgd.mpegts.slate.picture import SIZES, Picture, render
from tests.mpegts.slate import ff
from tests.mpegts.slate.test_picture import TYPICAL, ink_mask

LONG = ["1234  Sky Sports Premier League Extra Channel HD",
        "Up next: Manchester United vs Wolverhampton Wanderers, Premier League Matchday 12 Live",
        "Tue 19:00 · in 23 h 59 min", "Reconnecting to PROVIDERNAME…"]
LEVELS = {"640x360": 30, "960x540": 31, "1280x720": 31, "1920x1080": 40}


def elementary(picture: Picture, p_frames: int) -> bytes:
    geometry = h264.Geometry(picture.width, picture.height)
    return h264.idr_access_unit(picture).access_unit + b"".join(
        h264.p_access_unit(geometry, n) for n in range(1, p_frames + 1))


def cropped_frame(picture: Picture) -> bytes:
    """The planes cut to the picture's size, as ffmpeg writes a decoded yuv420p frame."""
    stride, cstride = picture.mb_width * 16, picture.mb_width * 8
    w, h = picture.width, picture.height
    return b"".join([picture.y[r * stride:r * stride + w] for r in range(h)]
                    + [picture.cb[r * cstride:r * cstride + w // 2] for r in range(h // 2)]
                    + [picture.cr[r * cstride:r * cstride + w // 2] for r in range(h // 2)])


def with_dots(picture: Picture, seed: int) -> Picture:
    """
    The background picture with single-sample dots where DC prediction is easiest to get
    wrong: a macroblock's last column or row, its first, a chroma sample alone, a corner.
    """
    rng = random.Random(seed)
    y, cb, cr = bytearray(picture.y), bytearray(picture.cb), bytearray(picture.cr)
    bg_y, bg_cb, bg_cr = picture.background
    y[:] = bytes([bg_y]) * len(y)
    cb[:] = bytes([bg_cb]) * len(cb)
    cr[:] = bytes([bg_cr]) * len(cr)
    stride, cstride = picture.mb_width * 16, picture.mb_width * 8
    for _ in range(60):
        mx, my = rng.randrange(picture.mb_width), rng.randrange(picture.mb_height)
        x = mx * 16 + rng.choice([0, 15, rng.randrange(16)])
        yy = my * 16 + rng.choice([0, 15, rng.randrange(16)])
        kind = rng.randrange(3)
        if kind == 0:
            y[yy * stride + x] = rng.randrange(16, 236)
        else:
            (cb if kind == 1 else cr)[(yy // 2) * cstride + x // 2] = rng.randrange(16, 241)
    return evolve(picture, y=bytes(y), cb=bytes(cb), cr=bytes(cr))


class DecodeTests(SynchronousTestCase):
    def test_every_size_decodes_clean_and_exact(self) -> None:
        """IDR + 9 skipped P frames at each size: no error line, all 10 frames the planes exactly."""
        for size in SIZES:
            picture = render(TYPICAL, size)
            data = elementary(picture, 9)
            self.assertEqual(ff.errors(data, "h264"), "", size)
            decoded = ff.decode(data, "h264")
            frame = cropped_frame(picture)
            self.assertEqual(len(decoded), 10 * len(frame), size)
            for k in range(10):
                self.assertTrue(decoded[k * len(frame):(k + 1) * len(frame)] == frame, (size, k))

    def test_dots_on_macroblock_edges_decode_exactly(self) -> None:
        """
        Dots on the last column or row of a macroblock, or in chroma only: the blocks right of
        and below them must not predict from them, so the decode is still exact.
        """
        for seed, size in enumerate(["640x360", "960x540"]):
            picture = with_dots(render([], size), seed)
            data = elementary(picture, 1)
            self.assertEqual(ff.errors(data, "h264"), "")
            self.assertTrue(ff.decode(data, "h264", frames=1) == cropped_frame(picture), size)

    def test_what_a_viewer_sees_is_what_pillow_drew(self) -> None:
        """
        Decoded to RGB by ffmpeg (reading the VUI's range and matrix), each 16x16 block's mean is
        within 2 of Pillow's and no pixel is off by more than 20 (4:2:0 chroma at glyph
        edges): the text is there, where it was drawn, with no block showing.
        """
        picture = render(TYPICAL, "1280x720")
        rgb = ff.decode(elementary(picture, 0), "h264", pix_fmt="rgb24", frames=1)
        drawn = picture.rgb.tobytes()
        self.assertEqual(len(rgb), len(drawn))
        worst_pixel = max(abs(a - b) for a, b in zip(rgb, drawn, strict=True))
        self.assertLessEqual(worst_pixel, 20)
        width = picture.width * 3
        worst_block = 0.0
        for top in range(0, picture.height, 16):
            for left in range(0, width, 48):
                rows = range(top, top + 16)
                a = sum(sum(rgb[r * width + left:r * width + left + 48]) for r in rows)
                b = sum(sum(drawn[r * width + left:r * width + left + 48]) for r in rows)
                worst_block = max(worst_block, abs(a - b) / 768)
        self.assertLessEqual(worst_block, 2)
        # and the decoded picture really has text: its ink where Pillow's is
        seen = ink_mask(evolve(picture, rgb=Image.frombytes("RGB", picture.rgb.size, rgb))).getbbox()
        drawn_box = ink_mask(picture).getbbox()
        assert seen is not None and drawn_box is not None
        self.assertLessEqual(max(abs(a - b) for a, b in zip(seen, drawn_box, strict=True)), 1)

    def test_stream_described_as_coded(self) -> None:
        """ffprobe reads the SPS/VUI: Constrained Baseline, the level, 25 fps, BT.709 video range, the exact size."""
        for size, (width, height) in SIZES.items():
            stream = ff.probe(elementary(render(TYPICAL, size), 2), "h264")["streams"][0]
            self.assertEqual(
                (stream["codec_name"], stream["profile"], stream["level"], stream["width"], stream["height"],
                 stream["pix_fmt"], stream["color_range"], stream["color_space"], stream["color_primaries"],
                 stream["color_transfer"], stream["r_frame_rate"], stream.get("has_b_frames")),
                ("h264", "Constrained Baseline", LEVELS[size], width, height, "yuv420p", "tv", "bt709",
                 "bt709", "bt709", "25/1", 0))


class CodingTests(SynchronousTestCase):
    def test_only_blocks_with_text_are_pcm(self) -> None:
        """
        Every macroblock with ink is I_PCM; three lines of text at 720p leave at least 80% of
        the blocks as one-byte I_16x16 (DESIGN.md expects ~17% I_PCM; a blanket margin would be more).
        """
        picture = render(TYPICAL, "1280x720")
        pcm = h264.pcm_map(picture)
        mask = ink_mask(picture, threshold=0)
        for index, is_pcm in enumerate(pcm):
            row, col = divmod(index, picture.mb_width)
            if mask.crop((col * 16, row * 16, col * 16 + 16, row * 16 + 16)).getbbox():
                self.assertTrue(is_pcm, (row, col))
        self.assertTrue(pcm[0])
        self.assertLess(sum(pcm) / len(pcm), 0.2)
        self.assertFalse(any(pcm[-picture.mb_width:]))  # the bottom row is background

    def test_p_frame_is_a_dozen_bytes(self) -> None:
        for size, (width, height) in SIZES.items():
            unit = h264.p_access_unit(h264.Geometry(width, height), 5)
            self.assertLessEqual(len(unit), 20, size)

    def test_idr_access_unit_order_and_escaping(self) -> None:
        """AUD, SPS, PPS, IDR (7.4.1.2.3), each behind a start code; no start code inside any."""
        unit = h264.idr_access_unit(render(TYPICAL, "640x360")).access_unit
        parts = unit.split(b"\x00\x00\x00\x01")[1:]
        self.assertEqual([p[0] & 0x1F for p in parts], [9, 7, 8, 5])
        self.assertEqual([p[0] >> 5 for p in parts], [0, 3, 3, 3])
        for part in parts:
            self.assertNotIn(b"\x00\x00\x01", part)
            self.assertNotIn(b"\x00\x00\x00", part)
        # the IDR's RBSP holds the I_PCM samples unescaped: 384 bytes for each I_PCM block
        rbsp = unescape(parts[3][1:])
        self.assertGreater(len(rbsp), 384 * h264.idr_access_unit(render(TYPICAL, "640x360")).pcm_blocks)

    def test_frame_num_counts_modulo_16(self) -> None:
        geometry = h264.Geometry(640, 360)
        self.assertEqual(h264.p_access_unit(geometry, 3), h264.p_access_unit(geometry, 19))
        self.assertNotEqual(h264.p_access_unit(geometry, 3), h264.p_access_unit(geometry, 4))

    def test_levels(self) -> None:
        """Table A-1 by frame size; a big IDR needs a level with MinCR 2; over half the raw picture, none."""
        self.assertEqual([h264.level_for(h264.Geometry(*SIZES[s]).mbs) for s in LEVELS], list(LEVELS.values()))
        self.assertEqual(h264.level_for(3600, 400_000), 41)
        self.assertEqual(h264.level_for(8160, 800_000), 41)
        self.assertEqual(h264.level_for(920, 170_000), 30)
        self.assertIsNone(h264.level_for(920, 180_000))
        self.assertIsNone(h264.level_for(9000))

    def test_level_follows_the_idr_size(self) -> None:
        """Four long lines at 720p make a ~410 KB IDR, over level 3.1's 346 KB: the SPS says 4.1, and ffmpeg agrees."""
        picture = render(LONG, "1280x720")
        idr = h264.idr_access_unit(picture)
        self.assertGreater(len(idr.access_unit), 384 * 3600 // 4)
        self.assertEqual(idr.level, 41)
        data = elementary(picture, 1)
        self.assertEqual(ff.probe(data, "h264")["streams"][0]["level"], 41)
        self.assertEqual(ff.errors(data, "h264"), "")
