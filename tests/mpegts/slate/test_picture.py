"""
The slate's picture as a viewer sees it: large, light-on-dark text, centred, never running off
the picture, in every size; and its Y'CbCr planes in video range.
"""

from __future__ import annotations

from PIL import Image, ImageChops
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.slate.picture import BACKGROUND, SIZES, Picture, fold, font, parse_size, render

TYPICAL = ["101  NHL PPV 1", "Up next: Bruins vs Rangers", "Today 19:00 · in 1 h 20 min"]


def ink_mask(picture: Picture, threshold: int = 96) -> Image.Image:
    """255 where the drawn picture differs from the background by more than ``threshold`` (glyph cores)."""
    difference = ImageChops.difference(picture.rgb, Image.new("RGB", picture.rgb.size, BACKGROUND)).convert("L")
    return difference.point(lambda v: 255 if v > threshold else 0)


def ink_rows(mask: Image.Image) -> list[tuple[int, int]]:
    """Bands of rows with ink, as (first, last + 1)."""
    width, height = mask.size
    data = mask.tobytes()
    inked = [data.count(0, y * width, (y + 1) * width) != width for y in range(height)]
    bands: list[tuple[int, int]] = []
    for y, has in enumerate(inked):
        if has and (not bands or bands[-1][1] != y):
            bands.append((y, y + 1))
        elif has:
            bands[-1] = (bands[-1][0], y + 1)
    return bands


def luminance(rgb: tuple[int, ...] | float) -> float:
    """WCAG 2 relative luminance of an sRGB colour (as ``getcolors`` gives it)."""
    assert isinstance(rgb, tuple)

    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


class TextTests(SynchronousTestCase):
    def test_capitals_at_least_a_twentieth_of_the_height(self) -> None:
        """§14: every line's capital letters stand at least 1/20 of the picture high, at every size."""
        for size, (_, height) in SIZES.items():
            picture = render(["101  NHL PPV 1", "UP NEXT: BRUINS VS RANGERS", "TODAY 19:00"], size)
            bands = ink_rows(ink_mask(picture))
            self.assertEqual(len(bands), 3, (size, bands))
            for first, end in bands:
                self.assertGreaterEqual(end - first, height / 20, (size, bands))

    def test_centred(self) -> None:
        """The block of text sits in the middle of the picture, both ways."""
        for size, (width, height) in SIZES.items():
            left, top, right, bottom = ink_mask(render(TYPICAL, size)).getbbox() or (0, 0, 0, 0)
            self.assertLessEqual(abs(left - (width - right)), width / 100 + 2, size)
            self.assertLessEqual(abs(top - (height - bottom)), height / 20, size)

    def test_light_on_dark_high_contrast(self) -> None:
        """WCAG contrast of the text colours on the background at least 7:1 (AAA), the background dark."""
        picture = render(TYPICAL, "1280x720")
        colours = {colour for _, colour in (picture.rgb.getcolors(1 << 16) or [])}
        background = luminance(BACKGROUND)
        self.assertLess(background, 0.02)
        brightest = max(colours, key=luminance)
        text_lines = [picture.rgb.crop((0, top, 1280, bottom)) for top, bottom in ink_rows(ink_mask(picture))]
        for line in text_lines:
            lightest = max((colour for _, colour in (line.getcolors(1 << 16) or [])), key=luminance)
            self.assertGreaterEqual((luminance(lightest) + 0.05) / (background + 0.05), 7, lightest)
        self.assertEqual(brightest, (255, 255, 255))

    def test_long_title_stays_inside(self) -> None:
        """A very long title wraps, then ends in "…", and no ink reaches the picture's edges."""
        title = "Up next: " + " ".join(["Supercalifragilistic Championship Final"] * 8)
        lines = ["1234  Sky Sports Premier League Extra Channel HD", title, "Tue 19:00 · in 23 h 59 min"]
        for size, (width, height) in SIZES.items():
            picture = render(lines, size)
            self.assertTrue(any(line.endswith("…") for line in picture.lines), picture.lines)
            self.assertIn("Tue 19:00 · in 23 h 59 min", picture.lines)
            left, top, right, bottom = ImageChops.difference(
                picture.rgb, Image.new("RGB", picture.rgb.size, BACKGROUND)).getbbox() or (0, 0, 0, 0)
            self.assertGreaterEqual(left, width * 0.03, size)
            self.assertLessEqual(right, width * 0.97, size)
            self.assertGreaterEqual(top, height * 0.03, size)
            self.assertLessEqual(bottom, height * 0.97, size)

    def test_a_single_unbreakable_word_is_shortened(self) -> None:
        picture = render(["7  " + "X" * 200], "640x360")
        self.assertEqual(len(picture.lines), 2)
        self.assertTrue(picture.lines[-1].endswith("…"))
        self.assertLessEqual(font(36).getlength(picture.lines[-1]), 640)

    def test_too_many_lines_are_cut_with_an_ellipsis(self) -> None:
        picture = render([f"Line {n}" for n in range(30)], "960x540")
        self.assertLess(len(picture.lines), 30)
        self.assertTrue(picture.lines[-1].endswith("…"), picture.lines)

    def test_letters_the_font_lacks_are_folded(self) -> None:
        """Aileron has no accented letters: they lose the accent rather than show as boxes."""
        self.assertEqual(fold("Fußball: München – Zürich “live”"), "Fussball: Munchen - Zurich “live”")
        self.assertEqual(fold("Ølstykke Æro Łódź"), "Olstykke AEro Lodz")
        self.assertEqual(fold("東京 Tokyo"), "?? Tokyo")
        self.assertEqual(fold("Today 19:00 · in 5 min…"), "Today 19:00 · in 5 min…")
        self.assertEqual(fold("tab\there\x00"), "tab here")

    def test_unknown_size_refused(self) -> None:
        self.assertRaises(ValueError, parse_size, "1024x768")
        self.assertEqual(parse_size("960x540"), (960, 540))


class PlaneTests(SynchronousTestCase):
    def test_video_range_planes_padded_to_macroblocks(self) -> None:
        """Y' in 16-235, Cb/Cr in 16-240 (what the VUI says); 1080 and 540 lines padded to whole macroblocks with background."""
        for size, (_, height) in SIZES.items():
            picture = render(TYPICAL, size)
            padded_w, padded_h = picture.mb_width * 16, picture.mb_height * 16
            self.assertEqual(len(picture.y), padded_w * padded_h)
            self.assertEqual(len(picture.cb), padded_w * padded_h // 4)
            self.assertEqual(len(picture.cr), padded_w * padded_h // 4)
            self.assertGreaterEqual(min(picture.y), 16)
            self.assertLessEqual(max(picture.y), 235)
            for plane in (picture.cb, picture.cr):
                self.assertGreaterEqual(min(plane), 16)
                self.assertLessEqual(max(plane), 240)
            # white text reaches nominal white; rows past the picture are all background
            self.assertGreaterEqual(max(picture.y), 234)
            self.assertEqual(set(picture.y[height * padded_w:]) | {picture.background[0]}, {picture.background[0]})

    def test_background_colour(self) -> None:
        """The navy background in BT.709 video range: Y' 32 (dark, above black at 16), bluish chroma."""
        self.assertEqual(render(TYPICAL, "640x360").background, (32, 137, 125))
