"""
End to end, HLS output (SPEC §16): a real epgd on 127.0.0.1 in front of the fake provider.
Real ffmpeg reads ``/stream/{id}.m3u8`` across a switch and plays one video and one audio
stream as long as the wall clock, with no timestamp error; the playlist, its segments and their
headers are what RFC 8216 and the SPEC say; an idle channel's first playlist comes once its
first segment is complete; HLS viewers keep a channel going and are counted; a passthrough
channel marks its cuts; a failing HLS request leaves the channel and its TS viewers alone.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

from twisted.internet.threads import deferToThread

from epgd.mpegts.pes import random_access_flag, starts_random_access
from epgd.mpegts.psi import payload_start
from epgd.mpegts.splice.layout import OUT_PMT, OUT_VIDEO
from tests.mediaservers import run_for, tool
from tests.streamhelpers import E2ETestCase, Epgd, HTTPReader, event, pids
from tests.test_splice_e2e import colour_runs, looped
from tests.tsverify import read

SEGMENT = 1.0  # the clips have a key frame every second
EVENT = 8.0


def playlist_entries(text: str) -> list[dict[str, str]]:
    """Each segment of a media playlist: its tags (without '#EXT-X-') and its URI."""
    entries, tags = [], {}
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            tags["EXTINF"] = line[len("#EXTINF:"):].rstrip(",")
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            tags["PROGRAM-DATE-TIME"] = line.split(":", 1)[1]
        elif line == "#EXT-X-DISCONTINUITY":
            tags["DISCONTINUITY"] = "yes"
        elif line and not line.startswith("#"):
            entries.append({**tags, "uri": line})
            tags = {}
    return entries


def tag(text: str, name: str) -> str:
    found = re.search(rf"^#EXT-X-{name}:(.*)$", text, re.M)
    assert found is not None, f"no #EXT-X-{name} in:\n{text}"
    return found.group(1)


def starts_clean(segment: bytes) -> bool:
    """PAT, then PMT, then the first video packet starts a key frame (SPEC §16)."""
    order = pids(segment)
    if order[:2] != [0, OUT_PMT]:
        return False
    p = 188 * order.index(OUT_VIDEO)
    start = payload_start(segment, p)
    header = 9 + segment[p + start + 8]
    return random_access_flag(segment, p) or starts_random_access(
        "h264", segment[p + start + header:p + 188])


class HlsOutputTests(E2ETestCase):
    timeout = 120

    def colour_channel(self, **settings: object) -> tuple[Epgd, float]:
        """test_1: red until EVENT seconds from now, then green."""
        red, rate = looped("red", 120)
        green, _ = looped("green", 120)
        urls = {"red": self.provider.stream("red", red, rate=rate),
                "green": self.provider.stream("green", green, rate=rate)}
        now = self.now()
        switch = now + EVENT
        channels = {"test_1": [event("Red", now - 60, switch, urls["red"]),
                               event("Green", switch, now + 600, urls["green"])]}
        options = {"output": "continuous", "hls_segment": SEGMENT, "hls_window": 6,
                   "idle_timeout": 30.0, **settings}
        return self.epgd(channels, **options), switch

    async def test_ffmpeg_plays_the_playlist_through_a_switch(self) -> None:
        ffmpeg, ffprobe = tool("ffmpeg"), tool("ffprobe")
        epgd, switch = self.colour_channel()
        url = f"http://127.0.0.1:{epgd.port.getHost().port}/stream/test_1.m3u8"
        recording = Path(self.mktemp())
        seconds = switch + EVENT - self.now()
        log, wall = await deferToThread(run_for, [
            ffmpeg, "-hide_banner", "-i", url, "-map", "0", "-c", "copy", "-f", "mpegts", str(recording)],
            seconds)

        self.assertNotRegex(log, r"(?i)non.monoton|invalid (?:dts|pts)|out of order|packet corrupt")
        self.assertNotIn("('#EXT-X-DISCONTINUITY')", log)  # a switch is none (ffmpeg logs each tag it skips)
        self.assertIn("('#EXT-X-DISCONTINUITY-SEQUENCE:0')", log)
        probe = subprocess.run([ffprobe, "-v", "error", "-show_entries", "stream=codec_type:format=duration",
                                "-of", "json", str(recording)], capture_output=True, text=True, timeout=60,
                               check=True)
        found = json.loads(probe.stdout)
        self.assertEqual(sorted(s["codec_type"] for s in found["streams"]), ["audio", "video"])
        duration = float(found["format"]["duration"])
        # ffmpeg starts three segments behind the live edge, then keeps up with it
        self.assertLessEqual(abs(duration - wall), 3 * SEGMENT + 1.5,
                             f"{duration:.1f} s of media over {wall:.1f} s of wall time")
        runs = colour_runs(ffmpeg, recording)
        self.assertEqual([name for name, frames in runs if frames > 1], ["red", "green"], runs)
        status = (await epgd.status())["test_1"]
        self.assertEqual((status["switches"], status["clients"]), (1, 0))
        self.assertEqual(status["hls_sessions"], 1)

    async def test_playlist_and_segments_as_the_spec_says(self) -> None:
        epgd, _ = self.colour_channel()
        asked = time.monotonic()
        first = await epgd.fetch("/stream/test_1.m3u8", timeout=20)
        waited = time.monotonic() - asked
        config = epgd.config.stream
        self.assertEqual(first.status, 200, first.text())
        self.assertLessEqual(waited, config.connect_timeout + 2 * SEGMENT)
        self.assertEqual(first.headers["content-type"], "application/vnd.apple.mpegurl")
        self.assertEqual(first.headers["cache-control"], "max-age=1")
        text = first.text()
        self.assertTrue(text.startswith("#EXTM3U\n"), text)
        self.assertEqual(len(playlist_entries(text)), 1)  # answered once the first segment was complete

        await self.sleep(8 * SEGMENT)
        text = (await epgd.fetch("/stream/test_1.m3u8")).text()
        entries = playlist_entries(text)
        self.assertEqual(len(entries), 6)  # hls_window
        target = int(tag(text, "TARGETDURATION"))
        sequence = int(tag(text, "MEDIA-SEQUENCE"))
        for offset, entry in enumerate(entries):
            self.assertEqual(entry["uri"], f"test_1/{sequence + offset}.ts")  # relative to the playlist
            self.assertLessEqual(math.ceil(float(entry["EXTINF"])), target)
            # a key frame every 25 frames, but the 4.03 s clips loop at 101; the segment that
            # holds the switch (at EVENT s) runs on to the new source's next key frame at or
            # after SEGMENT: up to a key-frame interval more where its key frames fall off the
            # old one's beat (SPEC §16)
            self.assertTrue(SEGMENT <= float(entry["EXTINF"]) < 2 * SEGMENT + 0.05, text)
            self.assertRegex(entry["PROGRAM-DATE-TIME"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertNotIn("DISCONTINUITY", entry)
        self.assertLessEqual(sum(float(e["EXTINF"]) >= 1.2 * SEGMENT for e in entries), 1, text)

        newest = await epgd.fetch(f"/stream/test_1/{sequence + 5}.ts")
        self.assertEqual(newest.status, 200)
        self.assertEqual(newest.headers["content-type"], "video/mp2t")
        self.assertEqual(int(newest.headers["content-length"]), len(newest.body))
        newest_age = int(re.fullmatch(r"public, max-age=(\d+)", newest.headers["cache-control"]).group(1))
        oldest = await epgd.fetch(f"/stream/test_1/{sequence}.ts")
        oldest_age = int(re.fullmatch(r"public, max-age=(\d+)", oldest.headers["cache-control"]).group(1))
        self.assertGreater(newest_age, oldest_age)  # its time left in the window
        self.assertLessEqual(newest_age, 6 * SEGMENT + 1)
        for segment in (newest, oldest):
            self.assertTrue(starts_clean(bytes(segment.body)))
            self.assertEqual(read(bytes(segment.body)).cc_errors, [])
        etag = newest.headers["etag"]
        again = await epgd.fetch(f"/stream/test_1/{sequence + 5}.ts", headers=[f"If-None-Match: {etag}"])
        self.assertEqual((again.status, bytes(again.body)), (304, b""))

        await self.sleep(2.5 * SEGMENT)
        text = (await epgd.fetch("/stream/test_1.m3u8")).text()
        self.assertGreaterEqual(int(tag(text, "MEDIA-SEQUENCE")), sequence + 2)  # counting up
        gone = await epgd.fetch(f"/stream/test_1/{sequence}.ts")
        self.assertEqual(gone.status, 404)  # it left the window
        self.assertTrue(gone.text().endswith("\n") and "\n" not in gone.text()[:-1])
        unknown = await epgd.fetch("/stream/nope_1.m3u8")
        self.assertEqual(unknown.status, 404)

    async def test_hls_viewers_keep_the_channel_and_are_counted(self) -> None:
        epgd, _ = self.colour_channel(idle_timeout=1.0)
        for _ in range(10):  # one request every 0.6 s over 6 s: far past idle_timeout
            self.assertEqual((await epgd.fetch("/stream/test_1.m3u8", timeout=20)).status, 200)
            await self.sleep(0.6)
        status = await epgd.status()
        self.assertEqual(status["test_1"]["hls_sessions"], 1)
        self.assertEqual(status["test_1"]["idle_seconds"], 0)
        # nobody asks any more: watched for 3 segment lengths, then idle_timeout, then gone
        await self.wait_until(lambda: "test_1" not in epgd.manager.channels,
                              3 * SEGMENT + 1.0 + 3.0, "the channel to stop once unwatched")
        self.assert_logged("test_1 idle for 1s, stopping")

    async def test_passthrough_output_marks_each_cut(self) -> None:
        epgd, switch = self.colour_channel(output="passthrough")
        self.assertEqual((await epgd.fetch("/stream/test_1.m3u8", timeout=20)).status, 200)
        while self.now() < switch + 3 * SEGMENT:
            text = (await epgd.fetch("/stream/test_1.m3u8")).text()
            await self.sleep(0.5)
        entries = playlist_entries(text)
        self.assertEqual(sum("DISCONTINUITY" in e for e in entries), 1, text)

    async def test_a_failing_hls_viewer_leaves_the_channel_alone(self) -> None:
        epgd, _ = self.colour_channel()
        viewer = await epgd.open("/stream/test_1.ts")
        await viewer.wait_bytes(20_000, 10)
        text = (await epgd.fetch("/stream/test_1.m3u8", timeout=20)).text()
        uri = playlist_entries(text)[-1]["uri"]
        for _ in range(5):  # viewers that go away in the middle of a segment
            quitter = await epgd.open(f"/stream/{uri}")
            await quitter.close()
        for path in ("/stream/test_1/99.ts", "/stream/test_1/x.ts", "/stream/test_1/..%2f.ts"):
            self.assertEqual((await epgd.fetch(path)).status, 404, path)
        received = viewer.received
        await viewer.wait_bytes(received + 20_000, 10)
        self.assertFalse(viewer.is_closed)
        status = (await epgd.status())["test_1"]
        self.assertEqual((status["clients"], status["error"]), (1, None))


class HlsReaderTests(E2ETestCase):
    """The raw reader the other tests use, so that a mistake there cannot hide one in epgd."""

    async def test_reader_sees_status_and_headers(self) -> None:
        epgd = self.epgd({"test_1": []})
        response: HTTPReader = await epgd.fetch("/stream/test_1.m3u8")
        self.assertEqual(response.status, 503)
        self.assertIn("retry-after", response.headers)


class SlateHlsTests(E2ETestCase):
    """SPEC §14 and §16: the HLS output is the program the .ts viewers get, slate included."""

    timeout = 120

    async def test_ffmpeg_plays_slate_event_slate_as_one_timeline(self) -> None:
        import os

        from attrs import evolve

        from tests.streamhelpers import config, schedule
        from tests.test_slate_e2e import colours

        ffmpeg = tool("ffmpeg")
        part = 10.0
        data, rate = looped("red", 3 * part + 30)
        red = self.provider.stream("red", data, rate=rate)
        now = self.now()
        # a window that spans three of the slate's 5 s segments: its target duration from the start
        cfg = config(self.provider, slate=True, slate_size="640x360", output="continuous",
                     hls_segment=SEGMENT, hls_window=15)
        cfg = evolve(cfg, server=evolve(cfg.server, state_dir=os.path.abspath(self.mktemp())))
        epgd = Epgd(self.reactor, cfg, schedule({"test_1": [event("Red", now + part, now + 2 * part, red)]},
                                                  now))
        self.addCleanup(epgd.stop)
        url = f"http://127.0.0.1:{epgd.port.getHost().port}/stream/test_1.m3u8"
        first = await epgd.fetch("/stream/test_1.m3u8", timeout=20)  # nothing live: the slate
        self.assertEqual(first.status, 200, first.text())
        self.assertEqual(int(tag(first.text(), "TARGETDURATION")), 5)  # the slate's key frames, from the start
        slate = await epgd.fetch("/stream/" + playlist_entries(first.text())[0]["uri"])
        self.assertTrue(starts_clean(bytes(slate.body)))
        recording = Path(self.mktemp())
        log, _ = await deferToThread(run_for, [
            ffmpeg, "-hide_banner", "-i", url, "-map", "0", "-c", "copy", "-f", "mpegts", str(recording)],
            3 * part - (self.now() - now))
        self.assertNotRegex(log, r"(?i)non.monoton|invalid (?:dts|pts)|out of order|packet corrupt")
        self.assertNotIn("('#EXT-X-DISCONTINUITY')", log)
        runs = colours(ffmpeg, recording.read_bytes())
        self.assertEqual([name for name, frames in runs if frames > 1], ["slate", "red", "slate"], runs)
        text = (await epgd.fetch("/stream/test_1.m3u8")).text()
        self.assertEqual(int(tag(text, "TARGETDURATION")), 5)  # never changed
        status = (await epgd.status())["test_1"]
        self.assertEqual((status["source_kind"], status["hls_sessions"]), ("slate", 1))
