"""One HTTP viewer: push producer, reading on through a shared backlog, dropped past client_buffer (epgd.stream.out.client)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.out.backlog import Backlog
from epgd.stream.out.client import Client
from epgd.stream.out.fanout import Fanout
from tests.streamfakes import FakeRequest, FakeTransport, finish_when_done
from tests.tsutil import stream


class ClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.request = FakeRequest()
        self.gone: list[Client] = []
        self.client = Client(self.request, self.clock, buffer_limit=10_000,
                             channel_id="nhl_1", on_detach=self.gone.append)
        self.upstream = FakeTransport()
        self.fanout = Fanout(self.upstream)
        self.client.fanout = self.fanout
        self.fanout.add(self.client)
        finish_when_done(self.request, self.client.done)

    def test_registers_as_streaming_producer_and_sends_headers_at_once(self) -> None:
        self.client.start()
        self.assertIs(self.request.producer, self.client)
        self.assertTrue(self.request.streaming)
        self.assertEqual(self.request.written, [b""])

    def test_joiner_gets_the_initial_packets_at_once(self) -> None:
        initial = stream(3)
        self.client.start(initial)
        self.assertEqual(self.request.body, initial)
        self.assertEqual(self.client.bytes_sent, len(initial))

    def test_writes_go_straight_out_while_the_socket_takes_them(self) -> None:
        self.client.start()
        data = stream(20)
        self.client.write(data[:1880])
        self.client.write(data[1880:])
        self.assertEqual(self.request.written[1:], [data[:1880], data[1880:]])
        self.assertEqual(self.client.bytes_sent, len(data))

    def follow(self) -> Backlog:
        """The client reads on through a channel's backlog, from its start."""
        backlog = Backlog()
        self.client.follow(backlog, 0)
        self.client.on_ready = self.ready.append
        return backlog

    def test_paused_client_waits_then_catches_up_in_one_write(self) -> None:
        self.ready: list[Client] = []
        backlog = self.follow()
        self.client.start()
        self.client.pauseProducing()
        self.assertTrue(self.upstream.paused)  # the only consumer: backpressure upstream
        data = stream(20)
        backlog.append(data)
        self.assertEqual(self.client.pump(1 << 20), 0)  # its socket is full: not written to
        self.assertEqual(self.request.body, b"")
        backlog.append(data)
        self.client.resumeProducing()
        self.assertFalse(self.upstream.paused)
        self.assertEqual(self.ready, [self.client], "it asks to be written to")
        self.assertEqual(self.client.pump(1 << 20), 2 * len(data))
        self.assertEqual(self.request.written[1:], [data + data])  # one write
        self.assertEqual(self.client.lag, 0)

    def test_a_write_carries_at_most_its_limit_and_the_rest_follows(self) -> None:
        self.ready = []
        backlog = self.follow()
        self.client.start()
        data = stream(30)
        backlog.append(data)
        self.assertEqual(self.client.pump(188 * 20), 188 * 20)
        self.assertEqual(self.client.lag, 188 * 10)
        self.assertEqual(self.client.pump(188 * 20), 188 * 10)
        self.assertEqual(self.request.body, data)

    def test_slow_client_is_dropped_past_its_buffer_and_holds_no_bytes_of_its_own(self) -> None:
        self.ready = []
        backlog = self.follow()
        self.client.start()
        self.client.pauseProducing()
        chunk = stream(10)  # 1880 bytes
        with capturedLogs() as events:
            for _ in range(100):
                backlog.append(chunk)
                if self.client.fell_behind():
                    break
                self.assertLessEqual(self.client.lag, 10_000)
        self.assertTrue(self.client.detached)
        self.assertEqual(backlog.end, 6 * len(chunk), "dropped once past client_buffer")
        self.assertEqual(self.gone, [self.client])
        self.assertNotIn(self.client, self.fanout)
        self.assertTrue(self.request.finished)
        self.assertIsNone(self.request.producer)
        self.assertTrue(self.request.aborted, "closed at once, its unread buffers dropped")
        self.assertTrue(any("dropping client" in str(e.get("log_format")) for e in events))

    def test_disconnect_detaches_once(self) -> None:
        self.client.start()
        self.request.disconnect()
        self.client.stopProducing()
        self.client.done.cancel()
        self.assertEqual(self.gone, [self.client])
        self.assertNotIn(self.client, self.fanout)
        self.client.write(stream(20))  # ignored, no error
        self.assertFalse(self.request.finished)

    def test_cancelling_done_detaches(self) -> None:
        self.client.start()
        self.client.done.cancel()
        self.assertEqual(self.gone, [self.client])
        self.assertIsNone(self.request.producer)

    def test_end_flushes_then_finishes(self) -> None:
        self.client.start()
        data = stream(2)
        self.client.write(data)
        self.client.end()
        self.assertEqual(self.request.body, data)
        self.assertTrue(self.request.finished)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_start_after_disconnect_does_not_register(self) -> None:
        self.request.disconnect()
        self.client.start(stream(2))
        self.assertIsNone(self.request.producer)
        self.assertEqual(self.gone, [self.client])
