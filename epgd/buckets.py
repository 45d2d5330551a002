"""
A histogram in fixed buckets, as /metrics shows one: bounded memory whatever the uptime. Its
owner observes; ``epgd.metrics`` reads ``bounds``, ``counts`` and ``total`` at each scrape.
"""

from __future__ import annotations

import bisect


class Buckets:
    """Counts of observed values by upper bound (the last count: above every bound)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)
