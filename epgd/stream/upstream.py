"""
One provider connection per source URL, shared by every channel that plays it.

An ``Upstream`` GETs the source unbuffered and hands whole MPEG-TS packets to its ``Fanout``;
the body's transport is the fanout's producer, so when every channel (and through them every
client) is paused, epgd stops reading from the provider socket (TCP backpressure). It judges
the first bytes (non-2xx, HTML, playlists and garbage fail the source), notices silence, and
reconnects after a drop mid-event with backoff before it gives up and tells its consumers.

An answer that is an HLS playlist (an HLS content type, or a body starting ``#EXTM3U``, on any
URL) is collected and handed to an ``HlsReader`` (hls.py), which from then on feeds the same
fanout: the registry and the channels never need to know which kind of source they hold.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss

from epgd.config import StreamConfig
from epgd.httpclient import split_userinfo
from epgd.redact import Redactor
from epgd.stream.fanout import Fanout
from epgd.stream.hlsplaylist import MAX_PLAYLIST_BYTES, is_hls_content_type, looks_like_playlist
from epgd.stream.ts import SNIFF_BYTES, Aligner, preview, sniff

if TYPE_CHECKING:
    from epgd.stream.hls import HlsReader

#: a connection that streamed this long resets the reconnect count
STABLE_AFTER = 5.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 8.0
#: the fixed words a fault is counted under (``epgd_upstream_failures_total{reason}``)
FAULTS = ("connect_error", "timeout", "http_error", "not_ts", "dropped", "ended")


#: up to this much is added to each delay, so that N channels retrying one provider after
#: the same fault do not knock on it in lockstep
BACKOFF_JITTER = 0.2
_jitter_source = random.Random()
_policy = backoffPolicy(initialDelay=BACKOFF_FIRST, maxDelay=BACKOFF_MAX, factor=2.0,
                        jitter=lambda: _jitter_source.random() * BACKOFF_JITTER)


def backoff(attempt: int) -> float:
    """Delay before the ``attempt``-th retry (1-based): 0.5 s doubling, at most 8 s, plus jitter."""
    return float(_policy(max(attempt - 1, 0)))


def _reasons(failure: Failure) -> list[Failure]:
    """The failures an Agent wraps (``ResponseNeverReceived([Failure(CancelledError)])``)."""
    if failure.check(ResponseNeverReceived, ResponseFailed):
        return list(getattr(failure.value, "reasons", None) or []) or [failure]
    return [failure]


def final_url(response: Any, default: str) -> str:
    """The URL a response came from after redirects (relative HLS URIs resolve against it)."""
    request = getattr(response, "request", None)
    uri = getattr(request, "absoluteURI", None)
    if isinstance(uri, bytes):
        return uri.decode("utf-8", "replace")
    return uri if isinstance(uri, str) else default


def content_type(response: Any) -> bytes:
    headers = getattr(response, "headers", None)
    values = headers.getRawHeaders(b"content-type") if headers is not None else None
    return values[0] if values else b""


def last_segment(url: str) -> str:
    """``http://h/live/u/p/2.ts?x=1`` -> ``2.ts``: how switch log lines name sources."""
    path = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] or path


class UpstreamConsumer(Protocol):
    """What subscribes to an Upstream: a channel's tap."""

    def write(self, data: bytes) -> None: ...

    def upstream_cut(self, upstream: Upstream) -> None:
        """
        The bytes that follow do not continue the ones before (a reconnection; for HLS a
        discontinuity, a gap or a resync): the consumer re-enters the stream at a clean point.
        """

    def upstream_failed(self, upstream: Upstream, reason: str) -> None: ...


class HTTPGetter(Protocol):
    """The part of ``treq.HTTPClient`` an Upstream uses."""

    def get(self, url: str, **kwargs: Any) -> Deferred[Any]: ...


class _Body(TwistedProtocol):
    """Receives one response body; its transport is the pausable provider connection."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.upstream._body_started(self, self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.upstream._data(self, data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.upstream._body_lost(self, reason)
        self.lost.callback(None)


class _Discard(TwistedProtocol):
    """Throws away an error response's body by closing its connection at once."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


