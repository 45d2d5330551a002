"""The client side of a channel: joiners, keepalive, idle time, bitrate (epgd.stream.out.output)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.out import output
from epgd.stream.out.client import Client
from epgd.stream.out.output import Output
from epgd.stream.out.turns import Turns
from tests.streamfakes import FakeRequest, FakeTransport, run_due
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
        self.assertEqual(client.lag, 0)
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


class CountingRequest(FakeRequest):
    """A viewer's request that notes each body write in a log shared by all viewers."""

    def __init__(self, log: list[str], name: str) -> None:
        super().__init__()
        self.log = log
        self.name = name

    def write(self, data: bytes) -> None:
        super().write(data)
        if data:
            self.log.append(self.name)


class ManyViewersTests(SynchronousTestCase):
    """
    A channel with many viewers writes to them a bounded number per reactor turn, so what the
    reactor has to do meanwhile (read the provider, which does not wait) comes in between.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.producer = FakeTransport()
        self.turns = Turns(self.clock, per_turn=8)
        self.output = Output(self.clock, chunk_size=188, producer=self.producer, turns=self.turns)
        self.output.deliver(stream(1), entry=0)
        self.log: list[str] = []

    def viewers(self, n: int, limit: int = 1 << 24) -> list[tuple[Client, CountingRequest]]:
        made = []
        for i in range(n):
            request = CountingRequest(self.log, f"v{i}")
            client = Client(request, self.clock, buffer_limit=limit, on_detach=self.output.remove)
            self.output.add(client)
            made.append((client, request))
        while run_due(self.clock):  # joiners' first bytes
            pass
        self.log.clear()
        return made

    def test_a_provider_read_returns_after_a_bounded_number_of_viewer_writes(self) -> None:
        viewers = self.viewers(30)
        self.output.deliver(packet(0x100, fill=1) * 64)  # the provider's bytes, flushed at once
        self.assertEqual(len(self.log), 8, "the read path wrote to 8 viewers, not 30")
        turns = 0
        while run_due(self.clock):
            turns += 1
            self.assertLessEqual(len(self.log), 8 * (turns + 1))
        self.assertEqual(turns, 3)
        self.assertEqual(sorted(self.log), sorted(f"v{i}" for i in range(30)), "each once")
        for _, request in viewers:
            self.assertTrue(request.body.endswith(packet(0x100, fill=1) * 64))
        self.assertLessEqual(self.turns.most, 8)

    def test_a_viewer_reached_late_gets_what_came_meanwhile_in_one_write(self) -> None:
        viewers = self.viewers(16)
        self.output.deliver(packet(0x100, fill=1))
        self.output.flush()  # 8 viewers now, 8 in the next turn
        self.output.deliver(packet(0x100, fill=2))
        self.output.flush()  # meanwhile: the first 8 are owed again
        run_due(self.clock)
        late = viewers[-1][1]
        self.assertEqual(late.written[-1], packet(0x100, fill=1) + packet(0x100, fill=2))
        while run_due(self.clock):
            pass
        self.assertEqual(len(self.log), 8 + 8 + 8, "the late 8 were written once, not twice")
        for _, request in viewers:
            self.assertTrue(request.body.endswith(packet(0x100, fill=1) + packet(0x100, fill=2)))

    def test_a_stalled_viewer_holds_back_no_one_and_is_dropped_past_its_buffer(self) -> None:
        limit = 188 * 500
        viewers = self.viewers(20, limit=limit)
        stalled, stalled_request = viewers[3]
        stalled.pauseProducing()  # its socket stays full: its player froze
        sent = b""
        for i in range(12):
            data = packet(0x100, fill=i % 200) * 50
            sent += data
            self.output.deliver(data)
            while run_due(self.clock):
                pass
            self.assertFalse(self.producer.paused, "the provider is read on for the others")
        for client, request in viewers:
            if client is not stalled:
                self.assertTrue(request.body.endswith(sent))
                self.assertFalse(client.detached)
        self.assertTrue(stalled.detached)
        self.assertEqual(stalled.dropped, "too_slow")
        self.assertTrue(stalled_request.aborted)
        self.assertEqual(self.output.client_count, 19)

    def test_memory_for_paused_viewers_is_kept_once_and_bounded_by_client_buffer(self) -> None:
        limit = 188 * 500
        held = []
        for paused in (1, 50):
            self.setUp()
            viewers = self.viewers(60, limit=limit)
            for client, _ in viewers[:paused]:
                client.pauseProducing()
            for i in range(4):  # 4 x 188 x 100 bytes: 400 packets, under client_buffer
                self.output.deliver(packet(0x100, fill=i) * 100)
                while run_due(self.clock):
                    pass
            self.assertFalse(any(client.detached for client, _ in viewers))
            self.assertEqual({client.lag for client, _ in viewers[:paused]}, {4 * 188 * 100})
            held.append(self.output.backlog.size)
        self.assertEqual(held[0], held[1], "50 paused viewers hold what one does")
        self.assertLessEqual(held[1], limit + 188 * 200)

    def test_a_resumed_viewer_catches_up_in_bounded_writes(self) -> None:
        """As fast as its socket takes them, in writes of at most write_max, 8 per turn."""
        self.output.writes.write_max = 188 * 10
        ((client, request),) = self.viewers(1, limit=1 << 24)
        client.pauseProducing()
        for i in range(5):
            self.output.deliver(packet(0x100, fill=i) * 40)
        self.assertEqual(self.log, [])
        client.resumeProducing()
        self.assertEqual(len(self.log), 8, "one turn's worth at once")
        turns = 1
        while run_due(self.clock):
            turns += 1
        self.assertEqual((len(self.log), turns), (20, 3))
        self.assertLessEqual(max(len(w) for w in request.written), 188 * 10)
        self.assertTrue(request.body.endswith(b"".join(packet(0x100, fill=i) * 40
                                                      for i in range(5))))
