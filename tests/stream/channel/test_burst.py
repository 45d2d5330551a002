"""
Issue 17: a provider that sends every new connection a burst of its past, then real time. A
switch to it must not run the channel's stream further ahead of the wall clock each time:
the old source plays on until the new one sends a key frame in real time (SPEC §7.1's 5 s
bound still holds); a source sending in real time is cut to as fast as before. Driven like
test_continuous: a ChannelStream on a task.Clock with fake provider connections.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, StreamConfig
from epgd.mpegts.liveedge import AHEAD
from epgd.net import timers
from epgd.redact import Redactor
from epgd.stream.channel.stream import ChannelStream
from epgd.stream.out.client import Client
from epgd.stream.registry import UpstreamRegistry
from tests.streamfakes import BASE, T0, FakeHTTP, FakeRequest, event, finish_when_done, log_text, schedule
from tests.tsgen import Source
from tests.tsverify import WRAP, read, video_marks

FRAME = 0.04  # tsgen's 25 fps
OLD = dict(marker=1, gop=5)
NEW = dict(marker=2, gop=5, pmt=0x200, video=0x201, audio=(0x202,), clock=5_000_000)


class BurstTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)
        self.clock = Clock()
        self.clock.advance(T0)
        config = Config(stream=StreamConfig(connect_timeout=30, hold_after_end=60, chunk_size=188),
                        providers=(ProviderConfig("main", BASE + "get.php"),))
        registry = UpstreamRegistry(config, self.clock, Redactor.for_urls([BASE]),
                                    http_factory=lambda provider: self.http)
        self.http = FakeHTTP()
        self.channel = ChannelStream("nhl_1", self.clock, config.stream, registry, Redactor.for_urls([BASE]))
        self.addCleanup(self.channel.stop)
        self.old, self.new = Source(**OLD), Source(**NEW)  # type: ignore[arg-type]
        self.registry = registry
        self.arrived: list[tuple[float, int]] = []  # (time, bytes the viewer had by then)
        self.sent = {1: 0, 2: 0}  # frames sent, per source

    def start(self) -> None:
        """A viewer of the old source's event (sending in real time), then the switch."""
        sched = schedule(event("one", 0, 100, "1.ts"), event("two", 100, 200, "2.ts"))
        self.channel.check(sched, self.clock.seconds())
        self.request = FakeRequest()
        client = Client(self.request, self.clock, buffer_limit=1 << 24, channel_id="nhl_1",
                        on_detach=self.channel.client_gone)
        finish_when_done(self.request, client.done)
        self.channel.add_client(client)
        self.first = self.http.answer(BASE + "1.ts")
        self.step(old=25)  # a second of the old source at once (its first burst), then real time
        while self.clock.seconds() < T0 + 100:
            self.step(old=1)
        self.channel.check(sched, self.clock.seconds())
        self.second = self.http.answer(BASE + "2.ts")

    def step(self, old: int = 1, new: int = 0) -> None:
        """Frames of each source that come now, then a frame's time."""
        if old:
            self.first.send(self.old.frames(self.sent[1], old))
            self.sent[1] += old
        if new:
            self.second.send(self.new.frames(self.sent[2], new))
            self.sent[2] += new
        self.arrived.append((self.clock.seconds(), len(self.request.body)))
        self.clock.advance(FRAME)

    def lead(self, since: float) -> float:
        """How far the output's clock ran ahead of the wall clock from ``since`` on, at most."""
        report = read(self.request.body)
        points = []
        for index, pcr in report.pcrs:
            when = next((t for t, size in self.arrived if size >= (index + 1) * 188), None)
            if when is not None:
                points.append((when, pcr))
        t0, p0 = points[0]
        return max(((p - p0) % WRAP) / 90_000 - (t - t0) for t, p in points if t >= since)

    def entered_at(self) -> int:
        """The new source's frame the cut entered at: its frames out count back from the last sent."""
        return self.sent[2] - len([m for m, _ in video_marks(read(self.request.body)) if m == 2])

    def test_a_bursting_source_is_entered_at_a_key_frame_that_came_in_real_time(self) -> None:
        self.start()
        before = self.lead(self.clock.seconds() - 1.0)
        with capturedLogs() as events:
            for _ in range(8):  # 1.6 s of its past in 0.32 s, then real time
                self.step(new=5)
            for _ in range(50):
                self.step(new=1)
        self.assertEqual(self.channel.switches, 1)
        entry = self.entered_at()
        self.assertEqual(entry % 5, 0)  # a key frame ...
        self.assertGreaterEqual(entry, 40)  # ... past the burst's
        self.assertLessEqual(self.lead(self.clock.seconds() - 1.0) - before, AHEAD + FRAME)
        self.assertIn("2.ts sent media ahead of real time: entering it", log_text(events))

    def test_a_source_in_real_time_is_cut_to_at_its_first_key_frame_at_once(self) -> None:
        self.start()
        before = self.lead(self.clock.seconds() - 1.0)
        self.sent[2] = 1  # joined mid-GOP: frames 1-4 in real time, then key frame 5
        for _ in range(5):
            self.step(new=1)
        self.assertEqual(self.channel.state, "closing")  # found at once: the old finishes its frame
        self.step()
        self.step()  # the old source's frame and the sound it carries are done: the cut
        self.assertEqual(self.channel.switches, 1)
        self.assertEqual(self.entered_at(), 5)
        for _ in range(25):
            self.step(new=1)
        self.assertLessEqual(self.lead(self.clock.seconds() - 1.0) - before, 2 * FRAME)

    def test_a_source_bursting_for_good_is_entered_after_five_seconds(self) -> None:
        self.start()
        with capturedLogs() as events:
            for _ in range(124):  # five times real time, for 4.96 s
                self.step(new=5)
            self.assertEqual(self.channel.switches, 0)  # the old plays on meanwhile
            for _ in range(4):  # 5 s: the latest key frame, once the old's frame is done
                self.step(new=5)
        self.assertEqual(self.channel.switches, 1)
        self.assertIn("2.ts sent no key frame in real time within 5s: entering at its latest", log_text(events))
        self.assertEqual(self.entered_at() % 5, 0)
        self.assertGreaterEqual(self.entered_at(), 5 * 124 - 5)

    def test_an_hls_source_is_entered_at_once_though_its_segments_come_at_once(self) -> None:
        """
        An HLS source hands on each segment as it is fetched, seconds of media at a time: read
        as a burst, every switch to one would wait for the 5 s bound. It is entered as before.
        """
        self.start()
        upstream = self.registry.get(BASE + "2.ts")
        assert upstream is not None
        self.step(new=5)  # a segment of 15 frames in 0.12 s, and nothing more yet
        upstream.kind = "hls"  # what an answer that was a playlist made it (its reader feeds it)
        self.step(new=5)
        self.step(new=5)
        self.step()
        self.step()
        self.assertEqual(self.channel.switches, 1)
        self.assertLess(self.entered_at(), 15)
