"""
Fan-out benchmark (not run by CI): K viewers of one 8 Mbit/s provider stream, through nginx
and through epgd (both output modes), side by side in one run.

The provider is live by default (``--provider live``), as a channel's encoder or a CDN is: the
clip runs on in real time whether it is read or not, and what its reader has not taken within
``--live`` seconds (1 s) is skipped, so any pause in reading the provider is video lost for
every viewer. ``--provider waiting`` is the tests' provider, which waits for its reader (TCP
backpressure) and so forgives any pause. On loopback the kernel would hide a pause (it grows
a socket's buffers to 10-25 MB, seconds of video): the live provider's send buffer is small,
and epgd's provider socket gets a fixed receive buffer (``--provider-rcvbuf``, 256 KB, about
what an 8 Mbit/s path with real round trips holds). nginx's upstream sockets keep the
kernel's autotuned buffers (nginx has no setting for them): the slack is nginx's.

For each K and server it starts a fresh server process, connects K raw HTTP/1.1 readers (in
this process), lets them settle, then reads for ``--seconds`` (30 s), marking every viewer's
bytes each second, and reports:

* kept: viewers that got >= 95% of real time (the stream's byte rate) in every ``--window``
  (15 s) window of the run, sliding by 1 s; the slowest viewer's worst window; the median
  viewer's rate over the whole run;
* the server's CPU (% of one core, user + system; nginx's master and worker together), RSS at
  the end, its connections to the provider;
* epgd's longest gap between two reads of the provider in the run (its /metrics histogram
  ``epgd_provider_read_gap_seconds``: the bucket it fell in, and how many passed 100 ms);
* what the live provider skipped (lost for good), as a share of what it streamed;
* the provider's and the readers' own CPU: all of it shares the machine's cores.

    python bench/fanout.py [--clients 1,200,500,1000] [--servers nginx,continuous,passthrough]
                           [--provider live|waiting] [--seconds 30] [--window 15]
                           [--before PATH --servers nginx,before-continuous,continuous]

nginx (``apt-get install nginx-light``) runs with ``proxy_buffering off`` and one worker,
configured from a temp dir of its own (see ``_nginx.py``); it opens one provider connection
per viewer, epgd one per stream. The source is the tests' fake provider serving a
broadcast-like 8 Mbit/s clip (``_common.broadcast_clip``); it paces in 10 ms steps for epgd
(so epgd reads ~10 KB at a time, as from a real link) and in 50 ms steps for nginx, whose K
connections it could not feed at 10 ms. The ``direct`` server (readers straight on the
provider) shows what the provider itself manages.

Aim (issue 21): with a live provider, at K = 1000 every viewer >= 95% in every 15 s window
over one provider connection, the longest read gap under 100 ms; epgd's CPU below nginx's at
K = 500.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import urllib.request
from typing import Any

import _common as c
import psutil
from _nginx import Nginx
from prometheus_client.parser import text_string_to_metric_families

GAP_METRIC = "epgd_provider_read_gap_seconds"


def start(server: str, url_a: str, rcvbuf: int, before: str) -> tuple[Any, int, str]:
    """A fresh server; returns it, its port and the path viewers GET."""
    if server == "nginx":
        proxy = Nginx(c.port_of(url_a))
        return proxy, proxy.port, "/" + url_a.split("/", 3)[3]
    if server == "direct":  # the fake provider itself, one connection per viewer: a reference
        return _Direct(), c.port_of(url_a), "/" + url_a.split("/", 3)[3]
    now = time.time()
    root = ""
    if server.startswith("before-"):
        if not before:
            raise SystemExit(f"{server}: give --before PATH, the checkout to compare with")
        root, server = before, server.removeprefix("before-")
    child, port = c.epgd(c.playlist_of(url_a),
                         {"bench_1": [c.event("Game", now - 60, now + 3600, url_a)]},
                         provider_rcvbuf=rcvbuf, root=root, output=server)
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


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())


def read_gaps(port: int) -> list[tuple[float, float]] | None:
    """epgd's read-gap histogram as (upper bound, cumulative count); None when not epgd."""
    try:
        text = _get(f"http://127.0.0.1:{port}/metrics").decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == GAP_METRIC:
            return sorted((float(s.labels["le"]), s.value) for s in family.samples
                          if s.name.endswith("_bucket"))
    return None


