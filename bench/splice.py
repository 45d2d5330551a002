"""
Splicer benchmark (not run by CI): what ``stream.output = "continuous"`` (one program, every
packet's PID/CC rewritten, clocks shifted) costs beside ``"passthrough"``, in one run:

* MB/s one client gets through one channel from an unpaced provider stream;
* epgd's CPU (% of one core) for one channel at the clip's own rate with 1 and with 100 viewers.

On each clip of ``_common.CLIPS`` (``--clips``): a real 8 Mbit/s stream (720p H.264 + AAC) and
a 1.2 Mbit/s MPEG-2 + MP2 one (many more PES headers and PCRs per byte), made once with ffmpeg
into the temp dir, looped with their clocks running on (a live channel's), so the splicer is
measured in its steady state, with the packet mix of a real channel. One line per figure:

    python bench/splice.py [--seconds 6] [--repeat 3] [--viewers 1,100] [--clips broadcast,mpeg2]
                           [--before PATH --modes before-passthrough,before-continuous,passthrough,continuous]

Aims: the splicer adds <= 3% of one core per channel at 8 Mbit/s, whatever the number of
viewers (issue 8); continuous >= 0.9x passthrough's MB/s on both clips (issue 21).
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common as c

#: the checkout ``before-`` modes run (``--before``)
BEFORE = [""]


def channel(url: str, mode: str) -> tuple[c.Child, int]:
    now = time.time()
    root = ""
    if mode.startswith("before-"):
        if not BEFORE[0]:
            raise SystemExit(f"{mode}: give --before PATH, the checkout to compare with")
        root, mode = BEFORE[0], mode.removeprefix("before-")
    return c.epgd(c.playlist_of(url), {"bench_1": [c.event("Game", now - 60, now + 3600, url)]},
                  root=root, output=mode)


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
        kept = sum(1 for r, b in zip(readers.readers, before, strict=True)
                   if (r.body - b) / wall >= 0.95 * rate)
        return (server.cpu_seconds() - cpu) / wall * 100, kept
    finally:
        readers.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=1, help="throughput runs per mode (median)")
    parser.add_argument("--viewers", default="1,100", help="viewer counts; empty: throughput only")
    parser.add_argument("--clips", default=",".join(c.CLIPS), help=f"of {', '.join(c.CLIPS)}")
    parser.add_argument("--modes", default="passthrough,continuous",
                        help="passthrough, continuous; before-passthrough and before-continuous run "
                             "the epgd of --before")
    parser.add_argument("--before", default="", metavar="PATH", help="a checkout to compare with")
    args = parser.parse_args()
    BEFORE[0] = args.before
    modes = args.modes.split(",")
    pairs = [p for p in ("before-", "") if p + "continuous" in modes and p + "passthrough" in modes]
    for name in args.clips.split(","):
        make, rate = c.CLIPS[name]
        source = make()
        fast, _, _ = c.provider(None, seamless=True, clip=source)
        runs: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
        try:
            url = c.urls_of(fast)[0]
            for _ in range(args.repeat):
                for m in modes:
                    runs[m].append(throughput(url, m, args.seconds))
        finally:
            fast.stop()
        speed = {m: (statistics.median(x for x, _ in runs[m]), statistics.median(u for _, u in runs[m]))
                 for m in modes}
        print(f"{name}: throughput, one client: "
              + " | ".join(f"{m} {speed[m][0]:.0f} MB/s (epgd cpu {speed[m][1]:.0f}%)" for m in modes)
              + "".join(f" | {p}continuous/{p}passthrough "
                        f"{speed[p + 'continuous'][0] / speed[p + 'passthrough'][0]:.2f}x" for p in pairs))
        if not args.viewers:
            continue
        paced, _, _ = c.provider(rate, seamless=True, clip=source)
        try:
            url = c.urls_of(paced)[0]
            for k in (int(x) for x in args.viewers.split(",")):
                cost = {m: viewers(url, m, k, rate, args.seconds) for m in modes}
                print(f"{name}: one {rate * 8 / 1e6:g} Mbit/s channel, {k} viewer(s): "
                      + " | ".join(f"{m} epgd cpu {cost[m][0]:.1f}% ({cost[m][1]}/{k} kept up)"
                                   for m in modes)
                      + "".join(f" | the splicer adds "
                                f"{cost[p + 'continuous'][0] - cost[p + 'passthrough'][0]:+.1f}%"
                                f" of one core{' (before)' if p else ''}" for p in pairs))
        finally:
            paced.stop()


if __name__ == "__main__":
    main()
