"""The stream manager: answers, limits, timers, idle reaper, status (epgd.stream.manager)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, ServerConfig, StreamConfig
from epgd.publish.slatetext import user_full
from epgd.redact import Redactor
from epgd.schedule.model import Channel, Schedule
from epgd.stream.manager import StreamManager
from tests import tsverify
from tests.streamfakes import (
    BASE,
    T0,
    FakeHTTP,
    FakeRequest,
    event,
    finish_when_done,
    log_text,
    schedule,
    utc,
)
from tests.tsgen import Source as Clip
from tests.tsutil import fills, pids, stream

STATUS_KEYS = {"stream_url", "event", "uptime_seconds", "idle_seconds", "last_check", "clients",
               "bytes_sent", "bitrate_kbps", "switches", "error", "source_kind", "codecs",
               "hls_sessions"}  # SPEC §16


T0_DT = utc(T0)


class ManagerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.http = FakeHTTP()
        self.current: Schedule | None = schedule(
            event("Bruins vs Rangers", 0, 100, "1.ts"), event("Kings vs Ducks", 100, 200, "2.ts"),
            event("Late game", 1000, 1100, "3.ts"),
        )
        self.make()

    def make(self, max_clients: int = 500, max_streams: int = 0, idle: float = 300,
             has_data: bool = True, slate: bool = False) -> None:
        """``slate``: off unless asked for, so these tests keep SPEC §7's 503s (SlateTests: §14)."""
        self.config = Config(
            server=ServerConfig(max_clients=max_clients),
            stream=StreamConfig(check_interval=5, idle_timeout=idle, hold_after_end=0, output="passthrough",
                                slate=slate),
            providers=(ProviderConfig("main", BASE + "get.php", max_streams=max_streams),),
        )
        self.manager = StreamManager(self.config, self.clock, lambda: self.current,
                                     Redactor.for_urls([BASE]),
                                     http_factory=lambda provider: self.http,
                                     has_data=lambda: has_data)
        self.manager.startService()
        self.addCleanup(self.stop_manager)

    def stop_manager(self) -> None:
        if self.manager.running:
            d = self.manager.stopService()
            self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def get(self, channel_id: str = "nhl_1", method: bytes = b"GET") -> tuple[FakeRequest, object]:
        request = FakeRequest(method)
        result = self.manager.serve(request, channel_id)
        if not isinstance(result, bytes):
            finish_when_done(request, result)  # type: ignore[arg-type]
        return request, result

    def at(self, seconds: float) -> None:
        self.clock.advance(T0 + seconds - self.clock.seconds())

    def test_unknown_channel_is_404(self) -> None:
        request, body = self.get("nope_9")
        self.assertEqual(request.code, 404)
        self.assertEqual(body, b"unknown channel 'nope_9'\n")

    def test_nothing_playing_is_503_with_retry_after_and_next_event(self) -> None:
        self.at(300)
        request, body = self.get()
        self.assertEqual(request.code, 503)
        self.assertEqual(request.headers[b"retry-after"], b"700")
        self.assertIn(b"'Late game' at 2027-01-15T08:16:40Z", body)  # type: ignore[operator]
        self.assertEqual(body.count(b"\n"), 1)  # type: ignore[union-attr]

    def test_before_provider_data_nothing_is_said_to_be_unscheduled(self) -> None:
        """While the first fetch runs, the channel list is served but has no events yet."""
        self.stop_manager()
        self.current = Schedule(self.current.generated_at,  # type: ignore[union-attr]
                                (Channel("nhl_1", "NHL 1", 1, "nhl", "NHL"),))
        self.make(has_data=False)
        request, body = self.get()
        self.assertEqual(request.code, 503)
        self.assertEqual(request.headers[b"retry-after"], b"10")
        self.assertIn(b"no provider data yet", body)  # type: ignore[operator]

    def test_head_answers_headers_only_and_opens_nothing(self) -> None:
        request, body = self.get(method=b"HEAD")
        self.assertEqual((request.code, body), (200, b""))
        self.assertEqual(request.headers[b"content-type"], b"video/mp2t")
        self.assertEqual(self.http.requests, [])

    def test_stream_is_served_and_shared(self) -> None:
        first, _ = self.get()
        second, _ = self.get()
        self.assertEqual(self.http.count(BASE + "1.ts"), 1)
        self.http.answer(BASE + "1.ts").send(stream(20) + b"G")
        self.clock.advance(0.1)
        self.assertEqual(first.body, stream(20))
        self.assertEqual(first.body, second.body)
        self.assertEqual(first.headers[b"content-type"], b"video/mp2t")
        self.assertNotIn(b"content-length", first.headers)

    def test_channels_share_one_bound_on_writes_per_reactor_turn(self) -> None:
        """Two busy channels: still at most per_turn viewer writes before the reactor reads on."""
        self.current = Schedule(T0_DT, (
            Channel("nhl_1", "NHL 1", 1, "nhl", "NHL", events=(event("One", 0, 100, "1.ts"),)),
            Channel("nhl_2", "NHL 2", 2, "nhl", "NHL", events=(event("Two", 0, 100, "2.ts"),))))
        self.manager.turns.per_turn = 10
        viewers = {cid: [self.get(cid)[0] for _ in range(30)] for cid in ("nhl_1", "nhl_2")}
        one, two = self.http.answer(BASE + "1.ts"), self.http.answer(BASE + "2.ts")
        one.send(stream(10) + b"G")
        two.send(stream(10) + b"G")
        self.clock.advance(0.2)  # both flushed; every turn ran (task.Clock runs them all)
        for requests in viewers.values():
            self.assertTrue(all(r.body == stream(10) for r in requests))
        self.assertEqual(self.manager.turns.most, 10)

    def test_max_clients_is_503(self) -> None:
        self.stop_manager()
        self.make(max_clients=1)
        self.get()
        request, body = self.get()
        self.assertEqual(request.code, 503)
        self.assertIn(b"max_clients", body)  # type: ignore[operator]

    def test_provider_full_is_503_naming_provider_and_limit(self) -> None:
        self.stop_manager()
        self.current = schedule(event("A", 0, 100, "1.ts"))
        two = schedule(event("A", 0, 100, "1.ts")).channels[0]
        other = Channel("nhl_2", "NHL 2", 2, "nhl", "NHL", events=(event("B", 0, 100, "9.ts"),))
        self.current = Schedule(self.current.generated_at, (two, other))
        self.make(max_streams=1)
        self.get("nhl_1")
        request, body = self.get("nhl_2")
        self.assertEqual(request.code, 503)
        self.assertIn(b"'main' is at its limit of 1", body)  # type: ignore[operator]

    def test_a_stream_without_clients_makes_room(self) -> None:
        self.stop_manager()
        one = schedule(event("A", 0, 100, "1.ts")).channels[0]
        other = Channel("nhl_2", "NHL 2", 2, "nhl", "NHL", events=(event("B", 0, 100, "9.ts"),))
        self.current = Schedule(one.events[0].start, (one, other))
        self.make(max_streams=1)
        first, done = self.get("nhl_1")
        done.cancel()  # type: ignore[attr-defined]
        request, _ = self.get("nhl_2", method=b"HEAD")
        self.assertEqual(request.code, 200, "a GET would get its connection")
        self.assertIn("nhl_1", self.manager.status(), "a HEAD stops nothing")
        request, _ = self.get("nhl_2")
        self.assertEqual(request.code, 200)
        self.assertNotIn("nhl_1", self.manager.status())

    def test_switch_happens_at_the_boundary_not_the_next_check(self) -> None:
        request, _ = self.get()
        self.http.answer(BASE + "1.ts").send(stream(20, fill=0xAA) + b"G")
        self.at(99.9)
        self.assertEqual(self.http.count(BASE + "2.ts"), 0)
        with capturedLogs() as events:
            self.at(100.0)
        self.assertEqual(self.http.count(BASE + "2.ts"), 1)
        self.assertIn("[PROXY] nhl_1 switching from 1.ts to 2.ts", log_text(events))
        self.http.answer(BASE + "2.ts").send(stream(20, fill=0xBB) + b"G")
        self.clock.advance(0.1)  # small writes are coalesced for up to 100 ms
        self.assertIn(0xBB, fills(request.body))
        self.assertEqual(self.manager.status()["nhl_1"]["switches"], 1)

    def test_schedule_changed_rechecks_at_once(self) -> None:
        self.get()
        self.http.answer(BASE + "1.ts").send(stream(20) + b"G")
        self.current = schedule(event("Moved up", -10, 200, "5.ts"))
        self.manager.schedule_changed(self.current)
        self.assertEqual(self.http.count(BASE + "5.ts"), 1)

    def test_idle_stream_stops_and_logs(self) -> None:
        request, done = self.get()
        self.http.answer(BASE + "1.ts").send(stream(20) + b"G")
        done.cancel()  # type: ignore[attr-defined]
        with capturedLogs() as events:
            self.clock.pump([1.0] * 301)
        self.assertIn("[PROXY] nhl_1 idle for 300s, stopping", log_text(events))
        self.assertEqual(self.manager.status(), {})

    def test_status_has_exactly_the_spec_keys_and_masks(self) -> None:
        request, _ = self.get()
        self.http.answer(BASE + "1.ts").send(stream(50) + b"G")
        self.clock.pump([0.25] * 8)
        status = self.manager.status()["nhl_1"]
        self.assertEqual(set(status), STATUS_KEYS)
        self.assertEqual(status["stream_url"], "http://provider.test/live/***/***/1.ts")
        self.assertEqual(status["event"], "Bruins vs Rangers")
        self.assertEqual(status["clients"], 1)
        self.assertEqual(status["bytes_sent"], len(request.body))
        self.assertGreaterEqual(status["bytes_sent"], 50 * 188)
        self.assertIsInstance(status["last_check"], float)

    def test_stop_ends_clients_and_is_false_when_not_active(self) -> None:
        request, _ = self.get()
        self.assertTrue(self.manager.stop("nhl_1"))
        self.assertTrue(request.finished)
        self.assertFalse(self.manager.stop("nhl_1"))

    def test_stop_service_leaves_no_timer_or_connection(self) -> None:
        request, _ = self.get()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        self.successResultOf(self.manager.stopService())
        self.assertTrue(response.transport.stopped)
        self.assertTrue(request.finished)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_disconnect_frees_the_client_slot(self) -> None:
        self.stop_manager()
        self.make(max_clients=1)
        request, _ = self.get()
        request.disconnect()
        again, _ = self.get()
        self.assertEqual(again.code, 200)


    # -- HLS viewers (SPEC §16) --------------------------------------------------------

    def hls(self, channel_id: str = "nhl_1", method: bytes = b"GET") -> tuple[FakeRequest, object]:
        request = FakeRequest(method)
        return request, self.manager.serve_hls(request, channel_id)

    def test_a_playlist_request_starts_the_channel_and_is_no_ts_client(self) -> None:
        self.stop_manager()
        self.make(max_clients=1)
        self.get()
        self.manager.stop("nhl_1")
        self.get()  # the one TS client max_clients allows
        request, answer = self.hls()
        self.assertNotIsInstance(answer, bytes)  # waiting for the first segment, not refused
        self.assertEqual(self.http.count(BASE + "1.ts"), 2)
        status = self.manager.status()["nhl_1"]
        self.assertEqual((status["clients"], status["hls_sessions"]), (1, 1))
        unknown, body = self.hls("nope_9")
        self.assertEqual((unknown.code, body), (404, b"unknown channel 'nope_9'\n"))
        head, body = self.hls("nhl_1", b"HEAD")
        self.assertEqual((head.code, body), (200, b""))

    def test_a_channel_watched_over_hls_is_not_stopped_for_room(self) -> None:
        self.stop_manager()
        one = schedule(event("A", 0, 100, "1.ts")).channels[0]
        other = Channel("nhl_2", "NHL 2", 2, "nhl", "NHL", events=(event("B", 0, 100, "9.ts"),))
        self.current = Schedule(one.events[0].start, (one, other))
        self.make(max_streams=1)
        self.hls("nhl_1")  # no TS client: only an HLS viewer
        self.http.answer(BASE + "1.ts").send(stream(20) + b"G")
        request, _ = self.get("nhl_2")
        self.assertEqual(request.code, 503)
        self.assertIn("nhl_1", self.manager.status())
        self.clock.advance(3 * self.config.stream.hls_segment + 1)  # nobody asked since
        request, _ = self.get("nhl_2")
        self.assertEqual(request.code, 200)
        self.assertNotIn("nhl_1", self.manager.status())

    def test_hls_viewers_keep_a_channel_from_the_reaper(self) -> None:
        self.stop_manager()
        self.make(idle=10)
        self.hls()
        for _ in range(20):  # a player asking every 2 s for 40 s
            self.clock.pump([1.0, 1.0])
            self.hls()
        self.assertIn("nhl_1", self.manager.status())
        self.assertEqual(self.manager.status()["nhl_1"]["idle_seconds"], 0)
        self.clock.pump([1.0] * (12 + 11))  # 3 x hls_segment watched, then idle_timeout
        self.assertEqual(self.manager.status(), {})

