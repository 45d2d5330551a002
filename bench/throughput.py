"""
Throughput benchmark (not run by CI): one viewer of an unpaced provider stream, MB/s through
epgd (both output modes) beside the same through nginx (``proxy_buffering off``, one worker)
and read straight from the fake provider, in one run, on each clip of ``_common.CLIPS`` (the
broadcast-like 8 Mbit/s H.264 one and the 1.2 Mbit/s MPEG-2 one, which has ~7x the PES
headers and PCRs per byte). One line per clip and server, then the ratios:

    python bench/throughput.py [--seconds 5] [--repeat 3] [--clips broadcast,mpeg2]
                               [--before PATH --servers nginx,before-continuous,continuous,...]

``--repeat`` runs the servers round-robin that many times and prints each one's median and
range (a shared machine's figures are noisy). ``before-continuous`` and ``before-passthrough``
run the epgd of another checkout (``--before``, e.g. ``git worktree add /tmp/before main``)
in the same run, for before/after figures side by side. nginx is not a dependency: ``apt-get install
nginx-light`` for the benchmarks.

Aims: epgd >= 1.0x nginx's MB/s (issue 13); continuous >= 0.9x passthrough's and >= 1.0x
nginx's on both clips (issue 21).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import _common as c
from _nginx import Nginx


def read(port: int, path: str, seconds: float, server: Any = None) -> tuple[float, float]:
    """MB/s one reader gets from ``path`` over ``seconds`` (after a short warm-up) and the
    server's CPU (% of one core) meanwhile."""
    readers = c.Readers()
    try:
        reader = readers.open("127.0.0.1", port, path)
        readers.run(1.0)
        if reader.status != 200:
            raise SystemExit(f"{path}: status {reader.status}")
        start, wall = reader.body, time.monotonic()
        cpu = server.cpu_seconds() if server is not None else 0.0
        readers.run(seconds)
        wall = time.monotonic() - wall
        used = (server.cpu_seconds() - cpu) / wall * 100 if server is not None else 0.0
        return (reader.body - start) / wall / 1e6, used
    finally:
        readers.close()


def once(server: str, url_a: str, seconds: float, before: str = "") -> tuple[float, float]:
    path = "/" + url_a.split("/", 3)[3]
    if server == "direct":
        return read(c.port_of(url_a), path, seconds)
    if server == "nginx":
        proxy = Nginx(c.port_of(url_a))
        try:
            return read(proxy.port, path, seconds, proxy)
        finally:
            proxy.stop()
    root = ""
    if server.startswith("before-"):
        if not before:
            raise SystemExit(f"{server}: give --before PATH, the checkout to compare with")
        root, server = before, server.removeprefix("before-")
    now = time.time()
    child, port = c.epgd(c.playlist_of(url_a),
                         {"bench_1": [c.event("Game", now - 60, now + 3600, url_a)]},
                         root=root, output=server)
    try:
        return read(port, "/stream/bench_1.ts", seconds, child)
    finally:
        child.stop()


def label(server: str) -> str:
    if server in ("direct", "nginx"):
        return server
    if server.startswith("before-"):
        return f"epgd {server.removeprefix('before-')} (before)"
    return f"epgd {server}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--servers", default="direct,nginx,continuous,passthrough",
                        help="direct, nginx, continuous, passthrough; before-continuous and "
                             "before-passthrough run the epgd of --before")
    parser.add_argument("--before", default="", metavar="PATH", help="a checkout to compare with")
    parser.add_argument("--clips", default=",".join(c.CLIPS), help=f"of {', '.join(c.CLIPS)}")
    parser.add_argument("--test-clip", action="store_true",
                        help="serve tests/data/ts/a.ts, not the benchmark clips")
    args = parser.parse_args()
    servers = args.servers.split(",")
    clips = {"a.ts": ""} if args.test_clip else {name: c.CLIPS[name][0]() for name in args.clips.split(",")}
    for name, clip in clips.items():
        # looped with its clock running on (a live channel's), so the splicer runs in its
        # steady state rather than re-entering at every loop
        source, url_a, _ = c.provider(None, seamless=True, clip=clip)
        runs: dict[str, list[tuple[float, float]]] = {s: [] for s in servers}
        try:
            for _ in range(args.repeat):
                for server in servers:
                    runs[server].append(once(server, url_a, args.seconds, args.before))
        finally:
            source.stop()
        median = {s: statistics.median(mbs for mbs, _ in runs[s]) for s in servers}
        for server in servers:
            mbs = sorted(m for m, _ in runs[server])
            cpu = statistics.median(u for _, u in runs[server])
            name_ = label(server)
            spread = f" ({mbs[0]:.0f}-{mbs[-1]:.0f})" if len(mbs) > 1 else ""
            print(f"throughput {name} {name_}: {median[server]:.0f} MB/s{spread}"
                  + (f" (cpu {cpu:.0f}%)" if cpu else ""))
        ratios = [f"{p}continuous/{p}passthrough {median[p + 'continuous'] / median[p + 'passthrough']:.2f}x"
                  for p in ("before-", "") if p + "continuous" in median and p + "passthrough" in median]
        if "nginx" in median:
            ratios += [f"{s}/nginx {median[s] / median['nginx']:.2f}x" for s in servers
                       if s not in ("nginx", "direct")]
        if ratios:
            print(f"throughput {name}: " + ", ".join(ratios))


if __name__ == "__main__":
    main()
