"""
HLS playlists as values (RFC 8216): what a media playlist says to fetch, which variant of a
master to follow, and when to reload. Pure: text in, frozen values out; no I/O, no clock.

Parsing goes through the ``m3u8`` package (``m3u8.loads`` only: its ``load`` does blocking
I/O). Whatever it cannot read, or reads into something unusable, is a ``PlaylistError`` (a
failed load, tried again at the next reload); what epgd can never play without transcoding
(fMP4, SAMPLE-AES, DRM key formats, I-frame-only masters) is ``Unsupported`` (the source fails).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import m3u8
from attrs import frozen

#: segments before the end of a live playlist where playback starts (RFC 8216 §6.3.3)
LIVE_EDGE = 3
#: the shortest reload wait, so that a playlist with a zero target duration cannot spin
MIN_RELOAD = 0.5
#: a playlist larger than this is a failed load
MAX_PLAYLIST_BYTES = 2 << 20
#: a media playlist with more segments is parsed from its last this many only (its earlier
#: keys, init section, byte offsets and numbering carried over): ``m3u8`` takes ~12 µs a
#: segment, so a long EVENT playlist, re-read at every reload, costs a line scan (~5 ms a MiB)
#: and a bounded parse (~40 ms) instead of blocking the reactor for half a second
KEEP_SEGMENTS = 3000
#: the target duration assumed when a playlist gives none
DEFAULT_TARGET = 6.0

_FMP4 = (".mp4", ".m4s", ".m4v", ".m4a", ".cmfv", ".cmfa", ".cmft", ".fmp4", ".mp4v", ".mp4a")
_PACKED_AUDIO = (".aac", ".ac3", ".ec3", ".eac3", ".mp3")
_AUDIO_CODECS = ("mp4a", "ac-3", "ec-3", "mp3", "opus", "flac", "ac-4")
_SAMPLE_AES = ("SAMPLE-AES", "SAMPLE-AES-CTR", "SAMPLE-AES-CENC")


class PlaylistError(ValueError):
    """This load of a playlist is unusable (malformed, empty, over a limit)."""


class Unsupported(PlaylistError):
    """The source can never be played as MPEG-TS without transcoding: it fails."""


def is_hls_url(url: str) -> bool:
    """True when the URL's path ends in ``.m3u8`` (SPEC §11: such a source is read as HLS)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    return path.lower().endswith(".m3u8")


def looks_like_playlist(head: bytes) -> bool:
    """True when a body starts with ``#EXTM3U`` (after a BOM or blank space)."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:7].upper() == b"#EXTM3U"


HLS_CONTENT_TYPES = frozenset(
    {"application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl"}
)


def is_hls_content_type(value: bytes | str | None) -> bool:
    if not value:
        return False
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text.split(";", 1)[0].strip().lower() in HLS_CONTENT_TYPES


# -- values ----------------------------------------------------------------------------


@frozen
class ByteRange:
    """``EXT-X-BYTERANGE``: ``length`` bytes from ``start`` of the resource."""

    start: int
    length: int

    @property
    def header(self) -> str:
        return f"bytes={self.start}-{self.start + self.length - 1}"


@frozen
class Key:
    """``EXT-X-KEY METHOD=AES-128``: where the key is and the IV the tag gives, if any."""

    uri: str
    iv: bytes | None


@frozen
class InitSection:
    """``EXT-X-MAP``: bytes (a PAT and PMT for TS) every segment that uses it needs first."""

    uri: str
    byterange: ByteRange | None


@frozen
class Segment:
    sequence: int
    uri: str
    duration: float
    byterange: ByteRange | None = None
    key: Key | None = None
    init: InitSection | None = None
    discontinuity: bool = False

    @property
    def iv(self) -> bytes:
        """The tag's IV, else the media sequence number as a 128-bit big-endian integer."""
        if self.key is not None and self.key.iv is not None:
            return self.key.iv
        return (self.sequence % (1 << 128)).to_bytes(16, "big")


@frozen
class MediaPlaylist:
    target_duration: float
    segments: tuple[Segment, ...]
    ended: bool

    @property
    def first(self) -> int | None:
        return self.segments[0].sequence if self.segments else None

    @property
    def last(self) -> int | None:
        return self.segments[-1].sequence if self.segments else None

    @property
    def shape(self) -> tuple[int | None, int | None, bool]:
        """What "the playlist changed" compares (RFC 8216 §6.3.4): its window and its end."""
        return (self.first, self.last, self.ended)

    def live_start(self) -> int | None:
        """Where a fresh start plays from: three segments from the end, or the start of an
        ended (VOD) playlist."""
        if not self.segments:
            return None
        if self.ended:
            return self.segments[0].sequence
        return self.segments[max(0, len(self.segments) - LIVE_EDGE)].sequence

    def sequence_of(self, uri: str) -> int | None:
        """
        The number ``uri`` has here, if listed: a server that numbers its window anew at each
        reload (its media sequence goes back while its segments move on) is followed by URI.
        """
        return next((s.sequence for s in self.segments if s.uri == uri), None)

    def after(self, sequence: int) -> list[Segment]:
        """The segments numbered ``sequence`` and later, in order."""
        return [s for s in self.segments if s.sequence >= sequence]


