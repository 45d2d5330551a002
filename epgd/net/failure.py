"""
The one way a failed HTTP request becomes what epgd says about it: a masked line for the log,
status and error text, and a fixed fault word for ``epgd_upstream_failures_total{reason}``.

Twisted's Agent wraps what went wrong (``ResponseNeverReceived([Failure(CancelledError)])``
after a timeout's cancel), so the reasons inside are read, not the wrapper.
"""

from __future__ import annotations

from typing import Literal, get_args

from attrs import frozen
from twisted.internet.defer import CancelledError
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.error import ConnectError, ConnectingCancelledError, DNSLookupError
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.python.failure import Failure
from twisted.web.client import PartialDownloadError, ResponseFailed, ResponseNeverReceived

from epgd.net.pool import HeadersTooLong
from epgd.redact import Redactor

#: the words a source's fault is counted under, for /metrics
Fault = Literal["connect_error", "timeout", "http_error", "not_ts", "dropped", "ended"]
FAULTS: tuple[Fault, ...] = get_args(Fault)

_TIMEOUTS = (ConnectTimeout, DeferredTimeout, CancelledError, ConnectingCancelledError)


class RequestError(Exception):
    """
    A request that failed in a way already worth one line: ``code`` is the HTTP status when
    the answer was an error status; without one the body was unusable (too large, cut short,
    not what was asked for).
    """

    def __init__(self, why: str, code: int | None = None) -> None:
        super().__init__(why)
        self.code = code


@frozen
class Failed:
    """What to say about a failed request: one masked line and its fault word."""

    line: str
    fault: Fault


def reasons(failure: Failure) -> list[Failure]:
    """The failures an Agent wraps, or ``[failure]`` itself."""
    if failure.check(ResponseNeverReceived, ResponseFailed, PartialDownloadError):
        found = getattr(failure.value, "reasons", None) or []
        return [r for r in found if isinstance(r, Failure)] or [failure]
    return [failure]


def describe(failure: Failure, timeout: float | None, redactor: Redactor) -> Failed:
    """
    One line and a fault word for ``failure``. ``timeout``: the limit a cancelled or timed-out
    request ran into ("no answer within 4s"); None when a cancel means the caller gave up.
    """
    error = failure.value
    if isinstance(error, RequestError):
        return Failed(_one_line(str(error), redactor), "http_error" if error.code is not None else "not_ts")
    inner = reasons(failure)
    if any(r.check(*_TIMEOUTS) for r in inner):
        if timeout is None:
            return Failed("cancelled", "timeout")
        return Failed(f"no answer within {timeout:g}s", "timeout")
    too_long = [r for r in inner if r.check(HeadersTooLong)]
    if too_long:
        return Failed(str(too_long[0].value), "http_error")
    detail = "; ".join(r.getErrorMessage() or repr(r.value) for r in inner)
    # ResponseNeverReceived is a ResponseFailed, but no answer ever started: a connect error
    never = failure.check(ResponseNeverReceived) is not None
    if failure.check(ResponseFailed, PartialDownloadError) and not never:
        text = "connection lost before the download completed" + (f" ({detail})" if detail else "")
        return Failed(_one_line(text, redactor), "dropped")
    if never or any(r.check(DNSLookupError, ConnectError) for r in inner):
        return Failed(_one_line(f"cannot connect: {detail}", redactor), "connect_error")
    if isinstance(error, FileNotFoundError):
        return Failed("no such file", "connect_error")
    if isinstance(error, OSError):
        return Failed(_one_line(error.strerror or str(error), redactor), "connect_error")
    return Failed(_one_line(f"{error.__class__.__name__}: {error}", redactor), "connect_error")


def _one_line(text: str, redactor: Redactor) -> str:
    return " ".join(redactor.mask(text).split())
