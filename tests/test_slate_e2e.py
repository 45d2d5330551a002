"""
End to end, with the slate on (SPEC §14): real sockets, the fake provider, and ffmpeg as the
judge. A channel runs slate -> event -> slate and the media servers' own pipelines (Plex and
Emby's ``-c copy`` recording, Jellyfin's HLS remux with ``-copyts``) record straight through
both cuts; a tune to a live event gets the event's picture first; a 3 s stall brings the slate
and the source's recovery cuts back; a joiner on the slate has a picture within a second;
/streams/status and HDHomeRun's /auto/v{n} show the same; ``slate = false`` keeps the 503s.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from attrs import evolve
from twisted.internet.defer import gatherResults
from twisted.internet.threads import deferToThread

from epgd.mpegts.slate.picture import BACKGROUND
from epgd.mpegts.slate.source import DEFAULT_KEY_INTERVAL
from epgd.mpegts.splice.layout import OUT_PMT, OUT_VIDEO
from tests.mediaservers import HLS_TIME, jellyfin, plex, run_for, segment_durations, tool
from tests.streamhelpers import NULL_PID, E2ETestCase, Epgd, HTTPReader, config, event, pids, schedule
from tests.test_splice_e2e import looped
from tests.tsverify import read, ring

EVENT = 6.0  # seconds of each part: slate, event, slate
COLOURS = {"slate": BACKGROUND, "red": (255, 0, 0)}


def colours(ffmpeg: str, data: bytes, fps: int = 4) -> list[tuple[str, int]]:
    """``data`` (a file's bytes or a path) decoded at ``fps``: (nearest colour, frames) runs."""
    args = [ffmpeg, "-v", "error", "-f", "mpegts", "-i", "pipe:0", "-vf", f"fps={fps},scale=1:1",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    pixels = subprocess.run(args, input=data, capture_output=True, timeout=60, check=True).stdout
    runs: list[tuple[str, int]] = []
    for at in range(0, len(pixels) - 2, 3):
        rgb = pixels[at:at + 3]
        name = min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(rgb, COLOURS[c], strict=True)))
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return runs


def media(reader: HTTPReader) -> bytes:
    """The body's whole packets without keepalive."""
    body = bytes(reader.body[:len(reader.body) - len(reader.body) % 188])
    return b"".join(body[i:i + 188] for i in range(0, len(body), 188)
                    if ((body[i + 1] & 0x1F) << 8 | body[i + 2]) != NULL_PID)


