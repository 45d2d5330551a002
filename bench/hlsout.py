"""
HLS output benchmark (not run by CI): epgd's CPU and memory with K HLS viewers of one 8 Mbit/s
channel, read straight from epgd and through one nginx cache (``contrib/nginx-cache.conf`` as
shipped, its listen and upstream lines rewritten), beside K MPEG-TS viewers of the same channel.

The source is the broadcast-like clip (720p H.264 ~7.6 Mbit/s + AAC, a key frame every 2 s;
``_common.broadcast_clip``) paced by the fake provider in its own process; epgd (its own
process) runs with the default ``hls_segment = 4`` and ``hls_window = 6``, so segments are
~4 MB. An HLS viewer is a player on one keep-alive HTTP/1.1 connection: it starts three
segments from the live end, reloads the playlist every half target duration (at a random
phase) and fetches each new segment once, in order. A TS viewer reads ``/stream/ID.ts``.

For each K and each way (hls, hls-nginx, ts) a fresh epgd (and nginx) process: the channel
is started, the viewers connect, settle, then a window is measured: epgd's CPU (% of one core,
user + system) and RSS, nginx's (master and workers), the requests that reached epgd (its
/metrics), and how the viewers kept up (HLS: segments fetched of those published in the
window, the last one's lag; TS: bytes of real time). All of it shares the machine's cores
with the viewers' own process. One markdown table:

    python bench/hlsout.py [--clients 1,100,1000] [--ways hls,hls-nginx,ts] [--seconds 24]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections import deque
from typing import Any

import _common as c
import psutil

CONTRIB = os.path.join(c.ROOT, "contrib", "nginx-cache.conf")


class Player:
    """One HLS player on a keep-alive HTTP/1.1 connection (no body kept but the playlist's)."""

    def __init__(self, port: int, channel: str, now: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.channel = channel
        self.queue: deque[str] = deque()
        self.last = -1  # highest sequence fetched
        self.newest = -1  # highest sequence listed in the last playlist
        self.target = 4.0
        self.next_at = now
        self.kind = ""  # what is being answered: "playlist", "segment" or "" (idle)
        self.head = b""
        self.body = bytearray()
        self.left = 0  # body bytes still to come (Content-Length)
        self.chunked = False
        self.status = 0
        self.segments = 0
        self.segment_bytes = 0
        self.errors = 0
        self.closed = False
        self.reloaded = 0

    # -- requests ----------------------------------------------------------------------

    def ask(self, path: str, kind: str) -> None:
        self.kind = kind
        self.head = b""
        self.body = bytearray()
        self.status = 0
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())

    def tick(self, now: float) -> None:
        if not self.kind and not self.closed:
            if self.queue:
                self.ask(f"/stream/{self.queue.popleft()}", "segment")
            elif now >= self.next_at:
                self.ask(f"/stream/{self.channel}.m3u8", "playlist")

    # -- answers -----------------------------------------------------------------------

    def received(self, data: memoryview, now: float) -> None:
        while data:
            if not self.status:
                self.head += bytes(data)
                if b"\r\n\r\n" not in self.head:
                    return
                head, rest = self.head.split(b"\r\n\r\n", 1)
                self.status = int(head.split(None, 2)[1])
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                self.chunked = length is None
                self.left = int(length.group(1)) if length else 0
                data = memoryview(rest)
                if self.chunked:
                    self.body += bytes(data)
                    if self.body.endswith(b"0\r\n\r\n"):
                        self.done(now)
                    return
                if not self.left:
                    self.done(now)
                    continue
            if self.chunked:  # only short answers (playlists, errors) come chunked
                self.body += bytes(data)
                if self.body.endswith(b"0\r\n\r\n"):
                    self.done(now)
                return
            take = min(self.left, len(data))
            if self.kind == "playlist" or self.status != 200:
                self.body += bytes(data[:take])
            else:
                self.segment_bytes += take
            self.left -= take
            data = data[take:]
            if not self.left:
                self.done(now)

    def done(self, now: float) -> None:
        kind, self.kind = self.kind, ""
        ok = self.status == 200
        if kind == "segment":
            self.segments += ok
            self.errors += not ok
            return
        if not ok:
            self.errors += 1
            self.next_at = now + 1.0
            return
        self.reloaded += 1
        text = bytes(self.body).decode("ascii", "replace")
        if self.chunked:  # the body's chunk framing: the playlist lines are what matter
            text = "\n".join(line for line in text.splitlines() if not re.fullmatch(r"[0-9a-fA-F]+", line))
        target = re.search(r"#EXT-X-TARGETDURATION:(\d+)", text)
        self.target = float(target.group(1)) if target else self.target
        uris = [line for line in text.splitlines() if line.endswith(".ts")]
        listed = [(int(u.rsplit("/", 1)[1][:-3]), u) for u in uris]
        if listed:
            self.newest = listed[-1][0]
        start = listed[-3:] if self.last < 0 else listed
        for sequence, uri in start:
            if sequence > self.last:
                self.queue.append(uri)
                self.last = sequence
        self.next_at = now + self.target / 2


class Players:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.players: list[Player] = []
        self._buffer = bytearray(1 << 18)

    def open(self, port: int, channel: str) -> None:
        player = Player(port, channel, time.monotonic() + random.random() * 2.0)
        self.players.append(player)
        self.selector.register(player.sock, selectors.EVENT_READ, player)

    def run(self, seconds: float) -> None:
        view = memoryview(self._buffer)
        deadline = time.monotonic() + seconds
        while (now := time.monotonic()) < deadline:
            for player in self.players:
                player.tick(now)
            for key, _ in self.selector.select(min(0.02, deadline - now)):
                player = key.data
                try:
                    n = player.sock.recv_into(view)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    n = 0
                if n == 0:
                    player.closed = True
                    self.selector.unregister(player.sock)
                    continue
                player.received(view[:n], time.monotonic())

    def close(self) -> None:
        for player in self.players:
            if not player.closed:
                self.selector.unregister(player.sock)
            player.sock.close()
        self.selector.close()


class Nginx:
    """contrib/nginx-cache.conf as shipped, listen and upstream lines rewritten."""

    def __init__(self, upstream: int) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.tmp = tempfile.mkdtemp(prefix="bench-nginx-cache-")
        os.chmod(self.tmp, 0o755)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        with open(CONTRIB) as f:
            conf = f.read()
        conf = re.sub(r"(?m)^(\s*)listen 8090;", rf"\1listen 127.0.0.1:{self.port} backlog=4096;", conf)
        conf = re.sub(r"(?m)^(\s*)server 127\.0\.0\.1:8080;", rf"\1server 127.0.0.1:{upstream};", conf)
        path = os.path.join(self.tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen([binary, "-e", "stderr", "-p", self.tmp, "-c", path, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.ps = psutil.Process(self.proc.pid)

    def tree(self) -> list[psutil.Process]:
        return [self.ps, *self.ps.children(recursive=True)]

    def cpu_seconds(self) -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for p in self.tree())

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self.tree()) / 1e6

    def stop(self) -> None:
        c.end(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


def hls_requests(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^epgd_hls_requests_total\{kind="(\w+)"\} (\S+)$', text, re.M)}


def measure(way: str, url: str, k: int, rate: float, seconds: float, settle: float) -> dict[str, Any]:
    now = time.time()
    server, port = c.epgd(c.playlist_of(url), {"bench_1": [c.event("Game", now - 60, now + 3600, url)]},
                          hls_segment=4.0, hls_window=6, idle_timeout=120.0)
    cache = Nginx(port) if way == "hls-nginx" else None
    front = cache.port if cache else port
    players, readers = Players(), c.Readers()
    try:
        if way == "ts":
            for _ in range(k):
                readers.open("127.0.0.1", port, "/stream/bench_1.ts")
            readers.run(settle)
        else:
            # the channel runs first, so the viewers start with a window to start from
            urllib.request.urlopen(f"http://127.0.0.1:{front}/stream/bench_1.m3u8", timeout=30).read()
            time.sleep(12)
            for _ in range(k):
                players.open(front, "bench_1")
            players.run(settle)
        before_requests = hls_requests(port)
        before = [p.segments for p in players.players] or [r.body for r in readers.readers]
        cpu, wall = server.cpu_seconds(), time.monotonic()
        cache_cpu = cache.cpu_seconds() if cache else 0.0
        own = psutil.Process().cpu_times()
        if way == "ts":
            readers.run(seconds)
        else:
            players.run(seconds)
        wall = time.monotonic() - wall
        after_own = psutil.Process().cpu_times()
        row: dict[str, Any] = {
            "way": way, "k": k,
            "cpu": (server.cpu_seconds() - cpu) / wall * 100, "rss": server.rss_mb(),
            "nginx_cpu": (cache.cpu_seconds() - cache_cpu) / wall * 100 if cache else None,
            "nginx_rss": cache.rss_mb() if cache else None,
            "viewers_cpu": (after_own.user + after_own.system - own.user - own.system) / wall * 100,
        }
        after_requests = hls_requests(port)
        row["requests"] = {kind: after_requests.get(kind, 0) - before_requests.get(kind, 0)
                           for kind in ("playlist", "segment", "missing")}
        if way == "ts":
            shares = [(r.body - b) / wall / rate for r, b in zip(readers.readers, before, strict=True)]
            row["kept"] = sum(1 for x in shares if x >= 0.95) / k
            row["detail"] = f"slowest {min(shares):.2f} of real time, median {statistics.median(shares):.2f}"
        else:
            published = seconds / 4.0
            got = [p.segments - b for p, b in zip(players.players, before, strict=True)]
            lag = [p.newest - p.last + len(p.queue) for p in players.players]
            errors = sum(p.errors for p in players.players)
            closed = sum(p.closed for p in players.players)
            row["kept"] = sum(1 for g, lagging, p in zip(got, lag, players.players, strict=True)
                              if g >= published - 1.5 and lagging <= 1 and not p.closed) / k
            row["detail"] = (f"segments in {seconds:g} s: min {min(got)}, median {statistics.median(got):g} "
                             f"(~{published:g} published); worst lag {max(lag)}; errors {errors}; "
                             f"connections closed {closed}")
        return row
    finally:
        players.close()
        readers.close()
        if cache:
            cache.stop()
        server.stop()


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| K | viewers | epgd CPU | epgd RSS MB | nginx CPU | nginx RSS MB | requests to epgd "
             "(playlist/segment) | kept up | | viewers' CPU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        nginx = (f"{r['nginx_cpu']:.0f}% | {r['nginx_rss']:.0f}" if r["nginx_cpu"] is not None else "- | -")
        requests = ("-" if r["way"] == "ts"
                    else f"{r['requests']['playlist']:.0f} / {r['requests']['segment']:.0f}")
        lines.append(f"| {r['k']} | {r['way']} | {r['cpu']:.0f}% | {r['rss']:.0f} | {nginx} | {requests} "
                     f"| {round(r['kept'] * r['k'])}/{r['k']} | {r['detail']} | {r['viewers_cpu']:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,100,1000")
    parser.add_argument("--ways", default="hls,hls-nginx,ts")
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--settle", type=float, default=14.0)
    parser.add_argument("--rate", type=float, default=1_000_000.0, help="bytes/s (8 Mbit/s)")
    args = parser.parse_args()
    source, url, _ = c.provider(args.rate, clip=c.broadcast_clip(), tick=0.01)
    rows = []
    try:
        for k in args.clients.split(","):
            for way in args.ways.split(","):
                rows.append(measure(way, url, int(k), args.rate, args.seconds, args.settle))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        source.stop()
    load = " ".join(f"{x:.2f}" for x in psutil.getloadavg())
    print(f"\nHLS output at {args.rate * 8 / 1e6:g} Mbit/s, {args.seconds:g} s windows, "
          f"load average at the end {load}:\n")
    print(table(rows))


if __name__ == "__main__":
    main()
