"""
How a provider connection that dropped mid-event is retried (SPEC §7 "Faults"): backoff
between attempts, at most ``reconnect_attempts`` in a row, and a connection that streamed
long enough counts as a fresh start — providers that rotate connections every few minutes
must look seamless, however many times they do it.
"""

from __future__ import annotations

from epgd.net.timers import backoff

#: a connection that streamed this long resets the reconnect count
STABLE_AFTER = 5.0


class Reconnects:
    """The retry count of one source and the delay before its next attempt."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self.count = 0
        self._streaming_since: float | None = None

    def streaming(self, now: float) -> None:
        """A connection delivers MPEG-TS from ``now`` on."""
        self._streaming_since = now

    def next_delay(self, now: float, at_once: bool) -> float | None:
        """
        Seconds to wait before the next attempt (none for the first after a clean end,
        ``at_once``); None when the attempts are used up.
        """
        if self._streaming_since is not None and now - self._streaming_since >= STABLE_AFTER:
            self.count = 0
        self._streaming_since = None
        self.count += 1
        if self.count > self.attempts:
            return None
        return 0.0 if at_once and self.count == 1 else backoff(self.count)
