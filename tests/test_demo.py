"""
Tests for epgd.demo: the demo configuration, the clips and their seamless loop, the paced
streamer, the Xtream-style provider and the rolling scenario.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.internet import reactor as global_reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from epgd.config import Config, ServerConfig, StreamConfig
from epgd.demo import DemoProviderService, demo_config, demo_setup
from epgd.demo.clip import CLIP_FILES, Clip, ClipError, load_clips, parse_clip
from epgd.demo.provider import ClipStreamer, DemoProvider
from epgd.demo.scenario import (
    MATCHUPS,
    NO_EVENT,
    PPV_SLOTS,
    Scenario,
    start_epoch,
    stream_clip,
)
from epgd.redact import Redactor
from epgd.schedule.build import build_schedule
from epgd.schedule.packing import PackingState
from epgd.sources.m3u import parse_playlist
from epgd.sources.models import ProviderData
from epgd.sources.xmltv import parse_guide

NOW = 1764000037.0  # 2025-11-24 16:00:37 UTC
CLIPS = load_clips()


# -- helpers --------------------------------------------------------------------------------

def packets(data: bytes) -> list[bytes]:
    return [data[i:i + 188] for i in range(0, len(data), 188)]


def pid(packet: bytes) -> int:
    return (packet[1] & 0x1F) << 8 | packet[2]


def first_pcr(data: bytes) -> int:
    """PCR base of the first packet that carries one."""
    for p in packets(data):
        if p[3] & 0x20 and p[4] >= 7 and p[5] & 0x10:
            return p[6] << 25 | p[7] << 17 | p[8] << 9 | p[9] << 1 | p[10] >> 7
    raise AssertionError("no PCR")


def program_numbers(data: bytes) -> set[int]:
    """Service ids announced by the PATs in ``data``."""
    found = set()
    for p in packets(data):
        if pid(p) == 0 and p[1] & 0x40:
            section = p[5:]
            length = (section[1] & 0x0F) << 8 | section[2]
            for i in range(8, 3 + length - 4, 4):
                number = section[i] << 8 | section[i + 1]
                if number:
                    found.add(number)
    return found


def pmt_pids(data: bytes) -> set[int]:
    found = set()
    for p in packets(data):
        if pid(p) == 0 and p[1] & 0x40:
            section = p[5:]
            found.add((section[10] & 0x1F) << 8 | section[11])
    return found


class FakeRequest:
    """Just what ClipStreamer uses of a request: write, producer registration, finish."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.producer: Any = None
        self.finished = False
        self._finish: list[defer.Deferred[None]] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self._finish.append(d)
        return d

    def lose(self) -> None:
        for d in self._finish:
            d.errback(Failure(ConnectionError("client went away")))

    def body(self) -> bytes:
        return b"".join(self.written)


# -- demo_setup -----------------------------------------------------------------------------

class DemoSetupTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(NOW)

    def setup(self, base: Config | None = None) -> tuple[Config, Any]:
        config, service = demo_setup(self.reactor, base)
        self.addCleanup(service.stopService)
        return config, service

    def test_config_has_two_lineups_fed_by_the_demo_provider(self) -> None:
        config, service = self.setup()
        self.assertEqual([(lu.id, lu.display_name, lu.channels) for lu in config.lineups],
                         [("demo_sports", "Demo Sports", 2), ("demo_ppv", "Demo PPV", 1)])
        self.assertEqual([p.name for p in config.providers], ["demo"])
        provider = config.providers[0]
        port = service.port_number
        user, password = service.provider.username, service.provider.password
        self.assertEqual(
            provider.playlist,
            f"http://127.0.0.1:{port}/get.php?username={user}&password={password}&type=m3u_plus")
        self.assertEqual(provider.guide, f"http://127.0.0.1:{port}/xmltv.php?username={user}&password={password}")
        self.assertLessEqual(provider.refresh_interval, 60)
        self.assertLessEqual(config.stream.check_interval, 2)
        self.assertEqual(config.guide.timezone, "UTC")
        self.assertTrue(config.lineups[1].name_pattern)

    def test_credentials_are_random_and_no_word_the_log_would_mask(self) -> None:
        """Masked wherever they stand as a word: "demo" turned "[DEMO] demo provider" into "***"."""
        config, service = self.setup()
        other, _ = self.setup()
        user, password = service.provider.username, service.provider.password
        self.assertNotEqual(config.providers[0].playlist, other.providers[0].playlist)
        self.assertNotEqual(user, password)
        redactor = Redactor.for_urls([config.providers[0].playlist])
        for line in ("[DEMO] demo provider listening on http://127.0.0.1:1234",
                     "provider demo: refreshed, 12 channels", f"state in {config.server.state_dir}/x"):
            self.assertEqual(redactor.mask(line), line)
        self.assertNotIn(user, redactor.mask(f"{user} {password}"))
        self.assertNotIn(password, redactor.mask(f"{user} {password}"))

    def test_state_dir_is_a_temporary_directory_removed_on_stop(self) -> None:
        config, service = self.setup()
        state = config.server.state_dir
        self.assertTrue(os.path.abspath(state).startswith(os.path.join(tempfile.gettempdir(), "epgd-demo")))
        self.assertFalse(os.path.abspath(state).startswith(os.getcwd()))
        self.assertTrue(os.path.isdir(state))
        service.startService()
        service.stopService()
        self.assertFalse(os.path.exists(state))

    def test_base_config_keeps_its_server_and_stream_sections(self) -> None:
        base = Config(server=ServerConfig(listen=("tcp:9090",), state_dir="/var/lib/x"),
                      stream=StreamConfig(chunk_size=4096), path="my.toml")
        config, _ = self.setup(base)
        self.assertEqual(config.server, base.server)
        self.assertEqual(config.stream, base.stream)
        self.assertEqual([lu.id for lu in config.lineups], ["demo_sports", "demo_ppv"])

    def test_start_listens_on_loopback_and_logs_the_urls_to_open(self) -> None:
        base = Config(server=ServerConfig(listen=("tcp:9090",)))
        config, service = self.setup(base)
        with capturedLogs() as events:
            service.startService()
        # the socket bound at setup (127.0.0.1, the port in the config) is the one adopted
        [(_fileno, _family, factory)] = self.reactor.adoptedPorts
        self.assertIs(factory, service.site)
        self.assertIn(f":{service.port_number}/", config.providers[0].playlist)
        text = " ".join(e["log_format"].format(**e) for e in events)
        for url in ("http://localhost:9090/playlist.m3u", "http://localhost:9090/epg.xml",
                    "http://localhost:9090/streams/status",
                    "http://localhost:9090/stream/demo_sports_1.ts"):
            self.assertIn(url, text)
        self.assertNotIn("s3cret", text)
        self.assertIn("status page: http://localhost:9090/ ", text)
        # the first switch comes soon: 20 to 30 s after start, and the log says when
        wait = service.first_switch - NOW
        self.assertTrue(20 <= wait <= 30, wait)
        self.assertIn(f"the first switch (Demo Sports 1, Demo PPV 1) comes in {round(wait)} s", text)


# -- clips ----------------------------------------------------------------------------------

class ClipTests(SynchronousTestCase):
    def test_clips_are_small_distinct_and_start_at_a_pat(self) -> None:
        self.assertGreaterEqual(len(CLIPS), 3)
        self.assertLess(sum(len(c.data) for c in CLIPS), 2_000_000)
        services, pmts = [], []
        for clip in CLIPS:
            self.assertTrue(10 <= clip.seconds <= 20, clip.seconds)
            self.assertEqual(len(clip.data) % 188, 0)
            self.assertEqual(clip.data[:3], b"\x47\x40\x00")  # PAT with payload start
            services.append(program_numbers(clip.data))
            pmts.append(pmt_pids(clip.data))
        self.assertEqual(len({frozenset(s) for s in services}), len(CLIPS))
        self.assertEqual(len({frozenset(p) for p in pmts}), len(CLIPS))

    def test_a_loop_continues_timestamps_and_counters(self) -> None:
        clip = CLIPS[0]
        second = clip.loop(1)
        self.assertEqual(len(second), len(clip.data))
        self.assertEqual(first_pcr(second), first_pcr(clip.data) + clip.duration)
        # continuity counters: across the seam each PID's counter goes up by exactly one
        last: dict[int, int] = {}
        for p in packets(clip.data):
            if p[3] & 0x10 and pid(p) != 0x1FFF:
                last[pid(p)] = p[3] & 0x0F
        seen: set[int] = set()
        for p in packets(second):
            if p[3] & 0x10 and pid(p) not in seen and pid(p) != 0x1FFF:
                seen.add(pid(p))
                self.assertEqual(p[3] & 0x0F, (last[pid(p)] + 1) % 16, f"PID {pid(p):#x}")
        self.assertEqual(seen, set(last))

    def test_loop_zero_is_the_clip_itself(self) -> None:
        self.assertIs(CLIPS[1].loop(0), CLIPS[1].data)

    def test_a_clip_whose_clock_wraps_inside_it_is_as_long_as_it_plays(self) -> None:
        raw = (Path(__file__).parent / "data" / "ts" / "real" / "rollover-h264-aac48k.ts").read_bytes()
        clip = parse_clip("rollover.ts", "rollover", raw)
        self.assertAlmostEqual(clip.duration / 90000, 6.0, delta=0.5)  # not 95,444 s

    def test_garbage_is_a_one_line_error(self) -> None:
        with self.assertRaises(ClipError) as caught:
            parse_clip("junk.ts", "Junk", b"<html>not a stream</html>" * 40)
        self.assertIn("junk.ts", str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))
        no_pat = CLIPS[0].data[188 * 3: 188 * 20]
        no_pat = b"".join(p for p in packets(no_pat) if pid(p) != 0)
        with self.assertRaises(ClipError):
            parse_clip("nopat.ts", "No PAT", no_pat)


