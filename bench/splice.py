"""
Splicer benchmark (not run by CI): what ``stream.output = "continuous"`` (one program, every
packet's PID/CC rewritten, clocks shifted) costs beside ``"passthrough"``, in one run:

* MB/s one client gets through one channel from an unpaced provider stream;
* epgd's CPU (% of one core) for one channel at 8 Mbit/s with 1 and with 100 viewers.

The source is a real 8 Mbit/s stream (720p H.264 + AAC, made once with ffmpeg into the temp
dir), looped with its clock running on (a live channel's), so the splicer is measured in its
steady state, with the packet mix of a real channel. One line per figure:

    python bench/splice.py [--seconds 6] [--viewers 1,100] [--rate 1000000]

Aims (issue 8): continuous >= 0.5x passthrough's MB/s; the splicer adds <= 3% of one core per
channel at 8 Mbit/s, whatever the number of viewers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

import _common as c


def clip() -> str:
    """A 10 s, 8 Mbit/s clip (made once; ffmpeg with libx264 needed)."""
    path = os.path.join(tempfile.gettempdir(), "epgd-bench-8mbit.ts")
    if not os.path.exists(path):
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
                        "-f", "lavfi", "-t", "9.984", "-i", "sine=frequency=500:sample_rate=48000",
                        "-t", "10", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
                        "-pix_fmt", "yuv420p", "-b:v", "7.5M", "-maxrate", "8M", "-bufsize", "8M",
                        "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k",
                        "-f", "mpegts", path + ".part"], check=True)
        os.replace(path + ".part", path)
    return path


def channel(url: str, mode: str) -> tuple[c.Child, int]:
    now = time.time()
    return c.epgd(c.playlist_of(url), {"bench_1": [c.event("Game", now - 60, now + 3600, url)]},
                  output=mode)


def throughput(url: str, mode: str, seconds: float) -> tuple[float, float]:
    """(MB/s, epgd CPU %) for one reader of an unpaced source."""
    server, port = channel(url, mode)
    readers = c.Readers()
    try:
        reader = readers.open("127.0.0.1", port, "/stream/bench_1.ts")
        readers.run(1.0)
        start, cpu, wall = reader.body, server.cpu_seconds(), time.monotonic()
        readers.run(seconds)
        wall = time.monotonic() - wall
        return (reader.body - start) / wall / 1e6, (server.cpu_seconds() - cpu) / wall * 100
    finally:
        readers.close()
        server.stop()


def viewers(url: str, mode: str, k: int, rate: float, seconds: float) -> tuple[float, int]:
    """(epgd CPU %, viewers that kept >= 95% of the rate) for ``k`` viewers of a paced source."""
    server, port = channel(url, mode)
    readers = c.Readers()
    try:
        for _ in range(k):
            readers.open("127.0.0.1", port, "/stream/bench_1.ts")
        readers.run(2.0)
        before = [r.body for r in readers.readers]
        cpu, wall = server.cpu_seconds(), time.monotonic()
        readers.run(seconds)
        wall = time.monotonic() - wall
        kept = sum(1 for r, b in zip(readers.readers, before, strict=True) if (r.body - b) / wall >= 0.95 * rate)
        return (server.cpu_seconds() - cpu) / wall * 100, kept
    finally:
        readers.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--viewers", default="1,100")
    parser.add_argument("--rate", type=float, default=1_000_000.0, help="bytes/s (8 Mbit/s)")
    args = parser.parse_args()
    modes = ("passthrough", "continuous")
    source = clip()
    fast, _, _ = c.provider(None, seamless=True, clip=source)
    try:
        url = c.urls_of(fast)[0]
        speed = {m: throughput(url, m, args.seconds) for m in modes}
    finally:
        fast.stop()
    print("throughput, one client: " + " | ".join(f"{m} {speed[m][0]:.0f} MB/s (epgd cpu {speed[m][1]:.0f}%)"
                                                  for m in modes)
          + f" | continuous/passthrough {speed['continuous'][0] / speed['passthrough'][0]:.2f}x")
    paced, _, _ = c.provider(args.rate, seamless=True, clip=source)
    try:
        url = c.urls_of(paced)[0]
        for k in (int(x) for x in args.viewers.split(",")):
            cost = {m: viewers(url, m, k, args.rate, args.seconds) for m in modes}
            print(f"one {args.rate * 8 / 1e6:g} Mbit/s channel, {k} viewer(s): "
                  + " | ".join(f"{m} epgd cpu {cost[m][0]:.1f}% ({cost[m][1]}/{k} kept up)" for m in modes)
                  + f" | the splicer adds {cost['continuous'][0] - cost['passthrough'][0]:+.1f}% of one core")
    finally:
        paced.stop()


if __name__ == "__main__":
    main()
