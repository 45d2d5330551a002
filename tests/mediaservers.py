"""
How media servers read a live channel, as real ffmpeg processes: Plex and Emby record it with
``-c copy``, Jellyfin remuxes it to HLS copying timestamps as they come (``-copyts``).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.programs import require

HLS_TIME = 3  # Jellyfin's segment length


def tool(name: str) -> str:
    return require(name, "the media servers' pipelines need it")


def plex(ffmpeg: str, url: str, recording: Path) -> list[str]:
    return [ffmpeg, "-hide_banner", "-i", url, "-map", "0", "-c", "copy", "-f", "mpegts", str(recording)]


def jellyfin(ffmpeg: str, url: str, playlist: Path) -> list[str]:
    return [ffmpeg, "-hide_banner", "-fflags", "+igndts+genpts", "-analyzeduration", "3000000",
            "-i", url, "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-copyts",
            "-avoid_negative_ts", "disabled", "-max_delay", "5000000", "-f", "hls",
            "-hls_time", str(HLS_TIME), "-hls_list_size", "0", str(playlist)]


def run_for(argv: list[str], seconds: float) -> tuple[str, float]:
    """
    A reader of a live stream for ``seconds`` of wall time, then stopped as a user would
    (SIGINT: ffmpeg finishes its files); its stderr and how long it ran.
    """
    started = time.monotonic()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(seconds)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return err, time.monotonic() - started


def segment_durations(playlist: Path) -> list[float]:
    """The #EXTINF durations of an HLS playlist ffmpeg wrote."""
    return [float(line.split(":")[1].rstrip(","))
            for line in playlist.read_text().splitlines() if line.startswith("#EXTINF:")]
