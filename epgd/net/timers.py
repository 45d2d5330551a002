"""Timer helpers: cancelling a delayed call that may have run, and the reconnect backoff."""

from __future__ import annotations

import random

from twisted.application.internet import backoffPolicy
from twisted.internet.interfaces import IDelayedCall

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 8.0
#: up to this much is added to each delay, so that N channels retrying one provider after
#: the same fault do not knock on it in lockstep
BACKOFF_JITTER = 0.2
_jitter_source = random.Random()


def _jitter() -> float:
    return _jitter_source.random() * BACKOFF_JITTER  # read at each call: tests set it to 0


_policy = backoffPolicy(initialDelay=BACKOFF_FIRST, maxDelay=BACKOFF_MAX, factor=2.0, jitter=_jitter)


def backoff(attempt: int) -> float:
    """Delay before the ``attempt``-th retry (1-based): 0.5 s doubling, at most 8 s, plus jitter."""
    return float(_policy(max(attempt - 1, 0)))


def cancel(call: IDelayedCall | None) -> None:
    """Cancel ``call`` unless it is None, has run or was cancelled already."""
    if call is not None and call.active():
        call.cancel()
