"""
What the stream benchmarks share: the fake provider and epgd each in a process of their own
(so epgd's CPU and RSS are its alone), many raw-socket stream readers in the benchmark's own
process, and psutil figures.

``python bench/_common.py serve SPEC_JSON`` is the epgd side: a StreamManager + EpgdApi built
from a schedule given on the command line, listening on 127.0.0.1, printing ``PORT n``.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PACKET = 188
NULL_PID = 0x1FFF
A_PIDS = frozenset({0x100, 0x101, 0x102})
B_PIDS = frozenset({0x200, 0x201, 0x202})


# -- processes ----------------------------------------------------------------------------

def end(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """Stop a child process: politely, then (after 5 s) for good."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Child:
    """A child process whose first stdout line is its address; killed on exit."""

    def __init__(self, argv: list[str], name: str) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise SystemExit(f"{name} did not start; see {self.log.name}")
        self.first_line = line.split()
        self.ps = psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 1e6

    def connections_to(self, port: int) -> int:
        return sum(1 for c in self.ps.net_connections(kind="tcp")
                   if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)

    def stop(self) -> None:
        end(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()
        os.unlink(self.log.name)


def provider(rate: float | None, first_byte_delay: float = 0.0, seamless: bool = False,
             clip: str = "", tick: float = 0.0, live: float = 0.0) -> tuple[Child, str, str]:
    """
    The fake provider serving clips a and b; returns it and their URLs. ``seamless``: the
    clips loop with their clocks running on (a live channel's), not back to their start;
    ``clip``: a file to serve as "a"; ``tick``: its pacing step, when not the tests' own.
    """
    argv = [sys.executable, "-m", "tests.fakeprovider",
            "unlimited" if rate is None else str(rate), str(first_byte_delay)]
    argv += ["seamless"] if seamless else []
    argv += [f"clip={clip}"] if clip else []
    argv += [f"tick={tick}"] if tick else []
    argv += [f"live={live}"] if live else []
    child = Child(argv, "provider")
    url_a, url_b = child.first_line
    return child, url_a, url_b


def urls_of(child: Child) -> list[str]:
    return list(child.first_line)


def broadcast_clip(seconds: int = 30) -> str:
    """
    A clip shaped like a provider's sports channel (720p25 H.264 at ~7.6 Mbit/s, a key frame
    every 2 s, stereo AAC 128k: ~8 Mbit/s in all), made once with ffmpeg and kept in the temp
    dir. The test clips (tests/data/ts, 274 kbit/s, 5 s) are tiny: served at 8 Mbit/s they
    play 29x too fast, loop (a clock jump) every 0.17 s and are one sixth audio packets.
    """
    path = os.path.join(tempfile.gettempdir(), f"epgd-bench-broadcast-{seconds}s.ts")
    if os.path.exists(path):
        return path
    part = path + ".part"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25,noise=alls=30:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-b:v", "7600k", "-maxrate", "7600k", "-bufsize", "4M",
         "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
         "-c:a", "aac", "-b:a", "128k", "-ac", "2",
         "-mpegts_flags", "+resend_headers", "-pat_period", "0.1", "-f", "mpegts", part],
        check=True)
    os.replace(part, path)
    return path


def mpeg2_clip(seconds: int = 60) -> str:
    """
    A low-bit-rate SD clip shaped like a DVB channel's: MPEG-2 720x576 25 fps at ~1 Mbit/s (B-frames,
    a key frame every 0.48 s) + MP2 192k with one audio frame per PES, PAT/PMT every 0.1 s,
    1.2 Mbit/s in all, on PIDs of its own (PMT 0x200, video 0x201, audio 0x202), so the
    splicer moves every packet. Read unpaced it has ~7x the PES headers and PCRs per byte of
    ``broadcast_clip`` (a fifth of its packets start a PES or carry an adaptation field, a
    fifth are sound): what costs the splicer per packet rather than per byte.
    """
    path = os.path.join(tempfile.gettempdir(), f"epgd-bench-mpeg2-{seconds}s.ts")
    if os.path.exists(path):
        return path
    part = path + ".part"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "fatal", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=720x576:rate=25,noise=alls=20:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-map", "0:v", "-map", "1:a", "-c:v", "mpeg2video", "-b:v", "900k", "-maxrate", "1000k",
         "-bufsize", "2000k", "-g", "12", "-bf", "2",
         "-c:a", "mp2", "-b:a", "192k", "-ac", "2", "-pes_payload_size", "0",
         "-mpegts_pmt_start_pid", "0x200", "-mpegts_start_pid", "0x201",
         "-mpegts_flags", "+resend_headers", "-pat_period", "0.1", "-f", "mpegts", part],
        check=True)
    os.replace(part, path)
    return path


