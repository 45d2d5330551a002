"""
The small HTTP pieces of an HLS connection: a bounded whole-body fetch (playlists, keys, init
sections), AES-128 decryption as bytes arrive, and "is this segment MPEG-TS?". Failed fetches
fail with ``epgd.net.failure.RequestError`` (or the Agent's own failures), which
``epgd.net.failure.describe`` turns into one line and a fault word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from epgd.hls.playlist import ByteRange
from epgd.mpegts.packet import find_sync, sniff
from epgd.net.failure import RequestError
from epgd.net.response import Discard, HTTPGetter, final_url, is_success, status_line, stop_body

_ISO_BOXES = (b"ftyp", b"styp", b"moof", b"moov", b"sidx", b"emsg", b"free", b"mdat")


def segment_verdict(head: bytes) -> str | None:
    """``None`` when a segment's first bytes are MPEG-TS, else what they are (``"fMP4"``...)."""
    if head[4:8] in _ISO_BOXES:
        return "fMP4"
    verdict = sniff(head)
    if verdict is None or find_sync(head) != -1:
        return None
    return verdict


class Decrypt:
    """AES-128-CBC with PKCS#7 padding, decrypted as the bytes come (at most 32 held back)."""

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        self._unpad = PKCS7(128).unpadder()

    def update(self, data: bytes) -> bytes:
        return self._unpad.update(self._cipher.update(data))

    def finish(self) -> bytes:
        """The last block, unpadded; raises ValueError on a bad length or padding."""
        return self._unpad.update(self._cipher.finalize()) + self._unpad.finalize()


class Collect(Protocol):
    """A small body collected whole, up to ``limit`` bytes (more is a failed fetch)."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.parts: list[bytes] = []
        self.size = 0
        self.done: Deferred[bytes] = Deferred(lambda _: stop_body(self.transport))
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.done.errback(RequestError(f"{self.what} is over {self.limit} bytes"))
            stop_body(self.transport)
            return
        self.parts.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.done.called:
            if reason is None or reason.check(ResponseDone, PotentialDataLoss):
                self.done.callback(b"".join(self.parts))
            else:
                self.done.errback(RequestError(f"{self.what} cut short ({reason.getErrorMessage()})"))
        self.lost.callback(None)


class SmallFetches:
    """Whole small bodies through the provider's client, each within ``timeout``."""

    def __init__(self, http: HTTPGetter, headers: Mapping[str, list[str]], clock: IReactorTime,
                 timeout: float) -> None:
        self._http = http
        self._headers = dict(headers)
        self._clock = clock
        self._timeout = timeout
        self.open: set[Collect] = set()  # bodies being read, for close()

    def get(self, url: str, limit: int, what: str,
            byterange: ByteRange | None = None) -> Deferred[tuple[str, bytes]]:
        """``(final URL after redirects, body)``; fails with RequestError, a timeout, ..."""
        headers = dict(self._headers)
        if byterange is not None:
            headers["Range"] = [byterange.header]
        try:
            request = self._http.get(url, headers=headers, unbuffered=True)
        except Exception as e:  # a malformed URL raises at once
            return fail(RequestError(f"cannot request it: {e}"))

        def got(response: Any) -> Deferred[tuple[str, bytes]]:
            if not is_success(response):
                response.deliverBody(Discard())
                raise RequestError(status_line(response), response.code)
            collect = Collect(limit, what)
            self.open.add(collect)
            collect.lost.addBoth(lambda _: self.open.discard(collect))
            response.deliverBody(collect)
            where = final_url(response, url)
            whole = byterange is not None and response.code != 206  # the server ignored Range

            def result(body: bytes) -> tuple[str, bytes]:
                if whole and byterange is not None:
                    body = body[byterange.start:byterange.start + byterange.length]
                return where, body

            return collect.done.addCallback(result)

        request.addCallback(got)
        request.addTimeout(self._timeout, self._clock)
        return request

    def close(self) -> list[Deferred[None]]:
        """Drop every body being read; their ``lost`` Deferreds."""
        waits = []
        for collect in list(self.open):
            if collect.transport is not None:
                waits.append(collect.lost)
                stop_body(collect.transport)
        return waits