class Upstream:
    """One live provider stream, fanned out to the channels that play it."""

    log = Logger()

    def __init__(
        self,
        url: str,
        provider: str,
        http: HTTPGetter,
        headers: Mapping[str, str],
        clock: IReactorTime,
        config: StreamConfig,
        redactor: Redactor,
        on_failed: Callable[[Upstream], None] | None = None,
        on_fault: Callable[[Upstream, str], None] | None = None,
        hls_variant: str = "best",
    ) -> None:
        self.url = url
        self.provider = provider
        self.masked_url = redactor.mask(url)
        self.name = last_segment(url)
        self.fanout = Fanout(on_error=self._consumer_broke)
        self._http = http
        self._headers = {k: [v] for k, v in headers.items()}
        self._clock = clock
        self._config = config
        self._redactor = redactor
        self._on_failed = on_failed
        self._on_fault = on_fault  # told each fault as one of FAULTS, for /metrics
        self._aligner = Aligner()
        self._request: Deferred[Any] | None = None
        self._body: _Body | None = None
        self._head = b""
        self._sniffed = False
        self._watchdog: IDelayedCall | None = None
        self._retry_call: IDelayedCall | None = None
        self._seen_bytes = 0
        self._seen_at = 0.0
        self._attempt_at = 0.0
        self._hls_variant = hls_variant
        self._playlist = False  # this answer is an HLS playlist, collected for a reader
        self._final_url = url
        self._reader: HlsReader | None = None
        self._resume_at: int | None = None  # where a re-opened HLS connection goes on
        self.ever_streamed = False
        self.streaming_since: float | None = None
        self.retries = 0
        self.kind = "ts"  # /streams/status source_kind: "ts" or "hls"
        self.state = "new"  # new, connecting, streaming, waiting, failed, closed
        self.error: str | None = None
        self.bytes_in = 0
        self.opened_at = clock.seconds()

    # -- public ----------------------------------------------------------------------

    def subscribe(self, consumer: UpstreamConsumer, paused: bool = False) -> None:
        self.fanout.add(consumer, paused)

    def unsubscribe(self, consumer: UpstreamConsumer) -> None:
        self.fanout.remove(consumer)

    @property
    def active(self) -> bool:
        return self.state not in ("failed", "closed")

    def start(self) -> None:
        if self.state == "new":
            self._connect()

    def close(self) -> Deferred[None]:
        """Stop for good; fires once the provider connection is gone."""
        if self.state == "closed":
            return succeed(None)
        self.state = "closed"
        self._cancel_timers()
        for consumer in self.fanout.consumers:
            self.fanout.remove(consumer)
        reader = self._stop_reader()
        if reader is not None:
            return reader
        if self._request is not None:
            request, self._request = self._request, None
            request.cancel()
        body, self._body = self._body, None
        self.fanout.set_producer(None)
        if body is not None and body.transport is not None:
            lost = body.lost
            body.transport.stopProducing()  # type: ignore[attr-defined]
            return lost
        return succeed(None)

    def _consumer_broke(self, consumer: object, failure: Failure) -> None:
        """
        A channel raised on this source's bytes (the fanout has dropped it, logged): tell it
        the source failed, so it fails over or retries at once instead of starving until
        its idle timeout. Other channels on this connection go on as before.
        """
        upstream_failed = getattr(consumer, "upstream_failed", None)
        if upstream_failed is not None:
            upstream_failed(self, "epgd failed on this source's data (see the log)")

    # -- connecting ------------------------------------------------------------------

    def _connect(self) -> None:
        self.state = "connecting" if not self.ever_streamed else "waiting"
        self._head = b""
        self._sniffed = False
        self._playlist = False
        self._final_url = self.url
        self._aligner.reset()
        self._attempt_at = self._clock.seconds()
        try:
            url, authorization = split_userinfo(self.url)  # http://U:P@host/: Basic, as players do
            headers = {**self._headers, "Authorization": [authorization.decode("ascii")]} if authorization else self._headers
            request = self._http.get(url, headers=headers, unbuffered=True)
        except Exception as e:  # a malformed URL raises at once
            self._attempt_failed(f"cannot request it: {self._redactor.mask(str(e))}", "connect_error")
            return
        self._request = request
        request.addTimeout(self._config.connect_timeout, self._clock)
        request.addCallbacks(self._response, self._request_failed, errbackArgs=(request,))

    def _request_failed(self, failure: Failure, request: Deferred[Any]) -> None:
        if self.state == "closed" or request is not self._request:
            return
        self._request = None
        # A real Agent, cancelled by the timeout, fails with the CancelledError wrapped.
        reasons = _reasons(failure)
        if any(r.check(ConnectTimeout, DeferredTimeout, CancelledError) for r in reasons):
            reason, kind = f"no answer within {self._config.connect_timeout:g}s", "timeout"
        else:
            text = "; ".join(r.getErrorMessage() or repr(r.value) for r in reasons)
            reason, kind = f"connection failed: {self._redactor.mask(text)}", "connect_error"
        self._attempt_failed(reason, kind)

    def _response(self, response: Any) -> None:
        self._request = None
        if self.state == "closed":
            response.deliverBody(_Discard())
            return
        if not 200 <= response.code < 300:
            phrase = (response.phrase or b"").decode("latin-1", "replace")
            response.deliverBody(_Discard())
            self._attempt_failed(f"HTTP {response.code} {phrase}".strip(), "http_error")
            return
        self._final_url = final_url(response, self.url)
        self._playlist = is_hls_content_type(content_type(response))
        # connect_timeout bounds the wait for the first bytes, counted from the request
        self._seen_bytes = self.bytes_in
        self._seen_at = self._attempt_at
        self._arm_watchdog()
        response.deliverBody(_Body(self))

    # -- body ------------------------------------------------------------------------

    def _body_started(self, body: _Body, transport: Any) -> None:
        if self.state == "closed":
            transport.stopProducing()
            return
        self._body = body
        self.fanout.set_producer(transport)

    def _data(self, body: _Body, data: bytes) -> None:
        if body is not self._body:
            return
        if not self._sniffed:
            self._head += data
            if self._playlist or looks_like_playlist(self._head[:64]):
                self._playlist = True  # collected whole, then followed as HLS
                if len(self._head) > MAX_PLAYLIST_BYTES:
                    self._drop_body()
                    self._attempt_failed(f"sent an HLS playlist over {MAX_PLAYLIST_BYTES} bytes",
                                         "not_ts")
                return
            if len(self._head) < SNIFF_BYTES:
                return
            verdict = sniff(self._head)
            if verdict is not None:
                self._not_ts(verdict)
                return
            self._sniffed = True
            data, self._head = self._head, b""
            self.kind = "ts"
            self._streaming_started()
        packets = self._aligner.feed(data)
        if packets:
            self.bytes_in += len(packets)
            self.fanout.write(packets)

    def _streaming_started(self) -> None:
        self.state = "streaming"
        self.streaming_since = self._clock.seconds()
        if self.ever_streamed:
            # A reconnection starts wherever the provider likes: each consumer re-enters
            # it at a clean point (its splicer), so a rotating provider looks seamless.
            for consumer in self.fanout.consumers:
                consumer.upstream_cut(self)  # type: ignore[attr-defined]
        self.ever_streamed = True
        self.error = None

    def _not_ts(self, verdict: str) -> None:
        """The source answered 2xx but with something a TS player cannot use."""
        head = self._head
        self._head = b""
        self._drop_body()
        self._attempt_failed(
            f"sent {verdict}, not MPEG-TS: {self._redactor.mask(preview(head))!r}", "not_ts"
        )

    def _body_lost(self, body: _Body, reason: Failure | None) -> None:
        if body is not self._body or self.state == "closed":
            return
        self._body = None
        self.fanout.set_producer(None)
        self._aligner.reset()  # never glue this connection's tail to the next one's head
        self._cancel_watchdog()
        clean = reason is None or reason.check(ResponseDone, PotentialDataLoss) is not None
        if self._playlist:
            playlist, self._head = self._head, b""
            if not clean:
                why = self._redactor.mask(reason.getErrorMessage())  # type: ignore[union-attr]
                self._attempt_failed(f"HLS playlist cut short ({why})", "dropped")
            else:
                self._follow_hls(playlist)
            return
        if not self._sniffed:
            verdict = sniff(self._head) if self._head else "no bytes at all"
            if verdict is not None:
                self._attempt_failed(f"ended after sending {verdict}", "not_ts")
            else:
                self._attempt_failed(f"ended after only {len(self._head)} bytes", "ended")
            return
        why = "ended" if clean else f"dropped ({self._redactor.mask(reason.getErrorMessage())})"  # type: ignore[union-attr]
        self._retry(why, at_once=clean, kind="ended" if clean else "dropped")

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        self.fanout.set_producer(None)
        self._cancel_watchdog()
        if body is not None and body.transport is not None:
            body.transport.stopProducing()  # type: ignore[attr-defined]

    # -- HLS -------------------------------------------------------------------------

    def _follow_hls(self, playlist: bytes) -> None:
        """The answer was an HLS playlist: a reader takes this connection from here."""
        from epgd.stream.hls import HlsReader  # hls.py builds on this module

        self.kind = "hls"
        self._reader = HlsReader(
            self, self._http, self._headers, self._clock, self._config, self._redactor,
            self._hls_variant, self._resume_at,
        )
        self._reader.open(self._final_url, playlist, self._attempt_at)

    def _stop_reader(self) -> Deferred[None] | None:
        reader, self._reader = self._reader, None
        if reader is None:
            return None
        if reader.next_sequence is not None:  # a reader that never got going keeps the old one
            self._resume_at = reader.next_sequence
        return reader.close()

    # What the HLS reader reports (HlsOwner).

    def hls_streaming(self) -> None:
        self._streaming_started()

    def hls_cut(self) -> None:
        for consumer in self.fanout.consumers:
            consumer.upstream_cut(self)  # type: ignore[attr-defined]

    def hls_lost(self, why: str, reopen: bool, fault: str) -> None:
        self._stop_reader()
        if reopen:
            self._retry(why, at_once=True, kind=fault)
        else:
            self._attempt_failed(why, fault)

    def hls_failed(self, reason: str, fault: str) -> None:
        self._count(fault)
        self._fail(reason)

    # -- faults ----------------------------------------------------------------------

    def _attempt_failed(self, reason: str, kind: str) -> None:
        """A connect attempt failed: fail over at once, or count it as a retry mid-event."""
        self._count(kind)
        self._cancel_watchdog()
        if not self.ever_streamed:
            self._fail(reason)
        else:
            self._retry(reason, at_once=False)

    def _count(self, kind: str) -> None:
        if self._on_fault is not None:
            self._on_fault(self, kind)

    def _retry(self, why: str, at_once: bool, kind: str | None = None) -> None:
        if kind is not None:
            self._count(kind)
        now = self._clock.seconds()
        if self.streaming_since is not None and now - self.streaming_since >= STABLE_AFTER:
            self.retries = 0
        self.streaming_since = None
        self.retries += 1
        if self.retries > self._config.reconnect_attempts:
            self._fail(f"{why}; gave up after {self._config.reconnect_attempts} reconnects")
            return
        delay = 0.0 if at_once and self.retries == 1 else backoff(self.retries)
        self.state = "waiting"
        self.error = why
        self.log.info(
            "[PROXY] {url} {why}; reconnect {n}/{limit} in {delay:g}s",
            url=self.masked_url, why=why, n=self.retries,
            limit=self._config.reconnect_attempts, delay=delay,
        )
        self._retry_call = self._clock.callLater(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry_call = None
        if self.state != "closed":
            self._connect()

    def _fail(self, reason: str) -> None:
        self.state = "failed"
        self.error = reason
        self._cancel_timers()
        self._stop_reader()
        self.log.warn("[PROXY] source {url} failed: {reason}", url=self.masked_url, reason=reason)
        if self._on_failed is not None:
            self._on_failed(self)
        for consumer in self.fanout.consumers:
            consumer.upstream_failed(self, reason)  # type: ignore[attr-defined]

    # -- silence ---------------------------------------------------------------------

    def _arm_watchdog(self) -> None:
        """
        Checks for silence four times per ``connect_timeout`` instead of resetting a timer
        on every chunk: the hot path only counts bytes.
        """
        self._cancel_watchdog()
        self._watchdog = self._clock.callLater(self._config.connect_timeout / 4, self._watch)

    def _watch(self) -> None:
        self._watchdog = None
        now = self._clock.seconds()
        seen = self.bytes_in + len(self._head)
        if seen != self._seen_bytes or ((self._sniffed or self.ever_streamed) and self.fanout.all_paused):
            # Paused by backpressure (every viewer is slow or paused) is not a silent provider,
            # on its first connection or on a reconnection.
            self._seen_bytes, self._seen_at = seen, now
        elif now - self._seen_at >= self._config.connect_timeout - 1e-9:
            timeout = self._config.connect_timeout
            if self._sniffed:
                self._drop_body()
                self._retry(f"went silent for {timeout:g}s", at_once=False, kind="timeout")
            else:
                self._drop_body()
                self._attempt_failed(f"sent no stream within {timeout:g}s", "timeout")
            return
        self._watchdog = self._clock.callLater(self._config.connect_timeout / 4, self._watch)

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None

    def _cancel_timers(self) -> None:
        self._cancel_watchdog()
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
