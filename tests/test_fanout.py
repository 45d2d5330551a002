"""One producer, many consumers, backpressure only when everyone is paused (epgd.stream.fanout)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.fanout import Fanout
from tests.streamfakes import FakeTransport


class Sink:
    def __init__(self, fanout: Fanout | None = None, drop_after: int | None = None) -> None:
        self.data: list[bytes] = []
        self.fanout = fanout
        self.drop_after = drop_after

    def write(self, data: bytes) -> None:
        self.data.append(data)
        if self.drop_after is not None and len(self.data) >= self.drop_after:
            assert self.fanout is not None
            self.fanout.remove(self)


class FanoutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.producer = FakeTransport()
        self.fanout = Fanout(self.producer)

    def test_every_consumer_gets_every_chunk_in_order(self) -> None:
        a, b = Sink(), Sink()
        self.fanout.add(a)
        self.fanout.add(b)
        self.fanout.write(b"1")
        self.fanout.write(b"2")
        self.assertEqual(a.data, [b"1", b"2"])
        self.assertEqual(b.data, [b"1", b"2"])

    def test_one_paused_consumer_does_not_pause_the_producer(self) -> None:
        a, b = Sink(), Sink()
        self.fanout.add(a)
        self.fanout.add(b)
        self.fanout.set_paused(a, True)
        self.assertFalse(self.producer.paused)
        self.fanout.set_paused(b, True)
        self.assertTrue(self.producer.paused)
        self.fanout.set_paused(a, False)
        self.assertFalse(self.producer.paused)

    def test_removing_the_last_unpaused_consumer_pauses(self) -> None:
        a, b = Sink(), Sink()
        self.fanout.add(a, paused=True)
        self.fanout.add(b)
        self.assertFalse(self.producer.paused)
        self.fanout.remove(b)
        self.assertTrue(self.producer.paused)
        self.fanout.remove(a)  # nobody left: keep reading (the join buffer stays fresh)
        self.assertFalse(self.producer.paused)

    def test_pause_and_resume_are_not_repeated(self) -> None:
        a = Sink()
        self.fanout.add(a)
        self.fanout.set_paused(a, True)
        self.fanout.set_paused(a, True)
        self.assertEqual(self.producer.pauses, 1)

    def test_new_producer_takes_the_current_state(self) -> None:
        a = Sink()
        self.fanout.add(a, paused=True)
        fresh = FakeTransport()
        self.fanout.set_producer(fresh)
        self.assertTrue(fresh.paused)

    def test_consumer_removing_itself_while_written(self) -> None:
        a = Sink(self.fanout, drop_after=1)
        b = Sink()
        self.fanout.add(a)
        self.fanout.add(b)
        self.fanout.write(b"1")
        self.fanout.write(b"2")
        self.assertEqual(a.data, [b"1"])
        self.assertEqual(b.data, [b"1", b"2"])
        self.assertEqual(len(self.fanout), 1)
