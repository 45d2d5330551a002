"""
The demo against real decoders and validators: ffmpeg, ffprobe and xmllint.

A whole demo runs in-process (the demo provider plus epgd built by ``epgd.tap.build_service``,
on loopback) with 6-second events, so a recording through ``/stream/...`` spans a switch in
about ten seconds. The tools run in threads so the reactor keeps serving them meanwhile.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import treq
from lxml import etree
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from epgd.demo import DemoProviderService, demo_setup
from epgd.demo.clip import load_clips
from tests.mediaservers import HLS_TIME, jellyfin, plex, run_for, segment_durations
from tests.programs import require

EVENT_LENGTH = 6.0
PREBUFFER = 1.0  # what the demo provider sends at once when a connection opens
DTD = Path(__file__).parent / "data" / "xmltv.dtd"
PROBE = ["-analyzeduration", "100M", "-probesize", "100M"]
# The old event's last video and audio frames are cut short at the switch; decoders say so
# about that frame, in a few lines. Anything else is damage.
CUT_FRAME = re.compile(r"^\[(h264|aac) @ [^]]+\] |^Error while decoding stream #0:\d+: ")


def tool(name: str) -> str:
    return require(name, "the demo's interop checks need it")


def run(*argv: str, timeout: float = 60) -> defer.Deferred[subprocess.CompletedProcess[str]]:
    """A tool in a thread: the reactor must keep serving the HTTP it reads."""
    return deferToThread(subprocess.run, list(argv), capture_output=True, text=True,
                         timeout=timeout, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


class Recorder(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.done: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(None)


def pat_pmt_pids(data: bytes) -> list[tuple[int, int]]:
    """(offset, PMT PID) of every PAT in aligned ``data``."""
    found = []
    for pos in range(0, len(data) - 187, 188):
        if data[pos + 1] & 0x5F == 0x40 and data[pos + 2] == 0:
            section = data[pos + 5:]
            found.append((pos, (section[10] & 0x1F) << 8 | section[11]))
    return found


class ClipLoopDecodeTests(TestCase):
    def test_three_loops_of_each_clip_decode_as_one_clean_stream(self) -> None:
        ffmpeg, ffprobe = tool("ffmpeg"), tool("ffprobe")
        for clip in load_clips():
            path = Path(self.mktemp())
            path.write_bytes(b"".join(clip.loop(n) for n in range(3)))
            decoded = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
                                     capture_output=True, text=True, timeout=60, check=False)
            self.assertEqual((decoded.returncode, decoded.stderr), (0, ""), clip.name)
            probe = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration",
                                    "-of", "csv=p=0", str(path)],
                                   capture_output=True, text=True, timeout=60, check=False)
            # timestamps run on across the seams: 3 loops last 3 clip lengths, not one
            self.assertAlmostEqual(float(probe.stdout), 3 * clip.seconds, places=0)


class DemoInteropTests(TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def setUp(self) -> Any:  # type: ignore[override]
        from epgd.tap import build_service

        self.config, demo = demo_setup(reactor, None, event_length=EVENT_LENGTH)
        assert isinstance(demo, DemoProviderService)
        self.demo = demo
        self.port = free_port()
        self.epgd = build_service(self.config, reactor,
                                  listen=[f"tcp:{self.port}:interface=127.0.0.1"])
        demo.startService()
        self.addCleanup(demo.stopService)
        self.epgd.startService()
        self.addCleanup(self.epgd.stopService)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):  # wait for the first schedule
            response = yield treq.get(self.base + "/health", pool=self.pool)
            body = yield response.json()
            if body.get("status") == "ok":
                break
            yield sleep(0.1)
        else:
            self.fail(f"epgd never loaded the demo provider: {body}")

    @defer.inlineCallbacks
    def record(self, path: str, until: float) -> Any:
        """The bytes of ``path`` from now until the POSIX time ``until``."""
        response = yield treq.get(self.base + path, pool=self.pool, unbuffered=True)
        self.assertEqual(response.code, 200)
        recorder = Recorder()
        response.deliverBody(recorder)
        while time.time() < until:
            yield sleep(0.2)
        transport: Any = recorder.transport
        transport.stopProducing()  # hang up
        yield recorder.done
        data = bytes(recorder.data)
        return data[: len(data) - len(data) % 188]

    @defer.inlineCallbacks
    def test_plex_and_jellyfin_pipelines_play_through_a_switch(self) -> Any:
        """
        The two ways media servers read a live channel, as real ffmpeg processes on the
        demo's stream across its first switch: Plex/Emby's ``-c copy`` recording keeps one
        video and one audio stream and runs as long as the wall clock; Jellyfin's HLS
        remux (``-copyts``) sees no timestamp step back and cuts even segments.
        """
        ffmpeg, ffprobe = tool("ffmpeg"), tool("ffprobe")
        url = self.base + "/stream/demo_sports_1.ts"
        seconds = self.demo.first_switch + 6 - time.time()
        self.assertGreater(seconds, 7, "the demo's first switch came too early for the test")
        folder = Path(self.mktemp())
        folder.mkdir()
        recording, playlist = folder / "rec.ts", folder / "out.m3u8"
        (plex_log, plex_wall), (jelly_log, _) = yield defer.gatherResults(
            [deferToThread(run_for, plex(ffmpeg, url, recording), seconds),
             deferToThread(run_for, jellyfin(ffmpeg, url, playlist), seconds)])
        self.assertNotIn("New video stream", plex_log)
        self.assertNotIn("New audio stream", plex_log)
        probe = yield run(ffprobe, "-v", "error", "-show_entries", "stream=codec_type:format=duration",
                          "-of", "json", str(recording))
        found = json.loads(probe.stdout)
        self.assertEqual(sorted(s["codec_type"] for s in found["streams"]), ["audio", "video"])
        # As long as the wall clock, give or take 10% and the one second each provider
        # connection bursts at its start (the first, and the one the switch opens)
        duration = float(found["format"]["duration"])
        self.assertLessEqual(abs(duration - plex_wall), 0.1 * plex_wall + 2 * PREBUFFER,
                             f"a {duration:.1f} s recording over {plex_wall:.1f} s")
        decoded = yield run(ffmpeg, "-v", "error", "-i", str(recording), "-f", "null", "-")
        self.assertEqual(decoded.returncode, 0, decoded.stderr)
        lines = decoded.stderr.splitlines()
        self.assertLessEqual(len(lines), 4, decoded.stderr)  # at most where the test hung up
        self.assertTrue(all(CUT_FRAME.match(line) for line in lines), decoded.stderr)

        self.assertNotIn("Non-monotonous DTS", jelly_log)
        self.assertNotIn("Non-monotonic DTS", jelly_log)
        durations = segment_durations(playlist)
        self.assertGreaterEqual(len(durations), 2, playlist.read_text())
        self.assertLessEqual(max(durations), 2 * HLS_TIME + 1, playlist.read_text())
        switches = yield treq.get(self.base + "/streams/status", pool=self.pool)
        status = yield switches.json()
        self.assertGreaterEqual(status.get("demo_sports_1", {}).get("switches", 0), 1, status)

    @defer.inlineCallbacks
    def test_provider_streams_decode_over_http(self) -> Any:
        ffmpeg = tool("ffmpeg")
        provider = self.demo.provider  # its credentials are new for every run
        root = f"http://127.0.0.1:{self.demo.port_number}/live/{provider.username}/{provider.password}"
        for stream_id in (1001, 1002, 1003):
            decoded = yield run(ffmpeg, "-v", "error", "-t", "2", "-i", f"{root}/{stream_id}.ts",
                                "-f", "null", "-", timeout=30)
            self.assertEqual((decoded.returncode, decoded.stderr), (0, ""), stream_id)

    @defer.inlineCallbacks
    def test_epg_xml_validates_against_the_xmltv_dtd(self) -> Any:
        xmllint = tool("xmllint")
        response = yield treq.get(self.base + "/epg.xml", pool=self.pool)
        body = yield response.content()
        guide = Path(self.mktemp())
        guide.write_bytes(body)
        checked = yield run(xmllint, "--noout", "--dtdvalid", str(DTD), str(guide))
        self.assertEqual((checked.returncode, checked.stderr), (0, ""))
        dtd = etree.DTD(str(DTD))
        tree = etree.fromstring(body)
        self.assertTrue(dtd.validate(tree), dtd.error_log.filter_from_errors())
        titles = tree.xpath("//programme/title/text()")
        self.assertTrue(any("(PPV " in t for t in titles))
        self.assertTrue(any("(game " in t for t in titles))

    @defer.inlineCallbacks
    def test_ffprobe_opens_the_playlist(self) -> Any:
        ffprobe = tool("ffprobe")
        probe = yield run(ffprobe, "-v", "error", "-show_entries", "stream=codec_type",
                          "-of", "csv=p=0", self.base + "/playlist.m3u", timeout=40)
        self.assertEqual((probe.returncode, probe.stderr), (0, ""))
        self.assertIn("video", probe.stdout)
        self.assertIn("audio", probe.stdout)

    @defer.inlineCallbacks
    def test_ffprobe_opens_the_first_entry_of_the_playlist(self) -> Any:
        ffprobe = tool("ffprobe")
        response = yield treq.get(self.base + "/playlist.m3u", pool=self.pool)
        text = yield response.text()
        first = next(line for line in text.splitlines() if line.startswith("http"))
        self.assertEqual(first, self.base + "/stream/demo_sports_1.ts")
        probe = yield run(ffprobe, "-v", "error", "-show_entries", "stream=codec_type",
                          "-of", "csv=p=0", first, timeout=40)
        self.assertEqual((probe.returncode, probe.stderr), (0, ""))
        self.assertEqual(set(probe.stdout.split()), {"audio", "video"})
