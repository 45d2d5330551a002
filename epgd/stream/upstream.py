"""
One provider connection per source URL, shared by every channel that plays it.

An ``Upstream`` GETs the source unbuffered and hands whole MPEG-TS packets to its ``Fanout``;
the body's transport is the fanout's producer, so when every channel (and through them every
client) is paused, epgd stops reading from the provider socket (TCP backpressure). It judges
the first bytes (non-2xx, HTML, playlists and garbage fail the source), notices silence, and
reconnects after a drop mid-event with backoff before it gives up and tells its consumers.

An answer that is an HLS playlist (an HLS content type, or a body starting ``#EXTM3U``, on any
URL) is collected and handed to an ``HlsReader`` (``epgd.hls.reader``), which from then on
feeds the same fanout through this object: the registry and the channels never need to know
which kind of source they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from epgd.config import StreamConfig
from epgd.hls.playlist import MAX_PLAYLIST_BYTES, is_hls_content_type, looks_like_playlist
from epgd.hls.reader import HlsReader
from epgd.mpegts.intake import Intake, NotTs
from epgd.mpegts.packet import preview, sniff
from epgd.net.failure import FAULTS, Fault, describe
from epgd.net.response import Discard, HTTPGetter, content_type, final_url, is_success, status_line, stop_body
from epgd.net.timers import cancel
from epgd.net.urls import last_segment, split_userinfo
from epgd.redact import Redactor
from epgd.stream.out.fanout import Fanout
from epgd.stream.readgaps import ReadClock, ReadGaps
from epgd.stream.reconnect import Reconnects
from epgd.stream.upstreamstate import UpstreamState

__all__ = ["FAULTS", "HTTPGetter", "Upstream", "UpstreamConsumer", "UpstreamState"]


class UpstreamConsumer(Protocol):
    """What subscribes to an Upstream: a channel's tap."""

    def write(self, data: bytes) -> None: ...

    def upstream_cut(self, upstream: Upstream) -> None:
        """
        The bytes that follow do not continue the ones before (a reconnection; for HLS a
        discontinuity, a gap or a resync): the consumer re-enters the stream at a clean point.
        """

    def upstream_failed(self, upstream: Upstream, reason: str) -> None: ...


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
        on_fault: Callable[[Upstream, Fault], None] | None = None,
        hls_variant: str = "best",
        kind: str = "ts",
        read_gaps: ReadGaps | None = None,
    ) -> None:
        self.url = url
        self.provider = provider
        self.masked_url = redactor.mask(url)
        self.name = last_segment(url)
        self.fanout: Fanout[UpstreamConsumer] = Fanout(on_error=self._consumer_broke)
        self._http = http
        self._headers = {k: [v] for k, v in headers.items()}
        self._clock = clock
        self._config = config
        self._redactor = redactor
        self._on_failed = on_failed
        self._on_fault = on_fault  # told each fault as one of FAULTS, for /metrics
        self._intake = Intake()
        self._request: Deferred[Any] | None = None
        self._body: _Body | None = None
        self._playlist: bytearray | None = None  # this answer is an HLS playlist, collected here
        self._watchdog: IDelayedCall | None = None
        self._retry_call: IDelayedCall | None = None
        self._seen_bytes = 0
        self._seen_at = 0.0
        self._attempt_at = 0.0
        self._hls_variant = hls_variant
        self._hls_answer = False  # the answer's content type says HLS
        self._final_url = url
        self._reader: HlsReader | None = None
        self._resume_at: int | None = None  # where a re-opened HLS connection goes on
        self.ever_streamed = False
        self._reconnects = Reconnects(config.reconnect_attempts)
        self._reads = ReadClock(read_gaps)  # how long epgd left the provider unread (/metrics)
        self.kind = kind  # /streams/status source_kind: "ts" or "hls"
        self.state = UpstreamState.NEW
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
        return self.state not in (UpstreamState.FAILED, UpstreamState.CLOSED)

    def start(self) -> None:
        if self.state == UpstreamState.NEW:
            self._connect()

    def close(self) -> Deferred[None]:
        """Stop for good; fires once the provider connection is gone."""
        if self.state == UpstreamState.CLOSED:
            return succeed(None)
        self.state = UpstreamState.CLOSED
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
            stop_body(body.transport)
            return lost
        return succeed(None)

    def _consumer_broke(self, consumer: UpstreamConsumer, failure: Failure) -> None:
        """
        A channel raised on this source's bytes (the fanout has dropped it, logged): tell it
        the source failed, so it fails over or retries at once instead of starving until
        its idle timeout. Other channels on this connection go on as before.
        """
        consumer.upstream_failed(self, "epgd failed on this source's data (see the log)")

    # -- connecting ------------------------------------------------------------------

    def _connect(self) -> None:
        self.state = UpstreamState.WAITING if self.ever_streamed else UpstreamState.CONNECTING
        self._intake.reset()
        self._playlist = None
        self._hls_answer = False
        self._final_url = self.url
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
        if self.state == UpstreamState.CLOSED or request is not self._request:
            return
        self._request = None
        failed = describe(failure, self._config.connect_timeout, self._redactor)
        self._attempt_failed(failed.line, failed.fault)

    def _response(self, response: Any) -> None:
        self._request = None
        if self.state == UpstreamState.CLOSED:
            response.deliverBody(Discard())
            return
        if not is_success(response):
            response.deliverBody(Discard())
            self._attempt_failed(status_line(response), "http_error")
            return
        self._final_url = final_url(response, self.url)
        self._hls_answer = is_hls_content_type(content_type(response))
        # connect_timeout bounds the wait for the first bytes, counted from the request
        self._seen_bytes = self.bytes_in
        self._seen_at = self._attempt_at
        self._arm_watchdog()
        response.deliverBody(_Body(self))

    # -- body ------------------------------------------------------------------------

    def _body_started(self, body: _Body, transport: Any) -> None:
        if self.state == UpstreamState.CLOSED:
            stop_body(transport)
            return
        self._body = body
        self._reads.restart()
        self.fanout.set_producer(transport)

    def _data(self, body: _Body, data: bytes) -> None:
        if body is not self._body:
            return
        self._reads.read(self._clock.seconds(), self.fanout.pauses)
        intake = self._intake
        if not intake.judged:
            if self._playlist is None and (self._hls_answer or looks_like_playlist((intake.head + data)[:64])):
                self._playlist = bytearray(intake.head)  # collected whole, then followed as HLS
            if self._playlist is not None:
                self._collect_playlist(data)
                return
            try:
                packets = intake.feed(data)
            except NotTs as e:
                self._drop_body()
                self._attempt_failed(
                    f"sent {e.verdict}, not MPEG-TS: {self._redactor.mask(preview(e.head))!r}", "not_ts")
                return
            if intake.judged:
                self.kind = "ts"  # whatever the URL said: the answer is MPEG-TS
                self._streaming_started()
        else:
            packets = intake.feed(data)
        self._packets(packets)

    def _packets(self, packets: bytes) -> None:
        """Whole packets of this source to every channel that plays it."""
        if packets:
            self.bytes_in += len(packets)
            self.fanout.write(packets)

    def _collect_playlist(self, data: bytes) -> None:
        assert self._playlist is not None
        self._playlist += data
        if len(self._playlist) > MAX_PLAYLIST_BYTES:
            self._drop_body()
            self._attempt_failed(f"sent an HLS playlist over {MAX_PLAYLIST_BYTES} bytes", "not_ts")

    def _streaming_started(self) -> None:
        self.state = UpstreamState.STREAMING
        self._reconnects.streaming(self._clock.seconds())
        if self.ever_streamed:
            # A reconnection starts wherever the provider likes: each consumer re-enters
            # it at a clean point (its splicer), so a rotating provider looks seamless.
            self._tell_cut()
        self.ever_streamed = True
        self.error = None

    def _tell_cut(self) -> None:
        for consumer in self.fanout.consumers:
            consumer.upstream_cut(self)

    def _body_lost(self, body: _Body, reason: Failure | None) -> None:
        if body is not self._body or self.state == UpstreamState.CLOSED:
            return
        self._body = None
        self.fanout.set_producer(None)
        self._cancel_watchdog()
        clean = reason is None or reason.check(ResponseDone, PotentialDataLoss) is not None
        lost = "" if clean else self._redactor.mask(reason.getErrorMessage())  # type: ignore[union-attr]
        if self._playlist is not None:
            playlist, self._playlist = bytes(self._playlist), None
            if clean:
                self._follow_hls(playlist)
            else:
                self._attempt_failed(f"HLS playlist cut short ({lost})", "dropped")
            return
        judged, head = self._intake.judged, self._intake.head
        self._intake.reset()  # never glue this connection's tail to the next one's head
        if not judged:
            verdict = sniff(head) if head else "no bytes at all"
            if verdict is not None:
                self._attempt_failed(f"ended after sending {verdict}", "not_ts")
            else:
                self._attempt_failed(f"ended after only {len(head)} bytes", "ended")
            return
        self._retry("ended" if clean else f"dropped ({lost})", at_once=clean,
                    fault="ended" if clean else "dropped")

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        self.fanout.set_producer(None)
        self._cancel_watchdog()
        if body is not None and body.transport is not None:
            stop_body(body.transport)

    # -- HLS: the reader reports here (epgd.hls.reader.HlsOwner) ---------------------

    def _follow_hls(self, playlist: bytes) -> None:
        """The answer was an HLS playlist: a reader takes this connection from here."""
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

    def hls_producer(self, reader: HlsReader, reading: bool) -> None:
        """``reader`` paces this connection now (``reading``), or no longer does."""
        if reading:
            self.fanout.set_producer(reader)
        elif self.fanout.producer is reader:
            self.fanout.set_producer(None)

    def hls_packets(self, packets: bytes) -> None:
        self._packets(packets)

    def hls_streaming(self) -> None:
        self._streaming_started()

    def hls_cut(self) -> None:
        self._tell_cut()

    def hls_lost(self, why: str, reopen: bool, fault: Fault) -> None:
        self._stop_reader()
        if reopen:
            self._retry(why, at_once=True, fault=fault)
        else:
            self._attempt_failed(why, fault)

    def hls_failed(self, reason: str, fault: Fault) -> None:
        self._count(fault)
        self._fail(reason)

    # -- faults ----------------------------------------------------------------------

    def _attempt_failed(self, reason: str, fault: Fault) -> None:
        """A connect attempt failed: fail over at once, or count it as a retry mid-event."""
        self._count(fault)
        self._cancel_watchdog()
        if not self.ever_streamed:
            self._fail(reason)
        else:
            self._retry(reason, at_once=False)

    def _count(self, fault: Fault) -> None:
        if self._on_fault is not None:
            self._on_fault(self, fault)

    def _retry(self, why: str, at_once: bool, fault: Fault | None = None) -> None:
        if fault is not None:
            self._count(fault)
        reconnects = self._reconnects
        delay = reconnects.next_delay(self._clock.seconds(), at_once)
        if delay is None:
            self._fail(f"{why}; gave up after {reconnects.attempts} reconnects")
            return
        self.state = UpstreamState.WAITING
        self.error = why
        self.log.info("[PROXY] {url} {why}; reconnect {n}/{limit} in {delay:g}s", url=self.masked_url,
                      why=why, n=reconnects.count, limit=reconnects.attempts, delay=delay)
        self._retry_call = self._clock.callLater(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry_call = None
        if self.state != UpstreamState.CLOSED:
            self._connect()

    def _fail(self, reason: str) -> None:
        self.state = UpstreamState.FAILED
        self.error = reason
        self._cancel_timers()
        self._stop_reader()
        self.log.warn("[PROXY] source {url} failed: {reason}", url=self.masked_url, reason=reason)
        if self._on_failed is not None:
            self._on_failed(self)
        for consumer in self.fanout.consumers:
            consumer.upstream_failed(self, reason)

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
        judged = self._intake.judged
        seen = self.bytes_in + len(self._intake.head) + len(self._playlist or b"")
        if seen != self._seen_bytes or ((judged or self.ever_streamed) and self.fanout.all_paused):
            # Paused by backpressure (every viewer is slow or paused) is not a silent provider,
            # on its first connection or on a reconnection.
            self._seen_bytes, self._seen_at = seen, now
        elif now - self._seen_at >= self._config.connect_timeout - 1e-9:
            timeout = self._config.connect_timeout
            self._drop_body()
            if judged:
                self._retry(f"went silent for {timeout:g}s", at_once=False, fault="timeout")
            else:
                self._attempt_failed(f"sent no stream within {timeout:g}s", "timeout")
            return
        self._watchdog = self._clock.callLater(self._config.connect_timeout / 4, self._watch)

    def _cancel_watchdog(self) -> None:
        cancel(self._watchdog)
        self._watchdog = None

    def _cancel_timers(self) -> None:
        self._cancel_watchdog()
        cancel(self._retry_call)
        self._retry_call = None