def longest_gap(before: list[tuple[float, float]] | None,
                after: list[tuple[float, float]] | None) -> tuple[float, int] | None:
    """(the upper bound of the highest bucket a gap fell in, gaps over 100 ms) in between."""
    if not before or not after:
        return None
    delta = [(bound, b - a) for (bound, a), (_, b) in zip(before, after, strict=True)]
    highest, previous, over = 0.0, 0.0, 0
    for bound, cumulative in delta:
        if cumulative > previous:
            highest = bound
        previous = cumulative
    total = delta[-1][1]
    over = int(total - next(n for bound, n in delta if bound >= 0.1 - 1e-9))
    return highest, over


def skipped(source_base: str) -> float:
    """Bytes the live provider has skipped so far, over all its connections."""
    try:
        stats = json.loads(_get(source_base + "/stats"))
    except OSError:
        return 0.0
    return float(sum(stats.get("skipped", {}).values()))


def windows_worst(marks: list[tuple[float, list[int]]], k: int, window: float,
                  rate: float) -> list[float]:
    """Each viewer's lowest share of real time over every ``window`` of the marks."""
    worst = [float("inf")] * k
    times = [t for t, _ in marks]
    for i, (t0, first) in enumerate(marks):
        j = next((j for j in range(i + 1, len(marks)) if times[j] - t0 >= window - 0.25), None)
        if j is None:
            break
        span = times[j] - t0
        last = marks[j][1]
        for v in range(k):
            worst[v] = min(worst[v], (last[v] - first[v]) / span / rate)
    if worst and worst[0] == float("inf"):  # a run shorter than one window: the whole run
        span = times[-1] - times[0]
        worst = [(marks[-1][1][v] - marks[0][1][v]) / span / rate for v in range(k)]
    return worst


