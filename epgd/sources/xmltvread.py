"""
Reading a guide's bytes for the XMLTV parser: is it XMLTV at all, replaying the sniffed head,
surviving a gzip stream cut short, and telling a truncated document from a whole one.
"""

from __future__ import annotations

import re
import zlib
from threading import Event
from typing import Any

from lxml import etree

from epgd.sources import SourceError

STOPPED = "guide parse stopped: epgd is shutting down"
TAIL = 4096  # bytes kept to see whether a guide ends with its closing </tv>
_ROOT_END = re.compile(rb"</\s*tv\s*>\Z")


def not_xmltv(head: bytes) -> str | None:
    """Why the first bytes show the data is not XMLTV at all, or None when it may be."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None  # UTF-16: leave it to libxml2
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "guide is empty"
    lower = text.lower()
    if text[:1] in (b"{", b"["):
        return "guide is not XMLTV: got a JSON response"
    if b"<html" in lower or b"<!doctype html" in lower or b"<body" in lower:
        return "guide is not XMLTV: got an HTML page"
    if text[:1] != b"<":
        return "guide is not XMLTV: the data is not XML"
    return None


class Reader:
    """
    What iterparse reads from: replays the sniffed head, then the stream. A gzip stream cut
    short (or corrupt) ends the data instead of failing it, so the programmes before the break
    are kept; ``error`` says what happened.

    It also counts the bytes it hands on (decompressed) against ``max_bytes`` and looks at
    ``stop``: either ends the data at once (libxml2 reads through it, so it cannot raise),
    and ``raise_refusal`` then fails the parse.
    """

    def __init__(self, stream: Any, max_bytes: int | None = None, stop: Event | None = None) -> None:
        self._stream = stream
        self._read = getattr(stream, "read1", stream.read)  # read1: no data lost on a break
        self._head = b""
        self._max_bytes = max_bytes
        self._stop = stop
        self._count = 0
        self.refusal: str | None = None
        self.error: str | None = None
        self.tail = b""  # the last bytes read: does the document end with </tv>?

    def check_size(self, size: int) -> None:
        """Refuse data of ``size`` bytes now when it is over the limit."""
        if self._max_bytes is not None and size > self._max_bytes:
            self.refusal = f"guide is larger than {_size(self._max_bytes)} once decompressed"
            self.raise_refusal()

    def check_stop(self) -> None:
        if self._stop is not None and self._stop.is_set():
            self.refusal = STOPPED
            self.raise_refusal()

    def raise_refusal(self) -> None:
        if self.refusal is not None:
            raise SourceError(self.refusal)

    def head(self, size: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < size:
            data = self.read(size - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        self._head = b"".join(parts)
        return self._head

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        if self.error is not None or self.refusal is not None:
            return b""
        if self._stop is not None and self._stop.is_set():
            self.refusal = STOPPED
            return b""
        try:
            data = self._read(size if size and size > 0 else 1 << 16)
        except (OSError, EOFError, zlib.error) as e:
            self.error = one_line(e)
            return b""
        self._count += len(data)
        if self._max_bytes is not None and self._count > self._max_bytes:
            self.refusal = f"guide is larger than {_size(self._max_bytes)} once decompressed"
            return b""
        self.tail = data[-TAIL:] if len(data) >= TAIL else (self.tail + data)[-TAIL:]
        return data


def repaired(error_log: Any, cut_short: bool) -> str:
    """
    What the recovering parser had to repair, as one line ("" when nothing): it keeps going
    after bad markup ("<" in a title, an undeclared entity, an entity bomb stopped by
    libxml2's amplification limit), and whatever followed may be lost or mangled. In a
    document ``cut_short``, the errors at the point where the data ends are that cut (told
    already), not damage.
    """
    errors = [e for e in error_log if e.level >= etree.ErrorLevels.ERROR]
    if cut_short and errors:
        end = (errors[-1].line, errors[-1].column)
        errors = [e for e in errors if (e.line, e.column) != end]
    if not errors:
        return ""
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"XML error at line {first.line}: {' '.join(str(first.message).split())}{more}"


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def file_tail(path: str) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, 2) - TAIL))
        return f.read()


def ends_whole(tail: bytes) -> bool:
    """
    Whether data ending in ``tail`` ends with the root's ``</tv>`` (trailing whitespace,
    comments and PIs allowed). The recovering parser closes a cut document by itself, so
    this is how a truncated download is told from a whole one.
    """
    text = tail.rstrip()
    while text.endswith((b"-->", b"?>")):
        opener = b"<!--" if text.endswith(b"-->") else b"<?"
        index = text.rfind(opener)
        if index < 0:
            return False
        text = text[:index].rstrip()
    return _ROOT_END.search(text) is not None


def plain_path(path: Any) -> bool:
    """A path libxml2 will not mistake for a URL or percent-decode."""
    return isinstance(path, str) and path.isascii() and not any(c in path for c in "%:?#")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or error.__class__.__name__
