"""
The login throttle of viewer accounts (SPEC §15): failed logins counted per client address.

``FAILURES`` failures within ``WINDOW`` seconds close the address for ``BLOCK`` seconds,
whatever it sends then, so a password guesser learns nothing more. Bounded in memory whatever
the number of addresses, and driven by an injected clock.
"""

from __future__ import annotations

import collections

from twisted.internet.interfaces import IReactorTime

__all__ = ["BLOCK", "FAILURES", "MAX_ADDRESSES", "WINDOW", "Throttle"]

#: failed logins from one address within WINDOW seconds that close it for BLOCK seconds
FAILURES = 10
WINDOW = 60.0
BLOCK = 60.0
#: addresses whose failures are remembered at most (a flood from many addresses stays bounded)
MAX_ADDRESSES = 10000


class Throttle:
    """
    Failed logins per address: ``FAILURES`` within ``WINDOW`` seconds close the address for
    ``BLOCK`` seconds, whatever it sends then (a password guesser learns nothing more).
    """

    def __init__(self, clock: IReactorTime, failures: int = FAILURES, window: float = WINDOW,
                 block: float = BLOCK) -> None:
        self.clock = clock
        self.failures = failures
        self.window = window
        self.block = block
        self._failed: dict[str, collections.deque[float]] = {}
        self._closed: dict[str, float] = {}  # address -> when it opens again

    def blocked(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        until = self._closed.get(address)
        if until is None:
            return 0.0
        left = until - self.clock.seconds()
        if left <= 0:
            del self._closed[address]
            return 0.0
        return left

    def failed(self, address: str) -> bool:
        """Count one failed login; True when this one closes the address."""
        now = self.clock.seconds()
        times = self._failed.setdefault(address, collections.deque())
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.failures:
            del self._failed[address]
            self._closed[address] = now + self.block
            return True
        if len(self._failed) > MAX_ADDRESSES:
            self._forget(now)
        return False

    def _forget(self, now: float) -> None:
        """Drop addresses with no failure in the window, then the oldest, down to the bound."""
        for address in [a for a, t in self._failed.items() if not t or t[-1] <= now - self.window]:
            del self._failed[address]
        while len(self._failed) > MAX_ADDRESSES:
            del self._failed[next(iter(self._failed))]
        for address in [a for a, until in self._closed.items() if until <= now]:
            del self._closed[address]
