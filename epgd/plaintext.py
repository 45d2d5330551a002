"""The one shape every epgd error answer has (SPEC §4): one line of plain text."""

from __future__ import annotations

from twisted.web.http import Request
from twisted.web.iweb import IRequest


def error_line(request: IRequest | Request, code: int, line: str) -> bytes:
    """Set ``code`` and a text/plain type; the body is ``line`` folded onto one line."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return (line.replace("\n", " ") + "\n").encode("utf-8")