class SlateE2ETests(E2ETestCase):
    timeout = 120

    def start(self, channels: dict[str, list[Any]], **settings: Any) -> Epgd:
        cfg = config(self.provider, **{"slate": True, "output": "continuous", "slate_size": "640x360",
                                       **settings})
        cfg = evolve(cfg, server=evolve(cfg.server, state_dir=os.path.abspath(self.mktemp())))
        running = Epgd(self.reactor, cfg, schedule(channels, self.now()))
        self.addCleanup(running.stop)
        return running

    async def test_plex_and_jellyfin_record_through_slate_event_slate(self) -> None:
        ffmpeg, ffprobe = tool("ffmpeg"), tool("ffprobe")
        data, rate = looped("red", 3 * EVENT + 30)
        red = self.provider.stream("red", data, rate=rate)
        now = self.now()
        epgd = self.start({"test_1": [event("Red", now + EVENT, now + 2 * EVENT, red)]})
        url = f"http://127.0.0.1:{epgd.port.getHost().port}/stream/test_1.ts"
        folder = Path(self.mktemp())
        folder.mkdir()
        recording, playlist = folder / "rec.ts", folder / "out.m3u8"
        raw = await epgd.open("/stream/test_1.ts", keep=64 * 1024 * 1024)
        seconds = 3 * EVENT + 1 - (self.now() - now)
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
        self.assertLessEqual(abs(duration - plex_wall), 0.1 * plex_wall + 1,
                             f"a {duration:.1f} s recording over {plex_wall:.1f} s of wall time")
        runs = colours(ffmpeg, recording.read_bytes())
        self.assertEqual([name for name, frames in runs if frames > 1], ["slate", "red", "slate"], runs)
        decoded = subprocess.run([ffmpeg, "-v", "error", "-i", str(recording), "-f", "null", "-"],
                                 capture_output=True, text=True, timeout=60, check=False)
        self.assertEqual((decoded.returncode, decoded.stderr), (0, ""))  # every frame decodes clean
        self.assertLessEqual(abs(runs[1][1] / 4 - EVENT), 1.5, runs)

        # Jellyfin: no timestamp steps back, no segment stretched over a cut
        self.assertNotIn("Non-monotonous DTS", jelly_log)
        self.assertNotIn("Non-monotonic DTS", jelly_log)
        durations = segment_durations(playlist)
        self.assertGreaterEqual(len(durations), int(3 * EVENT / HLS_TIME) - 2, durations)
        # a segment ends at the first key frame HLS_TIME in: one that began under HLS_TIME before
        # the cut to the slate ends at the slate's second key frame at the latest
        self.assertLessEqual(max(durations), HLS_TIME + DEFAULT_KEY_INTERVAL + 0.1, durations)

        # epgd's own bytes: one program, counters and clock running on across both cuts
        report = read(media(raw))
        self.assertEqual(report.cc_errors, [])
        self.assertEqual(report.pmt_pids, {OUT_PMT})
        self.assertTrue(all(ring(b, a) >= 0 for (_, a), (_, b) in zip(report.pcrs, report.pcrs[1:], strict=False)))
        video = report.decode_stamps(OUT_VIDEO)
        self.assertTrue(all(ring(b, a) > 0 for a, b in zip(video, video[1:], strict=False)))
        self.assertEqual(self.provider.active_total, 0)  # on the slate again: no provider connection
        status = (await epgd.status())["test_1"]
        self.assertEqual((status["source_kind"], status["event"], status["stream_url"]), ("slate", None, None))
        self.assertEqual(status["slate"], "1  test_1\nNo events scheduled")

    async def test_a_tune_to_a_live_event_gets_the_events_picture_first(self) -> None:
        ffmpeg = tool("ffmpeg")
        data, rate = looped("red", 30)
        red = self.provider.stream("red", data, rate=rate, first_byte_delay=1.5)
        now = self.now()
        epgd = self.start({"test_1": [event("Red", now - 60, now + 600, red)]}, connect_timeout=3.0)
        reader = await epgd.open("/stream/test_1.ts")
        await reader.wait_for(lambda: len(media(reader)) > 64 * 1024, 10, "the event's first picture")
        first = pids(bytes(reader.body[:188 * 3]))
        self.assertEqual(set(first), {NULL_PID})  # keepalive while the provider is slow
        runs = colours(ffmpeg, media(reader))
        self.assertEqual(runs[0][0], "red", runs)  # never the slate first
        self.assertNotIn("slate", (await epgd.status())["test_1"])

    async def test_a_3_s_stall_brings_the_slate_and_recovery_cuts_back(self) -> None:
        ffmpeg = tool("ffmpeg")
        data, rate = looped("red", 60)
        red = self.provider.stream("red", data, rate=rate, stall_after=int(rate * 3))
        now = self.now()
        # the provider's silence is noticed (a reconnection) after connect_timeout: 6 s here
        epgd = self.start({"test_1": [event("Red", now - 60, now + 600, red)]}, connect_timeout=6.0)
        reader = await epgd.open("/stream/test_1.ts", keep=32 * 1024 * 1024)
        await self.wait_until(lambda: self.provider.active_total == 1, 5, "the provider connection")
        self.provider.change("red", stall_after=None)  # the reconnection gets a healthy stream
        statuses = []
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            statuses.append((await epgd.status())["test_1"]["source_kind"])
            await self.sleep(0.25)
        kinds = [k for i, k in enumerate(statuses) if i == 0 or k != statuses[i - 1]]
        self.assertEqual(kinds, ["ts", "slate", "ts"], statuses)
        runs = colours(ffmpeg, media(reader))
        self.assertEqual([name for name, frames in runs if frames > 1], ["red", "slate", "red"], runs)
        self.assertEqual(read(media(reader)).cc_errors, [])
        self.assertFalse(reader.is_closed)
        self.assert_logged("[PROXY] test_1 showing the slate: Reconnecting to main…")

    async def test_a_joiner_on_the_slate_has_a_picture_within_a_second(self) -> None:
        ffmpeg = tool("ffmpeg")
        epgd = self.start({"test_1": []}, slate_size="1280x720")
        first = await epgd.open("/stream/test_1.ts")
        await first.wait_bytes(200_000, 10)
        await self.sleep(2.5)  # the last key frame is a while back
        for path in ("/stream/test_1.ts", "/auto/v1"):
            joined = time.monotonic()
            joiner = await epgd.open(path)
            await self.sleep(1.0)
            got = media(joiner)
            frames = subprocess.run([ffmpeg, "-v", "error", "-f", "mpegts", "-i", "pipe:0", "-frames:v", "1",
                                     "-f", "rawvideo", "-pix_fmt", "gray", "-"], input=got,
                                    capture_output=True, timeout=60, check=False)
            self.assertEqual(len(frames.stdout), 1280 * 720, f"{path}: no picture from {len(got)} bytes "
                             f"in the first {time.monotonic() - joined:.2f} s: {frames.stderr[-300:]!r}")
            self.assertEqual((joiner.status, joiner.headers["content-type"]), (200, "video/mp2t"))
        status = (await epgd.status())["test_1"]
        self.assertEqual((status["clients"], status["source_kind"]), (3, "slate"))
        self.assertLess(status["bitrate_kbps"], 2000)

    async def test_without_a_slate_the_503s_stay(self) -> None:
        now = self.now()
        epgd = self.start({"test_1": [event("Later", now + 600, now + 900, self.provider.stream("a"))]},
                          slate=False)
        for path in ("/stream/test_1.ts", "/auto/v1"):
            answer = await epgd.fetch(path)
            self.assertEqual(answer.status, 503, path)
            self.assertIn("nothing on test_1 now; next: 'Later'", answer.text())
