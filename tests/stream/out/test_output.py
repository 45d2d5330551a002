"""The client side of a channel: joiners, keepalive, idle time, bitrate (epgd.stream.out.output)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.out import output
from epgd.stream.out.client import Client
from epgd.stream.out.output import Output
from tests.streamfakes import FakeRequest, FakeTransport
from tests.tsutil import packet, pids, stream


class OutputTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.output = Output(self.clock, chunk_size=188, producer=FakeTransport())

    def client(self) -> FakeRequest:
        request = FakeRequest()
        self.output.add(Client(request, self.clock, buffer_limit=1 << 20))
        return request

    def test_bitrate_over_the_last_seconds(self) -> None:
        self.client()
        self.output.deliver(stream(1), entry=0)
        for _ in range(40):  # 10 s at 125,000 bytes/s = 1000 kbit/s
            self.output.deliver(packet(0x100) * 166)  # 31,208 bytes every 0.25 s
            self.clock.advance(0.25)
            self.output.tick()
        self.assertLessEqual(abs(self.output.bitrate_kbps - 998), 3)  # (trial ignores delta=)

    def test_keepalive_only_while_no_data_and_not_counted_as_delivery(self) -> None:
        request = self.client()
        self.output.deliver(stream(5), entry=0)
        self.output.tick()
        for _ in range(8):
            self.clock.advance(0.25)
            self.output.tick()
        nulls = pids(request.body).count(0x1FFF)
        self.assertEqual(nulls, 4 * 4)  # 4 null packets every 0.5 s for 2 s
        self.assertEqual(self.output.idle_for(self.clock.seconds()), 2.0)

    def test_joiner_starts_at_the_latest_entry_point_at_once(self) -> None:
        self.output.deliver(packet(0x100, fill=1) * 3)
        self.output.deliver(stream(4, fill=2), entry=0)
        self.output.deliver(packet(0x100, fill=3) * 2 + stream(3, fill=4), entry=2 * 188)
        self.output.deliver(packet(0x100, fill=5))
        late = self.client()
        self.assertEqual(late.body, stream(3, fill=4) + packet(0x100, fill=5))

    def test_joiner_waits_for_the_next_entry_when_they_are_too_rare(self) -> None:
        """Past JOIN_MAX_BYTES without an entry point, a joiner gets keepalive, then an entry."""
        self.output.deliver(stream(1), entry=0)
        for _ in range(3):
            self.output.deliver(packet(0x100) * (output.JOIN_MAX_BYTES // 188 // 2))
        late = self.client()
        self.assertEqual(late.body, b"")
        self.clock.advance(0.5)
        self.output.tick()
        self.assertEqual(set(pids(late.body)), {0x1FFF})  # kept warm while it waits
        self.assertEqual(self.output.client_count, 1)
        before = len(late.body)
        self.output.deliver(packet(0x100, fill=7) + stream(2, fill=8), entry=188)
        self.assertEqual(late.body[before:], stream(2, fill=8))
        self.output.deliver(packet(0x100, fill=9))
        self.assertEqual(late.body[before:], stream(2, fill=8) + packet(0x100, fill=9))

    def test_reset_join_keeps_old_source_bytes_from_joiners(self) -> None:
        self.output.deliver(stream(10), entry=0)
        self.output.reset_join()
        late = self.client()
        self.assertEqual(late.body, b"")

    def test_no_keepalive_piles_up_for_a_paused_viewer(self) -> None:
        """A player paused for long is not dropped for keepalive it never asked for."""
        request = FakeRequest()
        client = Client(request, self.clock, buffer_limit=64 * 1024)
        self.output.add(client)
        self.output.deliver(stream(1), entry=0)
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


class CoalescingTests(SynchronousTestCase):
    """Each flush costs one write per viewer: more viewers, fewer and larger writes."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.output = Output(self.clock, chunk_size=1880, producer=FakeTransport())
        self.output.deliver(stream(1), entry=0)
        self.output.flush()  # joiners start at once

    def viewers(self, n: int) -> list[FakeRequest]:
        requests = [FakeRequest() for _ in range(n)]
        for request in requests:
            self.output.add(Client(request, self.clock, buffer_limit=1 << 24))
        return requests

    def test_one_viewer_gets_chunk_size_writes(self) -> None:
        (request,) = self.viewers(1)
        before = len(request.written)
        self.output.deliver(stream(10))  # 1880 bytes: chunk_size
        self.assertEqual(len(request.written), before + 1)

    def test_many_viewers_get_larger_writes_and_no_later_than_100_ms(self) -> None:
        requests = self.viewers(10)
        before = [len(r.written) for r in requests]
        for _ in range(9):
            self.output.deliver(stream(10))
        self.assertEqual([len(r.written) for r in requests], before, "held: 9 x chunk_size")
        self.output.deliver(stream(10))  # 10 viewers: 10 x chunk_size
        self.assertEqual([len(r.written) - b for r, b in zip(requests, before, strict=True)],
                         [1] * 10)
        self.output.deliver(stream(1))
        self.clock.advance(output.FLUSH_AFTER)
        self.assertTrue(all(r.body.endswith(stream(1)) for r in requests))

    def test_the_multiple_is_bounded(self) -> None:
        requests = self.viewers(output.COALESCE_CLIENTS + 36)
        before = len(requests[0].written)
        for _ in range(output.COALESCE_CLIENTS):
            self.output.deliver(stream(10))
        self.assertEqual(len(requests[0].written), before + 1)

    def test_a_burst_of_joiners_shares_one_copy_of_the_recent_packets(self) -> None:
        for fill in range(5):
            self.output.deliver(stream(10, fill=fill))
        self.output.flush()
        first, second = self.viewers(2)
        self.assertEqual(first.written[1], stream(1) + b"".join(stream(10, fill=f) for f in range(5)))
        self.assertIs(second.written[1], first.written[1])  # after the headers (written[0])


