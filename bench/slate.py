"""
Slate benchmark (not run by CI): what channels on the slate (SPEC §14) cost a running epgd, on
loopback, epgd in a process of its own. One line per figure:

* CPU per channel on the slate, with 1 viewer each (``--channels`` channels, so the figure is
  not lost in noise), and of one channel with 100 viewers — epgd's CPU (user + system, % of one
  core) over ``--seconds``, less the same process idle beforehand. Each channel's next event is
  hours away, so its countdown changes (and its picture is re-made) once a minute, as in use;
* bit rate: what one viewer receives, and /streams/status ``bitrate_kbps``;
* a joiner's time to its first picture: from the request to the arrival of the last byte of
  the first key frame (the packet that starts the next video frame), for ``--joins`` joiners
  spread over a key-frame interval; and whether ffmpeg decodes a picture from the first second
  each one received.

    python bench/slate.py [--seconds 30] [--channels 20] [--joins 10] [--size 1280x720]

Aims (SPEC §14): <= 1% of one core per channel on the slate; <= 2 Mbit/s; a picture within 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import urllib.request

import _common as c

VIDEO = 0x100


def cpu_percent(server: c.Child, readers: c.Readers, seconds: float) -> float:
    cpu, wall = server.cpu_seconds(), time.monotonic()
    readers.run(seconds)
    return (server.cpu_seconds() - cpu) / (time.monotonic() - wall) * 100


def idle_percent(server: c.Child, seconds: float) -> float:
    cpu, wall = server.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (server.cpu_seconds() - cpu) / (time.monotonic() - wall) * 100


def status(port: int) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/streams/status", timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def first_picture(reader: c.Reader) -> float | None:
    """Seconds from the request to the packet that ends the first video frame (a key frame)."""
    data = bytearray()
    frames = 0
    for at, chunk in reader.chunks:
        start = len(data) - len(data) % c.PACKET
        data += chunk
        for offset in range(start, len(data) - c.PACKET + 1, c.PACKET):
            pid = ((data[offset + 1] & 0x1F) << 8) | data[offset + 2]
            if pid == VIDEO and data[offset + 1] & 0x40:  # a video PES starts
                frames += 1
                if frames == 2:  # ... the one after the key frame: the key frame is whole
                    return at - reader.sent_at
    return None


def decodes(data: bytes) -> bool:
    done = subprocess.run(["ffmpeg", "-v", "error", "-f", "mpegts", "-i", "pipe:0", "-frames:v", "1",
                           "-f", "rawvideo", "-pix_fmt", "gray", "-"], input=data, capture_output=True,
                          timeout=60, check=False)
    return bool(done.stdout)


def start(url: str, channels: int, size: str) -> tuple[c.Child, int]:
    """epgd with ``channels`` channels whose next event is hours away: each on its slate."""
    later = time.time() + 3 * 3600 + 1234  # "Up next … in 3 h 20 min": re-made once a minute
    schedule = {f"bench_{n}": [c.event(f"Game {n}", later, later + 3600, url)] for n in range(1, channels + 1)}
    return c.epgd(c.playlist_of(url), schedule, slate_size=size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    source, url, _ = c.provider(500_000.0)
    try:
        # every channel on the slate, one viewer each
        server, port = start(url, args.channels, args.size)
        readers = c.Readers()
        try:
            time.sleep(1.0)
            idle = idle_percent(server, min(args.seconds, 10.0))
            for n in range(1, args.channels + 1):
                readers.open("127.0.0.1", port, f"/stream/bench_{n}.ts")
            readers.run(3.0)
            first = readers.readers[0]
            before, wall = first.body, time.monotonic()
            many = cpu_percent(server, readers, args.seconds)
            rate = (first.body - before) * 8 / (time.monotonic() - wall) / 1000
            kinds = sorted({str(s["source_kind"]) for s in status(port).values()})
            reported = status(port)["bench_1"]["bitrate_kbps"]
            print(f"slate {args.size}: {args.channels} channels x 1 viewer: epgd {many:.1f}% of one core "
                  f"(idle {idle:.1f}%): {(many - idle) / args.channels:.2f}% per channel; "
                  f"source_kind {kinds}; {server.connections_to(c.port_of(url))} provider connections")
            print(f"slate {args.size}: bit rate {rate:.0f} kbit/s received by one viewer (HTTP/1.1 chunked), "
                  f"{reported} kbit/s in /streams/status")
        finally:
            readers.close()
            server.stop()

        # one channel on the slate, 100 viewers; then joiners
        server, port = start(url, 1, args.size)
        readers = c.Readers()
        try:
            time.sleep(1.0)
            idle = idle_percent(server, min(args.seconds, 10.0))
            for _ in range(100):
                readers.open("127.0.0.1", port, "/stream/bench_1.ts")
            readers.run(3.0)
            one = cpu_percent(server, readers, args.seconds)
            alive = sum(1 for r in readers.readers if not r.closed and r.status == 200)
            print(f"slate {args.size}: 1 channel x 100 viewers: epgd {one:.1f}% of one core "
                  f"(idle {idle:.1f}%): {one - idle:.2f}% for the channel; {alive}/100 viewers connected")
            times, clean = [], 0
            for _ in range(args.joins):
                joiner = c.Readers()
                try:
                    reader = joiner.open("127.0.0.1", port, "/stream/bench_1.ts", keep=True)
                    joiner.run(1.0)
                    seconds = first_picture(reader)
                    times.append(seconds if seconds is not None else float("inf"))
                    clean += decodes(b"".join(d for _, d in reader.chunks))
                finally:
                    joiner.close()
                readers.run(5.0 / args.joins)  # the next joiner at another phase of the 5 s interval
            print(f"slate {args.size}: joiner to first picture x{len(times)}: median "
                  f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; "
                  f"{clean}/{len(times)} decoded a picture from their first second")
        finally:
            readers.close()
            server.stop()
    finally:
        source.stop()


if __name__ == "__main__":
    main()
