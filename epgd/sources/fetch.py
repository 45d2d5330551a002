"""
Downloading provider files: an http(s) URL through treq, or a local path (also ``file://``).

The body is streamed into a temporary file next to its final place, never held in memory
(guides reach 500 MB), and is on disk (fsync) before the caller renames it into place.
``Content-Encoding: gzip`` is asked for and undone on the fly by treq
(``ContentDecoderAgent``), so the size cap counts decompressed bytes; a body that is itself a
``.gz`` file is stored as it is and recognised later by its magic bytes
(``epgd.sources.open_raw``), where the parser counts it again. Two clocks run: a cap on the
whole download (``provider.fetch_timeout``) and an inactivity timeout (no byte for
``stream.connect_timeout``: connecting, waiting for the answer, or mid-body). Userinfo in a URL
becomes an ``Authorization: Basic`` header. Every message passes through the provider's
``Redactor``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    ResponseDone,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from epgd.net.failure import RequestError, describe
from epgd.net.pool import HeaderLimitedPool
from epgd.net.response import Discard, is_success, status_line, stop_body
from epgd.net.timers import cancel
from epgd.net.urls import split_userinfo
from epgd.redact import Redactor
from epgd.sources import SourceError

DOWNLOAD_TIMEOUT = 3600.0  # seconds for a whole download (provider.fetch_timeout)
INACTIVITY_TIMEOUT = 10.0  # seconds without a byte (stream.connect_timeout)
MAX_BYTES = 4 << 30  # a provider streaming forever must not fill the disk


class _FileBody(Protocol):
    """Writes a response body to a file; ``done`` fires with the byte count."""

    def __init__(self, out: Any, max_bytes: int, on_data: Callable[[], object]) -> None:
        self.out = out
        self.max_bytes = max_bytes
        self.on_data = on_data
        self.received = 0
        self.done: Deferred[int] = Deferred(lambda _: self._abort())

    def _abort(self) -> None:
        if self.transport is not None:
            stop_body(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.on_data()
        self.received += len(data)
        if self.received > self.max_bytes:
            limit = f"{self.max_bytes >> 20} MB" if self.max_bytes >= 1 << 20 else f"{self.max_bytes} bytes"
            self.done.errback(RequestError(f"larger than {limit}, gave up"))
            self._abort()
            return
        try:
            self.out.write(data)
        except OSError as e:
            self.done.errback(RequestError(f"cannot store it: {e.strerror or e}"))
            self._abort()

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(self.received)
        else:
            self.done.errback(reason)


def _local_path(source: str) -> str | None:
    """The file path ``source`` names, or None when it is an http(s) URL."""
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        return unquote(parts.path)
    if len(scheme) > 1:  # "C:\\guide.xml" has a one-letter "scheme"
        raise SourceError(f"unsupported URL scheme {scheme!r} (use http, https or a file path)")
    return source


class Fetcher:
    """
    Downloads one provider's files: one connection pool, one User-Agent and set of headers.
    Timeouts run on ``clock`` (the reactor unless a test passes a ``task.Clock``).
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        user_agent: str,
        headers: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        *,
        timeout: float = DOWNLOAD_TIMEOUT,
        inactivity: float = INACTIVITY_TIMEOUT,
        max_bytes: int = MAX_BYTES,
        clock: IReactorTime | None = None,
        run_in_thread: Callable[..., Deferred[Any]] | None = None,
    ) -> None:
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.redactor = redactor or Redactor()
        self.timeout = timeout
        self.inactivity = inactivity
        self.max_bytes = max_bytes
        # Fetches are hours apart: nothing is gained by keeping idle connections open.
        self._pool = HeaderLimitedPool(reactor, persistent=False)
        self._client = HTTPClient(Agent(reactor, connectTimeout=inactivity, pool=self._pool))
        self._headers = Headers({b"Accept": [b"*/*"]})
        self._headers.setRawHeaders(b"User-Agent", [user_agent.encode("utf-8")])
        for name, value in (headers or {}).items():
            self._headers.setRawHeaders(name.encode("utf-8"), [value.encode("utf-8")])
        self._run_in_thread = run_in_thread or (
            lambda f, *a, **kw: deferToThreadPool(reactor, reactor.getThreadPool(), f, *a, **kw)
        )

    def fetch(self, source: str, directory: str, what: str = "file",
              max_bytes: int | None = None) -> Deferred[str]:
        """
        Store ``source`` (URL or path) in a new temporary file in ``directory`` and fire with
        that file's path; the caller renames or removes it. Fails with ``SourceError``
        (``what`` names the file in the message: "playlist", "guide"). ``max_bytes`` (else
        the fetcher's own cap) bounds what is stored, decompressed.
        """
        # The URL is followed by a space: masking the message again (as callers may) must not
        # eat into the text after a masked query value.
        label = f"{what} {self.redactor.mask(source)} failed"
        try:
            path = _local_path(source)
            os.makedirs(directory, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{what}-", suffix=".part")
        except SourceError as e:
            return fail(SourceError(f"{label}: {e}"))
        except OSError as e:
            return fail(SourceError(f"{label}: cannot write to {directory}: {e.strerror}"))
        out = os.fdopen(fd, "wb")
        expired: list[str] = []
        if path is not None:
            out.close()
            d: Deferred[Any] = self._run_in_thread(_copy, path, temp)
        else:
            def expire(reason: str) -> None:
                expired.append(reason)
                d.cancel()

            whole = self.clock.callLater(
                self.timeout, expire, f"no complete answer within {self.timeout:g} s")
            idle = self.clock.callLater(
                self.inactivity, expire, f"nothing received for {self.inactivity:g} s")
            d = self._download(source, out, max_bytes or self.max_bytes,
                               lambda: idle.reset(self.inactivity))
            d.addBoth(_closing(out, whole, idle))

        def failed(failure: Failure) -> Failure:
            remove_quietly(temp)
            reason = expired[0] if expired else describe(failure, self.inactivity, self.redactor).line
            return Failure(SourceError(f"{label}: {reason}"))

        d.addCallbacks(lambda _: temp, failed)
        return d

    def _download(self, source: str, out: Any, max_bytes: int,
                  on_data: Callable[[], object]) -> Deferred[int]:
        url, authorization = split_userinfo(source)
        headers = self._headers
        if authorization is not None and not headers.hasHeader(b"Authorization"):
            headers = headers.copy()
            headers.setRawHeaders(b"Authorization", [authorization])
        d = self._client.get(url, headers=headers, unbuffered=True)

        def received(response: IResponse) -> Deferred[int]:
            if not is_success(response):
                response.deliverBody(Discard())
                raise RequestError(status_line(response), response.code)
            body = _FileBody(out, max_bytes, on_data)
            response.deliverBody(body)
            return body.done

        return d.addCallback(received)

    def close(self) -> Deferred[None]:
        """Close idle provider connections (on service stop; trial wants a clean reactor)."""
        return maybeDeferred(self._pool.closeCachedConnections)


def _copy(path: str, temp: str) -> int:
    shutil.copyfile(path, temp)
    with open(temp, "rb") as f:
        os.fsync(f.fileno())
    return os.path.getsize(temp)


def _closing(out: Any, *timers: Any) -> Callable[[Any], Any]:
    """Stop the timers and close the file; a complete download is on disk first (fsync)."""

    def close(result: Any) -> Any:
        for timer in timers:
            cancel(timer)
        try:
            if not isinstance(result, Failure):
                out.flush()
                os.fsync(out.fileno())
        except OSError as e:
            result = Failure(SourceError(f"cannot store it: {e.strerror or e}"))
        finally:
            out.close()
        return result

    return close


def remove_quietly(path: str) -> None:
    """Remove a temp file that may already be gone."""
    try:
        os.remove(path)
    except OSError:
        pass