# -- the paced streamer ---------------------------------------------------------------------

class ClipStreamerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.request = FakeRequest()
        self.clip: Clip = CLIPS[0]
        self.streamer = ClipStreamer(self.clip, self.request, self.clock)  # type: ignore[arg-type]
        self.streamer.start()
        self.addCleanup(self.streamer.stopProducing)

    def run_for(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.1)):
            self.clock.advance(0.1)

    def test_starts_at_a_pat_with_a_short_prebuffer(self) -> None:
        self.assertIs(self.request.producer, self.streamer)
        body = self.request.body()
        self.assertEqual(body[:3], b"\x47\x40\x00")
        self.assertEqual(len(body) % 188, 0)
        self.assertApproximates(len(body), self.clip.byte_rate, 188)

    def test_sends_at_the_clip_bitrate(self) -> None:
        before = len(self.request.body())
        self.run_for(5)
        sent = len(self.request.body()) - before
        self.assertApproximates(sent / 5, self.clip.byte_rate, self.clip.byte_rate * 0.02)

    def test_loops_forever_with_timestamps_going_on(self) -> None:
        self.run_for(self.clip.seconds * 2 + 1)
        body = self.request.body()
        size = len(self.clip.data)
        self.assertGreater(len(body), 2 * size)
        self.assertEqual(body[:size], self.clip.data)
        self.assertEqual(body[size:2 * size], self.clip.loop(1))
        self.assertEqual(first_pcr(body[2 * size:]), first_pcr(self.clip.data) + 2 * self.clip.duration)

    def test_pause_stops_sending_and_resume_does_not_burst(self) -> None:
        self.streamer.pauseProducing()
        before = len(self.request.body())
        self.run_for(3)
        self.assertEqual(len(self.request.body()), before)
        self.streamer.resumeProducing()
        self.run_for(1)
        sent = len(self.request.body()) - before
        self.assertApproximates(sent, self.clip.byte_rate, self.clip.byte_rate * 0.15)

    def test_client_going_away_stops_the_timer(self) -> None:
        self.request.lose()
        before = len(self.request.body())
        self.run_for(2)
        self.assertEqual(len(self.request.body()), before)
        self.assertEqual(self.clock.getDelayedCalls(), [])


# -- the provider over HTTP (no sockets) ----------------------------------------------------

class ProviderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.scenario = Scenario(epoch=start_epoch(NOW, 180), event_length=180)
        self.provider = DemoProvider(self.scenario, CLIPS, self.clock)
        self.treq = StubTreq(self.provider)

    def get(self, url: str) -> tuple[int, bytes]:
        response = self.successResultOf(self.treq.get(url))  # type: ignore[attr-defined]
        return response.code, self.successResultOf(response.content())

    def test_playlist_parses_with_credentials_in_stream_urls(self) -> None:
        code, body = self.get("http://127.0.0.1:7000/get.php?username=demo&password=s3cret&type=m3u_plus")
        self.assertEqual(code, 200)
        playlist = parse_playlist(body, "demo")
        self.assertEqual(playlist.skipped, 0)
        groups = [c.group for c in playlist.channels]
        self.assertEqual(groups.count("DEMO SPORTS"), 3)
        self.assertEqual(groups.count("DEMO PPV"), PPV_SLOTS)
        for channel in playlist.channels:
            self.assertRegex(channel.url, r"^http://127\.0\.0\.1:7000/live/demo/s3cret/\d+\.ts$")
        ppv = [c.name for c in playlist.channels if c.group == "DEMO PPV"]
        # NOW is 04:00:37 PM: the first switch at 04:01:00, so event 1 began at 03:58
        self.assertEqual(ppv[0], "DEMO PPV 01: Tigers vs Lions (PPV 1) @ 03:58 PM")

    def test_guide_parses_and_links_to_the_arenas(self) -> None:
        code, body = self.get("http://127.0.0.1:7000/xmltv.php?username=demo&password=s3cret")
        self.assertEqual(code, 200)
        guide = parse_guide(body)
        self.assertEqual({c.id for c in guide.channels}, {"arena1.demo", "arena2.demo", "arena3.demo"})
        games = [p for p in guide.programmes if p.title != NO_EVENT]
        self.assertTrue(games)
        self.assertTrue(all(p.desc and "Sports" in p.categories for p in games))

    def test_wrong_credentials_get_401(self) -> None:
        for url in ("/get.php?username=demo&password=nope&type=m3u_plus",
                    "/xmltv.php?username=someone&password=s3cret",
                    "/get.php?type=m3u_plus",
                    "/live/demo/wrong/1001.ts"):
            code, body = self.get("http://127.0.0.1:7000" + url)
            self.assertEqual(code, 401, url)
            self.assertEqual(body, b"invalid username or password\n")

    def test_unknown_paths_and_streams_get_404(self) -> None:
        for url in ("/live/demo/s3cret/999.ts", "/panel_api.php", "/live/demo/s3cret/x.ts"):
            code, body = self.get("http://127.0.0.1:7000" + url)
            self.assertEqual(code, 404, url)
            self.assertEqual(body.count(b"\n"), 1)


# -- the scenario ---------------------------------------------------------------------------

class ScenarioTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.scenario = Scenario(epoch=start_epoch(NOW, 180), event_length=180)

    def test_events_roll_forward(self) -> None:
        later = NOW + 180
        now_ppv = self.scenario.ppv_events(NOW)
        later_ppv = self.scenario.ppv_events(later)
        self.assertEqual(later_ppv[0], now_ppv[1])
        self.assertNotEqual(self.scenario.playlist("x", NOW), self.scenario.playlist("x", later))
        self.assertLess(now_ppv[0].start, NOW)
        self.assertGreater(now_ppv[0].stop, NOW)

    def test_guide_and_ppv_always_have_now_and_next(self) -> None:
        for hours in range(0, 48 * 6):  # every 10 minutes for two days
            t = NOW + hours * 600 + 17
            games = [e for e in self.scenario.sports_events(t) if e.start <= t < e.stop]
            self.assertEqual(len(games), 2, t)
            self.assertTrue(any(e.start > t for e in self.scenario.sports_events(t)))
            ppv = self.scenario.ppv_events(t)
            self.assertTrue(ppv[0].start <= t < ppv[0].stop)
            self.assertEqual(ppv[1].start, ppv[0].stop)

    def test_stream_ids_play_the_clip_the_event_names(self) -> None:
        events = self.scenario.sports_events(NOW) + self.scenario.ppv_events(NOW)
        for event in events:
            self.assertEqual(stream_clip(event.stream_id), event.clip)
            self.assertTrue(event.title.startswith(MATCHUPS[event.clip]))
            self.assertEqual(CLIP_FILES[event.clip][1], MATCHUPS[event.clip])
        self.assertIsNone(stream_clip(1))

    def test_the_first_switch_comes_20_to_30_s_after_any_start(self) -> None:
        for offset in range(0, 600, 7):
            now = NOW + offset + 0.25
            scenario = Scenario(epoch=start_epoch(now, 180), event_length=180)
            first = scenario.epoch + 180  # Demo PPV 1 and Demo Sports 1 switch then
            self.assertTrue(20 <= first - now <= 30, (offset, first - now))
            self.assertTrue(scenario.ppv_events(now)[0].start <= now < first)
        # a start that puts the switch off the minute: the names carry the seconds
        scenario = Scenario(epoch=start_epoch(NOW + 8, 180), event_length=180)
        self.assertRegex(scenario.ppv_events(NOW + 8)[0].channel, r"@ 03:58:10 PM$")

    def test_short_events_put_seconds_in_the_names(self) -> None:
        short = Scenario(epoch=start_epoch(NOW, 10), event_length=10)
        self.assertEqual(short.epoch, NOW)
        self.assertRegex(short.ppv_events(NOW)[0].channel, r"@ 04:00:37 PM$")

    def schedule(self, scenario: Scenario, now: float) -> Any:
        config = demo_config(7000, None, scenario.event_length, state_dir="unused")
        base = "http://127.0.0.1:7000/live/demo/s3cret"
        data = ProviderData(
            "demo",
            parse_playlist(scenario.playlist(base, now).encode(), "demo"),
            parse_guide(scenario.guide(now)),
        )
        schedule, _ = build_schedule(config, {"demo": data}, PackingState(), now)
        return schedule

    def test_both_lineups_are_busy_and_every_switch_changes_the_clip(self) -> None:
        for length in (180.0, 6.0):
            scenario = Scenario(epoch=start_epoch(NOW, length), event_length=length)
            schedule = self.schedule(scenario, NOW)
            self.assertEqual(schedule.unplaced, ())
            first = scenario.epoch + length
            for channel in ("demo_sports_1", "demo_sports_2", "demo_ppv_1"):
                if channel != "demo_ppv_1" or length < 60:
                    self.assertIsNotNone(schedule.live(channel, NOW), channel)
                else:  # the demo starts in Demo PPV 1's gap: on the slate, the next event 20-30 s away
                    self.assertIsNone(schedule.live(channel, NOW), channel)
                events = schedule.channel(channel).events
                self.assertGreater(len(events), 3)
                urls = [e.sources[0].url for e in events]
                self.assertTrue(all(a != b for a, b in zip(urls, urls[1:], strict=False)), channel)
            # Demo Sports 1 and Demo PPV 1 switch first, 20-30 s after start (for 3-min events)
            self.assertEqual(schedule.next_boundary("demo_sports_1", NOW), first)
            self.assertEqual(schedule.next_boundary("demo_ppv_1", NOW),  # its event going live, or ending
                             first if length >= 60 else scenario.epoch + length * 5 / 6)
            self.assertEqual(schedule.next_boundary("demo_sports_2", NOW), first + length)
            ppv = schedule.channel("demo_ppv_1").events
            first_ppv = scenario.epoch + (length if length >= 60 else 0)  # the one in its gap has ended
            self.assertEqual([e.start.timestamp() for e in ppv[:3]], [first_ppv + i * length for i in range(3)])
            # each event fills 5/6 of its slot: the slate names the next one for the rest
            self.assertEqual([e.stop.timestamp() - e.start.timestamp() for e in ppv[:3]], [length * 5 / 6] * 3)


