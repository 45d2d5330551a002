"""
The status page (SPEC §13): one HTML file and one small script, shipped as package data.

The page is static; what it shows comes from ``/streams/status``, ``/schedule.json`` and
``/health``, which its script polls. The few facts no endpoint carries (the version, the
configured base URL, whether an admin token is set, the lineups' names) are written into the
HTML as JSON when it is served, escaped so that no value can end the script element.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib.resources import files
from typing import Any

#: everything from epgd itself (the page works offline); inline styles are the page's own;
#: the Watch player's video is epgd's HLS, or (hls.js) a MediaSource behind a blob: URL
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' blob:; form-action 'none'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
#: hls.js as shipped in ``hls.min.js`` (``npm pack hls.js@1.7.4``, dist/hls.min.js unchanged;
#: its licence, Apache-2.0, in ``hls.min.js.LICENSE.txt``); tests check the file against it
HLS_JS_VERSION = "1.7.4"
HLS_JS_SHA256 = "cfc70cc9e9fc63d071919e087670abc760c8fd1bc889b88588026e4d22193bbe"
#: the scripts served beside the page (the Watch player, and hls.js for it)
SCRIPTS = ("watch.js", "hls.min.js")
_INFO_SLOT = "__EPGD_INFO__"


@functools.cache
def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def page(info: dict[str, Any]) -> bytes:
    """The HTML with ``info`` in its ``epgd-info`` JSON block."""
    blob = json.dumps(info, ensure_ascii=True)
    # "<", ">" and "&" as escapes: no value can close the <script> or open a comment
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _asset("index.html").replace(_INFO_SLOT, blob, 1).encode("utf-8")


def script() -> bytes:
    return _asset("status.js").encode("utf-8")


@functools.cache
def asset(name: str, gzipped: bool) -> tuple[bytes, bool]:
    """One of ``SCRIPTS`` (gzipped once, when asked and smaller): (body, whether gzipped)."""
    if name not in SCRIPTS:
        raise KeyError(name)
    body = files(__package__).joinpath(name).read_bytes()
    if gzipped and len(body) > 1024:
        return gzip.compress(body, compresslevel=9, mtime=0), True
    return body, False