class SlateTests(SynchronousTestCase):
    """With ``stream.slate`` (SPEC §14): a known channel always answers 200 once data is in."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.http = FakeHTTP()
        self.current = schedule(event("Bruins vs Rangers", 0, 100, "1.ts"), event("Late game", 1000, 1100, "3.ts"))
        self.make()

    stop_manager = ManagerTests.stop_manager
    get = ManagerTests.get
    at = ManagerTests.at

    def make(self, max_clients: int = 500, max_streams: int = 0, idle: float = 300,
             has_data: bool = True, slate: bool = True) -> None:
        """ManagerTests' manager with the slate on (a small one: quicker to draw)."""
        self.config = Config(
            server=ServerConfig(max_clients=max_clients),
            stream=StreamConfig(check_interval=5, idle_timeout=idle, hold_after_end=0, output="passthrough",
                                slate=slate, slate_size="640x360"),
            providers=(ProviderConfig("main", BASE + "get.php", max_streams=max_streams),),
        )
        self.manager = StreamManager(self.config, self.clock, lambda: self.current, Redactor.for_urls([BASE]),
                                     http_factory=lambda provider: self.http, has_data=lambda: has_data)
        self.manager.startService()
        self.addCleanup(self.stop_manager)

    def test_nothing_playing_is_the_slate(self) -> None:
        self.at(300)
        request, _ = self.get()
        self.assertEqual((request.code, request.headers[b"content-type"]), (200, b"video/mp2t"))
        self.clock.pump([0.1] * 5)
        self.assertEqual([p for p in pids(request.body) if p != 0x1FFF][:2], [0, 0x1000])
        status = self.manager.status()["nhl_1"]
        self.assertEqual(set(status), STATUS_KEYS | {"slate"})
        self.assertEqual((status["event"], status["stream_url"], status["source_kind"]), (None, None, "slate"))
        self.assertEqual(status["slate"], "1  NHL 1\nUp next: Late game\nToday 08:16 · in 12 min")
        self.assertEqual((self.http.requests, self.manager.connections()), ([], {"main": 0}))

    def test_a_full_provider_is_the_slate_saying_so(self) -> None:
        self.stop_manager()
        two = schedule(event("A", 0, 100, "1.ts")).channels[0]
        other = Channel("nhl_2", "NHL 2", 2, "nhl", "NHL", events=(event("B", 0, 100, "9.ts"),))
        self.current = Schedule(two.events[0].start, (two, other))
        self.make(max_streams=1)
        self.get("nhl_1")
        request, _ = self.get("nhl_2")
        self.clock.pump([0.1] * 5)
        self.assertEqual(request.code, 200)
        status = self.manager.status()["nhl_2"]
        self.assertEqual((status["source_kind"], status["slate"]), ("slate", "2  NHL 2\nmain: all 1 connections in use"))
        self.assertEqual(self.http.count(BASE + "9.ts"), 0)
        self.assertIn(0x1000, pids(request.body))

    def test_head_is_200_and_starts_nothing(self) -> None:
        self.at(300)
        request, body = self.get(method=b"HEAD")
        self.assertEqual((request.code, body, self.manager.channels), (200, b"", {}))

    def test_before_provider_data_and_past_max_clients_it_is_still_503(self) -> None:
        self.stop_manager()
        self.make(has_data=False)
        self.at(300)
        request, _ = self.get()
        self.assertEqual(request.code, 503)
        self.stop_manager()
        self.make(max_clients=1)
        self.get()
        request, _ = self.get()
        self.assertEqual(request.code, 503)

    def test_viewers_of_the_slate_keep_it_going_and_it_idles_without_them(self) -> None:
        self.at(300)
        request, _ = self.get()
        self.clock.pump([1.0] * 400)
        self.assertIn("nhl_1", self.manager.channels)
        request.disconnect()
        self.clock.pump([1.0] * 301)
        self.assertEqual(self.manager.channels, {})

    def test_the_event_going_live_cuts_from_the_slate(self) -> None:
        self.at(990)
        request, _ = self.get()
        self.at(1000)  # the boundary timer checks at once
        self.http.answer(BASE + "3.ts").send(Clip(marker=1, gop=5).frames(0, 10))
        self.clock.advance(0.25)
        status = self.manager.status()["nhl_1"]
        self.assertEqual((status["event"], status["source_kind"]), ("Late game", "ts"))
        self.assertIn(0x101, pids(request.body))  # the clip's video (passthrough: its own PIDs)


