"""
The writes to viewers, a bounded number per reactor turn: between two turns the reactor reads
its sockets, and so the provider connections are read on time, however many viewers a channel
has. A live source does not wait for its reader: were a channel to write to its 1,000 viewers
in one go, the provider would go unread for as long, and what it sent meanwhile could be lost.

One ``Turns`` per stream manager is shared by every channel, so the bound holds for the
process, not per channel; channels take their writes in turn. A job is an iterator that
writes to one viewer per step; when nothing waits, the first turn runs at once (one viewer,
or a few, see no delay at all), the next ones a reactor turn apart (``callLater(0)``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from epgd.net.timers import cancel

#: viewer writes in one reactor turn, over every channel: ~2-3 ms of a 100 KB write each on
#: loopback, so the provider is read well within 100 ms whatever the number of viewers
WRITES_PER_TURN = 64


class Turns:
    """Runs writing jobs round-robin, ``per_turn`` writes per reactor turn."""

    log = Logger()

    def __init__(self, clock: IReactorTime, per_turn: int = WRITES_PER_TURN) -> None:
        self._clock = clock
        self.per_turn = per_turn
        self._jobs: deque[Iterator[object]] = deque()
        self._call: IDelayedCall | None = None
        self._running = False
        #: turns run and the most writes one of them made (tests and benchmarks read them)
        self.turns = 0
        self.most = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: Iterator[object]) -> None:
        """``job`` yields once per write it made; it runs now when nothing else waits."""
        self._jobs.append(job)
        if self._call is None and not self._running:
            self._turn()

    def _turn(self) -> None:
        self._call = None
        self._running = True
        jobs = self._jobs
        left = self.per_turn
        try:
            while jobs and left > 0:
                job = jobs[0]
                try:
                    next(job)
                except StopIteration:
                    jobs.popleft()
                    continue
                except Exception:  # a job guards its writes; this is a bug in the job itself
                    jobs.popleft()
                    self.log.failure("[PROXY] a writing job failed; its viewers wait for the next")
                    continue
                left -= 1
                jobs.rotate(-1)  # the next channel's turn
        finally:
            self._running = False
        self.turns += 1
        self.most = max(self.most, self.per_turn - left)
        if jobs:
            self._call = self._clock.callLater(0, self._turn)

    def stop(self) -> None:
        """Forget every job (the manager stops): no call is left behind."""
        self._jobs.clear()
        cancel(self._call)
        self._call = None