@frozen
class Variant:
    uri: str
    bandwidth: int
    height: int | None
    audio_only: bool
    separate_audio: bool  # its audio is an EXT-X-MEDIA rendition epgd does not mux in

    def describe(self) -> str:
        size = f"{self.height}p, " if self.height else ""
        return f"{size}{self.bandwidth} bit/s"


@frozen
class MasterPlaylist:
    variants: tuple[Variant, ...]


# -- parsing ---------------------------------------------------------------------------


def parse(body: bytes, url: str) -> MediaPlaylist | MasterPlaylist:
    """
    A playlist fetched from ``url`` (its final URL after redirects: relative URIs resolve
    against it). Raises ``PlaylistError`` or ``Unsupported``.
    """
    text = body.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text.startswith("#"):  # comments before #EXTM3U, or no #EXTM3U at all, are tolerated
        raise PlaylistError("not an HLS playlist (no #EXTM3U)")
    try:
        playlist = m3u8.loads(tail(text, KEEP_SEGMENTS))
    except Exception as e:  # the parser raises ValueError, KeyError, IndexError, ...
        raise PlaylistError(f"unreadable playlist: {type(e).__name__}: {e}") from None
    try:
        if playlist.is_variant or playlist.iframe_playlists:
            return _master(playlist, url)
        return _media(playlist, url)
    except PlaylistError:
        raise
    except Exception as e:
        raise PlaylistError(f"unreadable playlist: {type(e).__name__}: {e}") from None


_PLAYLIST_TAGS = (
    "#EXTM3U", "#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-PLAYLIST-TYPE",
    "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-ENDLIST", "#EXT-X-I-FRAMES-ONLY", "#EXT-X-ALLOW-CACHE",
    "#EXT-X-DISCONTINUITY-SEQUENCE", "#EXT-X-START", "#EXT-X-SERVER-CONTROL", "#EXT-X-PART-INF",
)


def tail(text: str, keep: int) -> str:
    """
    ``text`` cut to its last ``keep`` segments, read the same way: the playlist tags kept, the
    media sequence moved on by the segments dropped, the last key and init section before the
    cut carried over, an offset-less first byte range given the offset it follows.
    """
    if text.count("#EXTINF") <= keep:
        return text
    lines = text.splitlines()
    uris = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if len(uris) <= keep:
        return text
    cut = uris[-keep - 1] + 1
    dropped = len(uris) - keep
    head: list[str] = []
    carried: dict[str, str] = {}
    sequence = 0
    range_end = 0
    for line in lines[:cut]:
        tag = line.strip()
        if tag.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            try:
                sequence = int(tag.partition(":")[2])
            except ValueError:
                raise PlaylistError(f"bad EXT-X-MEDIA-SEQUENCE {tag[:60]!r}") from None
        elif tag.startswith(("#EXT-X-KEY", "#EXT-X-MAP")):
            carried[tag[:10]] = tag
        elif tag.startswith("#EXT-X-BYTERANGE:"):
            previous = _byterange(tag.partition(":")[2], range_end)
            range_end = previous.start + previous.length
        elif tag.startswith(_PLAYLIST_TAGS):
            head.append(tag)
    head.append(f"#EXT-X-MEDIA-SEQUENCE:{sequence + dropped}")
    head += carried.values()
    rest = lines[cut:]
    for i, line in enumerate(rest[:uris[-keep] - cut]):  # the first kept segment's own tags
        if line.strip().startswith("#EXT-X-BYTERANGE:") and "@" not in line:
            rest[i] = f"{line.strip()}@{range_end}"
    return "\n".join(head + rest) + "\n"


def _extension(uri: str) -> str:
    return posixpath.splitext(urlsplit(uri).path.lower())[1]


def _master(playlist: Any, url: str) -> MasterPlaylist:
    variants = []
    for entry in playlist.playlists:  # EXT-X-STREAM-INF only: I-frame variants are apart
        if not entry.uri:
            continue
        info = entry.stream_info
        codecs = [c.strip().lower() for c in (info.codecs or "").split(",") if c.strip()]
        audio_only = bool(codecs) and all(c.startswith(_AUDIO_CODECS) for c in codecs)
        separate = any(m.type == "AUDIO" and m.uri for m in entry.media)
        height = info.resolution[1] if info.resolution else None
        variants.append(Variant(urljoin(url, entry.uri), int(info.bandwidth or 0), height,
                                audio_only, separate))
    if not variants:
        if playlist.iframe_playlists:
            raise Unsupported("the master playlist offers only I-frame variants")
        raise PlaylistError("the master playlist lists no variant")
    return MasterPlaylist(tuple(variants))