class SlateOnlyTests(SlateTests):
    """``serve_slate``: the slate alone, for a viewer epgd refuses the channel to (SPEC §15)."""

    def refuse(self, channel_id: str = "nhl_1", method: bytes = b"GET") -> tuple[FakeRequest, object]:
        request = FakeRequest(method)
        result = self.manager.serve_slate(request, channel_id, user_full("alice", 2))
        if not isinstance(result, bytes):
            finish_when_done(request, result)  # type: ignore[arg-type]
        return request, result

    def test_the_slate_says_why_and_opens_nothing(self) -> None:
        request, _ = self.refuse()
        self.clock.pump([0.1] * 5)
        self.assertEqual((request.code, request.headers[b"content-type"]), (200, b"video/mp2t"))
        self.assertEqual([p for p in pids(request.body) if p != 0x1FFF][:2], [0, 0x1000])
        self.assertEqual(tsverify.read(request.body).cc_errors, [])
        self.assertEqual((self.manager.status(), self.http.requests), ({}, []))  # not a channel's stream
        self.clock.advance(30)
        self.assertEqual(self.http.requests, [])  # an event live on the channel changes nothing

    def test_its_words(self) -> None:
        self.refuse()
        [lone] = self.manager._lone
        self.assertEqual(lone.status(self.clock.seconds())["slate"], "1  NHL 1\nalice: all 2 connections in use")

    def test_the_viewer_leaving_ends_it(self) -> None:
        request, _ = self.refuse()
        self.clock.pump([0.1] * 10)
        request.disconnect()
        self.assertEqual(self.manager._lone, set())
        self.assertEqual([c for c in self.clock.getDelayedCalls()
                          if "SlateFeed" in repr(c) or "ChannelStream" in repr(c)], [])

    def test_without_a_slate_it_is_503_with_the_reason(self) -> None:
        self.stop_manager()
        self.make(slate=False)
        request, body = self.refuse()
        self.assertEqual((request.code, body), (503, b"alice: all 2 connections in use\n"))

    def test_unknown_channel_and_head(self) -> None:
        request, body = self.refuse("nope_9")
        self.assertEqual(request.code, 404)
        request, body = self.refuse(method=b"HEAD")
        self.assertEqual((request.code, body, self.manager._lone), (200, b"", set()))

    def test_stop_service_ends_it(self) -> None:
        request, _ = self.refuse()
        self.clock.pump([0.1] * 10)
        self.stop_manager()
        self.assertTrue(request.finished)
