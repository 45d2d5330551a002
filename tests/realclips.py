"""
The real-stream corpus in tests/data/ts/real/: what each capture is, and how a provider loops it.

epgd's own clips (tests/data/ts/a.ts, red.ts, ...) are all one kind of stream: ffmpeg's muxer,
H.264 + AAC, PCR on the video PID, no B-frames, clocks far from the 33-bit wrap. Real providers
send everything else, and the splicer's defects (issue 17) only showed on such streams. The
clips here are real captures from public test suites (tests/data/README.md names each source,
commit and licence), some cut or joined as that README records, so tests can loop and switch
between streams nobody here made.

``seamless`` loops a clip as a live channel runs: every repetition's PCR/PTS/DTS advance by the
clip's duration and continuity counters run on. It reuses epgd.demo.clip (the project's loop)
but measures the duration itself, modulo 2^33, because a clip with the wrap inside it (one of
these has) would otherwise count as 26 hours long.

``LiveServer`` serves such loops over HTTP as a provider does (a first burst, then real time),
``looped`` one clip, ``switching`` a naive proxy's raw cuts between several.

``cut`` is the tool that made the cut clips (``python -m tests.realclips cut SRC OUT BYTES
gop|align``): it starts at the PAT before a video random-access point and keeps only whole PES
packets and sections per PID, ending at the next such PAT (``gop``, for broadcast slices) or
where picture and sound both end (``align``, for flushed files), so a clip loops with no torn
frame, no overlapping sound and no clock step at the seam and no continuity error inside it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from attrs import evolve, frozen

REAL_DIR = Path(__file__).parent / "data" / "ts" / "real"
PACKET = 188
WRAP = 1 << 33
_HALF = 1 << 32
_VIDEO_TYPES = {0x01: "mpeg2", 0x02: "mpeg2", 0x1B: "h264", 0x24: "hevc"}
_AUDIO_TYPES = {0x03, 0x04, 0x0F, 0x11, 0x81, 0x87}


@frozen
class RealClip:
    """One capture of the corpus and what a test may rely on (measured, see the README)."""

    file: str
    video: str  # codec of the first video stream, as ffprobe names it
    audio: tuple[str, ...]  # codecs of the audio streams in PMT order
    fps: float
    b_frames: bool
    pcr: str  # where the PCR is: "video", "audio", "own PID" (no payload), "video, PMT says 0x1FFF"
    wrap: bool = False  # PTS/PCR pass 2^33 inside the clip
    interlaced: bool = False
    programs: int = 1
    audio_first: bool = False  # an audio stream is listed before the video in the PMT


CORPUS: tuple[RealClip, ...] = (
    RealClip("rollover-h264-aac48k.ts", "h264", ("aac",), 24.0, True, "audio", wrap=True),
    RealClip("eac3-first-h264-720p25.ts", "h264", ("eac3",), 25.0, True, "video", audio_first=True),
    RealClip("ac3dvb-h264-576p25.ts", "h264", ("ac3",), 25.0, False, "video"),
    RealClip("aac44k-h264-720p2997.ts", "h264", ("aac",), 30000 / 1001, False, "video"),
    RealClip("hevc-aac44k-30.ts", "hevc", ("aac",), 30.0, True, "video"),
    RealClip("h264-720p5994.ts", "h264", (), 60000 / 1001, False, "video"),
    RealClip("mpeg2-576i25-mp2.ts", "mpeg2video", ("mp2",), 25.0, True, "own PID", interlaced=True),
    RealClip("h264-50p-aac48k.ts", "h264", ("aac",), 50.0, True, "video"),
    RealClip("aac-first-h264-576p25.ts", "h264", ("aac",), 25.0, False, "video, PMT says 0x1FFF",
             audio_first=True),
    RealClip("dvb-mux-8prog.ts", "mpeg2video", ("mp2", "mp2", "mp2"), 25.0, True, "video",
             interlaced=True, programs=8),
)


def clip(file: str) -> RealClip:
    """The corpus entry for ``file``."""
    for entry in CORPUS:
        if entry.file == file:
            return entry
    raise KeyError(file)


def load(file: str) -> bytes:
    return (REAL_DIR / file).read_bytes()


def _unwrapped_span(values: list[int]) -> int:
    """First-to-last distance plus one frame of timestamps that may pass 2^33 (B-frames allowed)."""
    first = values[0]
    rel = sorted({(v - first + _HALF) % WRAP - _HALF for v in values})
    if len(rel) < 2:
        return 0
    frame = min(b - a for a, b in zip(rel, rel[1:], strict=False))
    return rel[-1] - rel[0] + frame


def seamless(raw: bytes, seconds: float, name: str = "clip") -> tuple[bytes, float]:
    """
    ``raw`` looped for at least ``seconds`` with clocks and counters running on (a live
    channel), and the byte rate that plays it in real time. The loop's duration is its first
    program's video span (its sound's, without video), measured modulo 2^33.
    """
    from epgd.demo.clip import _read_stamp, parse_clip

    parsed = parse_clip(name, name, raw)
    video: dict[int, list[int]] = {}
    others: dict[int, list[int]] = {}
    data = parsed.data
    for pos in parsed.stamps:  # PTS fields are those followed by a PES header's flags byte - 2
        pes = pos - 9
        if data[pes:pes + 3] != b"\x00\x00\x01" or data[pes + 7] >> 6 == 0:
            continue  # a DTS field (pos is PTS + 5)
        pid = (data[pes - (pes % PACKET) + 1] & 0x1F) << 8 | data[pes - (pes % PACKET) + 2]
        target = video if 0xE0 <= data[pes + 3] <= 0xEF else others
        target.setdefault(pid, []).append(_read_stamp(data, pos))
    first_videos, _, first_streams = _first_program(_packets(data))
    if first_videos:  # a multiplex loops on its first program's clock (the one epgd plays)
        video = {pid: v for pid, v in video.items() if pid in first_videos}
        others = {pid: v for pid, v in others.items() if pid in first_streams}
    duration = max((_unwrapped_span(v) for v in video.values()), default=0) or max(
        (_unwrapped_span(v) for v in others.values()), default=0)
    parsed = evolve(parsed, duration=duration)
    loops = int(seconds / parsed.seconds) + 1
    return b"".join(parsed.loop(n) for n in range(loops)), parsed.byte_rate


# -- serving clips as a live provider does ------------------------------------------------

#: a live stream: each connection gets a fresh iterator of (bytes, seconds of media they hold)
Program = Callable[[], Iterator[tuple[bytes, float]]]
_CHUNK = PACKET * 64


def looped(raw: bytes, seconds: float, start: float = 0.0) -> Program:
    """
    One clip played as a live channel (`seamless`), at its own rate, from the start; with
    ``start``, from the last PAT at or before ``start`` seconds in (the same channel joined
    later: its clock, and where the loop has more than one PAT its picture, elsewhere).
    """
    data, rate = seamless(raw, seconds + start)
    first = _rfind_pat(data, int(start * rate) // PACKET * PACKET) if start else 0

    def program() -> Iterator[tuple[bytes, float]]:
        for at in range(first, len(data), _CHUNK):
            chunk = data[at:at + _CHUNK]
            yield chunk, len(chunk) / rate
    return program


def switching(clips: list[bytes], every: float, seconds: float, first: float | None = None) -> Program:
    """
    A naive proxy's output: every ``every`` seconds it cuts from one live channel (each clip
    looped with `seamless`, running on in the background) to the next, and copies the new
    channel's packets as they are from its latest PAT (as epgd's join buffer starts a client:
    a channel whose PAT comes once a loop is joined at the loop's start). PIDs, PAT/PMT versions,
    continuity counters and clocks all change at each cut, as in epgd's passthrough. The first
    channel plays ``first`` seconds (default ``every``) before the first cut.
    """
    channels = [seamless(raw, seconds + every) for raw in clips]

    def program() -> Iterator[tuple[bytes, float]]:
        start, index = 0.0, 0
        while start < seconds:
            data, rate = channels[index % len(channels)]
            position = int(start * rate) // PACKET * PACKET
            pat = _rfind_pat(data, position)
            length = first if index == 0 and first is not None else every
            end = min(len(data), pat + int(length * rate) // PACKET * PACKET)
            for at in range(pat, end, _CHUNK):
                chunk = data[at:min(at + _CHUNK, end)]
                yield chunk, len(chunk) / rate
            start += length
            index += 1
    return program


def _rfind_pat(data: bytes, before: int) -> int:
    """Offset of the last PAT packet at or before ``before`` (0 when none)."""
    at = data.rfind(b"\x47\x40\x00", 0, before + 3)
    while at > 0 and at % PACKET:
        at = data.rfind(b"\x47\x40\x00", 0, at)
    return max(at, 0)


class LiveServer:
    """
    An HTTP server on 127.0.0.1 (a free port, a thread per connection) that sends a `Program`
    paced at its media rate after a first burst of ``burst`` seconds (``bursts`` per name), as
    IPTV providers do (a viewer's player fills its buffer at once, then gets the stream in real
    time). Threads, not Twisted, so a blocking player run needs no reactor; stop it with
    ``close()``.
    """

    def __init__(self, programs: dict[str, Program], burst: float = 1.5,
                 bursts: dict[str, float] | None = None) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                name = self.path.strip("/").removesuffix(".ts")
                program = server.programs.get(name)
                if program is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                burst = server.bursts.get(name, server.burst)
                began, sent = time.monotonic(), 0.0
                try:
                    for chunk, media in program():
                        wait = sent - burst - (time.monotonic() - began)
                        if wait > 0:
                            if server.closing.wait(wait):
                                return
                        self.wfile.write(chunk)
                        sent += media
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.programs = programs
        self.burst = burst
        self.bursts = bursts or {}
        self.closing = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}.ts"

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# -- cutting a capture ----------------------------------------------------------------


def _packets(raw: bytes) -> list[bytes]:
    start = raw.find(b"\x47")
    while start + 2 * PACKET < len(raw) and not (raw[start + PACKET] == raw[start + 2 * PACKET] == 0x47):
        start = raw.find(b"\x47", start + 1)
    return [raw[at:at + PACKET] for at in range(start, len(raw) - PACKET + 1, PACKET)]


def _pid(packet: bytes) -> int:
    return (packet[1] & 0x1F) << 8 | packet[2]


def _payload(packet: bytes) -> bytes:
    afc = packet[3] >> 4 & 3
    if not afc & 1:
        return b""
    return packet[5 + packet[4]:] if afc & 2 else packet[4:]


def _section(packet: bytes) -> bytes:
    payload = _payload(packet)
    return payload[1 + payload[0]:] if payload else b""


def _first_program(packets: list[bytes]) -> tuple[dict[int, str], set[int], set[int]]:
    """
    The first program the first PAT lists (the one epgd plays): its video PIDs with their
    codec, its audio PIDs and all its elementary PIDs.
    """
    pmt_pid = None
    for packet in packets:
        if not packet[1] & 0x40:
            continue
        pid, section = _pid(packet), _section(packet)
        if pid == 0 and section[:1] == b"\x00" and pmt_pid is None:
            length = (section[1] & 0x0F) << 8 | section[2]
            programs = [(section[at + 2] & 0x1F) << 8 | section[at + 3]
                        for at in range(8, 3 + length - 4, 4) if section[at] << 8 | section[at + 1]]
            pmt_pid = programs[0] if programs else None
        elif pid == pmt_pid and section[:1] == b"\x02":
            videos: dict[int, str] = {}
            audios: set[int] = set()
            streams: set[int] = set()
            end = 3 + ((section[1] & 0x0F) << 8 | section[2]) - 4
            at = 12 + ((section[10] & 0x0F) << 8 | section[11])
            while at + 5 <= end:
                es_pid = (section[at + 1] & 0x1F) << 8 | section[at + 2]
                streams.add(es_pid)
                size = (section[at + 3] & 0x0F) << 8 | section[at + 4]
                tags = _tags(section[at + 5:at + 5 + size])
                if section[at] in _VIDEO_TYPES:
                    videos[es_pid] = _VIDEO_TYPES[section[at]]
                elif section[at] in _AUDIO_TYPES or section[at] == 0x06 and tags & {0x6A, 0x7A, 0x7B}:
                    audios.add(es_pid)
                at += 5 + ((section[at + 3] & 0x0F) << 8 | section[at + 4])
            return videos, audios, streams
    return {}, set(), set()


def _tags(descriptors: bytes) -> set[int]:
    tags, at = set(), 0
    while at + 2 <= len(descriptors):
        tags.add(descriptors[at])
        at += 2 + descriptors[at + 1]
    return tags


def _pts(packet: bytes) -> int | None:
    """The PTS of the PES this unit-starting packet opens, if it has one."""
    payload = _payload(packet)
    if payload[:3] != b"\x00\x00\x01" or len(payload) < 14 or not payload[7] & 0x80:
        return None
    b = payload[9:14]
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _random_access(codec: str, packet: bytes) -> bool:
    """True when this PES-starting packet opens with an IDR/IRAP/SPS or an MPEG-2 sequence header."""
    payload = _payload(packet)
    if payload[:3] != b"\x00\x00\x01" or len(payload) < 9:
        return False
    es = payload[9 + payload[8]:]
    at = es.find(b"\x00\x00\x01")
    while 0 <= at < len(es) - 4:
        code = es[at + 3]
        if codec == "h264" and code & 0x1F in (5, 7):
            return True
        if codec == "hevc" and (code >> 1) & 0x3F in (16, 17, 18, 19, 20, 21, 32, 33):
            return True
        if codec == "mpeg2" and code == 0xB3:
            return True
        at = es.find(b"\x00\x00\x01", at + 3)
    return False


def cut(raw: bytes, limit: int, mode: str = "gop") -> bytes:
    """
    At most ``limit`` bytes of a capture, loopable: from the last PAT before a video
    random-access point of its first program, every PID trimmed to whole units, PES packets or
    sections (its packets before its first unit start are left out, and so is its last unit
    when the capture shows it going on past the cut or ends there; packets without payload,
    such as PCR-only ones, and null packets are kept). Only a head and a tail of any PID go, so
    its continuity counters stay unbroken.

    ``mode="gop"``, for a slice of a continuous broadcast: the cut also ends at such a PAT, so
    the loop is whole GOPs, its duration is the distance between the two key frames, and each
    stream's mux delay (the sound sent later than the pictures of the same instant, say) comes
    out the same at both ends: clocks, pictures and sound all run on across the seam (sound
    with a gap of at most the torn frame).

    ``mode="align"``, for a file an encoder or segmenter flushed (sound running on after the
    last picture, or starting before the first): the program's video is trimmed to end with
    its sound, its other streams (sound, text) to the span of its video, and the window cut
    again just after its last kept packet, so no sound overlaps the next loop's and the PCRs
    do not run past the loop and step back at every seam.
    """
    if mode not in ("gop", "align"):
        raise ValueError(f"mode {mode!r}: 'gop' or 'align'")
    packets = _packets(raw)
    window, keep, last_es = _cut_once(packets, limit, mode)
    while mode == "align" and 0 <= last_es < len(window) - 1:  # a tail past the last frame
        window, keep, last_es = _cut_once(packets, (last_es + 1) * PACKET, mode)
    return b"".join(p for i, p in enumerate(window) if keep[i])


def _cut_once(packets: list[bytes], limit: int, mode: str) -> tuple[list[bytes], list[bool], int]:
    """`cut`'s window, its keep flags and the index of its last kept packet of the first
    program's elementary streams (-1 when none)."""
    videos, audios, streams = _first_program(packets)
    entries = []  # indexes of PATs followed by a random-access point before the next PAT
    last_pat = None
    for index, packet in enumerate(packets):
        pid = _pid(packet)
        if pid == 0 and packet[1] & 0x40:
            last_pat = index
        elif pid in videos and packet[1] & 0x40 and last_pat is not None \
                and _random_access(videos[pid], packet):
            entries.append(last_pat)
            last_pat = None
    if not entries:
        raise ValueError("no PAT followed by a video random-access point")
    start = entries[0]
    end = min(len(packets), start + limit // PACKET)
    if mode == "gop":
        ends = [entry for entry in entries[1:] if entry <= end]
        if not ends:
            raise ValueError(f"no second key frame within {limit} bytes")
        end = ends[-1]
    window = packets[start:end]
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for index, packet in enumerate(window):
        if packet[1] & 0x40:
            first.setdefault(_pid(packet), index)
            last[_pid(packet)] = index
    # PIDs whose last unit goes on past the cut (at the capture's end, every PID: no telling)
    torn: set[int] = set() if end < len(packets) else set(last)
    seen: set[int] = set()
    for packet in packets[end:]:
        pid = _pid(packet)
        if pid in seen or not packet[3] & 0x10:
            continue
        seen.add(pid)
        if not packet[1] & 0x40:
            torn.add(pid)
    keep = [_pid(p) == 0x1FFF or not p[3] & 0x10
            or (_pid(p) in first and first[_pid(p)] <= i and (_pid(p) not in torn or i < last[_pid(p)]))
            for i, p in enumerate(window)]
    origin = next((_pts(p) for p in window if _pid(p) in videos and p[1] & 0x40 and _pts(p) is not None), None)
    if origin is not None and mode == "align":
        def rel(stamp: int) -> int:
            return (stamp - origin + _HALF) % WRAP - _HALF
        ends = [_span_end([rel(s) for s in _unit_stamps(window, keep, pid)]) for pid in audios]
        audio_end = max((end for end in ends if end > 0), default=None)
        if audio_end is not None:  # the video's last frames, after all sound ends, go
            _trim_from(window, keep, videos, lambda stamp: rel(stamp) > audio_end)
        shown = sorted({rel(s) for pid in videos for s in _unit_stamps(window, keep, pid)}) or [0]
        frame = min((b - a for a, b in zip(shown, shown[1:], strict=False)), default=0)
        lo, hi = shown[0], shown[-1] + frame
        for pid in streams - set(videos):  # sound and text before the first or after the last picture go
            _trim_from(window, keep, {pid}, lambda stamp: not lo <= rel(stamp) < hi, head=True)
    last_es = max((i for i, p in enumerate(window) if keep[i] and _pid(p) in streams and p[3] & 0x10),
                  default=-1)
    return window, keep, last_es


def _span_end(stamps: list[int]) -> int:
    """Where sound whose PES packets start at ``stamps`` ends: the last start plus one step."""
    if len(stamps) < 2:
        return stamps[0] if stamps else 0
    steps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    return stamps[-1] + steps[len(steps) // 2]


def _unit_stamps(window: list[bytes], keep: list[bool], pid: int) -> list[int]:
    return [s for i, p in enumerate(window)
            if keep[i] and _pid(p) == pid and p[1] & 0x40 and (s := _pts(p)) is not None]


def _trim_from(window: list[bytes], keep: list[bool], pids: set[int] | dict[int, str],
               outside: Callable[[int], bool], head: bool = False) -> None:
    """
    Leave out, on each of ``pids``, every unit from the first whose PTS is ``outside`` on
    (a tail); with ``head``, also the units before the first that is not (a head).
    """
    for pid in pids:
        state = "head" if head else "keep"
        for index, packet in enumerate(window):
            if not keep[index] or _pid(packet) != pid or not packet[3] & 0x10:
                continue
            if packet[1] & 0x40 and (stamp := _pts(packet)) is not None:
                if state == "head" and not outside(stamp) or state == "keep" and outside(stamp):
                    state = "keep" if state == "head" else "tail"
            keep[index] = state == "keep"


def main(argv: list[str]) -> None:
    """``python -m tests.realclips cut SRC OUT MAX_BYTES [gop|align]``: see ``cut``."""
    if len(argv) not in (4, 5) or argv[0] != "cut" or argv[4:] not in ([], ["gop"], ["align"]):
        raise SystemExit(main.__doc__)
    Path(argv[2]).write_bytes(cut(Path(argv[1]).read_bytes(), int(argv[3]), *argv[4:]))


if __name__ == "__main__":
    main(sys.argv[1:])
