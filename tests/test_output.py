"""The client side of a channel: joiners, keepalive, idle time, bitrate (epgd.stream.output)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.stream import output
from epgd.stream.client import Client
from epgd.stream.output import Output
from tests.streamfakes import FakeRequest, FakeTransport
from tests.tsutil import packet, pids, stream


class OutputTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.output = Output(self.clock, chunk_size=188, producer=FakeTransport())

    def client(self) -> FakeRequest:
        request = FakeRequest()
        self.output.add(Client(request, self.clock, buffer_limit=1 << 20), with_recent=True)
        return request

    def test_bitrate_over_the_last_seconds(self) -> None:
        self.client()
        for _ in range(40):  # 10 s at 125,000 bytes/s = 1000 kbit/s
            self.output.deliver(packet(0x100) * 166)  # 31,208 bytes every 0.25 s
            self.clock.advance(0.25)
            self.output.tick()
        self.assertAlmostEqual(self.output.bitrate_kbps, 998, delta=3)

    def test_keepalive_only_while_no_data_and_not_counted_as_delivery(self) -> None:
        request = self.client()
        self.output.deliver(stream(5))
        self.output.tick()
        for _ in range(8):
            self.clock.advance(0.25)
            self.output.tick()
        nulls = pids(request.body).count(0x1FFF)
        self.assertEqual(nulls, 4 * 4)  # 4 null packets every 0.5 s for 2 s
        self.assertEqual(self.output.idle_for(self.clock.seconds()), 2.0)

    def test_joiner_gets_nothing_when_pats_are_too_rare(self) -> None:
        self.output.deliver(stream(1))
        for _ in range(3):
            self.output.deliver(packet(0x100) * (output.JOIN_MAX_BYTES // 188 // 2))
        late = self.client()
        self.assertEqual(late.body, b"")

    def test_reset_join_keeps_old_source_bytes_from_joiners(self) -> None:
        self.output.deliver(stream(10))
        self.output.reset_join()
        late = self.client()
        self.assertEqual(late.body, b"")

    def test_no_keepalive_piles_up_for_a_paused_viewer(self) -> None:
        """A player paused for long is not dropped for keepalive it never asked for."""
        request = FakeRequest()
        client = Client(request, self.clock, buffer_limit=64 * 1024)
        self.output.add(client, with_recent=True)
        client.pauseProducing()
        for _ in range(4 * 120):  # two minutes paused
            self.clock.advance(0.25)
            self.output.tick()
        self.assertEqual(client.queued, 0)
        self.assertFalse(client.detached)
        client.resumeProducing()
        self.clock.advance(0.5)
        self.output.tick()
        self.assertIn(0x1FFF, pids(request.body))  # waiting again: keepalive resumes
