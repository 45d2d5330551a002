"""
Real ffmpeg and ffprobe on the slate's bytes: the decoder every media server embeds is the
judge of whether our hand-written H.264, AAC and TS are right. Input goes through a pipe.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.programs import require


def tool(name: str) -> str:
    """A judge that is not there fails the test (tests/programs.py), never skips it."""
    return require(name, "the slate's output is judged by it")


def run(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=data, capture_output=True, timeout=60, check=False)


def errors(data: bytes, fmt: str) -> str:
    """What ``ffmpeg -v error`` says decoding all of ``data`` (``fmt``: mpegts, h264, aac): "" when clean."""
    done = run([tool("ffmpeg"), "-nostdin", "-v", "error", "-f", fmt, "-i", "pipe:0", "-f", "null", "-"], data)
    return done.stderr.decode(errors="replace") + ("" if done.returncode == 0 else f"exit {done.returncode}")


def decode(data: bytes, fmt: str, pix_fmt: str = "yuv420p", frames: int = 0, stream: str = "v:0",
           extra: list[str] | None = None) -> bytes:
    """Raw decoded frames (or samples, with ``stream`` "a:0" and ``extra`` naming the format)."""
    args = [tool("ffmpeg"), "-nostdin", "-v", "error", "-f", fmt, "-i", "pipe:0", "-map", f"0:{stream}"]
    if frames:
        args += ["-frames:v", str(frames)]
    args += extra if extra is not None else ["-f", "rawvideo", "-pix_fmt", pix_fmt]
    done = run(args + ["pipe:1"], data)
    if done.returncode:
        raise AssertionError(done.stderr.decode(errors="replace"))
    return done.stdout


def probe(data: bytes, fmt: str, *entries: str) -> dict[str, Any]:
    """ffprobe's JSON (``-show_streams -show_programs`` and ``entries``, e.g. ``-show_packets``)."""
    done = run([tool("ffprobe"), "-v", "error", "-f", fmt, "-i", "pipe:0", "-of", "json", "-show_streams",
                "-show_programs", *entries], data)
    if done.returncode:
        raise AssertionError(done.stderr.decode(errors="replace"))
    result: dict[str, Any] = json.loads(done.stdout)
    return result
