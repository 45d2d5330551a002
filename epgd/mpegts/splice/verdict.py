"""What a splicer's per-packet handler decides for its packet (``epgd.mpegts.splice.rewrite``)."""

from __future__ import annotations

from enum import Enum

__all__ = ["BEFORE", "GONE", "HOLD", "KEEP", "LAST", "PSI", "RESYNC", "STOP", "Verdict"]


class Verdict(Enum):
    """What a per-packet handler decided for its packet."""

    KEEP = "rewritten in place"
    GONE = "dropped"
    HOLD = "needs the next chunk: hold from here"
    STOP = "the end of a closing source: nothing from here on"
    LAST = "the end of a closing source: this packet goes out, nothing after it"
    RESYNC = "the source's clock jumped here: find a new way in"
    BEFORE = "a random-access point: our PAT + PMT go right before it"
    PSI = "the source's PAT or PMT: replaced by ours"


# The verdicts as module names too: the per-packet code compares them with ``is``, and reading a
# member through its Enum class costs several times a global's (CPython 3.11).
KEEP = Verdict.KEEP
GONE = Verdict.GONE
HOLD = Verdict.HOLD
STOP = Verdict.STOP
LAST = Verdict.LAST
RESYNC = Verdict.RESYNC
BEFORE = Verdict.BEFORE
PSI = Verdict.PSI
