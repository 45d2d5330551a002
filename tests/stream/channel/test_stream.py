"""One combined channel: switching, fail-over, keepalive, joiners (epgd.stream.channel.stream)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, StreamConfig
from epgd.mpegts.slate.source import SlateSource
from epgd.net import timers
from epgd.publish.slatetext import SlateText
from epgd.redact import Redactor
from epgd.schedule.model import Schedule, Source
from epgd.stream.channel.slate import ChannelSlate
from epgd.stream.channel.stream import ChannelStream
from epgd.stream.out.client import Client
from epgd.stream.registry import UpstreamRegistry
from epgd.stream.slatepaint import SlatePainter
from tests import tsverify
from tests.streamfakes import (
    BASE,
    T0,
    FakeHTTP,
    FakeRequest,
    FakeResponse,
    event,
    finish_when_done,
    log_text,
    schedule,
)
from tests.tsgen import MP2, MPEG2
from tests.tsgen import Source as Clip
from tests.tsutil import fills, packet, pids, stream


class ChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)  # exact retry delays
        self.clock = Clock()
        self.clock.advance(T0)
        self.http = FakeHTTP()
        self.make(max_streams=0)

    def make(self, max_streams: int) -> None:
        self.config = Config(
            stream=StreamConfig(connect_timeout=4, hold_after_end=60, chunk_size=188, output="passthrough"),
            providers=(ProviderConfig("main", BASE + "get.php", max_streams=max_streams),),
        )
        self.registry = UpstreamRegistry(self.config, self.clock, Redactor.for_urls([BASE]),
                                         http_factory=lambda provider: self.http)
        self.channel = ChannelStream("nhl_1", self.clock, self.config.stream, self.registry,
                                     Redactor.for_urls([BASE]))
        self.addCleanup(self.channel.stop)

    def client(self) -> tuple[Client, FakeRequest]:
        request = FakeRequest()
        client = Client(request, self.clock, buffer_limit=1 << 20,
                        channel_id="nhl_1", on_detach=self.channel.client_gone)
        finish_when_done(request, client.done)
        self.channel.add_client(client)
        return client, request

    def at(self, seconds: float) -> None:
        self.clock.advance(T0 + seconds - self.clock.seconds())

    def test_start_logs_and_delivers_from_the_first_pat(self) -> None:
        sched = schedule(event("game", 0, 100, "1.ts"))
        with capturedLogs() as events:
            self.channel.check(sched, self.clock.seconds())
        self.assertIn("[PROXY] Starting proxy for nhl_1 -> http://provider.test/live/***/***/1.ts",
                      log_text(events))
        _, request = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(packet(0x100) * 5 + stream(20) + b"G")
        self.assertEqual(request.body[:188], stream(1))  # a PAT first
        self.assertEqual(len(request.body) % 188, 0)

    def test_switch_is_make_before_break_and_cuts_at_a_pat(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 100, 200, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        old = self.http.answer(BASE + "1.ts")
        old.send(stream(20, fill=0xAA) + b"G")
        self.at(100)
        with capturedLogs() as events:
            self.channel.check(sched, self.clock.seconds())
        self.assertIn("[PROXY] nhl_1 switching from 1.ts to 2.ts", log_text(events))
        new = self.http.answer(BASE + "2.ts")
        self.assertFalse(old.transport.stopped)  # the old keeps flowing meanwhile
        old.send(stream(10, fill=0xAA)[1:] + b"\x47")  # more old data (already aligned)
        new.send(packet(0x200, fill=0xBB) * 3)  # no PAT yet: held back
        self.assertNotIn(0xBB, fills(request.body))
        new.send(stream(20, pid=0x200, fill=0xBB) + b"G")
        self.assertTrue(old.transport.stopped)
        body = request.body
        self.assertEqual(len(body) % 188, 0)
        first_b = body.index(stream(1) + packet(0x200, fill=0xBB, counter=1))
        self.assertEqual(fills(body[first_b:]), {0xBB})  # nothing old after the cut
        self.assertEqual(pids(body[first_b:first_b + 188]), [0])  # the new starts at a PAT
        self.assertFalse(request.finished)
        self.assertEqual(self.channel.switches, 1)

    def test_no_pat_within_5s_cuts_anyway(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 100, 200, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        self.http.answer(BASE + "1.ts").send(stream(20, fill=0xAA) + b"G")
        self.at(100)
        self.channel.check(sched, self.clock.seconds())
        new = self.http.answer(BASE + "2.ts")
        new.send(packet(0x200, fill=0xBB) * 10)
        self.clock.advance(4.9)
        self.assertNotIn(0xBB, fills(request.body))
        self.clock.advance(0.1)
        new.send(packet(0x200, fill=0xBB) * 10)
        self.assertIn(0xBB, fills(request.body))
        self.assertEqual(len(request.body) % 188, 0)

    def one_connection_switch(self, slow_close: bool = False) -> tuple[Schedule, FakeRequest, FakeResponse]:
        """A one-connection plan at its boundary: the old source is told to close."""
        self.channel.stop()
        self.http.slow_close = slow_close
        self.make(max_streams=1)
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 100, 200, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        old = self.http.answer(BASE + "1.ts")
        old.send(stream(20) + b"G")
        self.at(100)
        self.channel.check(sched, self.clock.seconds())
        return sched, request, old

    def test_one_connection_plan_breaks_before_make(self) -> None:
        _, request, old = self.one_connection_switch()
        self.assertTrue(old.transport.stopped)  # closed before the new is opened
        self.assertEqual(len(self.http.waiting(BASE + "2.ts")), 1)
        self.assertFalse(request.finished)
        self.http.answer(BASE + "2.ts").send(stream(20, pid=0x200, fill=0xBB) + b"G")
        self.assertIn(0xBB, fills(request.body))

    def test_break_before_make_waits_for_the_old_connection_to_be_gone(self) -> None:
        """A single-connection panel still counting the old socket would answer 403 (issue 11, 8)."""
        sched, request, old = self.one_connection_switch(slow_close=True)
        self.assertTrue(old.transport.stopped)
        self.clock.advance(1.0)
        self.channel.check(sched, self.clock.seconds())  # a check meanwhile changes nothing
        self.assertEqual(self.http.count(BASE + "2.ts"), 0)  # not while the old one is there
        self.assertEqual(self.channel.status(self.clock.seconds())["stream_url"],
                         "http://provider.test/live/***/***/2.ts")
        old.transport.closed()
        self.assertEqual(len(self.http.waiting(BASE + "2.ts")), 1)
        self.http.answer(BASE + "2.ts").send(stream(20, pid=0x200, fill=0xBB) + b"G")
        self.assertIn(0xBB, fills(request.body))
        self.assertFalse(request.finished)

    def test_break_before_make_opens_anyway_when_the_old_never_closes(self) -> None:
        self.one_connection_switch(slow_close=True)
        self.clock.advance(3.9)
        self.assertEqual(self.http.count(BASE + "2.ts"), 0)
        self.clock.advance(0.1)  # connect_timeout (4 s): the old close is taking too long
        self.assertEqual(len(self.http.waiting(BASE + "2.ts")), 1)

    def test_failover_to_the_next_source_at_once(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts", "1b.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        self.http.answer(BASE + "1.ts", code=404)
        self.http.answer(BASE + "1b.ts").send(stream(20, fill=0xCC) + b"G")
        self.assertEqual(fills(request.body), {0xCC})
        self.assertIsNone(self.channel.status(self.clock.seconds())["error"])

    def test_start_is_logged_once_across_failover_and_retries(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts", "1b.ts"))
        with capturedLogs() as events:
            self.channel.check(sched, self.clock.seconds())
            self.client()
            self.http.answer(BASE + "1.ts", code=404)
            self.http.answer(BASE + "1b.ts", code=404)
            self.clock.pump([0.25] * 4)  # retried after 0.5 s
            self.http.answer(BASE + "1.ts").send(stream(20) + b"G")
        text = log_text(events)
        self.assertEqual(text.count("[PROXY] Starting proxy for nhl_1"), 1, text)
        self.assertIn("failing over from 1.ts to 1b.ts", text)

    def test_single_failing_source_is_retried_with_keepalive(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        self.http.answer(BASE + "1.ts", code=500)
        self.assertIn("HTTP 500", self.channel.status(self.clock.seconds())["error"])
        self.assertEqual(self.http.count(BASE + "1.ts"), 1)
        self.clock.pump([0.25, 0.25])
        self.assertEqual(self.http.count(BASE + "1.ts"), 2)  # after 0.5 s
        self.assertEqual(set(pids(request.body)), {0x1FFF})  # keepalive only
        self.assertFalse(request.finished)

    def test_joiner_starts_at_the_latest_pat_at_once(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(25, pat_every=10) + b"G")  # PATs at packets 0, 10, 20
        _, late = self.client()
        self.assertEqual(late.body, stream(25, pat_every=10)[20 * 188:])

    def test_all_clients_paused_pauses_the_provider(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        a, _ = self.client()
        b, _ = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        a.pauseProducing()
        self.assertFalse(response.transport.paused)
        b.pauseProducing()
        self.assertTrue(response.transport.paused)
        a.resumeProducing()
        self.assertFalse(response.transport.paused)

    def test_after_the_hold_the_source_is_released_and_clients_kept(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 400, 500, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        self.at(130)  # ended, but held (hold_after_end 60)
        self.channel.check(sched, self.clock.seconds())
        self.assertFalse(response.transport.stopped)
        self.at(161)
        self.channel.check(sched, self.clock.seconds())
        self.assertTrue(response.transport.stopped)
        self.assertFalse(request.finished)
        self.assertEqual(self.registry.upstreams(), [])
        self.at(400)
        self.channel.check(sched, self.clock.seconds())
        self.http.answer(BASE + "2.ts").send(stream(20, fill=0xBB) + b"G")
        self.assertIn(0xBB, fills(request.body))

    def test_small_chunks_are_coalesced_once_for_every_client(self) -> None:
        self.channel.stop()
        self.config = Config(stream=StreamConfig(chunk_size=1880, output="passthrough"))
        self.channel = ChannelStream("nhl_1", self.clock, self.config.stream, self.registry,
                                     Redactor())
        self.addCleanup(self.channel.stop)
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        _, request = self.client()
        response = self.http.answer(BASE + "1.ts")
        data = stream(30)
        response.send(data[:1000])
        self.assertEqual(request.body, b"")  # 940 bytes: less than chunk_size
        response.send(data[1000:2500])  # 13 packets (2444 bytes) ready: one write
        self.assertEqual(request.written[1:], [data[:2444]])
        response.send(data[2500:3000])  # 2 more packets: held up to 100 ms
        self.clock.advance(0.05)
        self.assertEqual(request.body, data[:2444])
        self.clock.advance(0.05)
        self.assertEqual(request.body, data[:2820])

    def test_stop_finishes_clients_and_leaves_nothing_behind(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        _, request = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        self.channel.stop()
        self.assertTrue(request.finished)
        self.assertTrue(response.transport.stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])


# -- the slate (SPEC §14) --------------------------------------------------------------------

SLATE_SIZE = "640x360"
CLIP = Clip(marker=1, gop=5)


class SlateTests(SynchronousTestCase):
    """A channel with a slate: on it when nothing plays or nothing comes, and cut back from it."""

    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)
        self.clock = Clock()
        self.clock.advance(T0)
        self.http = FakeHTTP()
        self.make()

    def make(self, max_streams: int = 0, output: str = "continuous") -> None:
        self.config = Config(
            stream=StreamConfig(connect_timeout=4, hold_after_end=0, chunk_size=188, output=output,
                                slate_size=SLATE_SIZE),
            providers=(ProviderConfig("main", BASE + "get.php", max_streams=max_streams),),
        )
        self.registry = UpstreamRegistry(self.config, self.clock, Redactor.for_urls([BASE]),
                                         http_factory=lambda provider: self.http)
        self.painter = SlatePainter(self.clock)
        slate = ChannelSlate(self.clock, SLATE_SIZE, self.painter, ZoneInfo("America/New_York"), "nhl_1")
        self.channel = ChannelStream("nhl_1", self.clock, self.config.stream, self.registry,
                                     Redactor.for_urls([BASE]), slate=slate)
        self.addCleanup(self.channel.stop)

    def client(self) -> FakeRequest:
        request = FakeRequest()
        client = Client(request, self.clock, buffer_limit=1 << 22, channel_id="nhl_1",
                        on_detach=self.channel.client_gone)
        finish_when_done(request, client.done)
        self.channel.add_client(client)
        return request

    def at(self, seconds: float) -> None:
        """Time runs on to T0 + ``seconds`` in small steps, as the reactor's would."""
        target = T0 + seconds
        self.clock.pump([0.05] * int((target - self.clock.seconds()) / 0.05))
        self.clock.advance(max(0.0, target - self.clock.seconds()))

    def status(self) -> dict[str, Any]:
        return self.channel.status(self.clock.seconds())

    def flowing(self, sched: Schedule) -> tuple[FakeRequest, FakeResponse]:
        self.channel.check(sched, self.clock.seconds())
        request = self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(CLIP.frames(0, 10))
        self.assertFalse(self.channel.on_slate)
        return request, response

    def test_nothing_on_shows_the_slate_at_once_with_what_is_next(self) -> None:
        sched = schedule(event("Bruins vs Rangers", 1200, 2000, "1.ts"))  # 20 min from now
        self.channel.check(sched, self.clock.seconds())
        request = self.client()
        self.clock.advance(0.5)
        self.assertTrue(self.channel.on_slate)
        self.assertEqual(pids(request.body)[:2], [0, 0x1000])  # our PAT, PMT, then the key frame
        report = tsverify.read(request.body)
        self.assertEqual(report.cc_errors, [])
        status = self.status()
        self.assertEqual((status["event"], status["stream_url"], status["source_kind"]), (None, None, "slate"))
        self.assertEqual(status["slate"], "1  NHL 1\nUp next: Bruins vs Rangers\nToday 03:20 · in 20 min")
        self.assertEqual(status["codecs"], "h264+aac")
        self.assertEqual((self.http.requests, self.channel.provider_slots), ([], set()))

    def test_no_events_scheduled(self) -> None:
        self.channel.check(schedule(), self.clock.seconds())
        self.assertEqual(self.status()["slate"], "1  NHL 1\nNo events scheduled")

    def test_the_countdown_changes_the_picture_once_a_minute(self) -> None:
        sched = schedule(event("Bruins vs Rangers", 1200, 2000, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        self.client()
        self.at(59)
        self.assertEqual(self.painter.made, 1)
        self.at(61)
        self.assertEqual(self.painter.made, 2)
        self.assertIn("in 19 min", self.status()["slate"])

    def test_an_event_going_live_cuts_from_the_slate_into_one_program(self) -> None:
        sched = schedule(event("Bruins vs Rangers", 10, 2000, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        request = self.client()
        self.at(10)
        self.channel.check(sched, self.clock.seconds())
        self.assertTrue(self.channel.on_slate)  # it shows while the event's way in is sought
        self.http.answer(BASE + "1.ts").send(CLIP.frames(0, 10))
        self.clock.advance(0.25)
        self.assertFalse(self.channel.on_slate)
        status = self.status()
        self.assertEqual((status["event"], status["source_kind"]), ("Bruins vs Rangers", "ts"))
        self.assertNotIn("slate", status)
        report = tsverify.read(request.body)
        self.assertEqual((report.cc_errors, report.pmt_pids), ([], {0x1000}))
        self.assertEqual(self.channel.switches, 0)

    def test_an_event_ending_cuts_back_to_the_slate_and_lets_the_provider_go(self) -> None:
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 400, 500, "2.ts"))
        request, response = self.flowing(sched)
        self.at(100)
        self.channel.check(sched, self.clock.seconds())
        self.assertTrue(self.channel.on_slate)
        self.assertTrue(response.transport.stopped)
        self.assertEqual(self.registry.upstreams(), [])  # a channel on the slate holds no connection
        self.clock.advance(0.5)
        self.assertIn("Up next: two", self.status()["slate"])
        self.assertEqual(tsverify.read(request.body).cc_errors, [])
        self.assertFalse(request.finished)

    def test_a_tune_to_a_live_event_gets_its_own_first_picture(self) -> None:
        """Keepalive until the event's first picture, however near connect_timeout it comes."""
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        request = self.client()
        self.at(3.8)
        self.assertEqual(set(pids(request.body)), {0x1FFF})
        self.assertFalse(self.channel.on_slate)
        self.http.answer(BASE + "1.ts").send(CLIP.frames(0, 10))
        media = [p for p in pids(request.body) if p != 0x1FFF]
        self.assertEqual(media[:2], [0, 0x1000])
        self.assertEqual((self.channel.on_slate, self.status()["source_kind"]), (False, "ts"))

    def test_no_picture_within_connect_timeout_brings_the_slate(self) -> None:
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        request = self.client()
        self.at(4.25)
        self.assertTrue(self.channel.on_slate)
        self.assertEqual(self.status()["slate"], "1  NHL 1\nReconnecting to main…")
        self.assertIn(0x1000, pids(request.body))
        self.at(5)
        self.http.answer(BASE + "1.ts").send(CLIP.frames(0, 10))  # the retry answers
        self.clock.advance(0.25)
        self.assertFalse(self.channel.on_slate)
        self.assertEqual(self.status()["event"], "one")

    def test_a_3_s_stall_brings_the_slate_and_recovery_cuts_back(self) -> None:
        request, response = self.flowing(schedule(event("one", 0, 100, "1.ts")))
        self.at(2.75)
        self.assertFalse(self.channel.on_slate)
        self.at(3.25)
        self.assertTrue(self.channel.on_slate)
        self.assertEqual(self.channel.state, "seeking")  # the stalled source, beside the slate
        self.assertEqual(self.status()["slate"], "1  NHL 1\nReconnecting to main…")
        response.send(CLIP.frames(10, 10))  # it comes back
        self.clock.advance(0.25)
        self.assertFalse(self.channel.on_slate)
        self.assertEqual((self.channel.switches, self.status()["source_kind"]), (0, "ts"))
        report = tsverify.read(request.body)
        self.assertEqual((report.cc_errors, report.pmt_pids), ([], {0x1000}))

    def test_a_full_provider_shows_the_slate_saying_so(self) -> None:
        self.channel.stop()
        self.make(max_streams=1)
        other = self.registry.acquire(Source("main", "9", BASE + "9.ts"))  # another channel's slot
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        request = self.client()
        self.clock.advance(0.25)
        self.assertTrue(self.channel.on_slate)
        self.assertEqual(self.status()["slate"], "1  NHL 1\nmain: all 1 connections in use")
        self.assertEqual(self.http.requests, [])
        self.registry.release(other)
        self.at(1)  # the retry finds the slot free
        self.http.answer(BASE + "1.ts").send(CLIP.frames(0, 10))
        self.clock.advance(0.25)
        self.assertFalse(self.channel.on_slate)
        self.assertEqual(tsverify.read(request.body).cc_errors, [])

    def test_viewers_of_the_slate_keep_the_channel_going(self) -> None:
        self.channel.check(schedule(), self.clock.seconds())
        request = self.client()
        self.at(30)
        self.assertLess(self.channel.idle_for(self.clock.seconds()), 1)
        request.disconnect()
        self.at(40)
        self.assertGreaterEqual(self.channel.idle_for(self.clock.seconds()), 9)

    def test_passthrough_output_shows_the_slate_as_a_program_of_its_own(self) -> None:
        self.channel.stop()
        self.make(output="passthrough")
        request, response = self.flowing(schedule(event("one", 0, 100, "1.ts")))
        self.at(3.25)
        self.assertTrue(self.channel.on_slate)
        slate = request.body[request.body.index(bytes([0x47, 0x50, 0x00])) - 188:]  # from its PAT, PMT 0x1000
        self.assertEqual(pids(slate)[:2], [0, 0x1000])
        self.assertEqual(tsverify.read(slate).cc_errors, [])

    def test_an_event_of_other_codecs_is_a_codec_change_both_ways(self) -> None:
        """The slate is H.264 + AAC: an MPEG-2 event's cut is a codec change (PMT version), as any."""
        mpeg2 = Clip(marker=2, video_type=MPEG2, audio_type=MP2, gop=5)
        sched = schedule(event("one", 5, 10, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        request = self.client()
        self.at(5)
        with capturedLogs() as events:
            self.channel.check(sched, self.clock.seconds())
            response = self.http.answer(BASE + "1.ts")
            response.send(mpeg2.frames(0, 10))
            self.clock.advance(0.25)
            self.assertEqual(self.status()["codecs"], "mpeg2+mp2")
            self.at(10)
            self.channel.check(sched, self.clock.seconds())
            self.clock.pump([0.1] * 5)
        text = log_text(events)
        self.assertIn("[PROXY] nhl_1 codecs change: h264+aac -> mpeg2+mp2", text)
        self.assertIn("[PROXY] nhl_1 codecs change: mpeg2+mp2 -> h264+aac", text)
        self.assertEqual((self.channel.on_slate, self.status()["codecs"]), (True, "h264+aac"))
        report = tsverify.read(request.body)
        self.assertEqual((report.cc_errors, report.pmt_pids), ([], {0x1000}))

    def test_on_codec_change_close_ends_the_connections_at_the_cut_from_the_slate(self) -> None:
        self.channel.stop()
        self.config = Config(stream=StreamConfig(on_codec_change="close", slate_size=SLATE_SIZE, chunk_size=188))
        self.channel = ChannelStream("nhl_1", self.clock, self.config.stream, self.registry, Redactor(),
                                     slate=ChannelSlate(self.clock, SLATE_SIZE, SlatePainter(self.clock),
                                                        ZoneInfo("UTC"), "nhl_1"))
        self.addCleanup(self.channel.stop)
        sched = schedule(event("one", 5, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        request = self.client()
        self.at(5)
        self.channel.check(sched, self.clock.seconds())
        self.http.answer(BASE + "1.ts").send(Clip(marker=2, video_type=MPEG2, audio_type=MP2).frames(0, 10))
        self.clock.advance(0.25)
        self.assertTrue(request.finished)  # its player tunes again and probes MPEG-2

    def test_held_words_follow_no_schedule(self) -> None:
        self.channel.hold_on_slate(SlateText(("1  NHL 1", "alice: all 2 connections in use")))
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        self.client()
        self.at(20)
        self.assertEqual((self.channel.on_slate, self.http.requests), (True, []))
        self.assertEqual(self.status()["slate"], "1  NHL 1\nalice: all 2 connections in use")

    def test_a_failing_slate_leaves_keepalive_and_the_channel(self) -> None:
        def fail(self: object, t: float) -> bytes:
            raise RuntimeError("encoder bug")

        self.patch(SlateSource, "packets_until", fail)
        sched = schedule(event("one", 10, 100, "1.ts"))
        self.channel.check(sched, self.clock.seconds())
        request = self.client()
        self.at(5)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(set(pids(request.body)), {0x1FFF})  # keepalive, as without a slate
        self.at(10)
        self.channel.check(sched, self.clock.seconds())
        self.http.answer(BASE + "1.ts").send(CLIP.frames(0, 10))
        self.clock.advance(0.25)  # the silent slate never went out: the splicer ends it at once
        self.assertEqual(self.status()["event"], "one")
        self.assertIn(0x100, pids(request.body))
        self.assertFalse(request.finished)
