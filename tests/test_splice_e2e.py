"""
End to end: a channel switches three times between provider streams that differ in PIDs,
service id and clock (one about to wrap), and the media servers' own readers — ffmpeg as Plex
and Emby run it (``-c copy`` to a recording) and as Jellyfin runs it (an HLS remux with
``-copyts``) — play straight through, while epgd's raw bytes stay one clean program.

Each clip is one solid colour, so a decoded pixel shows which source every frame came from.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from twisted.internet.defer import gatherResults
from twisted.internet.threads import deferToThread

from epgd.demo.clip import parse_clip
from epgd.mpegts.splice.layout import OUT_PMT, OUT_VIDEO
from tests.mediaservers import HLS_TIME, jellyfin, plex, run_for, segment_durations, tool
from tests.streamhelpers import E2ETestCase, event
from tests.tsverify import read, ring

CLIPS = Path(__file__).parent / "data" / "ts"
COLOURS = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255)}
EVENT = 6.0  # seconds each event lasts


def looped(name: str, seconds: float) -> tuple[bytes, float]:
    """A colour clip repeated with its timestamps running on (as a live channel's do), and its byte rate."""
    clip = parse_clip(f"{name}.ts", name, (CLIPS / f"{name}.ts").read_bytes())
    loops = int(seconds / clip.seconds) + 1
    return b"".join(clip.loop(n) for n in range(loops)), clip.byte_rate


def colour_runs(ffmpeg: str, recording: Path, fps: int = 4) -> list[tuple[str, int]]:
    """The recording decoded at ``fps`` frames a second: (nearest clip colour, frames) runs."""
    decoded = subprocess.run([ffmpeg, "-v", "error", "-i", str(recording), "-vf", f"fps={fps},scale=1:1",
                              "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, timeout=60, check=True)
    runs: list[tuple[str, int]] = []
    pixels = decoded.stdout
    for at in range(0, len(pixels) - 2, 3):
        rgb = pixels[at:at + 3]
        name = min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(rgb, COLOURS[c], strict=True)))
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return runs


class MediaServerTests(E2ETestCase):
    timeout = 120

    async def test_plex_and_jellyfin_play_through_three_switches(self) -> None:
        ffmpeg, ffprobe = tool("ffmpeg"), tool("ffprobe")
        total = 4 * EVENT
        urls = {}
        for name in COLOURS:
            data, rate = looped(name, total + 30)
            urls[name] = self.provider.stream(name, data, rate=rate)
        now = self.now()
        channels = {"test_1": [
            event("Red 1", now - 60, now + EVENT, urls["red"]),
            event("Green", now + EVENT, now + 2 * EVENT, urls["green"]),
            event("Blue", now + 2 * EVENT, now + 3 * EVENT, urls["blue"]),  # its clock wraps
            event("Red 2", now + 3 * EVENT, now + 600, urls["red"]),
        ]}
        epgd = self.epgd(channels, output="continuous")
        url = f"http://127.0.0.1:{epgd.port.getHost().port}/stream/test_1.ts"
        folder = Path(self.mktemp())
        folder.mkdir()
        recording, playlist = folder / "rec.ts", folder / "out.m3u8"
        raw = await epgd.open("/stream/test_1.ts", keep=64 * 1024 * 1024)
        seconds = total + 1 - (self.now() - now)
        (plex_log, plex_wall), (jelly_log, _) = await gatherResults(
            [deferToThread(run_for, plex(ffmpeg, url, recording), seconds),
             deferToThread(run_for, jellyfin(ffmpeg, url, playlist), seconds)])

        # Plex / Emby: one video and one audio stream all the way, as long as the wall clock
        self.assertNotIn("New video stream", plex_log)
        self.assertNotIn("New audio stream", plex_log)
        probe = subprocess.run([ffprobe, "-v", "error", "-show_entries", "stream=codec_type:format=duration",
                                "-of", "json", str(recording)], capture_output=True, text=True, timeout=60,
                               check=True)
        found = json.loads(probe.stdout)
        self.assertEqual(sorted(s["codec_type"] for s in found["streams"]), ["audio", "video"])
        duration = float(found["format"]["duration"])
        self.assertLessEqual(abs(duration - plex_wall), 0.1 * plex_wall,
                             f"a {duration:.1f} s recording over {plex_wall:.1f} s of wall time")
        # ... and every frame after each switch decodes and comes from the scheduled source
        runs = colour_runs(ffmpeg, recording)
        self.assertEqual([name for name, frames in runs if frames > 1], ["red", "green", "blue", "red"], runs)
        for _, frames in runs[1:-1]:
            self.assertLessEqual(abs(frames / 4 - EVENT), 1.5, runs)

        # Jellyfin: no timestamp steps back, no segment stretched over a switch
        self.assertNotIn("Non-monotonous DTS", jelly_log)
        self.assertNotIn("Non-monotonic DTS", jelly_log)
        durations = segment_durations(playlist)
        self.assertGreaterEqual(len(durations), int(total / HLS_TIME) - 2, durations)
        self.assertLessEqual(max(durations), 2 * HLS_TIME + 1, durations)

        # epgd's own bytes: one program, counters and clock running on across the three cuts
        body = bytes(raw.body[:len(raw.body) - len(raw.body) % 188])
        report = read(body)
        self.assertEqual(report.cc_errors, [])
        self.assertEqual(report.pmt_pids, {OUT_PMT})
        self.assertEqual(report.programs, {11})  # the first source's service id, kept
        self.assertTrue(all(ring(b, a) >= 0 for (_, a), (_, b) in zip(report.pcrs, report.pcrs[1:],
                                                                      strict=False)))
        video = report.decode_stamps(OUT_VIDEO)
        self.assertTrue(all(ring(b, a) > 0 for a, b in zip(video, video[1:], strict=False)))
        status = (await epgd.status())["test_1"]
        self.assertEqual(status["switches"], 3)
        self.assertEqual(status["codecs"], "h264+aac")
        self.assertEqual(status["source_kind"], "ts")
