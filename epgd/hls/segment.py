"""
One HLS media segment at a time: its key (fetched once per URI), its TS init section (fetched
once, sent before the segment), a Range request for a byte range, the body streamed and
decrypted as it arrives, and one retry that resumes where the first attempt stopped.

The body's transport is paused and resumed with the fanout, so a slow audience slows the
segment download (TCP backpressure) instead of filling memory: nothing of a segment is held
beyond a cipher block.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from epgd.hls.fetch import Decrypt, SmallFetches, segment_verdict
from epgd.hls.playlist import ByteRange, InitSection, Segment
from epgd.net.failure import Fault, describe
from epgd.net.response import Discard, HTTPGetter, is_success, status_line, stop_body
from epgd.redact import Redactor

#: a key or init section larger than these is a failed fetch (a TS init section is a PAT and
#: a PMT: a few hundred bytes)
MAX_KEY_BYTES = 64
MAX_MAP_BYTES = 64 << 10
#: keys and init sections kept (each fetched once per URI while it is kept): at most 256 KiB
CACHE_ENTRIES = 4


class SegmentSink(Protocol):
    """Where a fetcher's results go: the HLS reader."""

    def segment_bytes(self, segment: Segment, data: bytes) -> None: ...

    def segment_done(self, segment: Segment) -> None: ...

    def segment_skipped(self, segment: Segment, why: str, fault: Fault) -> None:
        """Given up after its retry; ``fault`` is the last failure's /metrics word."""

    def segment_unsupported(self, reason: str) -> None: ...


