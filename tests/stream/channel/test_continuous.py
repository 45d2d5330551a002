"""
A channel with continuous output (the default): every switch, fail-over and reconnection goes
through its splicer (epgd.stream.channel.stream + epgd.mpegts.splice.continuous), driven by a task.Clock.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, StreamConfig
from epgd.mpegts.liveedge import WATCH
from epgd.mpegts.splice.layout import OUT_PMT, OUT_VIDEO
from epgd.net import timers
from epgd.redact import Redactor
from epgd.stream.channel.stream import ChannelStream
from epgd.stream.out.client import Client
from epgd.stream.registry import UpstreamRegistry
from tests.streamfakes import BASE, T0, FakeHTTP, FakeRequest, event, finish_when_done, log_text, schedule
from tests.tsgen import MP2, MPEG2, Source
from tests.tsverify import read, ring, video_marks

NULLS = (b"\x47\x1f\xff\x10" + b"\xff" * 184) * 6  # past the intake's sniffing and aligner

# The upstream's aligner passes a packet on once the next one's sync byte is in: the last
# packet of each send waits for the next send.


def frames_of(body: bytes, marker: int) -> list[bool]:
    """Whether each video PES of ``marker``'s source in ``body`` is a key frame."""
    return [rap for m, rap in video_marks(read(body)) if m == marker]


def scrambled(data: bytes, pid: int) -> bytes:
    """``data`` with every packet of ``pid`` marked scrambled (transport_scrambling_control)."""
    out = bytearray(data)
    for p in range(0, len(out) - 187, 188):
        if ((out[p + 1] & 0x1F) << 8 | out[p + 2]) == pid:
            out[p + 3] |= 0x80
    return bytes(out)


class ContinuousChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)  # exact retry delays
        self.clock = Clock()
        self.clock.advance(T0)
        self.http = FakeHTTP()
        self.dropped: list[str] = []
        self.make()

    def make(self, **stream: object) -> None:
        settings: dict[str, object] = {"connect_timeout": 4, "hold_after_end": 60, "chunk_size": 188}
        settings.update(stream)
        self.config = Config(stream=StreamConfig(**settings),  # type: ignore[arg-type]
                             providers=(ProviderConfig("main", BASE + "get.php"),))
        self.registry = UpstreamRegistry(self.config, self.clock, Redactor.for_urls([BASE]),
                                         http_factory=lambda provider: self.http)
        self.channel = ChannelStream("nhl_1", self.clock, self.config.stream, self.registry,
                                     Redactor.for_urls([BASE]))
        self.addCleanup(self.channel.stop)

    def client(self) -> FakeRequest:
        request = FakeRequest()

        def gone(client: Client) -> None:
            if client.dropped:
                self.dropped.append(client.dropped)
            self.channel.client_gone(client)

        client = Client(request, self.clock, buffer_limit=1 << 24, channel_id="nhl_1", on_detach=gone)
        finish_when_done(request, client.done)
        self.channel.add_client(client)
        return request

    def at(self, seconds: float) -> None:
        self.clock.advance(T0 + seconds - self.clock.seconds())

    def switch(self, old: Source, new: Source) -> tuple[FakeRequest, object, object]:
        """A viewer of ``old``'s event, then the boundary: ``new``'s connection is asked for."""
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 100, 200, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        request = self.client()
        first = self.http.answer(BASE + "1.ts")
        first.send(old.frames(0, 12))
        self.at(100)
        self.channel.check(sched, self.clock.seconds())
        second = self.http.answer(BASE + "2.ts")
        second.send(NULLS)  # its first bytes come a while before its media: it sends in real time,
        self.clock.advance(WATCH)  # no burst (liveedge; test_burst has those)
        return request, first, second

    def test_a_switch_finishes_the_old_frame_and_cuts_in_at_a_key_frame(self) -> None:
        old = Source(marker=1, gop=5, video_packets=4)
        new = Source(marker=2, gop=5, pmt=0x200, video=0x201, audio=(0x202,), service=9, clock=777_777)
        request, first, second = self.switch(old, new)
        frame_12 = old.frames(12, 1)
        first.send(frame_12[:3 * 188])  # the old source is in the middle of frame 12 ...
        second.send(new.frames(2, 2))  # frames 2, 3 of the new: no key frame yet
        self.assertNotIn(2, {m for m, _ in video_marks(read(request.body))})
        second.send(new.frames(4, 2))  # ... when the new one's key frame (5) makes the switch ready
        self.assertFalse(first.transport.stopped)  # the old keeps flowing to finish its frame
        # frame 13 starts: frame 12 was the last; its sound goes on while frame 12 is shown
        # (frame 14's sound begins as it ends: the cut; frame 15 only lets that packet through)
        first.send(frame_12[3 * 188:] + old.frames(13, 3))
        self.assertTrue(first.transport.stopped)
        second.send(new.frames(6, 4))
        body = request.body
        report = read(body)
        self.assertEqual(report.cc_errors, [])
        self.assertEqual(report.pmt_pids, {OUT_PMT})
        self.assertEqual(report.programs, {1})
        self.assertEqual(len(frames_of(body, 1)), 13)  # frames 0-12; 13 never went out
        last_old = max(i for i, (m, _) in enumerate(video_marks(report)) if m == 1)
        start = report.stamps[OUT_VIDEO][last_old][0]
        end = report.stamps[OUT_VIDEO][last_old + 1][0]
        video_packets = [i for i in range(start, end)  # with a payload: not the PCRs sent alone
                         if ((body[i * 188 + 1] & 0x1F) << 8 | body[i * 188 + 2]) == OUT_VIDEO
                         and body[i * 188 + 3] & 0x10]
        self.assertEqual(len(video_packets), 4)  # frame 12 whole
        self.assertEqual(frames_of(body, 2)[0], True)  # the new source starts at its key frame
        video = report.decode_stamps(OUT_VIDEO)
        self.assertTrue(all(ring(b, a) > 0 for a, b in zip(video, video[1:], strict=False)))
        self.assertEqual(self.channel.switches, 1)

    def test_no_key_frame_in_5s_cuts_in_at_the_next_frame(self) -> None:
        self.channel.stop()
        self.make(connect_timeout=30)  # neither provider connection counts as silent meanwhile
        old = Source(marker=1)
        new = Source(marker=2, gop=1000, pmt=0x200, video=0x201, audio=(0x202,))
        request, first, second = self.switch(old, new)
        second.send(new.frames(3, 5))
        with capturedLogs() as events:
            for n in range(12, 17):  # five seconds: the old source keeps flowing meanwhile
                first.send(old.frames(n, 1))
                self.clock.advance(1.0)
        self.assertIn("no random-access point from 2.ts in time, cutting over at its next frame",
                      log_text(events))
        second.send(new.frames(8, 3))
        first.send(old.frames(17, 3))  # the last picture shown, and its sound
        self.assertEqual(frames_of(request.body, 2), [False, False, False])  # frames 8, 9, 10
        self.assertEqual(read(request.body).cc_errors, [])

    def test_a_burst_of_the_new_sources_past_is_skipped_to_its_latest_key_frame(self) -> None:
        """
        A provider that opens with a burst of its recent past: entering at the burst's first
        key frame would leave the channel that much further behind live at every switch.
        """
        old = Source(marker=1, gop=5)
        new = Source(marker=2, gop=5, pmt=0x200, video=0x201, audio=(0x202,))
        request, first, second = self.switch(old, new)
        second.send(new.frames(4, 2))  # its key frame 5: the switch is ready, the old one finishes ...
        second.send(new.frames(6, 8))  # ... while the burst goes on: key frame 10 among it
        first.send(old.frames(12, 3))
        second.send(new.frames(14, 2))
        marks = frames_of(request.body, 2)
        self.assertEqual(marks, [True, False, False, False, False, True])  # frames 10-15: 5-9 skipped
        self.assertEqual(read(request.body).cc_errors, [])

    def test_a_fresh_source_without_key_frames_plays_after_five_seconds(self) -> None:
        """SPEC §7.1's 5 s bound holds for a channel's first entry too, not 4 MiB (46 s at 0.7 Mbit/s)."""
        source = Source(marker=1, gop=10_000)  # frame 0 is its only key frame
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        request = self.client()
        response = self.http.answer(BASE + "1.ts")
        with capturedLogs() as events:
            for n in range(1, 126):  # five seconds of frames, in real time
                response.send(source.frames(n, 1))
                self.clock.advance(0.04)
            self.assertEqual(frames_of(request.body, 1), [])  # keepalive only, so far
            self.clock.advance(0.1)
            response.send(source.frames(126, 5))
        self.assertEqual(len(frames_of(request.body, 1)), 5)  # frames 126-130: all that came after the wait
        self.assertIn("no random-access point within 5 s: entering at the next frame", log_text(events))

    def test_a_scrambled_source_fails_saying_so(self) -> None:
        """An encrypted stream can never be entered: after the whole wait it fails, and the log says why."""
        source = Source(marker=1)
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        self.client()
        response = self.http.answer(BASE + "1.ts")
        with capturedLogs() as events:
            for n in range(0, 16 * 25):
                response.send(scrambled(source.frames(n, 1), source.video or 0))
                self.clock.advance(0.04)
        self.assertIn("its stream is scrambled (encrypted", self.channel.error or "")
        self.assertIn("1.ts its stream is scrambled (encrypted; ", log_text(events))
        self.assertTrue(response.transport.stopped)  # let go; the channel tries again or fails over

    def test_a_new_source_with_no_way_in_has_failed(self) -> None:
        old = Source(marker=1)
        new = Source(marker=2, psi_every=10_000, pmt=0x200, video=0x201, audio=(0x202,))
        new._psi = lambda frame: b""  # type: ignore[method-assign]  # never a PAT or PMT
        _, _, second = self.switch(old, new)
        for _ in range(3):
            second.send(new.frames(0, 5))
            self.clock.advance(5.0)
        self.assertIn("sent no PAT and PMT within 15s", self.channel.error or "")

    def test_a_reconnection_re_enters_at_a_key_frame(self) -> None:
        source = Source(marker=1, gop=5)
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        request = self.client()
        first = self.http.answer(BASE + "1.ts")
        first.send(source.frames(0, 8))
        first.end()  # the provider rotates the connection
        self.clock.advance(0)
        again = self.http.answer(BASE + "1.ts")
        again.send(source.frames(12, 6))  # it resumes mid-GOP: frame 15 is the key frame
        report = read(request.body)
        self.assertEqual(report.cc_errors, [])
        marks = frames_of(request.body, 1)
        self.assertEqual(len(marks), 8 + 3)  # frames 0-7, then 15, 16, 17
        self.assertTrue(marks[8])
        video = report.decode_stamps(OUT_VIDEO)
        self.assertTrue(all(ring(b, a) > 0 for a, b in zip(video, video[1:], strict=False)))

    def test_a_codec_change_is_logged_and_shown(self) -> None:
        old = Source(marker=1)
        new = Source(marker=2, video_type=MPEG2, audio_type=MP2, pmt=0x200, video=0x201, audio=(0x202,))
        request, first, second = self.switch(old, new)
        self.assertEqual(self.channel.status(self.clock.seconds())["codecs"], "h264+aac")
        with capturedLogs() as events:
            second.send(new.frames(0, 6))
            first.send(old.frames(12, 3))  # the old source's last picture, shown with its sound
        self.assertIn("[PROXY] nhl_1 codecs change: h264+aac -> mpeg2+mp2", log_text(events))
        self.assertEqual(self.channel.status(self.clock.seconds())["codecs"], "mpeg2+mp2")
        self.assertFalse(request.finished)  # on_codec_change = "continue"
        self.assertEqual([v for _, v, _ in read(request.body).pmts], [0, 1])

    def test_on_codec_change_close_ends_the_clients_at_the_cut(self) -> None:
        self.channel.stop()
        self.make(on_codec_change="close")
        old = Source(marker=1)
        new = Source(marker=2, video_type=MPEG2, audio_type=MP2, pmt=0x200, video=0x201, audio=(0x202,))
        request, first, second = self.switch(old, new)
        second.send(new.frames(0, 6))
        first.send(old.frames(12, 3))  # the old source's last picture, shown with its sound
        self.assertTrue(request.finished)
        self.assertEqual({m for m, _ in video_marks(read(request.body))}, {1})  # nothing of the new
        self.assertEqual(self.dropped, ["codec_change"])  # what /metrics counts it as
        later = self.client()  # the player tunes in again: the new codecs from a key frame
        second.send(new.frames(6, 6))
        report = read(later.body)
        self.assertEqual(report.pmts[0][2], [(MPEG2, OUT_VIDEO), (MP2, 0x101)])
        self.assertEqual(frames_of(later.body, 2)[0], True)
        self.assertFalse(later.finished)

    def test_on_codec_change_new_pid_puts_the_new_codecs_on_pids_of_their_own(self) -> None:
        self.channel.stop()
        self.make(on_codec_change="new_pid")
        old = Source(marker=1)
        new = Source(marker=2, video_type=MPEG2, audio_type=MP2, pmt=0x200, video=0x201, audio=(0x202,))
        request, first, second = self.switch(old, new)
        second.send(new.frames(0, 6))
        first.send(old.frames(12, 3))
        self.assertFalse(request.finished)
        self.assertEqual([streams for _, _, streams in read(request.body).pmts],
                         [[(0x1B, OUT_VIDEO), (0x0F, 0x101)], [(MPEG2, 0x120), (MP2, 0x121)]])

    def test_a_joiner_starts_at_our_pat_and_pmt_before_a_key_frame(self) -> None:
        source = Source(marker=1, gop=4, psi_every=8)
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        self.client()
        response = self.http.answer(BASE + "1.ts")
        response.send(source.frames(0, 10))
        late = self.client()
        self.assertEqual(late.body[1:3], b"\x40\x00")  # a PAT first
        self.assertEqual(frames_of(late.body, 1), [True, False])  # frames 8, 9

    def test_a_failing_tick_does_not_stop_the_keepalive(self) -> None:
        """One exception in the ticker's body must not stop it for good (issue 11, item 6)."""
        self.channel.check(schedule(event("one", 0, 100, "1.ts")), self.clock.seconds())
        request = self.client()
        real_tick = self.channel.output.tick
        calls = []

        def tick() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a broken write")
            real_tick()

        self.channel.output.tick = tick  # type: ignore[method-assign]
        for _ in range(12):
            self.clock.advance(0.25)
        self.flushLoggedErrors(RuntimeError)
        self.assertGreater(len(calls), 5)
        self.assertIn(b"\x47\x1f\xff", request.body)  # keepalive null packets still go out
