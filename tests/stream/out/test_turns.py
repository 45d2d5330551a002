"""
The writes to viewers spread over reactor turns (epgd.stream.out.turns): however many viewers
and channels, one turn makes at most ``per_turn`` writes, so what else the reactor has to do
(reading the provider) comes between two turns; and a broken job stops alone.
"""

from __future__ import annotations

from collections.abc import Iterator

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.out.turns import Turns
from tests.streamfakes import run_due


def writes(log: list[str], name: str, count: int) -> Iterator[None]:
    """A channel's job: ``count`` writes, each noted in ``log``."""
    for i in range(count):
        log.append(f"{name}{i}")
        yield None


class TurnsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.turns = Turns(self.clock, per_turn=4)
        self.log: list[str] = []

    def test_the_first_turn_runs_at_once_the_rest_a_reactor_turn_apart(self) -> None:
        self.turns.add(writes(self.log, "a", 10))  # e.g. from the provider's dataReceived
        self.log.append("back in the reactor")
        self.assertEqual(self.log, ["a0", "a1", "a2", "a3", "back in the reactor"],
                         "one turn's worth at once, no more")
        self.assertEqual(run_due(self.clock), 1)
        self.assertEqual(self.log[5:], ["a4", "a5", "a6", "a7"])
        self.assertEqual(run_due(self.clock), 1)
        self.assertEqual(self.log[-2:], ["a8", "a9"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.turns.most, 4)

    def test_a_few_writes_see_no_delay(self) -> None:
        self.turns.add(writes(self.log, "a", 3))
        self.assertEqual(self.log, ["a0", "a1", "a2"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_channels_share_the_bound_and_take_turns(self) -> None:
        self.turns.add(writes(self.log, "a", 6))
        self.turns.add(writes(self.log, "b", 6))  # a turn is already due: b waits for it
        self.assertEqual(self.log, ["a0", "a1", "a2", "a3"])
        run_due(self.clock)
        self.assertEqual(self.log[4:], ["a4", "b0", "a5", "b1"])
        run_due(self.clock)
        self.assertEqual(self.log[8:], ["b2", "b3", "b4", "b5"])
        self.assertEqual(self.turns.most, 4)

    def test_a_job_added_during_a_turn_joins_it_with_no_nested_turn(self) -> None:
        def job() -> Iterator[None]:
            self.turns.add(writes(self.log, "b", 1))  # e.g. a viewer resumed by a write
            yield None

        self.turns.add(job())
        self.assertEqual(self.log, ["b0"], "in the same turn, once the running step is done")

    def test_a_broken_job_is_dropped_alone_and_logged(self) -> None:
        def broken() -> Iterator[None]:
            yield None
            raise RuntimeError("a bug")

        with capturedLogs() as events:
            self.turns.add(broken())
            self.turns.add(writes(self.log, "a", 6))
            for _ in range(3):
                run_due(self.clock)
        self.assertEqual(len(self.log), 6)
        self.assertEqual(len([e for e in events if e.get("log_failure") is not None]), 1)
        self.flushLoggedErrors(RuntimeError)

    def test_stop_leaves_no_call_behind(self) -> None:
        self.turns.add(writes(self.log, "a", 100))
        self.turns.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.turns), 0)
