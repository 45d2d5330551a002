"""
A fake HLS provider on 127.0.0.1 for the HLS tests and the benchmark.

Each stream is a live window over a looping clip cut into segments at PATs (tests/data/ts/a.ts,
b.ts): segment number ``n`` is piece ``n % pieces`` of the clip and becomes available
``duration`` seconds after number ``n - 1``. It misbehaves on request the way real HLS
providers do: missing segments (404), a stale playlist, a discontinuity to another clip, AES-128
(IV in the tag or not), a 302 to a CDN path with relative URIs, a required cookie and header,
the wrong content type, EXT-X-ENDLIST, a media sequence reset, fMP4, byte ranges (with and
without Range support), a master with variants and an I-frame entry. It counts every request
by path, so a test can assert "each media sequence number fetched once".
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from attrs import define, field
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import Request

from tests.fakeprovider import QuietSite, load_clip

USER = "hlsuser42"
PASSWORD = "hlss3cret9"
KEY = bytes(range(16))
COOKIE = b"cdnsession=k7x2"


def pat_offsets(clip: bytes) -> list[int]:
    return [i for i in range(0, len(clip) - 187, 188) if clip[i + 1] & 0x5F == 0x40 and clip[i + 2] == 0]


def cut(clip: bytes, pieces: int) -> list[bytes]:
    """``clip`` in ``pieces`` segments, each starting at a PAT (what comes before the first is dropped)."""
    pats = pat_offsets(clip)
    step = max(1, len(pats) // pieces)
    starts = pats[::step][:pieces]
    return [clip[a:b] for a, b in zip(starts, [*starts[1:], len(clip)], strict=True)]


def clip_pieces(name: str, pieces: int = 5, scale: int = 1) -> list[bytes]:
    """The segments of clip ``name``; ``scale`` repeats each piece (a higher bitrate)."""
    return [p * scale for p in cut(load_clip(name), pieces)]


def encrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    padder = PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def seq_iv(sequence: int) -> bytes:
    return sequence.to_bytes(16, "big")


@define
class Live:
    """One live HLS stream: what its playlist says and how its segments answer."""

    pieces: list[bytes]
    duration: float = 1.0  # seconds between new segments (and each EXTINF)
    target: int = 1
    window: int = 5
    start: float = 0.0  # reactor time of segment 0
    first_sequence: int = 100
    missing: set[int] = field(factory=set)  # 404 for these
    fail_once: set[int] = field(factory=set)  # 500 for the first request of these
    stale_at: int | None = None  # the playlist stops growing after this sequence number
    switch_at: int | None = None  # a discontinuity: from this number on, ``other`` pieces
    other: list[bytes] = field(factory=list)
    end_at: int | None = None  # EXT-X-ENDLIST after this number
    reset_at: float | None = None  # from this reactor time on, numbering restarts at 0
    key: str | None = None  # "iv" (IV in the tag) or "seq" (IV from the sequence number)
    redirect: bool = False  # the playlist URL answers 302 to /cdn/abc/<name>.m3u8
    cookie: bool = False  # the playlist sets a cookie every segment request must carry
    content_type: bytes = b"application/vnd.apple.mpegurl"
    fmp4: bool = False
    byterange: str | None = None  # "range" (the server honours Range) or "ignore" (it does not)


class _Root(Resource):
    isLeaf = True

    def __init__(self, provider: FakeHls) -> None:
        super().__init__()
        self.provider = provider

    def render_GET(self, request: Request) -> bytes:
        return self.provider._answer(request)


class FakeHls:
    """``start()`` it, add streams with ``live(name, ...)``, ``stop()`` it in cleanup."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.streams: dict[str, Live] = {}
        self.masters: dict[str, list[tuple[str, str]]] = {}  # name -> [(STREAM-INF attrs, uri)]
        self.requests: Counter[str] = Counter()  # by path
        self.segment_requests: Counter[tuple[str, int]] = Counter()  # (stream, sequence)
        self.log: list[tuple[float, str]] = []  # (time, path) of every request
        self.headers: list[dict[bytes, bytes]] = []
        self.port: IListeningPort | None = None
        self.required_headers: dict[str, str] = {}  # header -> value every request must carry

    # -- setup -----------------------------------------------------------------------

    def start(self) -> int:
        self.port = self.reactor.listenTCP(0, QuietSite(_Root(self)), interface="127.0.0.1")
        return self.port.getHost().port

    @property
    def base(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port.getHost().port}"

    def live(self, name: str, clip: str = "a", pieces: int = 5, scale: int = 1, **how: Any) -> str:
        """A live stream from ``clip``; returns its ``.m3u8`` URL."""
        how.setdefault("start", self.reactor.seconds())
        self.streams[name] = Live(pieces=clip_pieces(clip, pieces, scale), **how)
        return self.url(name)

    def url(self, name: str, ext: str = "m3u8") -> str:
        return f"{self.base}/live/{USER}/{PASSWORD}/{name}.{ext}"

    def master(self, name: str, variants: list[tuple[str, str]]) -> str:
        """A master playlist: ``(attributes, uri)`` pairs; an attribute string starting with
        ``IFRAME`` makes an EXT-X-I-FRAME-STREAM-INF line."""
        self.masters[name] = variants
        return self.url(name)

    # -- the live window -------------------------------------------------------------

    def window(self, name: str) -> tuple[int, int, bool]:
        """(first, last) sequence numbers the playlist shows now, and whether it ended."""
        s = self.streams[name]
        now = self.reactor.seconds()
        base = s.first_sequence
        since = now
        if s.reset_at is not None and now >= s.reset_at:
            base, since = 0, now - s.reset_at + s.start
        grown = int((since - s.start) / s.duration + 1e-9)
        last = base + s.window - 1 + max(0, grown)
        if s.stale_at is not None:
            last = min(last, s.stale_at)
        ended = s.end_at is not None and last >= s.end_at
        if ended:
            last = s.end_at  # type: ignore[assignment]
        return max(base, last - s.window + 1), last, ended

    def segment_bytes(self, name: str, sequence: int) -> bytes:
        """The plain bytes of segment ``sequence`` (before any encryption)."""
        s = self.streams[name]
        pieces = s.other if s.switch_at is not None and sequence >= s.switch_at else s.pieces
        return pieces[sequence % len(pieces)]

    def expected(self, name: str, first: int, count: int) -> bytes:
        return b"".join(self.segment_bytes(name, n) for n in range(first, first + count))

    def playlist(self, name: str, prefix: str = "") -> bytes:
        s = self.streams[name]
        first, last, ended = self.window(name)
        lines = ["#EXTM3U", "#EXT-X-VERSION:4", f"#EXT-X-TARGETDURATION:{s.target}",
                 f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        if s.fmp4:
            lines.append('#EXT-X-MAP:URI="init.mp4"')
        for n in range(first, last + 1):
            if s.switch_at is not None and n == s.switch_at:
                lines.append("#EXT-X-DISCONTINUITY")
            if s.key == "iv":
                lines.append(f'#EXT-X-KEY:METHOD=AES-128,URI="{prefix}key.bin",IV=0x{n * 7 + 3:032x}')
            elif s.key == "seq":
                lines.append(f'#EXT-X-KEY:METHOD=AES-128,URI="{prefix}key.bin"')
            lines.append(f"#EXTINF:{s.duration:.3f},")
            if s.byterange:
                size = len(self.segment_bytes(name, n))
                # the first range says where it starts; the others follow on (RFC 8216 §4.3.2.2)
                at = f"@{self._range_start(name, n)}" if n == first else ""
                lines.append(f"#EXT-X-BYTERANGE:{size}{at}")
                lines.append(f"{prefix}{name}-all.ts")
            else:
                lines.append(f"{prefix}{name}-{n}.{'m4s' if s.fmp4 else 'ts'}")
        if ended:
            lines.append("#EXT-X-ENDLIST")
        return ("\n".join(lines) + "\n").encode()

    def _range_start(self, name: str, sequence: int) -> int:
        """Where segment ``sequence`` starts in ``NAME-all.ts``: every segment since the first."""
        first = self.streams[name].first_sequence
        return sum(len(self.segment_bytes(name, n)) for n in range(first, sequence))

    def _all(self, name: str) -> bytes:
        _, last, _ = self.window(name)
        return self.expected(name, self.streams[name].first_sequence,
                             last + 1 - self.streams[name].first_sequence)

    # -- answers ---------------------------------------------------------------------

    def _answer(self, request: Request) -> bytes:
        path = request.path.decode("latin-1")
        self.requests[path] += 1
        self.log.append((self.reactor.seconds(), path))
        self.headers.append({k.lower(): v[0] for k, v in request.requestHeaders.getAllRawHeaders()})
        for header, value in self.required_headers.items():
            if request.getHeader(header) != value:
                return self._plain(request, 403, b"missing header\n")
        parts = path.split("/")
        if path.startswith(f"/live/{USER}/{PASSWORD}/"):
            file = parts[-1]
        elif path.startswith("/cdn/abc/"):
            file = parts[-1]
        else:
            return self._plain(request, 404, b"no such path\n")
        stem, _, ext = file.rpartition(".")
        cdn = path.startswith("/cdn/abc/")
        if stem in self.masters and ext == "m3u8":
            return self._master(request, stem)
        if ext in ("m3u8", "ts") and stem in self.streams:
            return self._playlist(request, stem, cdn)
        if file == "key.bin":
            return self._key(request)
        if file == "init.mp4":
            request.setHeader(b"Content-Type", b"video/mp4")
            return b"\x00\x00\x00\x18ftypiso6\x00\x00\x00\x00iso6mp41"
        name, _, number = stem.rpartition("-")
        if name in self.streams:
            s = self.streams[name]
            if s.redirect and not cdn:
                return self._plain(request, 404, b"segments are on the CDN\n")
            if s.cookie and COOKIE.decode() not in (request.getHeader("cookie") or ""):
                return self._plain(request, 403, b"no session cookie\n")
            if number == "all" and s.byterange:
                return self._ranged(request, name)
            if number.lstrip("-").isdigit():
                return self._segment(request, name, int(number), ext)
        return self._plain(request, 404, b"unknown\n")

    def _plain(self, request: Request, code: int, body: bytes) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/plain")
        return body

    def _master(self, request: Request, name: str) -> bytes:
        lines = ["#EXTM3U"]
        for attrs, uri in self.masters[name]:
            if attrs.startswith("IFRAME"):
                lines.append(f'#EXT-X-I-FRAME-STREAM-INF:{attrs[len("IFRAME,"):]},URI="{uri}"')
            else:
                lines += [f"#EXT-X-STREAM-INF:{attrs}", uri]
        request.setHeader(b"Content-Type", b"application/vnd.apple.mpegurl")
        return ("\n".join(lines) + "\n").encode()

    def _playlist(self, request: Request, name: str, cdn: bool) -> bytes:
        s = self.streams[name]
        if s.redirect and not cdn:
            request.setResponseCode(302)
            request.setHeader(b"Location", f"/cdn/abc/{name}.m3u8".encode())
            return b""
        if s.cookie:
            request.addCookie(COOKIE.split(b"=")[0], COOKIE.split(b"=")[1], path=b"/")
        request.setHeader(b"Content-Type", s.content_type)
        return self.playlist(name)

    def _key(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"application/octet-stream")
        return KEY

    def _segment(self, request: Request, name: str, sequence: int, ext: str) -> bytes:
        s = self.streams[name]
        self.segment_requests[(name, sequence)] += 1
        first, last, _ = self.window(name)
        if sequence in s.missing or not first - 3 <= sequence <= last:
            return self._plain(request, 404, b"no such segment\n")
        if sequence in s.fail_once and self.segment_requests[(name, sequence)] == 1:
            return self._plain(request, 500, b"try again\n")
        data = self.segment_bytes(name, sequence)
        if s.fmp4 or ext == "m4s":
            data = b"\x00\x00\x00\x18stypmsdh\x00\x00\x00\x00msdhmsix" + data
        if s.key == "iv":
            data = encrypt(data, KEY, (sequence * 7 + 3).to_bytes(16, "big"))
        elif s.key == "seq":
            data = encrypt(data, KEY, seq_iv(sequence))
        request.setHeader(b"Content-Type", b"video/mp2t")
        return data

    def _ranged(self, request: Request, name: str) -> bytes:
        s = self.streams[name]
        data = self._all(name)
        self.segment_requests[(name, -1)] += 1
        wanted = request.getHeader("range")
        request.setHeader(b"Content-Type", b"video/mp2t")
        if s.byterange == "range" and wanted and wanted.startswith("bytes="):
            start_text, _, end_text = wanted[6:].partition("-")
            start = int(start_text)
            end = int(end_text) if end_text else len(data) - 1
            request.setResponseCode(206)
            request.setHeader(b"Content-Range", f"bytes {start}-{end}/{len(data)}".encode())
            return data[start:end + 1]
        return data

    def stop(self) -> Deferred[Any]:
        waits: list[Deferred[Any]] = []
        if self.port is not None:
            result = self.port.stopListening()
            if isinstance(result, Deferred):
                waits.append(result)
            self.port = None
        return gatherResults(waits)


def main(argv: list[str]) -> None:
    """Run standalone: ``python -m tests.fakehls [bytes_per_second] [segment_seconds]``: one
    live stream of clip a at about that rate; prints its URL."""
    import sys

    from twisted.internet import reactor

    rate = float(argv[0]) if argv else 1_000_000.0
    duration = float(argv[1]) if len(argv) > 1 else 1.0
    provider = FakeHls(reactor)
    provider.start()
    piece = sum(len(p) for p in clip_pieces("a")) / 5
    scale = max(1, round(rate * duration / piece))
    print(provider.live("a", scale=scale, duration=duration, target=max(1, round(duration)),
                        window=6), flush=True)
    sys.stdout.flush()
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
