"""Where a provider connection (``epgd.stream.upstream.Upstream``) stands: /streams/status shows it."""

from __future__ import annotations

from enum import StrEnum


class UpstreamState(StrEnum):
    NEW = "new"  # made, not started
    CONNECTING = "connecting"  # the first connection is being made
    STREAMING = "streaming"
    WAITING = "waiting"  # reconnecting after a drop (or between attempts)
    FAILED = "failed"  # gave up: consumers were told
    CLOSED = "closed"  # let go by the registry
