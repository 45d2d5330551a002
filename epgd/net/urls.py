"""URLs as epgd sends and names them: userinfo turned into HTTP Basic, a source's short name."""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit, urlunsplit


def split_userinfo(url: str) -> tuple[str, bytes | None]:
    """
    ``http://U:P@host/x`` -> (``http://host/x``, ``b"Basic ..."``): Agent refuses a userinfo
    in the host, and players (VLC, ffmpeg, Kodi) send it as HTTP Basic authentication.
    A URL without userinfo comes back unchanged, with None.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode())
    return urlunsplit(parts._replace(netloc=host)), b"Basic " + token


def last_segment(url: str) -> str:
    """``http://h/live/u/p/2.ts?x=1`` -> ``2.ts``: how switch log lines name sources."""
    path = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] or path
