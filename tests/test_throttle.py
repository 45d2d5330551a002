"""Tests for epgd.throttle: failed logins per address on a ``task.Clock``, in bounded memory."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd import throttle
from epgd.throttle import Throttle


class ThrottleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.throttle = Throttle(self.clock)

    def test_the_tenth_failure_in_a_minute_closes_for_a_minute(self) -> None:
        closed = [self.throttle.failed("a") for _ in range(10)]
        self.assertEqual(closed, [False] * 9 + [True])
        self.assertEqual(self.throttle.blocked("a"), 60)
        self.assertEqual(self.throttle.blocked("b"), 0)
        self.clock.advance(59.5)
        self.assertEqual(self.throttle.blocked("a"), 0.5)
        self.clock.advance(0.5)
        self.assertEqual(self.throttle.blocked("a"), 0)
        self.assertFalse(self.throttle.failed("a"))  # counting starts afresh

    def test_failures_older_than_the_window_do_not_count(self) -> None:
        for _ in range(9):
            self.throttle.failed("a")
            self.clock.advance(7)  # ten failures over 63 s
        self.assertFalse(self.throttle.failed("a"))

    def test_memory_stays_bounded(self) -> None:
        self.patch(throttle, "MAX_ADDRESSES", 100)
        for i in range(1000):
            self.throttle.failed(f"198.51.{i // 256}.{i % 256}")
        self.assertLessEqual(len(self.throttle._failed), 101)
        for _ in range(10):
            self.throttle.failed("203.0.113.7")
        self.assertEqual(self.throttle.blocked("203.0.113.7"), 60)