# -- a real socket: pacing and the PAT at the start ------------------------------------------

class Collector(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.marks: list[tuple[float, int]] = []
        self.lost: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self.marks.append((time.monotonic(), len(self.data)))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class ProviderSocketTests(TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def test_stream_starts_at_a_pat_and_is_paced_in_real_time(self) -> Any:
        _, started = demo_setup(global_reactor, None)
        assert isinstance(started, DemoProviderService)
        service = started
        service.startService()
        self.addCleanup(service.stopService)
        endpoint = TCP4ClientEndpoint(global_reactor, "127.0.0.1", service.port_number)
        collector = Collector()
        yield connectProtocol(endpoint, collector)
        assert collector.transport is not None
        credentials = f"{service.provider.username}/{service.provider.password}".encode()
        collector.transport.write(b"GET /live/%s/1002.ts HTTP/1.0\r\nHost: x\r\n\r\n" % credentials)
        yield task.deferLater(global_reactor, 2.6, lambda: None)
        collector.transport.loseConnection()
        yield collector.lost
        for _ in range(50):  # the server notices the disconnect and stops its timer
            if not service.provider.streamers:
                break
            yield task.deferLater(global_reactor, 0.02, lambda: None)
        self.assertEqual(service.provider.streamers, set())

        head, _, _ = bytes(collector.data).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 200"), head[:40])
        self.assertIn(b"video/mp2t", head.lower())
        start = len(head) + 4
        body = bytes(collector.data[start:])
        self.assertEqual(body[:3], b"\x47\x40\x00")  # sync byte, PID 0 with payload start
        # bytes over the window after the prebuffer: close to the clip's bitrate
        rate = CLIPS[stream_clip(1002) or 0].byte_rate
        t0 = collector.marks[0][0]
        window = [(t, n) for t, n in collector.marks if t - t0 >= 0.5]
        (ta, na), (tb, nb) = window[0], window[-1]
        self.assertApproximates((nb - na) / (tb - ta), rate, rate * 0.25)


# -- --demo --config FILE, and the demo as a newcomer starts it -------------------------------

def write_file(test: SynchronousTestCase, text: str) -> str:
    directory = os.path.abspath(test.mktemp())
    os.makedirs(directory)
    path = os.path.join(directory, "my.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace("STATE", os.path.join(directory, "state")))
    return path


ONLY_SERVER_STREAM_HDHR = (
    '[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\nstate_dir = "STATE"\n'
    '[stream]\nchunk_size = 4096\n[hdhr]\nfriendly_name = "Den tuner"\n'
)


class DemoConfigFileTests(SynchronousTestCase):
    def test_a_file_without_providers_or_lineups_is_enough_for_the_demo(self) -> None:
        from epgd import tap

        path = write_file(self, ONLY_SERVER_STREAM_HDHR)
        options = tap.Options()
        options.parseOptions(["--demo", "--config", path])
        loaded = options["loaded"]
        self.assertEqual((loaded.providers, loaded.lineups), ((), ()))
        reactor = MemoryReactorClock()
        reactor.advance(NOW)
        config, service = demo_setup(reactor, loaded)
        self.addCleanup(service.stopService)
        self.assertEqual(config.server, loaded.server)
        self.assertEqual(config.stream.chunk_size, 4096)
        self.assertEqual(config.hdhr.friendly_name, "Den tuner")
        self.assertEqual([p.name for p in config.providers], ["demo"])
        self.assertEqual([lu.id for lu in config.lineups], ["demo_sports", "demo_ppv"])

    def test_without_demo_the_same_file_still_needs_a_provider(self) -> None:
        import io
        import sys

        from epgd import tap

        path = write_file(self, ONLY_SERVER_STREAM_HDHR)
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        with self.assertRaises(SystemExit):
            tap.Options().parseOptions(["--config", path])
        self.assertEqual(stderr.getvalue(),
                         f"{path}: provider: at least one [[provider]] table is required\n")


class DemoServiceTests(TestCase):
    """``twistd epgd --demo --config FILE``'s service tree on real sockets, as a newcomer starts it."""

    timeout = 60

    async def test_first_switch_comes_within_30_s_and_the_log_points_at_the_status_page(self) -> None:
        import json

        import treq
        from twisted.web.client import HTTPConnectionPool

        from epgd import tap

        options = tap.Options()
        options.parseOptions(["--demo", "--config", write_file(self, ONLY_SERVER_STREAM_HDHR)])
        started = global_reactor.seconds()
        with capturedLogs() as events:
            service = tap.makeService(options)
            service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        listening = service.getServiceNamed("listen-0").port
        assert listening is not None  # a TCP port is bound by the time startService returns
        port = listening.getHost().port
        pool = HTTPConnectionPool(global_reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            response = await treq.get(f"{base}/health", pool=pool)
            if (await response.json())["status"] == "ok":
                break
            await task.deferLater(global_reactor, 0.05, lambda: None)
        else:
            self.fail("the demo's provider data never loaded")
        text = " ".join(e["log_format"].format(**e) for e in events)
        self.assertIn("[DEMO] status page: http://localhost:", text)

        schedule = json.loads(await (await treq.get(f"{base}/schedule.json", pool=pool)).text())
        first_switch = service.getServiceNamed("demo").first_switch
        self.assertLessEqual(first_switch - started, 30)
        self.assertGreaterEqual(first_switch - started, 15)  # time to open a player first
        for channel in schedule["channels"]:
            if channel["id"] == "demo_ppv_1":
                # the demo opens in its gap (the slate): the next event starts at the first switch
                starts = [_iso_seconds(e["start"]) for e in channel["events"]]
                self.assertIn(first_switch, starts)
                after = channel["events"][starts.index(first_switch)]
                self.assertEqual(_iso_seconds(after["stop"]) - first_switch, 150)  # then 30 s of slate
            if channel["id"] == "demo_sports_1":
                live, after = channel["events"][0], channel["events"][1]
                self.assertTrue(live["live"], channel["id"])
                stop = _iso_seconds(live["stop"])
                self.assertEqual(stop, first_switch, channel["id"])  # the first switch
                self.assertEqual(_iso_seconds(after["start"]), stop)
                # then a switch every 6 minutes on each sports channel
                self.assertEqual(_iso_seconds(after["stop"]) - _iso_seconds(after["start"]), 360)
        page = await treq.get(f"{base}/", pool=pool)
        self.assertEqual(page.code, 200)
        self.assertIn(b"<title>epgd</title>", await page.content())


def _iso_seconds(text: str) -> float:
    import datetime as _dt

    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
