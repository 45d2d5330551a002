"""Timer helpers (epgd.net.timers): cancelling a call that may have run, the reconnect backoff."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.net import timers
from epgd.net.timers import backoff, cancel


class CancelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.ran: list[str] = []

    def test_an_active_call_is_cancelled(self) -> None:
        call = self.clock.callLater(1, self.ran.append, "ran")
        cancel(call)
        self.clock.advance(2)
        self.assertEqual(self.ran, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_call_that_ran_is_left_alone(self) -> None:
        call = self.clock.callLater(1, self.ran.append, "ran")
        self.clock.advance(1)
        cancel(call)  # Twisted would raise AlreadyCalled
        self.assertEqual(self.ran, ["ran"])

    def test_a_cancelled_call_is_left_alone(self) -> None:
        call = self.clock.callLater(1, self.ran.append, "ran")
        call.cancel()
        cancel(call)  # Twisted would raise AlreadyCancelled
        self.clock.advance(2)
        self.assertEqual(self.ran, [])

    def test_none_is_nothing_to_cancel(self) -> None:
        cancel(None)


class BackoffTests(SynchronousTestCase):
    def test_backoff_doubles_up_to_8(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)
        self.assertEqual([backoff(n) for n in range(1, 7)], [0.5, 1, 2, 4, 8, 8])

    def test_the_first_retry_waits_the_first_delay_however_it_is_counted(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)
        self.assertEqual((backoff(0), backoff(1)), (0.5, 0.5))

    def test_backoff_has_jitter_so_retries_are_not_in_lockstep(self) -> None:
        """Channels retrying one provider after the same fault knock at different moments."""
        self.patch(timers, "BACKOFF_JITTER", 0.2)
        delays = [backoff(1) for _ in range(50)]
        self.assertTrue(all(0.5 <= d <= 0.5 + timers.BACKOFF_JITTER for d in delays))
        self.assertGreater(len(set(delays)), 40)

    def test_jitter_never_passes_the_cap_by_more_than_itself(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.2)
        delays = [backoff(20) for _ in range(50)]
        self.assertTrue(all(8.0 <= d <= 8.2 for d in delays), delays)
