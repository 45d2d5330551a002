"""
Which of a channel's viewers are owed bytes, and the job that writes to them a few per
reactor turn (``turns.Turns``): each gets, in one write, everything the backlog holds past
its offset (at most ``write_max``), so a viewer reached late in a round gets more at once,
not more writes. A viewer whose socket is full is not written to; it is owed again when the
socket has room (``Client.on_ready``). A write that raises drops that viewer alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from twisted.python.failure import Failure

from epgd.stream.out.client import Client
from epgd.stream.out.turns import Turns


class Writes:
    """The viewers one channel owes bytes to, in order, each at most once."""

    def __init__(self, turns: Turns, write_max: int,
                 failed: Callable[[Client, Failure], None]) -> None:
        self._turns = turns
        self.write_max = write_max
        self._failed = failed
        self._queue: deque[Client] = deque()
        self._queued: set[Client] = set()
        self._job: Iterator[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def queue(self, client: Client) -> None:
        """``client`` is owed bytes; ``start()`` once all are queued."""
        if client not in self._queued:
            self._queued.add(client)
            self._queue.append(client)

    def start(self) -> None:
        """Write to the viewers queued: the first ones now if nothing else waits."""
        if self._queue and self._job is None:
            self._job = self._run()
            self._turns.add(self._job)

    def owe(self, client: Client) -> None:
        """One viewer is owed bytes (its socket has room again)."""
        self.queue(client)
        self.start()

    def clear(self) -> None:
        self._queue.clear()
        self._queued.clear()

    def _run(self) -> Iterator[None]:
        queue, queued = self._queue, self._queued
        while queue:
            client = queue.popleft()
            queued.discard(client)
            if self.write(client):
                yield None
        self._job = None

    def write(self, client: Client) -> bool:
        """One write to ``client``, if it can take one; True when it wrote (or failed)."""
        if client.detached or client.paused:
            return False
        try:
            written = client.pump(self.write_max)
        except Exception:
            self._failed(client, Failure())
            return True
        if written and client.lag and not client.paused and not client.detached:
            self.owe(client)  # more than one write's worth behind: again, in turn
        return written > 0