class RecordingSink:
    """A sink (the HLS segmenter's seat) that keeps what it is given."""

    def __init__(self, fail: bool = False) -> None:
        self.data = b""
        self.cuts = 0
        self.fail = fail

    def write(self, data: bytes) -> None:
        if self.fail:
            raise RuntimeError("broken sink")
        self.data += data

    def cut(self) -> None:
        self.cuts += 1


class SinkTests(SynchronousTestCase):
    """One more reader of the output beside the viewers: what the HLS segmenter gets."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.producer = FakeTransport()
        self.output = Output(self.clock, chunk_size=188, producer=self.producer)

    def test_starts_at_the_recent_entry_then_gets_every_flush(self) -> None:
        self.output.deliver(packet(0x100, fill=1) * 2)
        self.output.deliver(stream(2, fill=2), entry=0)
        sink = RecordingSink()
        self.output.add_sink(sink)
        self.assertEqual(sink.data, stream(2, fill=2))
        self.output.deliver(packet(0x100, fill=3))
        self.assertEqual(sink.data, stream(2, fill=2) + packet(0x100, fill=3))
        self.output.remove_sink(sink)
        self.output.deliver(packet(0x100, fill=4))
        self.assertEqual(sink.data, stream(2, fill=2) + packet(0x100, fill=3))

    def test_with_no_viewer_the_channel_still_flows(self) -> None:
        sink = RecordingSink()
        self.output.add_sink(sink)
        for _ in range(3):
            self.output.deliver(packet(0x100))
        self.assertEqual(len(sink.data), 3 * 188)
        self.assertFalse(self.producer.paused)

    def test_a_new_program_is_told(self) -> None:
        sink = RecordingSink()
        self.output.add_sink(sink)
        self.output.reset_join()  # passthrough: a new source follows
        self.assertEqual(sink.cuts, 1)

    def test_a_failing_sink_is_dropped_and_viewers_go_on(self) -> None:
        request = FakeRequest()
        self.output.add(Client(request, self.clock, buffer_limit=1 << 20))
        self.output.deliver(stream(1), entry=0)
        broken = RecordingSink(fail=True)
        self.output.add_sink(broken)
        self.output.deliver(packet(0x100, fill=7))
        self.assertEqual(self.output.sinks, [])
        self.assertTrue(request.body.endswith(packet(0x100, fill=7)))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