def _media(playlist: Any, url: str) -> MediaPlaylist:
    segments: list[Segment] = []
    previous: Any = None
    previous_end = 0
    for raw in playlist.segments:
        uri = urljoin(url, raw.uri)
        extension = _extension(uri)
        if extension in _FMP4:
            raise Unsupported(f"fMP4 segments ({extension}) are not supported, only MPEG-TS")
        if extension in _PACKED_AUDIO:
            raise Unsupported(f"packed audio segments ({extension}) are not supported, only MPEG-TS")
        byterange = None
        if raw.byterange:
            same = previous is not None and previous.uri == raw.uri and previous.byterange
            byterange = _byterange(raw.byterange, previous_end if same else 0)
            previous_end = byterange.start + byterange.length
        segments.append(Segment(
            sequence=int(raw.media_sequence),
            uri=uri,
            duration=float(raw.duration or 0.0),
            byterange=byterange,
            key=_key(raw.key, url),
            init=_init(raw.init_section, url),
            discontinuity=bool(raw.discontinuity),
        ))
        previous = raw
    target = float(playlist.target_duration or 0)
    if target <= 0:
        target = max((s.duration for s in segments), default=0.0) or DEFAULT_TARGET
    return MediaPlaylist(target, tuple(segments), bool(playlist.is_endlist))


def _byterange(text: str, default_start: int) -> ByteRange:
    length_text, _, start_text = text.strip().partition("@")
    try:
        length = int(length_text)
        start = int(start_text) if start_text else default_start
    except ValueError:
        raise PlaylistError(f"bad EXT-X-BYTERANGE {text[:40]!r}") from None
    if length <= 0 or start < 0:
        raise PlaylistError(f"bad EXT-X-BYTERANGE {text[:40]!r}")
    return ByteRange(start, length)


def _key(raw: Any, url: str) -> Key | None:
    if raw is None or not raw.method or raw.method.upper() == "NONE":
        return None
    method = raw.method.upper()
    if method in _SAMPLE_AES:
        raise Unsupported(f"{method} encryption is not supported (only AES-128)")
    if method != "AES-128":
        raise Unsupported(f"unknown encryption method {raw.method[:40]!r}")
    keyformat = (raw.keyformat or "identity").strip()
    if keyformat.lower() != "identity":
        raise Unsupported(f"key format {keyformat[:60]!r} (DRM) is not supported")
    if not raw.uri:
        raise PlaylistError("EXT-X-KEY METHOD=AES-128 has no URI")
    iv = None
    if raw.iv:
        text = raw.iv.strip()
        digits = text[2:] if text[:2].lower() == "0x" else text
        try:
            value = int(digits, 16)
        except ValueError:
            raise PlaylistError(f"bad IV {text[:40]!r}") from None
        if value >> 128:
            raise PlaylistError(f"IV longer than 128 bits: {text[:40]!r}")
        iv = value.to_bytes(16, "big")
    return Key(urljoin(url, raw.uri), iv)


def _init(raw: Any, url: str) -> InitSection | None:
    if raw is None or not raw.uri:
        return None
    uri = urljoin(url, raw.uri)
    extension = _extension(uri)
    if extension in _FMP4:
        raise Unsupported(f"fMP4 segments (EXT-X-MAP {extension}) are not supported, only MPEG-TS")
    return InitSection(uri, _byterange(raw.byterange, 0) if raw.byterange else None)


# -- choices ---------------------------------------------------------------------------


def choose_variant(master: MasterPlaylist, choice: str) -> Variant:
    """
    The variant ``provider.hls_variant`` asks for: ``best`` (highest BANDWIDTH), ``worst``,
    ``720p`` (the tallest not above 720 lines), or a number (the highest BANDWIDTH not above
    it). Audio-only variants are taken only when nothing else is offered; when nothing fits a
    limit, the smallest variant is the nearest.
    """
    candidates: Sequence[Variant] = [v for v in master.variants if not v.audio_only] or master.variants
    by_bandwidth = sorted(candidates, key=lambda v: (v.bandwidth, v.height or 0))
    if choice == "worst":
        return by_bandwidth[0]
    if choice.endswith("p") and choice[:-1].isdigit():
        limit = int(choice[:-1])
        sized = [v for v in candidates if v.height is not None]
        if not sized:
            return by_bandwidth[-1]
        fitting = [v for v in sized if v.height is not None and v.height <= limit]
        if fitting:
            return max(fitting, key=lambda v: (v.height or 0, v.bandwidth))
        return min(sized, key=lambda v: (v.height or 0, v.bandwidth))
    if choice.isdigit():
        fitting = [v for v in by_bandwidth if v.bandwidth <= int(choice)]
        return fitting[-1] if fitting else by_bandwidth[0]
    return by_bandwidth[-1]


def reload_delay(target: float, changed: bool) -> float:
    """RFC 8216 §6.3.4: the target duration after a changed playlist, half of it after an
    unchanged one (counted from the start of the previous load)."""
    return max(MIN_RELOAD, target if changed else target / 2)
