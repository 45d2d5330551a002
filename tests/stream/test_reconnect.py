"""Retrying a provider connection that dropped mid-event (epgd.stream.reconnect)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.net import timers
from epgd.stream.reconnect import STABLE_AFTER, Reconnects


class ReconnectsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)

    def test_backoff_then_give_up(self) -> None:
        reconnects = Reconnects(attempts=3)
        self.assertEqual([reconnects.next_delay(0.0, False) for _ in range(4)], [0.5, 1.0, 2.0, None])

    def test_a_clean_end_reconnects_at_once_the_first_time(self) -> None:
        reconnects = Reconnects(attempts=3)
        self.assertEqual(reconnects.next_delay(0.0, True), 0.0)
        self.assertEqual(reconnects.next_delay(0.0, True), 1.0)

    def test_a_provider_rotating_connections_never_runs_out(self) -> None:
        """Every connection streams a while, then ends: each drop is a first retry again."""
        reconnects = Reconnects(attempts=2)
        now = 0.0
        for _ in range(20):
            reconnects.streaming(now)
            now += STABLE_AFTER
            self.assertEqual(reconnects.next_delay(now, True), 0.0)

    def test_a_connection_that_drops_at_once_counts_on(self) -> None:
        reconnects = Reconnects(attempts=2)
        reconnects.next_delay(0.0, False)
        reconnects.streaming(1.0)
        self.assertEqual(reconnects.next_delay(1.0 + STABLE_AFTER / 2, False), 1.0)
        reconnects.streaming(3.0)
        self.assertIsNone(reconnects.next_delay(3.1, False))
