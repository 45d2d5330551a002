"""
How one TOML value is read: the typed readers of ``epgd.config`` and the endpoint-string check.

``Reader`` knows the file name and how to phrase a failure (one ``ConfigError`` line naming
file, key and value, credentials masked); its methods each read one shape or scalar. Which
keys exist and what they mean is ``epgd.config``'s business, so this module stays the same
when a section gains a key. ``check_listen`` is here because ``--listen`` (``epgd.tap``)
checks endpoint strings the same way ``server.listen`` does.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import math
import re
import socket
from collections.abc import Sequence
from typing import Any, NoReturn

from twisted.internet.endpoints import _parseServer  # see epgd.internals
from twisted.internet.testing import MemoryReactor

from epgd.configtypes import ConfigError
from epgd.redact import Redactor

__all__ = ["Reader", "check_listen", "is_int", "is_number", "show"]

_URL_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://")
_MAX_SHOWN = 80


def check_listen(description: str) -> str | None:
    """
    Why ``description`` is not a usable Twisted server endpoint string, or None if it is.
    Parses without listening (and without needing the systemd sockets to be there yet):
    Twisted has no public parse-only call, hence ``_parseServer``.
    """
    try:
        kind, args, kwargs = _parseServer(description, None)
        prefix = kind if isinstance(kind, str) else getattr(kind, "prefix", "")
        if prefix.lower() in ("tcp", "tcp6"):
            port = int(args[0] if args else kwargs.get("port", ""))
            if not 0 <= port <= 65535:
                return f"port {port} is out of range 0-65535"
        if prefix.lower() == "unix" and not (args[0] if args else kwargs.get("address", "")):
            return "a unix socket needs a path, like unix:/run/epgd.sock"
        if prefix == "systemd":
            _check_systemd(*args, **kwargs)
        elif not isinstance(kind, str):
            kind.parseStreamServer(MemoryReactor(), *args, **kwargs)
    except Exception as e:  # the parsers raise ValueError, TypeError, KeyError, OSError...
        return _endpoint_reason(e)
    return None


def _check_systemd(domain: str = "", index: str | None = None, name: str | None = None) -> None:
    """What the systemd parser would check, short of the inherited sockets being there."""
    if (index is None) == (name is None):
        raise ValueError("give exactly one of index= or name=")
    if index is not None and not index.isdigit():
        raise ValueError(f"index must be a number, got {index!r}")
    if not hasattr(socket, "AF_" + domain):
        raise ValueError(f"domain must be INET, INET6 or UNIX, got {domain!r}")


def _endpoint_reason(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, TypeError):
        text = "unexpected or missing arguments (" + text + ")"
    return text.replace("\n", " ")


def show(value: Any) -> str:
    """A value as the user wrote it, JSON-ish: ``"four"``, ``4.5``, ``true``."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        text = value.isoformat()
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)  # "inf", "-inf", "nan": TOML's spelling, not JSON's "Infinity"
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def is_int(value: Any) -> bool:
    """An integer, and not a boolean (TOML's ``true`` is a Python int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


class Reader:
    """
    Reads the values of one file; knows its name and how to phrase a failure. Every reader
    returns the value it checked (normalised where it says so) or fails with one line.
    """

    def __init__(self, path: str, redactor: Redactor) -> None:
        self.path = path
        self.redactor = redactor

    def fail(self, key: str, problem: str, value: Any = None, shown: bool = True) -> NoReturn:
        got = f", got {show(value)}" if shown else ""
        line = f"{self.path}: {key}: {problem}{got}" if key else f"{self.path}: {problem}{got}"
        raise ConfigError(self.redactor.mask(line.replace("\n", " ")))

    # -- shapes ------------------------------------------------------------------------

    def table(self, value: Any, key: str, known: Sequence[str], required: Sequence[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"must be a table ([{key}])", value)
        for name in value:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                self.fail(f"{key}.{name}" if key else name, "unknown key" + hint, shown=False)
        for name in required:
            if name not in value:
                self.fail(f"{key}.{name}", "required key is missing", shown=False)
        return value

    # -- scalars -----------------------------------------------------------------------

    def integer(self, value: Any, key: str, lo: int, hi: int | None = None) -> int:
        if not is_int(value) or value < lo or (hi is not None and value > hi):
            rule = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
            self.fail(key, f"must be an integer {rule}", value)
        return int(value)

    def seconds(self, value: Any, key: str, lo: float | None = 0.0, open_lo: bool = True) -> float:
        ok = is_number(value) and (lo is None or value > lo or (not open_lo and value == lo))
        if not ok:
            rule = ("a positive number" if open_lo else "a number of at least 0") if lo is not None else "a number"
            self.fail(key, f"must be {rule} of seconds", value)
        return float(value)

    def string(self, value: Any, key: str, nonempty: bool = False, oneline: bool = True) -> str:
        if not isinstance(value, str):
            self.fail(key, "must be a string", value)
        if nonempty and not value.strip():
            self.fail(key, "must not be empty", value)
        if oneline and any(c in value for c in "\r\n\x00"):
            self.fail(key, "must not contain line breaks or NUL", shown=False)
        return value

    def choice(self, value: Any, key: str, allowed: Sequence[str]) -> str:
        if value not in allowed:
            options = ", ".join(f'"{a}"' for a in allowed)
            self.fail(key, f"must be one of {options}", value)
        return str(value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, "must be true or false", value)
        return value

    def strings(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, list):
            self.fail(key, "must be an array of strings", value)
        return tuple(self.string(v, f"{key}[{i}]") for i, v in enumerate(value))

    def regex(self, value: Any, key: str) -> str:
        text = self.string(value, key)
        try:
            re.compile(text, re.IGNORECASE)
        except re.error as e:
            self.fail(key, f"invalid regex {show(text)}: {e}", shown=False)
        return text

    def source(self, value: Any, key: str, nonempty: bool) -> str:
        """A URL (http, https or file) or a file path."""
        text = self.string(value, key, nonempty=nonempty).strip()
        scheme = _URL_SCHEME.match(text)
        if scheme and scheme.group(1).lower() not in ("http", "https", "file"):
            self.fail(key, "must be an http(s) URL or a file path", text)
        return text

    def stamp(self, value: Any, key: str) -> _dt.datetime:
        if not isinstance(value, _dt.datetime) or value.tzinfo is None:
            self.fail(key, "must be a TOML date-time with a UTC offset, like 2026-11-24T19:00:00-05:00", value)
        return value