#: the clips the speed benchmarks read (issue 21): name -> (maker, its bit rate in bytes/s)
CLIPS: dict[str, tuple[Callable[[], str], float]] = {
    "broadcast": (lambda: broadcast_clip(10), 1_000_000.0),
    "mpeg2": (mpeg2_clip, 154_000.0),
}


def epgd(playlist_url: str, channels: dict[str, list[dict[str, Any]]],
         provider_rcvbuf: int = 0, root: str = "", **stream: Any) -> tuple[Child, int]:
    """
    epgd serving ``channels`` ({id: [{title, start, stop, urls}]}); returns it and its port.
    ``provider_rcvbuf``: a fixed receive buffer for its provider sockets (see serve);
    ``root``: another checkout whose epgd to run (an earlier commit, for before/after).
    """
    spec = {"playlist": playlist_url, "channels": channels, "stream": stream,
            "provider_rcvbuf": provider_rcvbuf, "root": root}
    child = Child([sys.executable, os.path.join(HERE, "_common.py"), "serve", json.dumps(spec)],
                  "epgd")
    return child, int(child.first_line[1])


def port_of(url: str) -> int:
    return int(url.split("/")[2].split(":")[1])


def playlist_of(url: str) -> str:
    """An Xtream playlist URL with the stream URL's credentials (so epgd masks them)."""
    parts = url.split("/")
    return f"{parts[0]}//{parts[2]}/get.php?username={parts[4]}&password={parts[5]}"


# -- readers ------------------------------------------------------------------------------

