"""
The slate's picture: its lines of text drawn by Pillow, large and light on dark, and the same
picture as the 4:2:0 Y'CbCr planes the H.264 encoder copies into I_PCM macroblocks.

Colour: BT.709 matrix, **video range** (Y' 16-235, Cb/Cr 16-240), signalled as such in the
SPS's VUI (``h264.sps``). Video range is what every player assumes when nothing is said, and it
keeps every sample at 16 or more, so raw I_PCM bytes never form a zero byte and never need
emulation prevention. Chroma is the 2x2 box average of the full-resolution Cb/Cr, so its
samples sit midway between luma samples (chroma_sample_loc_type 1, also signalled).

Text uses Pillow's bundled scalable font (``ImageFont.load_default(size=...)``, Aileron): no
system font, so every machine draws the same picture. It has ASCII and a few signs (· … ’) but
no accented letters, so text is first folded to what it can draw (é -> e, ß -> ss).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from attrs import frozen
from PIL import Image, ImageDraw, ImageFont

#: the slate sizes SPEC §3 ``slate_size`` allows: name -> (width, height)
SIZES: dict[str, tuple[int, int]] = {
    "1920x1080": (1920, 1080),
    "1280x720": (1280, 720),
    "960x540": (960, 540),
    "640x360": (640, 360),
}

#: dark navy: high contrast with white (about 17:1) and calm on a TV in a dark room
BACKGROUND = (12, 18, 38)
#: the first line (channel number and name) and the event line
BRIGHT = (255, 255, 255)
#: the lines after them (start time, countdown, reasons): still about 12:1 on the background
SOFT = (196, 206, 228)
#: font sizes as fractions of the picture height: the first line, then the rest. Aileron's
#: capitals are 0.7 em tall, so the smaller size still gives capitals of 1/18.6 of the
#: height, above §14's 1/20.
TITLE_EM = 1 / 10
LINE_EM = 1 / 13
#: share of the width a line may use; the rest is margin (overscan on old TVs eats ~5%)
WIDTH_SHARE = 0.88
#: share of the height the block of lines may use
HEIGHT_SHARE = 0.86
#: line pitch as a multiple of the font size
LEADING = 1.32
#: how many picture lines one line of text may wrap onto before it is shortened with "…"
MAX_WRAP = 2
ELLIPSIS = "…"

#: letters the font lacks, folded to ones it has (accents are stripped separately)
_FOLD = {"ß": "ss", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ø": "O", "ø": "o", "Ł": "L",
         "ł": "l", "Đ": "D", "đ": "d", "Þ": "Th", "þ": "th", "–": "-", "—": "-", "‐": "-",
         "‘": "’", "‚": ",", "“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "\u00a0": " ",
         "•": "·", "×": "x"}


@frozen
class Picture:
    """
    One slate picture. ``rgb`` is what Pillow drew (``width`` x ``height``); the planes cover the
    picture padded to whole 16x16 macroblocks (``mb_width`` x ``mb_height``) with background
    below and right of it, which the SPS crops away again.
    """

    lines: tuple[str, ...]  # the text as drawn, after folding, wrapping and shortening
    width: int
    height: int
    rgb: Image.Image
    y: bytes  # mb_width*16 x mb_height*16 luma samples, row by row
    cb: bytes  # half width x half height
    cr: bytes
    background: tuple[int, int, int]  # the background as (Y', Cb, Cr)

    @property
    def mb_width(self) -> int:
        return (self.width + 15) // 16

    @property
    def mb_height(self) -> int:
        return (self.height + 15) // 16


def parse_size(size: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720); ValueError for a size the slate does not offer."""
    try:
        return SIZES[size]
    except KeyError:
        raise ValueError(f"slate size {size!r} is not one of {', '.join(SIZES)}") from None


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font at ``size`` pixels (needs Pillow >= 10.1 with FreeType)."""
    loaded = ImageFont.load_default(size=size)
    if not isinstance(loaded, ImageFont.FreeTypeFont):  # pragma: no cover - Pillow without FreeType
        raise RuntimeError("the slate needs Pillow built with FreeType (any Pillow wheel is)")
    return loaded


@lru_cache(maxsize=1)
def _notdef() -> bytes:
    """How the font draws a character it does not have (its .notdef box)."""
    return bytes(font(32).getmask("\uffff"))


@lru_cache(maxsize=1024)
def _has_glyph(char: str) -> bool:
    if char == " " or ord(char) < 0x7F:
        return char.isprintable()
    return bytes(font(32).getmask(char)) != _notdef()


def fold(text: str) -> str:
    """
    ``text`` in characters the font can draw: known look-alikes, then accents stripped
    (NFKD without combining marks), then "?" for what is left. Control characters go.
    """
    out = []
    for char in text:
        if _has_glyph(char):
            out.append(char)
            continue
        char = _FOLD.get(char, char)
        plain = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        for c in plain:
            if _has_glyph(c):
                out.append(c)
            elif unicodedata.category(c)[0] not in "CZ":
                out.append("?")
            elif c.isspace():
                out.append(" ")
    return "".join(out).strip()


def _ellipsize(text: str, face: ImageFont.FreeTypeFont, width: float) -> str:
    """
    The longest start of ``text`` that fits ``width`` with "…" after it, cut after a whole
    word unless that would waste more than a third of the line.
    """
    low, high = 0, len(text)
    while low < high:  # bisection: getlength is C, but not free
        mid = (low + high + 1) // 2
        if face.getlength(text[:mid].rstrip() + ELLIPSIS) <= width:
            low = mid
        else:
            high = mid - 1
    space = text.rfind(" ", 0, low + 1)
    if low < len(text) and text[low] != " " and space >= low * 2 / 3:
        low = space
    return text[:low].rstrip() + ELLIPSIS


def _shorten(text: str, face: ImageFont.FreeTypeFont, width: float) -> str:
    """``text`` if it fits ``width``, else shortened with "…"."""
    return text if face.getlength(text) <= width else _ellipsize(text, face, width)


def wrap(text: str, face: ImageFont.FreeTypeFont, width: float, max_lines: int = MAX_WRAP) -> list[str]:
    """
    ``text`` broken at spaces into lines no wider than ``width``; at most ``max_lines``, the
    last shortened with "…" when the text goes on (a long title stays readable and never runs
    off the picture).
    """
    if face.getlength(text) <= width:
        return [text]  # as written, spaces and all ("101  NHL PPV 1")
    if max_lines <= 1:
        return [_shorten(text, face, width)]
    words = text.split()
    lines: list[str] = []
    current = ""
    for index, word in enumerate(words):
        trial = f"{current} {word}" if current else word
        if face.getlength(trial) <= width:
            current = trial
            continue
        if current:
            lines.append(current)
        if len(lines) == max_lines - 1:
            # the last line allowed: the rest of the text, shortened to fit
            return lines + [_shorten(" ".join(words[index:]), face, width)]
        current = word if face.getlength(word) <= width else _shorten(word, face, width)
    if current or not lines:
        lines.append(current)
    return lines


def layout(lines: Sequence[str], width: int, height: int) -> list[tuple[str, int, tuple[int, int, int]]]:
    """
    The lines to draw as (text, font size, colour): folded, wrapped, shortened, and cut to
    what fits the height (the last kept line then ends in "…").
    """
    title_size = max(8, round(height * TITLE_EM))
    line_size = max(8, round(height * LINE_EM))
    room = height * HEIGHT_SHARE
    out: list[tuple[str, int, tuple[int, int, int]]] = []
    used = 0.0
    for index, line in enumerate(lines):
        size = title_size if index == 0 else line_size
        colour = BRIGHT if index < 2 else SOFT
        face = font(size)
        for part in wrap(fold(line), face, width * WIDTH_SHARE):
            if used + size * LEADING > room:
                if out:  # the text goes on below: say so on the last line that fits
                    text, last_size, last_colour = out[-1]
                    out[-1] = (_ellipsize(text, font(last_size), width * WIDTH_SHARE), last_size, last_colour)
                return out
            out.append((part, size, colour))
            used += size * LEADING
    return out


def _ycbcr_matrix() -> tuple[float, ...]:
    """R'G'B' (0-255) -> video-range BT.709 Y'CbCr (Rec. ITU-R BT.709-6 items 3.2-3.5), for ``Image.convert``."""
    kr, kb = 0.2126, 0.0722
    kg = 1 - kr - kb
    sy, sc = 219 / 255, 224 / 255
    return (kr * sy, kg * sy, kb * sy, 16.0,
            -kr / (2 * (1 - kb)) * sc, -kg / (2 * (1 - kb)) * sc, 0.5 * sc, 128.0,
            0.5 * sc, -kg / (2 * (1 - kr)) * sc, -kb / (2 * (1 - kr)) * sc, 128.0)


_MATRIX = _ycbcr_matrix()


def render(lines: Sequence[str], size: str = "1280x720") -> Picture:
    """The slate showing ``lines`` (the first larger), centred, as RGB and as 4:2:0 planes."""
    width, height = parse_size(size)
    drawn = layout(lines, width, height)
    padded_w, padded_h = -(-width // 16) * 16, -(-height // 16) * 16
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    total = sum(size * LEADING for _, size, _ in drawn)
    top = (height - total) / 2
    for text, font_size, colour in drawn:
        pitch = font_size * LEADING
        # "mm": the anchor is the middle of the line box, so lines centre whatever their ink
        draw.text((width / 2, top + pitch / 2), text, font=font(font_size), fill=colour, anchor="mm")
        top += pitch
    canvas = image
    if (padded_w, padded_h) != (width, height):
        canvas = Image.new("RGB", (padded_w, padded_h), BACKGROUND)
        canvas.paste(image, (0, 0))
    y, cb, cr = canvas.convert("RGB", _MATRIX).split()
    y_plane, cb_plane, cr_plane = y.tobytes(), cb.reduce(2).tobytes(), cr.reduce(2).tobytes()
    return Picture(
        lines=tuple(text for text, _, _ in drawn),
        width=width,
        height=height,
        rgb=image,
        y=y_plane,
        cb=cb_plane,
        cr=cr_plane,
        # the top-left corner is always margin, so it is the background exactly as converted
        background=(y_plane[0], cb_plane[0], cr_plane[0]),
    )
