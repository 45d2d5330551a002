"""
Slate benchmark (not run by CI): what the encoder-free slate (``epgd.mpegts.slate``, SPEC §14)
costs, in process, without a server around it. One line per size:

* render: CPU time to make a new picture — Pillow drawing, the IDR (I_PCM / I_16x16) and its
  TS packets (``prepare``), median of ``--renders`` runs, split into draw and encode;
* IDR: its size, the share of I_PCM macroblocks, its sending window;
* steady: CPU (% of one core) of producing the stream in its steady state — a timer calling
  ``packets_until`` every ``--period`` s over ``--seconds`` of source time, IDRs every 5 s
  included, no re-render;
* rate: the stream's average bit rate with that IDR every 5 s (typical text, and four long
  lines).

    python bench/slate_encode.py [--seconds 120] [--period 0.04] [--renders 7]

Aims (SPEC §14): <= 1% of one core per channel on the slate; <= 2 Mbit/s; a picture for a
joiner within 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from epgd.mpegts.slate import h264
from epgd.mpegts.slate.picture import SIZES, render
from epgd.mpegts.slate.source import SlateSource, key_frame, prepare

TYPICAL = ["101  NHL PPV 1", "Up next: Bruins vs Rangers", "Today 19:00 · in 1 h 20 min"]
LONG = ["1234  Sky Sports Premier League Extra Channel HD",
        "Up next: Manchester United vs Wolverhampton Wanderers, Premier League Matchday 12 Live",
        "Tue 19:00 · in 23 h 59 min", "Reconnecting to PROVIDERNAME…"]


def cpu(fn: Callable[..., object], *args: object) -> float:
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


def render_times(size: str, runs: int) -> tuple[float, float, float]:
    """Median CPU seconds of (prepare, draw, encode) for a new text each time."""
    whole, draw, encode = [], [], []
    for n in range(runs):
        lines = [TYPICAL[0], TYPICAL[1], f"Today 19:00 · in 1 h {n} min"]
        whole.append(cpu(prepare, size, lines))
        start = time.process_time()
        picture = render(lines, size)
        draw.append(time.process_time() - start)
        encode.append(cpu(key_frame, picture))
    return statistics.median(whole), statistics.median(draw), statistics.median(encode)


def steady(size: str, seconds: float, period: float) -> tuple[float, int]:
    """(CPU % of one core, bytes) of ``seconds`` of stream from a timer every ``period`` s."""
    source = SlateSource(size, TYPICAL)
    calls = int(seconds / period)
    total = 0
    start = time.process_time()
    for k in range(1, calls + 1):
        total += len(source.packets_until(k * period))
    used = time.process_time() - start
    return used / seconds * 100, total


def rate(size: str, lines: list[str], seconds: float) -> float:
    source = SlateSource(size, lines)
    return len(source.packets_until(seconds)) * 8 / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="source time to produce per size")
    parser.add_argument("--period", type=float, default=0.04, help="timer period (s)")
    parser.add_argument("--renders", type=int, default=7, help="renders per size (median)")
    args = parser.parse_args()
    for size in SIZES:
        whole, draw, encode = render_times(size, args.renders)
        key = prepare(size, TYPICAL)
        share, total = steady(size, args.seconds, args.period)
        typical = total * 8 / args.seconds / 1e6
        long_rate = rate(size, LONG, 30.0)
        print(f"{size:>9}: render {whole * 1e3:5.1f} ms (draw {draw * 1e3:4.1f}, encode {encode * 1e3:4.1f})"
              f" | IDR {key.idr_bytes / 1e3:6.1f} KB, {key.pcm_blocks}/{key.blocks} I_PCM"
              f" ({100 * key.pcm_blocks / key.blocks:.0f}%), level {key.level}, sent over {key.spread / 90:.0f} ms"
              f" | steady {share:.3f}% of a core ({args.period * 1e3:.0f} ms timer)"
              f" | rate {typical:.2f} Mbit/s typical, {long_rate:.2f} long text"
              f" | P frame {len(h264.p_access_unit(h264.Geometry(*SIZES[size]), 1))} B")


if __name__ == "__main__":
    main()