class _Body(TwistedProtocol):
    """One attempt at one segment's body."""

    def __init__(self, fetcher: SegmentFetcher, job: _Job) -> None:
        self.fetcher = fetcher
        self.job = job
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.fetcher._started(self)

    def dataReceived(self, data: bytes) -> None:
        self.fetcher._data(self, data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.fetcher._lost(self, reason)
        self.lost.callback(None)


class _Job:
    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.attempt = 1
        self.fetch: Deferred[Any] | None = None  # the request in flight (key, map or segment)
        self.body: _Body | None = None
        self.decrypt: Decrypt | None = None
        self.init: bytes | None = None  # still to send before the segment's first bytes
        self.offset = 0  # bytes of the segment taken so far: a retry resumes here
        self.skip = 0  # bytes at the start of this body before the wanted ones (200 to a Range)
        self.left: int | None = None  # bytes of the byte range still wanted
        self.received = 0
        self.seen = 0
        self.seen_at = 0.0


class SegmentFetcher:
    """Fetches the segments it is given, one at a time, into a ``SegmentSink``."""

    log = Logger()

    def __init__(self, sink: SegmentSink, http: HTTPGetter, headers: dict[str, list[str]],
                 clock: IReactorTime, timeout: float, redactor: Redactor, name: str) -> None:
        self._sink = sink
        self._http = http
        self._headers = headers
        self._clock = clock
        self._timeout = timeout
        self._redactor = redactor
        self._name = name  # the source's masked URL, for log lines
        self._small = SmallFetches(http, headers, clock, timeout)
        self._keys: dict[str, bytes] = {}
        self._maps: dict[InitSection, bytes] = {}
        self._job: _Job | None = None
        self._paused = False
        self._closed = False

    @property
    def idle(self) -> bool:
        return self._job is None

    def fetch(self, segment: Segment) -> None:
        assert self._job is None, "one segment at a time"
        self._job = _Job(segment)
        self._step()

    # -- the steps of a job ----------------------------------------------------------

    def _step(self) -> None:
        """Issue the job's next request: its key, its init section, then the segment."""
        job = self._job
        if job is None or self._paused or self._closed or job.fetch is not None or job.body:
            return
        segment = job.segment
        if segment.key is not None and job.decrypt is None:
            key = self._keys.get(segment.key.uri)
            if key is None:
                self._small_step(job, segment.key.uri, MAX_KEY_BYTES, "key", None, self._got_key)
                return
            job.decrypt = Decrypt(key, segment.iv)
        if segment.init is not None and job.init is None:
            data = self._maps.get(segment.init)
            if data is None:
                self._small_step(job, segment.init.uri, MAX_MAP_BYTES, "init section",
                                 segment.init.byterange, self._got_map)
                return
            job.init = data
        self._get(job)

    def _small_step(self, job: _Job, url: str, limit: int, what: str,
                    byterange: ByteRange | None, then: Any) -> None:
        fetch = self._small.get(url, limit, what, byterange)
        job.fetch = fetch

        def ok(result: tuple[str, bytes]) -> None:
            if job is self._job and job.fetch is fetch and not self._closed:
                job.fetch = None
                then(job, result[1])

        def failed(failure: Failure) -> None:
            if job is self._job and job.fetch is fetch and not self._closed:
                job.fetch = None
                failed = describe(failure, self._timeout, self._redactor)
                self._failed(job, f"{what}: {failed.line}", failed.fault)

        fetch.addCallbacks(ok, failed)

    def _got_key(self, job: _Job, key: bytes) -> None:
        if len(key) != 16:
            self._failed(job, f"key: {len(key)} bytes, not 16", "not_ts")
            return
        assert job.segment.key is not None
        self._remember(self._keys, job.segment.key.uri, key)
        self._step()

    def _got_map(self, job: _Job, data: bytes) -> None:
        verdict = segment_verdict(data)
        if verdict is not None:
            what = "an fMP4 initialization section" if verdict == "fMP4" else verdict
            self._sink.segment_unsupported(f"EXT-X-MAP is {what}, not MPEG-TS (fMP4 is not supported)")
            return
        assert job.segment.init is not None
        self._remember(self._maps, job.segment.init, data)
        self._step()

    @staticmethod
    def _remember(cache: dict[Any, bytes], key: Any, value: bytes) -> None:
        if len(cache) >= CACHE_ENTRIES:
            del cache[next(iter(cache))]
        cache[key] = value

    def _get(self, job: _Job) -> None:
        segment = job.segment
        start = (segment.byterange.start if segment.byterange else 0) + job.offset
        end = segment.byterange.start + segment.byterange.length if segment.byterange else None
        headers = dict(self._headers)
        if start or end is not None:
            headers["Range"] = [f"bytes={start}-{'' if end is None else end - 1}"]
        job.left = None if end is None else end - start
        try:
            request = self._http.get(segment.uri, headers=headers, unbuffered=True)
        except Exception as e:  # a malformed URL raises at once
            self._failed(job, f"cannot request it: {self._redactor.mask(str(e))}", "connect_error")
            return
        job.fetch = request
        request.addTimeout(self._timeout, self._clock)
        request.addCallbacks(self._response, self._request_failed,
                             callbackArgs=(job, request, start), errbackArgs=(job, request))

    def _request_failed(self, failure: Failure, job: _Job, request: Deferred[Any]) -> None:
        if job is self._job and job.fetch is request and not self._closed:
            job.fetch = None
            failed = describe(failure, self._timeout, self._redactor)
            self._failed(job, failed.line, failed.fault)

    def _response(self, response: Any, job: _Job, request: Deferred[Any], start: int) -> None:
        if job is not self._job or job.fetch is not request or self._closed:
            response.deliverBody(Discard())
            return
        job.fetch = None
        if not is_success(response):
            response.deliverBody(Discard())
            self._failed(job, status_line(response), "http_error")
            return
        job.skip = start if response.code != 206 else 0  # a server that ignored the Range
        job.seen_at = self._clock.seconds()
        job.body = _Body(self, job)
        response.deliverBody(job.body)

    # -- the body --------------------------------------------------------------------

    def _started(self, body: _Body) -> None:
        if body.job.body is not body or self._closed:
            stop_body(body.transport)
        elif self._paused:
            body.transport.pauseProducing()  # type: ignore[union-attr]

    def _data(self, body: _Body, data: bytes) -> None:
        job = body.job
        if job.body is not body or job is not self._job:
            return
        job.received += len(data)
        if job.skip:
            if len(data) <= job.skip:
                job.skip -= len(data)
                return
            data = data[job.skip:]
            job.skip = 0
        complete = False
        if job.left is not None:
            if len(data) >= job.left:
                data, complete = data[:job.left], True
            job.left -= len(data)
        job.offset += len(data)
        if job.decrypt is not None:
            data = job.decrypt.update(data)
        if data:
            self._out(job, data)
        if complete and job is self._job and not self._closed:
            self._done(job)

    def _out(self, job: _Job, data: bytes) -> None:
        if job.init:
            data, job.init = job.init + data, b""
        self._sink.segment_bytes(job.segment, data)

    def _lost(self, body: _Body, reason: Failure | None) -> None:
        job = body.job
        if job.body is not body or job is not self._job or self._closed:
            return
        job.body = None
        if reason is not None and not reason.check(ResponseDone, PotentialDataLoss):
            self._failed(job, f"cut off ({self._redactor.mask(reason.getErrorMessage())})",
                         "dropped")
        elif job.left:
            self._failed(job, f"ended {job.left} bytes short of its byte range", "ended")
        elif not job.offset:
            self._failed(job, "sent no bytes", "ended")
        else:
            self._done(job)

    def _done(self, job: _Job) -> None:
        body, job.body = job.body, None
        if body is not None:
            stop_body(body.transport)  # a complete byte range: the rest of the resource is not wanted
        if job.decrypt is not None:
            try:
                tail = job.decrypt.finish()
            except ValueError as e:
                tail = b""
                self.log.warn("[PROXY] {url} HLS segment {n}: its end does not decrypt ({e})",
                              url=self._name, n=job.segment.sequence, e=e)
            if tail:
                self._out(job, tail)
                if job is not self._job or self._closed:
                    return
        self._job = None
        self._sink.segment_done(job.segment)

    def _failed(self, job: _Job, why: str, fault: Fault) -> None:
        """Retry a failed segment once (resuming where it stopped), then skip it."""
        if job is not self._job or self._closed:
            return
        body, job.body = job.body, None
        if body is not None:
            stop_body(body.transport)
        number = job.segment.sequence
        if job.attempt == 1:
            job.attempt = 2
            self.log.info("[PROXY] {url} HLS segment {n} failed ({why}); retrying",
                          url=self._name, n=number, why=why)
            self._step()
            return
        self.log.warn("[PROXY] {url} HLS segment {n} skipped ({why}): a gap",
                      url=self._name, n=number, why=why)
        self._job = None
        self._sink.segment_skipped(job.segment, why, fault)

    # -- pace ------------------------------------------------------------------------

    def pause(self) -> None:
        self._paused = True
        body = self._job.body if self._job is not None else None
        if body is not None and body.transport is not None:
            body.transport.pauseProducing()  # type: ignore[attr-defined]

    def resume(self) -> None:
        self._paused = False
        job = self._job
        if job is None:
            return
        job.seen_at = self._clock.seconds()
        if job.body is not None and job.body.transport is not None:
            job.body.transport.resumeProducing()  # type: ignore[attr-defined]
        self._step()

    def check(self, now: float) -> None:
        """A body that sends nothing for ``timeout`` (while not paused) fails the attempt."""
        job = self._job
        if job is None or job.body is None:
            return
        if self._paused or job.received != job.seen:
            job.seen, job.seen_at = job.received, now
        elif now - job.seen_at >= self._timeout - 1e-9:
            self._failed(job, f"sent nothing for {self._timeout:g}s", "timeout")

    def close(self) -> list[Deferred[None]]:
        """Stop for good; the ``lost`` Deferreds of the bodies being read."""
        self._closed = True
        waits = self._small.close()
        job, self._job = self._job, None
        if job is not None:
            if job.fetch is not None:
                job.fetch.cancel()
            if job.body is not None and job.body.transport is not None:
                waits.append(job.body.lost)
                stop_body(job.body.transport)
        return waits
