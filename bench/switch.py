"""
Switch benchmark (not run by CI): one client watches a channel whose schedule alternates
between clips a and b every few seconds (10 switches), once with each output mode. It reports
how late after each event boundary the new clip arrived and the longest silence (no media
packet; keepalive nulls do not count) around a switch. Passthrough tells the clips apart by
their PIDs; continuous output gives both the same PIDs, so there the moment of each cut is
read from /streams/status (its switch count, polled every 10 ms). One line per mode:

    python bench/switch.py [--period 3] [--first-byte-delay 0] [--rate 1000000] [--output both]

Aim (issue 4): no silence longer than 100 ms beyond the new source's own first-byte delay;
every switch within 0.5 s of its boundary.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request

import _common as c

SWITCHES = 10


def packet_times(chunks: list[tuple[float, bytes]]) -> tuple[list[float], list[int]]:
    """Arrival time and PID of every whole packet (a packet arrives with its first byte)."""
    data = bytearray()
    starts: list[tuple[int, float]] = []
    for at, chunk in chunks:
        starts.append((len(data), at))
        data += chunk
    times, pids = [], []
    index = 0
    for offset in range(0, len(data) - c.PACKET + 1, c.PACKET):
        while index + 1 < len(starts) and starts[index + 1][0] <= offset:
            index += 1
        if data[offset] != 0x47:
            raise SystemExit(f"byte {offset} of the stream is not a sync byte: epgd broke alignment")
        times.append(starts[index][1])
        pids.append(((data[offset + 1] & 0x1F) << 8) | data[offset + 2])
    return times, pids


class SwitchWatch(threading.Thread):
    """Polls /streams/status: when (time.time()) each switch showed up."""

    def __init__(self, port: int, until: float) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/streams/status"
        self.until = until
        self.seen: list[float] = []

    def run(self) -> None:
        count = 0
        while time.time() < self.until:
            try:
                with urllib.request.urlopen(self.url, timeout=1) as answer:
                    switches = json.load(answer).get("bench_1", {}).get("switches", 0)
            except OSError:
                switches = count
            while count < switches:
                count += 1
                self.seen.append(time.time())
            time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--period", type=float, default=3.0, help="seconds between switches")
    parser.add_argument("--first-byte-delay", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=1_000_000.0, help="bytes/s per source")
    parser.add_argument("--output", default="both", choices=("both", "passthrough", "continuous"))
    args = parser.parse_args()
    modes = ("passthrough", "continuous") if args.output == "both" else (args.output,)
    for mode in modes:
        run(args, mode)


def run(args: argparse.Namespace, mode: str) -> None:
    source, url_a, url_b = c.provider(args.rate, args.first_byte_delay, seamless=True)
    server = None
    readers = c.Readers()
    try:
        now = time.time()
        first = now + 4.0
        boundaries = [first + i * args.period for i in range(SWITCHES)]
        edges = [now - 60, *boundaries, boundaries[-1] + 600]
        events = [c.event(f"Game {i}", edges[i], edges[i + 1], url_a if i % 2 == 0 else url_b)
                  for i in range(SWITCHES + 1)]
        server, port = c.epgd(c.playlist_of(url_a), {"bench_1": events}, output=mode)
        clock_offset = time.time() - time.monotonic()
        watch = SwitchWatch(port, boundaries[-1] + 2.0)
        watch.start()
        reader = readers.open("127.0.0.1", port, "/stream/bench_1.ts", keep=True)
        readers.run(boundaries[-1] + 2.0 - time.time())
        watch.join()
        if reader.status != 200 or reader.closed:
            raise SystemExit(f"stream failed: status {reader.status}, closed {reader.closed}")
        times, pids = packet_times(reader.chunks)
        times = [t + clock_offset for t in times]

        lateness, silences = [], []
        position = 0
        for i, boundary in enumerate(boundaries, start=1):
            if mode == "passthrough":
                new = c.B_PIDS if i % 2 else c.A_PIDS
                while position < len(pids) and not (times[position] >= boundary - 0.5
                                                    and pids[position] in new):
                    position += 1
                if position == len(pids):
                    raise SystemExit(f"switch {i} never happened")
                cut = times[position]
            else:
                if len(watch.seen) < i:
                    raise SystemExit(f"switch {i} never happened")
                cut = watch.seen[i - 1]
            lateness.append(cut - boundary)
            media = [t for t, pid in zip(times, pids, strict=True)
                     if boundary - 1.0 <= t <= cut + 1.0 and pid != c.NULL_PID]
            silences.append(max((b - a for a, b in zip(media, media[1:], strict=False)),
                                default=0.0))
        delay = args.first_byte_delay
        worst = max(silences)
        print(f"switch x{SWITCHES} at {args.rate * 8 / 1e6:g} Mbit/s, {mode}: longest silence "
              f"{worst * 1000:.0f} ms ({(worst - delay) * 1000:.0f} ms beyond the "
              f"{delay * 1000:.0f} ms first-byte delay); lateness after boundary ms "
              f"max {max(lateness) * 1000:.0f} "
              f"[{' '.join(f'{x * 1000:.0f}' for x in lateness)}]; "
              f"keepalive packets {pids.count(c.NULL_PID)}")
    finally:
        readers.close()
        if server is not None:
            server.stop()
        source.stop()


if __name__ == "__main__":
    main()