class Reader:
    """
    One raw stream reader; counts body bytes, optionally keeps (time, chunk). HTTP/1.1 (what
    players send) gets a chunked answer from epgd and nginx alike, counted with its framing
    (under 0.1% of an 8 KB chunk); ``keep`` readers speak HTTP/1.0 so what they keep is TS.
    """

    def __init__(self, host: str, port: int, path: str, keep: bool = False,
                 http: str = "1.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=5)
        version = "1.0" if keep else http
        self.sock.sendall(f"GET {path} HTTP/{version}\r\nHost: bench\r\n\r\n".encode())
        self.sock.setblocking(False)
        self.sent_at = time.monotonic()
        self.head = b""
        self.in_body = False
        self.status = 0
        self.body = 0
        self.first_byte_at: float | None = None
        self.closed = False
        self.keep = keep
        self.chunks: list[tuple[float, bytes]] = []

    def feed(self, data: bytes, now: float) -> None:
        if not self.in_body:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.head, data = self.head.split(b"\r\n\r\n", 1)
            self.status = int(self.head.split()[1])
            self.in_body = True
        if data:
            if self.first_byte_at is None:
                self.first_byte_at = now
            self.body += len(data)
            if self.keep:
                self.chunks.append((now, data))


class Readers:
    """Many readers on one selector: cheap enough to read hundreds of streams in one process."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.readers: list[Reader] = []
        self._buffer = bytearray(1 << 18)

    def open(self, host: str, port: int, path: str, keep: bool = False,
             http: str = "1.1") -> Reader:
        reader = Reader(host, port, path, keep, http)
        self.readers.append(reader)
        self.selector.register(reader.sock, selectors.EVENT_READ, reader)
        return reader

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Read for ``seconds`` (or until ``until()`` holds)."""
        view = memoryview(self._buffer)
        deadline = time.monotonic() + seconds
        while (now := time.monotonic()) < deadline:
            if until is not None and until():
                return
            for key, _ in self.selector.select(min(0.05, deadline - now)):
                reader: Reader = key.data
                try:
                    n = reader.sock.recv_into(view)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    n = 0
                if n == 0:
                    reader.closed = True
                    self.selector.unregister(reader.sock)
                    continue
                if reader.first_byte_at is not None and not reader.keep:
                    reader.body += n  # the hot path: count, copy nothing
                    continue
                reader.feed(bytes(view[:n]), time.monotonic())

    def close(self) -> None:
        for reader in self.readers:
            if not reader.closed:
                self.selector.unregister(reader.sock)
            reader.sock.close()
        self.readers = []
        self.selector.close()


def pids(data: bytes) -> list[int]:
    return [((data[i + 1] & 0x1F) << 8) | data[i + 2] for i in range(0, len(data) - 187, PACKET)]


def event(title: str, start: float, stop: float, *urls: str) -> dict[str, Any]:
    return {"title": title, "start": start, "stop": stop, "urls": list(urls)}


# -- the epgd side ------------------------------------------------------------------------

def _bound_provider_window(size: int) -> None:
    """
    epgd's provider sockets (the only ones it opens here) get a fixed receive buffer of
    ``size``, as a path with real round trips holds about that much: on loopback the
    kernel's autotuning grows it to 10-25 MB, seconds of video, which would hide any pause
    in epgd's reading from a live provider.
    """
    from twisted.internet import tcp

    make = tcp.BaseClient.createInternetSocket

    def bounded(self: Any) -> socket.socket:
        sock = make(self)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        return sock

    tcp.BaseClient.createInternetSocket = bounded  # type: ignore[method-assign]


def serve(spec: dict[str, Any]) -> None:
    """Run epgd's stream half on 127.0.0.1 (no catalog: the schedule comes from ``spec``)."""
    if spec.get("root"):
        sys.path.insert(0, os.path.abspath(spec["root"]))  # its epgd (and tests) before ours
    import datetime as dt

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from epgd.config import Config, LineupConfig, ProviderConfig, ServerConfig, StreamConfig
    from epgd.httpguard import EpgdSite
    from epgd.redact import Redactor
    from epgd.schedule.model import Channel, Event, Schedule, Source
    from epgd.stream.manager import StreamManager
    from epgd.web import EpgdApi
    from tests.streamhelpers import FakeCatalog

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    if spec.get("provider_rcvbuf"):
        _bound_provider_window(int(spec["provider_rcvbuf"]))
    utc = dt.UTC
    stream = {"check_interval": 1.0, "hold_after_end": 0.0, **spec["stream"]}
    config = Config(server=ServerConfig(listen=(), max_clients=10_000),
                    stream=StreamConfig(**stream),
                    providers=(ProviderConfig(name="main", playlist=spec["playlist"]),),
                    lineups=(LineupConfig(id="bench", channels=len(spec["channels"])),))
    channels = []
    for number, (cid, events) in enumerate(sorted(spec["channels"].items()), start=1):
        built = tuple(
            Event(key=f"{cid}-{i}", lineup="bench", title=e["title"],
                  start=dt.datetime.fromtimestamp(e["start"], utc),
                  stop=dt.datetime.fromtimestamp(e["stop"], utc),
                  sources=tuple(Source("main", e["title"], u) for u in e["urls"]))
            for i, e in enumerate(events))
        channels.append(Channel(id=cid, name=cid, number=number, lineup="bench", group="Bench",
                                events=built))
    schedule = Schedule(generated_at=dt.datetime.now(utc), channels=tuple(channels))
    manager = StreamManager(config, reactor, lambda: schedule,
                            Redactor.for_urls([spec["playlist"]]))
    class BenchCatalog(FakeCatalog):
        """FakeCatalog with what /metrics reads, so benchmarks can scrape it."""

        feeds: dict[str, Any] = {}
        refreshes: dict[Any, int] = {}
        refresh_durations: dict[str, list[float]] = {}

        def schedule(self) -> Schedule:
            return schedule

    api = EpgdApi(config, BenchCatalog(), manager, reactor)
    site = EpgdSite(api.app.resource(), Redactor.for_urls([spec["playlist"]]))
    site.log = lambda request: None  # type: ignore[method-assign]  # no access log per client
    manager.startService()
    port = reactor.listenTCP(0, site, interface="127.0.0.1", backlog=1024)
    print("PORT", port.getHost().port, flush=True)
    reactor.run()


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve(json.loads(sys.argv[2]))
