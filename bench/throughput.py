"""
Throughput benchmark (not run by CI): one client, an unpaced provider stream, MB/s through
epgd beside the same bytes read straight from the fake provider, in one run. One line:

    python bench/throughput.py [--seconds 5]

Aim (issue 4): >= 300 MB/s through epgd.
"""

from __future__ import annotations

import argparse
import time

import _common as c


def read(port: int, path: str, seconds: float) -> float:
    """MB/s one reader gets from ``path`` over ``seconds`` (after a short warm-up)."""
    readers = c.Readers()
    try:
        reader = readers.open("127.0.0.1", port, path)
        readers.run(1.0)
        if reader.status != 200:
            raise SystemExit(f"{path}: status {reader.status}")
        start, wall = reader.body, time.monotonic()
        readers.run(seconds)
        return (reader.body - start) / (time.monotonic() - wall) / 1e6
    finally:
        readers.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--normalize-pids", action="store_true",
                        help="turn stream.normalize_pids on (PID rewriting on the hot path)")
    args = parser.parse_args()
    source, url_a, _ = c.provider(None)
    server = None
    try:
        direct = read(c.port_of(url_a), "/" + url_a.split("/", 3)[3], args.seconds)
        now = time.time()
        server, port = c.epgd(c.playlist_of(url_a),
                              {"bench_1": [c.event("Game", now - 60, now + 3600, url_a)]},
                              normalize_pids=args.normalize_pids)
        cpu, wall = server.cpu_seconds(), time.monotonic()
        proxied = read(port, "/stream/bench_1.ts", args.seconds)
        cpu = (server.cpu_seconds() - cpu) / (time.monotonic() - wall) * 100
        label = " (normalize_pids)" if args.normalize_pids else ""
        print(f"throughput{label}: through epgd {proxied:.0f} MB/s (epgd cpu {cpu:.0f}%, "
              f"rss {server.rss_mb():.0f}MB), direct from provider {direct:.0f} MB/s, "
              f"ratio {proxied / direct:.0%}")
    finally:
        if server is not None:
            server.stop()
        source.stop()


if __name__ == "__main__":
    main()
