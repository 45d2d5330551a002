"""
Fan-out benchmark (not run by CI): K clients on one channel fed by one 8 Mbit/s provider stream.

For each K it starts a fresh epgd process, connects K raw readers (in this process), lets them
settle, then measures for a few seconds: how many clients kept >= 95% of real time, epgd's CPU
(% of one core) and RSS, and epgd's connections to the provider (must be 1). One line:

    python bench/fanout.py [--clients 10,100,200,500] [--seconds 8] [--rate 1000000]

Aim (issue 4): 200 clients keep up with epgd under 50% of one core.
"""

from __future__ import annotations

import argparse
import time

import _common as c


def measure(url_a: str, k: int, rate: float, seconds: float) -> str:
    now = time.time()
    server, port = c.epgd(c.playlist_of(url_a),
                          {"bench_1": [c.event("Game", now - 60, now + 3600, url_a)]})
    readers = c.Readers()
    try:
        for _ in range(k):
            readers.open("127.0.0.1", port, "/stream/bench_1.ts")
        readers.run(2.0)  # settle: everyone joined, buffers filled
        before = [r.body for r in readers.readers]
        cpu, wall = server.cpu_seconds(), time.monotonic()
        readers.run(seconds)
        wall = time.monotonic() - wall
        cpu = (server.cpu_seconds() - cpu) / wall * 100
        rates = [(r.body - b) / wall for r, b in zip(readers.readers, before, strict=True)]
        kept = sum(1 for x in rates if x >= 0.95 * rate)
        upstream = server.connections_to(c.port_of(url_a))
        bad = sum(1 for r in readers.readers if r.status != 200)
        return (f"K={k}: {kept}/{k} kept up (slowest {min(rates) / rate:.0%}), "
                f"epgd cpu {cpu:.0f}% rss {server.rss_mb():.0f}MB, provider conns {upstream}"
                + (f", {bad} not 200" if bad else ""))
    finally:
        readers.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="10,100,200,500")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=1_000_000.0, help="bytes/s (8 Mbit/s)")
    args = parser.parse_args()
    source, url_a, _ = c.provider(args.rate)
    try:
        figures = [measure(url_a, int(k), args.rate, args.seconds)
                   for k in args.clients.split(",")]
    finally:
        source.stop()
    print(f"fanout {args.rate * 8 / 1e6:g} Mbit/s: " + " | ".join(figures))


if __name__ == "__main__":
    main()