def measure(server: str, source: Any, url_a: str, k: int, args: argparse.Namespace,
            ) -> dict[str, Any]:
    proc, port, path = start(server, url_a, args.provider_rcvbuf if args.provider == "live" else 0,
                             args.before)
    source_base = url_a.split("/live/")[0]
    me = psutil.Process()
    readers = c.Readers()
    try:
        for _ in range(k):
            readers.open("127.0.0.1", port, path, http=args.http)
        readers.run(2.0 + k / 500)  # settle: everyone joined, buffers filled
        spy = None
        if args.profile and server not in ("nginx", "direct"):
            out = f"{args.profile}-{server}-{k}.txt"
            spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "-r", "200",
                                    "-d", str(int(args.seconds)), "-o", out, "-p",
                                    str(proc.ps.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gaps_before = read_gaps(port) if server not in ("nginx", "direct") else None
        lost_before = skipped(source_base)
        cpu, src_cpu, own = proc.cpu_seconds(), source.cpu_seconds(), me.cpu_times()
        marks = [(time.monotonic(), [r.body for r in readers.readers])]
        steps = max(1, round(args.seconds))
        for _ in range(steps):
            readers.run(args.seconds / steps)
            marks.append((time.monotonic(), [r.body for r in readers.readers]))
        wall = marks[-1][0] - marks[0][0]
        after = me.cpu_times()
        cpu = (proc.cpu_seconds() - cpu) / wall * 100
        source_cpu = (source.cpu_seconds() - src_cpu) / wall * 100
        lost = skipped(source_base) - lost_before
        gaps = longest_gap(gaps_before, read_gaps(port)) if gaps_before is not None else None
        if spy is not None:
            spy.wait(30)
        rate = args.rate
        whole = [(b - a) / wall / rate for a, b in zip(marks[0][1], marks[-1][1], strict=True)]
        worst = windows_worst(marks, k, args.window, rate)
        conns = proc.connections_to(c.port_of(url_a)) if server != "direct" else k
        return {
            "server": server, "k": k, "kept": sum(1 for x in worst if x >= 0.95),
            "slowest": min(worst), "median": statistics.median(whole),
            "cpu": cpu, "source_cpu": source_cpu,
            "readers_cpu": (after.user + after.system - own.user - own.system) / wall * 100,
            "rss": proc.rss_mb(), "conns": conns, "gaps": gaps,
            "lost": lost / (rate * wall * max(1, conns)),
            "bad": sum(1 for r in readers.readers if r.status != 200),
        }
    finally:
        readers.close()
        proc.stop()


def table(rows: list[dict[str, Any]], window: float) -> str:
    lines = [
        f"| K | server | kept >= 95% (every {window:g} s) | slowest {window:g} s | median "
        "| CPU | RSS MB | provider conns | longest read gap | gaps > 100 ms | lost at provider "
        "| provider CPU | readers CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = r["server"] if r["server"] in ("nginx", "direct") else (
            f"epgd {r['server'].replace('before-', '')} (before)" if r["server"].startswith("before-")
            else f"epgd {r['server']}")
        bad = f" ({r['bad']} not 200)" if r["bad"] else ""
        gap, over = (f"<= {r['gaps'][0] * 1000:g} ms", str(r["gaps"][1])) if r["gaps"] else ("", "")
        lines.append(
            f"| {r['k']} | {name}{bad} | {r['kept']}/{r['k']} ({r['kept'] / r['k']:.0%}) "
            f"| {r['slowest']:.2f} | {r['median']:.2f} | {r['cpu']:.0f}% | {r['rss']:.0f} "
            f"| {r['conns']} | {gap} | {over} | {r['lost']:.1%} | {r['source_cpu']:.0f}% "
            f"| {r['readers_cpu']:.0f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,200,500,1000")
    parser.add_argument("--seconds", type=float, default=30.0, help="the measured run (s)")
    parser.add_argument("--window", type=float, default=15.0,
                        help="every viewer must keep up in every window this long (s)")
    parser.add_argument("--servers", default="nginx,continuous,passthrough",
                        help="nginx, direct, continuous, passthrough; before-continuous and "
                             "before-passthrough run the epgd of --before")
    parser.add_argument("--before", default="", metavar="PATH",
                        help="another checkout of epgd (e.g. git archive of an earlier commit) "
                             "for the before-* servers, side by side in the same run")
    parser.add_argument("--provider", default="live", choices=("live", "waiting"),
                        help="live: skips what is not read within --live s; waiting: waits")
    parser.add_argument("--live", type=float, default=1.0, help="the live provider's window (s)")
    parser.add_argument("--provider-rcvbuf", type=int, default=256 * 1024,
                        help="live: the receive buffer of epgd's provider socket (bytes)")
    parser.add_argument("--rate", type=float, default=1_000_000.0, help="bytes/s (8 Mbit/s)")
    parser.add_argument("--profile", default="", metavar="PREFIX",
                        help="py-spy (pip install py-spy) epgd during each run: PREFIX-MODE-K.txt, "
                             "collapsed stacks (its sampling costs some CPU)")
    parser.add_argument("--tick", type=float, default=0.01,
                        help="the fake provider's pacing step for epgd (s): the tests' 10 ms, "
                             "so epgd reads the stream in ~10 KB pieces, as from a real link")
    parser.add_argument("--nginx-tick", type=float, default=0.05,
                        help="the same for nginx's provider (s): at 10 ms the Python provider "
                             "cannot feed the 1000 connections nginx opens")
    parser.add_argument("--http", default="1.1", choices=("1.0", "1.1"),
                        help="the viewers' HTTP version (1.1: chunked answers, as players get)")
    parser.add_argument("--test-clip", action="store_true",
                        help="serve tests/data/ts/a.ts, not the broadcast-like clip")
    args = parser.parse_args()
    clip = "" if args.test_clip else c.broadcast_clip()
    live = args.live if args.provider == "live" else 0.0
    sources: dict[float, tuple[c.Child, str]] = {}
    rows = []
    try:
        for k in args.clients.split(","):
            for server in args.servers.split(","):
                tick = args.tick if server not in ("nginx", "direct") else args.nginx_tick
                if tick not in sources:
                    child, url, _ = c.provider(args.rate, clip=clip, tick=tick, live=live)
                    sources[tick] = (child, url)
                source, url_a = sources[tick]
                row = measure(server, source, url_a, int(k), args)
                rows.append(row)
                print(table(rows[-1:], args.window).splitlines()[-1], flush=True)
    finally:
        for source, _ in sources.values():
            source.stop()
    load = " ".join(f"{x:.2f}" for x in psutil.getloadavg())
    kind = f"live ({args.live:g} s window)" if args.provider == "live" else "waiting"
    print(f"\nfanout {args.rate * 8 / 1e6:g} Mbit/s, {kind} provider, {args.seconds:g} s runs, "
          f"load average at the end {load}:\n")
    print(table(rows, args.window))


if __name__ == "__main__":
    main()
