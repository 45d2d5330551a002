"""
Fan-out benchmark (not run by CI): K viewers of one 8 Mbit/s provider stream, through nginx
and through epgd (both output modes), side by side in one run.

For each K and each server it starts a fresh server process, connects K raw HTTP/1.1 readers
(in this process), lets them settle, then measures a window (15 s, read in 5 s steps): how
many viewers kept >= 95% of real time over the whole window and in every 5 s step, the
slowest and median viewer, the server's CPU (% of one core, user + system, nginx's master and
worker together), RSS and its connections to the provider. The provider's and the readers' own
CPU are printed too: all of it shares the machine's cores. One markdown table:

    python bench/fanout.py [--clients 200,500,1000] [--seconds 15] [--step 5]
                           [--servers nginx,continuous,passthrough] [--rate 1000000]

nginx (``apt-get install nginx-light``) runs with ``proxy_buffering off`` and one worker,
configured from a temp dir of its own (see ``_nginx.py``); it opens one provider connection
per viewer, epgd one per stream. The source is the tests' fake provider serving a
broadcast-like 8 Mbit/s clip (``_common.broadcast_clip``); it paces in 10 ms steps for epgd
(so epgd reads ~10 KB at a time, as from a real link: the harder case for it, more writes per
viewer) and in 50 ms steps for nginx, whose K connections it could not feed at 10 ms. The
``direct`` server (readers straight on the provider) shows what the provider itself manages.

Aim (issue 13): at K = 500 and 1000 every viewer >= 95% over one provider connection with
epgd's CPU below nginx's; at K = 200, every viewer >= 95% in every 5 s step.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from typing import Any

import _common as c
import psutil
from _nginx import Nginx


def start(server: str, url_a: str) -> tuple[Any, int, str]:
    """A fresh server; returns it, its port and the path viewers GET."""
    if server == "nginx":
        proxy = Nginx(c.port_of(url_a))
        return proxy, proxy.port, "/" + url_a.split("/", 3)[3]
    if server == "direct":  # the fake provider itself, one connection per viewer: a reference
        return _Direct(), c.port_of(url_a), "/" + url_a.split("/", 3)[3]
    now = time.time()
    child, port = c.epgd(c.playlist_of(url_a),
                         {"bench_1": [c.event("Game", now - 60, now + 3600, url_a)]},
                         output=server)
    return child, port, "/stream/bench_1.ts"


class _Direct:
    """No server between: the figures of the provider's own (its CPU is the provider's)."""

    def cpu_seconds(self) -> float:
        return 0.0

    def rss_mb(self) -> float:
        return 0.0

    def connections_to(self, port: int) -> int:
        return 0

    def stop(self) -> None:
        pass


def measure(server: str, source: Any, url_a: str, k: int, rate: float, seconds: float,
            step: float, profile: str = "", http: str = "1.1") -> dict[str, Any]:
    proc, port, path = start(server, url_a)
    me = psutil.Process()
    readers = c.Readers()
    try:
        for _ in range(k):
            readers.open("127.0.0.1", port, path, http=http)
        readers.run(2.0 + k / 500)  # settle: everyone joined, buffers filled
        marks = [[r.body for r in readers.readers]]
        spy = None
        if profile and server not in ("nginx", "direct"):
            out = f"{profile}-{server}-{k}.txt"
            spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "-r", "200",
                                    "-d", str(int(seconds)), "-o", out, "-p", str(proc.ps.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu, src_cpu, own = proc.cpu_seconds(), source.cpu_seconds(), me.cpu_times()
        wall = time.monotonic()
        steps = max(1, round(seconds / step))
        for _ in range(steps):
            readers.run(seconds / steps)
            marks.append([r.body for r in readers.readers])
        wall = time.monotonic() - wall
        after = me.cpu_times()
        if spy is not None:
            spy.wait(30)
        per_step = wall / steps
        whole = [(b - a) / wall / rate for a, b in zip(marks[0], marks[-1], strict=True)]
        worst = [min((marks[i + 1][j] - marks[i][j]) / per_step / rate for i in range(steps))
                 for j in range(k)]
        return {
            "server": server, "k": k,
            "kept": sum(1 for x in whole if x >= 0.95) / k,
            "slowest": min(whole), "median": statistics.median(whole),
            "kept_steps": sum(1 for x in worst if x >= 0.95) / k, "slowest_step": min(worst),
            "cpu": (proc.cpu_seconds() - cpu) / wall * 100,
            "source_cpu": (source.cpu_seconds() - src_cpu) / wall * 100,
            "readers_cpu": (after.user + after.system - own.user - own.system) / wall * 100,
            "rss": proc.rss_mb(), "conns": proc.connections_to(c.port_of(url_a)),
            "bad": sum(1 for r in readers.readers if r.status != 200),
        }
    finally:
        readers.close()
        proc.stop()


def table(rows: list[dict[str, Any]], step: float, seconds: float) -> str:
    lines = [
        f"| K | server | kept >= 95% ({seconds:g} s) | slowest | median "
        f"| kept >= 95% (every {step:g} s) | slowest {step:g} s | CPU | RSS MB "
        "| provider conns | provider step | provider CPU | readers CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = r["server"] if r["server"] in ("nginx", "direct") else f"epgd {r['server']}"
        bad = f" ({r['bad']} not 200)" if r["bad"] else ""
        lines.append(
            f"| {r['k']} | {name}{bad} | {r['kept']:.0%} | {r['slowest']:.2f} | {r['median']:.2f} "
            f"| {r['kept_steps']:.0%} | {r['slowest_step']:.2f} | {r['cpu']:.0f}% "
            f"| {r['rss']:.0f} | {r['conns']} | {r['tick'] * 1000:.0f} ms "
            f"| {r['source_cpu']:.0f}% | {r['readers_cpu']:.0f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="200,500,1000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--step", type=float, default=5.0, help="the shorter window (s)")
    parser.add_argument("--servers", default="nginx,continuous,passthrough")
    parser.add_argument("--rate", type=float, default=1_000_000.0, help="bytes/s (8 Mbit/s)")
    parser.add_argument("--profile", default="", metavar="PREFIX",
                        help="py-spy (pip install py-spy) epgd during each window: PREFIX-MODE-K.txt, "
                             "collapsed stacks (its sampling costs some CPU)")
    parser.add_argument("--tick", type=float, default=0.01,
                        help="the fake provider's pacing step for epgd (s): the tests' 10 ms, "
                             "so epgd reads the stream in ~10 KB pieces, as from a real link")
    parser.add_argument("--nginx-tick", type=float, default=0.05,
                        help="the same for nginx's provider (s): at 10 ms the Python provider "
                             "cannot feed the 500 connections nginx opens")
    parser.add_argument("--http", default="1.1", choices=("1.0", "1.1"),
                        help="the viewers' HTTP version (1.1: chunked answers, as players get)")
    parser.add_argument("--test-clip", action="store_true",
                        help="serve tests/data/ts/a.ts, not the broadcast-like clip")
    args = parser.parse_args()
    clip = "" if args.test_clip else c.broadcast_clip()
    sources: dict[float, tuple[c.Child, str]] = {}
    rows = []
    try:
        for k in args.clients.split(","):
            for server in args.servers.split(","):
                tick = args.tick if server not in ("nginx", "direct") else args.nginx_tick
                if tick not in sources:
                    child, url, _ = c.provider(args.rate, clip=clip, tick=tick)
                    sources[tick] = (child, url)
                source, url_a = sources[tick]
                row = measure(server, source, url_a, int(k), args.rate, args.seconds, args.step,
                              args.profile, args.http)
                row["tick"] = tick
                rows.append(row)
                print(table(rows[-1:], args.step, args.seconds).splitlines()[-1], flush=True)
    finally:
        for source, _ in sources.values():
            source.stop()
    load = " ".join(f"{x:.2f}" for x in psutil.getloadavg())
    print(f"\nfanout {args.rate * 8 / 1e6:g} Mbit/s, load average at the end {load}:\n")
    print(table(rows, args.step, args.seconds))


if __name__ == "__main__":
    main()
