"""
Join benchmark (not run by CI): time to first byte for a client tuning in. Cold: the first
client of a channel (epgd opens the provider stream). Warm: clients joining a running stream,
one after another, each served at once from the buffer of recent packets. One line:

    python bench/join.py [--joins 20] [--first-byte-delay 0]

Aim (issue 4): warm joins < 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common as c


def first_byte(readers: c.Readers, port: int) -> tuple[float, int]:
    """Seconds from request to the first body byte, and the first packet's PID."""
    reader = readers.open("127.0.0.1", port, "/stream/bench_1.ts", keep=True)
    readers.run(10.0, until=lambda: sum(len(d) for _, d in reader.chunks) >= c.PACKET)
    if reader.first_byte_at is None:
        raise SystemExit(f"no first byte within 10 s (status {reader.status})")
    data = b"".join(d for _, d in reader.chunks)
    return reader.first_byte_at - reader.sent_at, c.pids(data[: c.PACKET])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--first-byte-delay", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=1_000_000.0)
    args = parser.parse_args()
    source, url_a, _ = c.provider(args.rate, args.first_byte_delay)
    server = None
    watcher = c.Readers()
    try:
        now = time.time()
        server, port = c.epgd(c.playlist_of(url_a),
                              {"bench_1": [c.event("Game", now - 60, now + 3600, url_a)]})
        cold, _ = first_byte(watcher, port)  # stays connected: the stream keeps running
        watcher.run(1.0)
        warm, starts = [], []
        for _ in range(args.joins):
            joiner = c.Readers()
            try:
                seconds, pid = first_byte(joiner, port)
            finally:
                joiner.close()
            warm.append(seconds)
            starts.append(pid)
            watcher.run(0.1)  # keep the first client reading between joins
        at_pat = sum(1 for pid in starts if pid == 0)
        print(f"join: cold {cold * 1000:.0f} ms (provider first-byte delay "
              f"{args.first_byte_delay * 1000:.0f} ms); warm x{len(warm)} median "
              f"{statistics.median(warm) * 1000:.1f} ms, max {max(warm) * 1000:.1f} ms; "
              f"{at_pat}/{len(warm)} started at a PAT")
    finally:
        watcher.close()
        if server is not None:
            server.stop()
        source.stop()


if __name__ == "__main__":
    main()
