"""
HLS benchmark (not run by CI): the CPU epgd spends on one HLS source at 8 Mbit/s, beside the
same clip as a plain MPEG-TS source, with 1 and with 100 viewers, in one run.

The HLS provider (tests/fakehls.py, its own process) serves clip a as a live window of 1 s
segments of ~1 MB (8 Mbit/s); the TS provider (tests/fakeprovider.py) paces the same clip at
the same byte rate. For each source kind and viewer count a fresh epgd process serves one
channel; after a settling time the readers (in this process) read for a few seconds and the
line says epgd's CPU (% of one core) and RSS, how many viewers kept >= 90% of the rate, and
epgd's connections to the provider. One line:

    python bench/hls.py [--clients 1,100] [--seconds 10] [--rate 1000000]

The machine is shared: figures are noisy; compare HLS with TS within one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import _common as c


def hls_provider(rate: float) -> tuple[c.Child, str]:
    child = c.Child([sys.executable, "-m", "tests.fakehls", str(rate), "1"], "hls")
    return child, child.first_line[0]


def measure(kind: str, url: str, k: int, rate: float, seconds: float) -> str:
    now = time.time()
    server, port = c.epgd(c.playlist_of(url), {"bench_1": [c.event("Game", now - 60, now + 3600, url)]})
    readers = c.Readers()
    try:
        for _ in range(k):
            readers.open("127.0.0.1", port, "/stream/bench_1.ts")
        readers.run(4.0)  # settle: a playlist, the first segments, every viewer joined
        before = [r.body for r in readers.readers]
        cpu, wall = server.cpu_seconds(), time.monotonic()
        readers.run(seconds)
        wall = time.monotonic() - wall
        cpu = (server.cpu_seconds() - cpu) / wall * 100
        rates = [(r.body - b) / wall for r, b in zip(readers.readers, before, strict=True)]
        kept = sum(1 for x in rates if x >= 0.9 * rate)
        conns = server.connections_to(c.port_of(url))
        return (f"{kind} K={k}: epgd cpu {cpu:.1f}% rss {server.rss_mb():.0f}MB, {kept}/{k} kept up "
                f"(slowest {min(rates) / rate:.0%}), provider conns {conns}")
    finally:
        readers.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,100")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1_000_000.0, help="bytes/s (8 Mbit/s)")
    args = parser.parse_args()
    hls, hls_url = hls_provider(args.rate)
    ts, ts_url, _ = c.provider(args.rate)
    figures = []
    try:
        for k in (int(x) for x in args.clients.split(",")):
            figures.append(measure("hls", hls_url, k, args.rate, args.seconds))
            figures.append(measure("ts", ts_url, k, args.rate, args.seconds))
    except subprocess.SubprocessError as e:
        raise SystemExit(f"bench failed: {e}") from None
    finally:
        hls.stop()
        ts.stop()
    print(f"hls vs ts at {args.rate * 8 / 1e6:g} Mbit/s (noisy, shared machine): " + " | ".join(figures))


if __name__ == "__main__":
    main()
