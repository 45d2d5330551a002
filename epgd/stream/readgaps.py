"""
How long epgd went without reading a provider stream it wanted bytes from: a live source
(a channel's encoder, a CDN) does not wait for its reader, so any such gap past the
source's own window is video lost for every viewer. /metrics shows them per provider
(``epgd_provider_read_gap_seconds``); a gap is epgd busy elsewhere, or the provider sending
nothing. Gaps while epgd itself paused the connection (every viewer slow: backpressure)
are not counted.
"""

from __future__ import annotations

from epgd.buckets import Buckets

#: upper bounds (seconds): fine below and round the 100 ms a busy reactor should stay under
READ_GAP_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ReadGaps(Buckets):
    """The gaps between reads of one provider's streams."""

    def __init__(self, bounds: tuple[float, ...] = READ_GAP_BUCKETS) -> None:
        super().__init__(bounds)


class ReadClock:
    """One connection's reads, told to its provider's ``ReadGaps``."""

    __slots__ = ("gaps", "_last", "_pauses")

    def __init__(self, gaps: ReadGaps | None) -> None:
        self.gaps = gaps
        self._last: float | None = None
        self._pauses = 0

    def read(self, now: float, pauses: int) -> None:
        """
        A read at ``now``; ``pauses``: how often epgd has paused the connection so far (a
        gap that spans a pause is backpressure, not a gap).
        """
        last, self._last = self._last, now
        if last is not None and pauses == self._pauses and self.gaps is not None:
            self.gaps.observe(now - last)
        self._pauses = pauses

    def restart(self) -> None:
        """A new connection: its first read follows no other."""
        self._last = None
