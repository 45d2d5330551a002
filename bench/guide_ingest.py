"""
Guide ingest benchmark (not run by CI): how fast, and in how much memory, epgd takes in a
large provider's data.

Generates into a temporary directory an XMLTV guide of ~3,000 channels x 7 days (~500k
programmes with title, sub-title, a ~150-character description, category, icon and episode
number) and an M3U playlist of 100,000 entries, then ingests them as the daemon does. Each
measurement runs in a child process of its own so that peak RSS figures do not mix, and
prints one line:

    python bench/guide_ingest.py [--channels 3000] [--days 7] [--entries 100000] [--keep DIR]
                                 [--repeat N]

With ``--repeat N`` each guide measurement runs N times and the line shows the median run and
the spread: on a shared machine single figures vary by a third.

Aim (issue 3): >= 50 MB/s of XMLTV and peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHILD_TIMEOUT = 600  # seconds for one measurement

WORDS = (
    "the a new old night city river storm game final season match live world report story "
    "house family road secret island fire winter summer star team cup league history nature "
    "kitchen garden science music legends heroes mystery detective murder planet ocean wild "
    "hunters rangers kings queens warriors champions journey return edge dark light"
).split()
CATEGORIES = ("News", "Sports", "Movie", "Series", "Documentary", "Kids", "Music", "Talk")


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


def write_guide(path: str, channels: int, days: int, seed: int = 1) -> int:
    """Write the guide; returns the number of programmes."""
    rng = random.Random(seed)
    shows = [_sentence(rng, rng.randint(2, 4)) for _ in range(4000)]
    count = 0
    start_day = 1764000000 - 1764000000 % 86400
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                  '<tv generator-info-name="epgd-bench">\n')
        for c in range(channels):
            out.write(f'  <channel id="ch{c}.bench">\n    <display-name>Bench Channel {c}'
                      f'</display-name>\n    <icon src="http://logos.example/ch{c}.png"/>\n'
                      f'  </channel>\n')
        lengths = (1800, 3600, 3600, 3600, 3600, 5400)  # one hour on average
        for c in range(channels):
            t = start_day
            end = start_day + days * 86400
            chunk: list[str] = []
            while t < end:
                stop = t + rng.choice(lengths)
                show = rng.choice(shows)
                season, episode = rng.randint(1, 12), rng.randint(1, 24)
                desc = _sentence(rng, 24)[:150]
                chunk.append(
                    f'  <programme start="{time.strftime("%Y%m%d%H%M%S", time.gmtime(t))} +0000"'
                    f' stop="{time.strftime("%Y%m%d%H%M%S", time.gmtime(stop))} +0000"'
                    f' channel="ch{c}.bench">\n'
                    f'    <title lang="en">{show}</title>\n'
                    f'    <sub-title lang="en">Episode {episode}: {_sentence(rng, 3)}</sub-title>\n'
                    f'    <desc lang="en">{desc}</desc>\n'
                    f'    <category lang="en">{rng.choice(CATEGORIES)}</category>\n'
                    f'    <icon src="http://img.example/{abs(hash(show)) % 100000}.jpg"/>\n'
                    f'    <episode-num system="xmltv_ns">{season - 1}.{episode - 1}.</episode-num>\n'
                    f'  </programme>\n'
                )
                count += 1
                t = stop
            out.write("".join(chunk))
        out.write("</tv>\n")
    return count


def write_playlist(path: str, entries: int, channels: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write('#EXTM3U x-tvg-url="http://provider.example/xmltv.php"\n')
        for i in range(entries):
            tvg = f"ch{i % channels}.bench" if i < channels else f"vod{i}"
            out.write(
                f'#EXTINF:-1 tvg-id="{tvg}" tvg-name="Bench, Channel {i}" '
                f'tvg-logo="http://logos.example/{i}.png" group-title="Group {i % 50}",'
                f'Bench "Channel" {i}\n'
                f"http://provider.example/live/user/pass/{i}.ts\n"
            )


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, path: str, keep: float) -> dict[str, float]:
    """Runs in the child: one ingest, its figures."""
    sys.path.insert(0, ROOT)
    from epgd.sources.m3u import parse_playlist
    from epgd.sources.models import GuideChannel
    from epgd.sources.xmltv import parse_guide

    size = os.path.getsize(path)
    began = time.perf_counter()
    if kind == "playlist":
        playlist = parse_playlist(path, "bench")
        elapsed = time.perf_counter() - began
        return {"entries": len(playlist.channels), "seconds": elapsed,
                "mb_s": size / 1e6 / elapsed, "peak_rss_mb": _peak_rss_mb(), "mb": size / 1e6}
    wanted: Callable[[GuideChannel], bool] | None = None
    if keep < 1.0:
        every = round(1 / keep)
        wanted = lambda channel: int(channel.id[2:].split(".")[0]) % every == 0  # noqa: E731
    guide = parse_guide(path, wanted=wanted)
    elapsed = time.perf_counter() - began
    return {"programmes": len(guide.programmes), "channels": len(guide.channels),
            "seconds": elapsed, "mb_s": size / 1e6 / elapsed,
            "programmes_s": len(guide.programmes) / elapsed, "peak_rss_mb": _peak_rss_mb(),
            "mb": size / 1e6}


def run_child(kind: str, path: str, keep: float) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", kind, path, str(keep)],
        check=True, capture_output=True, text=True, timeout=CHILD_TIMEOUT,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=3000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--keep", help="keep the generated files in this directory")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each guide measurement")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, keep = args.child
        print(json.dumps(measure(kind, path, float(keep))))
        return

    workdir = args.keep or tempfile.mkdtemp(prefix="epgd-bench-")
    os.makedirs(workdir, exist_ok=True)
    try:
        guide, playlist = os.path.join(workdir, "guide.xml"), os.path.join(workdir, "playlist.m3u")
        began = time.perf_counter()
        count = write_guide(guide, args.channels, args.days)
        write_playlist(playlist, args.entries, args.channels)
        with open(guide, "rb") as src, gzip.open(guide + ".gz", "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        print(f"generated {count} programmes on {args.channels} channels, "
              f"{os.path.getsize(guide) / 1e6:.0f} MB XMLTV "
              f"({os.path.getsize(guide + '.gz') / 1e6:.0f} MB gzipped), "
              f"{args.entries} playlist entries in {time.perf_counter() - began:.0f} s")
        p = run_child("playlist", playlist, 1.0)
        print(f"playlist  {p['entries']:>7} entries  {p['mb']:6.1f} MB  {p['seconds']:5.2f} s "
              f"{p['mb_s']:6.1f} MB/s  peak RSS {p['peak_rss_mb']:.0f} MB")
        for label, path, keep in (("guide 5%", guide, 0.05), ("guide all", guide, 1.0),
                                  ("guide.gz 5%", guide + ".gz", 0.05)):
            runs = sorted((run_child("guide", path, keep) for _ in range(max(1, args.repeat))),
                          key=lambda r: r["seconds"])
            g = runs[len(runs) // 2]
            spread = (f"  ({len(runs)} runs: {runs[0]['seconds']:.2f}-{runs[-1]['seconds']:.2f} s)"
                      if len(runs) > 1 else "")
            print(f"{label:<11} {g['programmes']:>7} programmes  {g['seconds']:5.2f} s  "
                  f"{os.path.getsize(guide) / 1e6 / g['seconds']:6.1f} MB/s of XMLTV  "
                  f"{count / g['seconds']:>7.0f} programmes/s read  "
                  f"peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB{spread}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
