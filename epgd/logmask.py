"""
One place where credentials are masked in the log, whatever path an event takes: a
``log.failure`` traceback, Twisted's "Unhandled error in Deferred", a legacy ``log.msg``, a
``print`` that twistd redirects into the log. Call sites still mask what they build (their
messages read better for it); this catches everything they cannot.

``MaskingObserver`` is added to the global log publisher before twistd adds its own file or
syslog observer (``makeService`` runs first), so it sees every event first and masks it in
place: the observers after it, and the start-up buffer twistd replays into them, only ever
see the masked event.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import IO, Any

from twisted.logger import ILogObserver, LogPublisher, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from epgd.redact import Redactor

_KEEP = frozenset({"log_namespace", "log_level", "log_logger", "log_source", "log_time",
                   "log_trace", "log_observer"})


class _MaskedFailure(Failure):
    """The same failure (type, value, frames: ``check`` and ``trap`` still work); its text masked."""

    def __init__(self, failure: Failure, mask: Callable[[str], str]) -> None:  # noqa: D107
        self.__dict__.update(failure.__dict__)
        self._mask = mask

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        text = io.StringIO()
        Failure.printTraceback(self, text, elideFrameworkCode, detail)  # not ours: no recursion
        return self._mask(text.getvalue())

    def getErrorMessage(self) -> str:
        return self._mask(super().getErrorMessage())

    def printTraceback(self, file: IO[str] | None = None, elideFrameworkCode: int = 0,
                       detail: str = "default") -> None:
        (file or sys.stderr).write(self.getTraceback(elideFrameworkCode, detail))

    def printBriefTraceback(self, file: IO[str] | None = None, elideFrameworkCode: int = 0) -> None:
        self.printTraceback(file, elideFrameworkCode, detail="brief")

    def printDetailedTraceback(self, file: IO[str] | None = None,
                               elideFrameworkCode: int = 0) -> None:
        self.printTraceback(file, elideFrameworkCode, detail="verbose")

    def __str__(self) -> str:
        return self._mask(super().__str__())


@implementer(ILogObserver)
class MaskingObserver:
    """Masks, in place, every text an event carries and every failure's traceback."""

    def __init__(self, redactor: Redactor) -> None:
        self._mask = redactor.mask

    def use(self, redactor: Redactor) -> None:
        self._mask = redactor.mask

    def __call__(self, event: dict[str, Any]) -> None:
        mask = self._mask  # one redactor for the whole event, even if use() runs meanwhile
        for key, value in list(event.items()):
            if key in _KEEP or value is None or isinstance(value, (bool, int, float)):
                continue
            if isinstance(value, str):
                event[key] = mask(value)
            elif isinstance(value, Failure):
                if not isinstance(value, _MaskedFailure):
                    event[key] = _MaskedFailure(value, mask)
            elif isinstance(value, BaseException):
                event[key] = mask(f"{type(value).__name__}: {value}")
            elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                event[key] = tuple(mask(v) for v in value)  # legacy log.msg's "message"
            elif key not in ("log_failure", "failure") and not key.startswith("log_"):
                # Any other object is shown through str(): show it masked, as a str.
                text = str(value)
                masked = mask(text)
                if masked != text:
                    event[key] = masked


_installed: MaskingObserver | None = None


def install(redactor: Redactor, publisher: LogPublisher = globalLogPublisher) -> MaskingObserver:
    """
    The process's one masking observer, added to ``publisher`` the first time; later calls
    (another service tree built in the same process, as tests do) give it the new redactor.
    It stays for the life of the process: the last lines of a shutdown are masked too.
    """
    global _installed
    if _installed is None:
        _installed = MaskingObserver(redactor)
        publisher.addObserver(_installed)
    else:
        _installed.use(redactor)
    return _installed


__all__ = ["MaskingObserver", "install"]
