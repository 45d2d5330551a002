"""
One combined channel's stream: follows the schedule, carries the playing event's source to
its clients, switches sources inside their connections.

A switch subscribes to the new source while the old keeps flowing (make-before-break), holds
the new bytes until a PAT (bounded), then cuts over at a packet boundary and lets go of the
old. Fail-over walks the event's sources in order. Whenever clients wait for data they get
null packets, so players keep the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from epgd.config import StreamConfig
from epgd.redact import Redactor
from epgd.schedule.model import Event, Schedule, Source
from epgd.stream.client import Client
from epgd.stream.output import Output
from epgd.stream.registry import ProviderFull, UpstreamRegistry
from epgd.stream.remap import PidNormalizer
from epgd.stream.ts import find_pat
from epgd.stream.upstream import Upstream, backoff, last_segment

#: a switch waits at most this long / this much for the new source's PAT, then cuts anyway
PAT_WAIT_SECONDS = 2.0
PAT_WAIT_BYTES = 1 << 20
#: how often keepalive, idle time and bitrate are looked after
TICK = 0.25


class _Tap:
    """One subscription of a channel to an Upstream (a switch briefly has two)."""

    def __init__(self, channel: ChannelStream, upstream: Upstream) -> None:
        self.channel = channel
        self.upstream = upstream

    def write(self, data: bytes) -> None:
        self.channel._tap_data(self, data)

    def upstream_cut(self, upstream: Upstream) -> None:
        self.channel._tap_cut(self)

    def upstream_failed(self, upstream: Upstream, reason: str) -> None:
        self.channel._tap_failed(self, reason)


@implementer(IPushProducer)
class ChannelStream:
    """The live stream of one combined channel; the producer of its clients' fanout."""

    log = Logger()

    def __init__(
        self,
        channel_id: str,
        clock: IReactorTime,
        config: StreamConfig,
        registry: UpstreamRegistry,
        redactor: Redactor,
        on_stopped: Callable[[ChannelStream], None] | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.output = Output(clock, config.chunk_size, self)
        self.clients = self.output.clients
        self.event: Event | None = None
        self.error: str | None = None
        self.switches = 0
        self.stopped = False
        self._clock = clock
        self._config = config
        self._registry = registry
        self._redactor = redactor
        self._on_stopped = on_stopped
        self._current: _Tap | None = None
        self._pending: _Tap | None = None
        self._pending_buf: list[bytes] = []
        self._pending_bytes = 0
        self._pat_timer: IDelayedCall | None = None
        self._retry_call: IDelayedCall | None = None
        self._retry_count = 0
        self._source_index = 0
        self._started_once = False
        self._announced = False  # "Starting proxy" is logged once per stream, not per retry
        self._paused = False
        self._resyncing = False  # after a reconnection: skip to the next PAT
        self._resync_dropped = 0
        #: opt-in: every source leaves with the same PIDs (before the join buffer sees it)
        self._normalizer: PidNormalizer | None = None  # replaced by the splicer
        now = clock.seconds()
        self.started_at = now
        self.last_check = now
        self._ticker = LoopingCall(self.output.tick)
        self._ticker.clock = clock
        self._ticker.start(TICK, now=False)

    # -- schedule --------------------------------------------------------------------

    def check(self, schedule: Schedule, now: float) -> None:
        """Carry what the schedule says is playing now; switch if that changed."""
        if self.stopped:
            return
        self.last_check = now
        event = schedule.playing(self.channel_id, now, self._config.hold_after_end)
        if event is None:
            if self.event is not None:
                self.log.info(
                    "[PROXY] {channel} nothing playing after {title!r}; keeping clients "
                    "with keepalive until the next event", channel=self.channel_id,
                    title=self.event.title,
                )
                self.event = None
                self._cancel_retry()
                self._drop_sources()
            return
        if not event.sources:
            self.event = event
            self.error = f"event {event.title!r} has no source"
            return
        same = self.event is not None and event.key == self.event.key
        urls = [s.url for s in event.sources]
        self.event = event
        if same and self.source_url in urls and self._current_or_pending_alive():
            self._source_index = urls.index(self.source_url or "")
            return
        if same and self._retry_call is not None:
            return  # a retry is already due
        self._source_index = 0
        self._retry_count = 0
        self._cancel_retry()
        self._open(event.sources[0])

    def _current_or_pending_alive(self) -> bool:
        tap = self._pending or self._current
        return tap is not None and tap.upstream.active

    @property
    def source_url(self) -> str | None:
        """The URL clients get (or are about to get)."""
        tap = self._pending or self._current
        return tap.upstream.url if tap is not None else None

    # -- switching -------------------------------------------------------------------

    def _open(self, source: Source) -> None:
        if self.stopped:
            return
        current = self._current
        if current is not None and current.upstream.url == source.url and current.upstream.active:
            self._cancel_pending()
            return
        if self._pending is not None and self._pending.upstream.url == source.url:
            return
        self._cancel_pending()
        masked = self._redactor.mask(source.url)
        if current is None and not self._announced:
            self._announced = True
            self.log.info("[PROXY] Starting proxy for {channel} -> {url}",
                          channel=self.channel_id, url=masked)
        elif current is not None:
            self.log.info("[PROXY] {channel} switching from {old} to {new}",
                          channel=self.channel_id, old=current.upstream.name,
                          new=last_segment(source.url))
        else:
            self.log.info("[PROXY] {channel} connecting to {url}", channel=self.channel_id,
                          url=masked)
        registry = self._registry
        if (
            current is not None
            and registry.get(source.url) is None
            and not registry.has_room(source.provider)
            and current.upstream.provider == source.provider
            and registry.refs(current.upstream) == 1
        ):
            # Break-before-make: the old connection holds the provider's only free slot.
            self.log.info(
                "[PROXY] {channel} closing {old} first: provider {provider} allows "
                "{limit} streams", channel=self.channel_id, old=current.upstream.name,
                provider=source.provider, limit=registry.limit(source.provider),
            )
            self.output.flush()
            self._current = None
            self._release(current)
            self._source_changed()
        try:
            upstream = registry.acquire(source, asking=self)
        except ProviderFull as e:
            self.error = str(e)
            self.log.warn("[PROXY] {channel} cannot open {url}: {error}",
                          channel=self.channel_id, url=masked, error=self.error)
            self._schedule_retry()
            return
        tap = _Tap(self, upstream)
        self._pending = tap
        self._pending_buf = []
        self._pending_bytes = 0
        upstream.subscribe(tap)
        upstream.start()

    def _tap_data(self, tap: _Tap, data: bytes) -> None:
        if tap is self._current:
            if self._resyncing:
                data = self._from_pat(data)
                if not data:
                    return
            self._deliver(data)
        elif tap is self._pending:
            if self._pat_timer is None:
                self._pat_timer = self._clock.callLater(PAT_WAIT_SECONDS, self._pat_timeout)
            position = find_pat(data)
            if position != -1:
                self._cut(data[position:] if position else data)
                return
            self._pending_buf.append(data)
            self._pending_bytes += len(data)
            if self._pending_bytes >= PAT_WAIT_BYTES:
                self._pat_timeout()

    def _tap_cut(self, tap: _Tap) -> None:
        """The current source resumes elsewhere (a reconnection): re-enter it at a PAT."""
        if tap is self._current:
            self.output.flush()
            self._source_changed()
            self._resync_dropped = 0
            self._resyncing = True

    def _pat_timeout(self) -> None:
        """No PAT in time: cut at the first packet boundary of what the new source sent."""
        self._pat_timer = None
        if self._pending is not None:
            self.log.info("[PROXY] {channel}: no PAT from {new} in time, cutting over anyway",
                          channel=self.channel_id, new=self._pending.upstream.name)
            self._cut(b"".join(self._pending_buf))

    def _cut(self, first: bytes) -> None:
        """The new source starts now, at a packet boundary (a PAT when there is one)."""
        tap = self._pending
        assert tap is not None
        self.output.flush()  # the old source's last bytes go out before the new one's
        self._pending = None
        self._cancel_pat_timer()
        self._pending_buf = []
        self._pending_bytes = 0
        old, self._current = self._current, tap
        if self._started_once:
            self.switches += 1
        self._started_once = True
        self._retry_count = 0
        self.error = None
        tap.upstream.fanout.set_paused(tap, self._paused)
        if old is not None:
            self._release(old)
        self._source_changed()
        if first:
            self._deliver(first)

    def _from_pat(self, packets: bytes) -> bytes:
        """After a reconnection, what comes before the first PAT is skipped (bounded wait)."""
        position = find_pat(packets)
        if position == -1:
            self._resync_dropped += len(packets)
            if self._resync_dropped < PAT_WAIT_BYTES:
                return b""
            position = 0
        self._resyncing = False
        return packets[position:]

    def _tap_failed(self, tap: _Tap, reason: str) -> None:
        if tap is self._pending:
            self._pending = None
            self._cancel_pat_timer()
            self._pending_buf = []
            self._pending_bytes = 0
        elif tap is self._current:
            self.output.flush()
            self._current = None
            self._source_changed()
        else:
            return
        self._release(tap)
        self.error = f"{tap.upstream.masked_url}: {reason}"
        self._failover(tap.upstream.name)

    def _failover(self, failed: str) -> None:
        event = self.event
        if event is None or self.stopped:
            return
        self._source_index += 1
        if self._source_index < len(event.sources):
            source = event.sources[self._source_index]
            self.log.info("[PROXY] {channel} failing over from {old} to {new}",
                          channel=self.channel_id, old=failed, new=last_segment(source.url))
            self._open(source)
            return
        self._source_index = 0
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        self._cancel_retry()
        self._retry_count += 1
        delay = backoff(self._retry_count)
        self.log.info("[PROXY] {channel} retrying in {delay:g}s: {error}",
                      channel=self.channel_id, delay=delay, error=self.error)
        self._retry_call = self._clock.callLater(delay, self._retry)

    def _retry(self) -> None:
        self._retry_call = None
        if self.event is not None and self.event.sources and not self.stopped:
            index = min(self._source_index, len(self.event.sources) - 1)
            self._open(self.event.sources[index])

    # -- data to clients -------------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        if self._normalizer is not None:
            data = self._normalizer.feed(data)
            if not data:
                return
        self.output.deliver(data)

    def _source_changed(self) -> None:
        """A new source (or none) follows: forget the old one's recent packets and PIDs."""
        self.output.reset_join()
        if self._normalizer is not None:
            self._normalizer.reset()

    def add_client(self, client: Client) -> None:
        """A new viewer starts at once, at the latest PAT of the recent packets."""
        self.output.add(client, with_recent=self._current is not None)

    def client_gone(self, client: Client) -> None:
        self.output.remove(client)

    # -- IPushProducer (for the clients' fanout) -------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True
        if self._current is not None:
            self._current.upstream.fanout.set_paused(self._current, True)

    def resumeProducing(self) -> None:
        self._paused = False
        if self._current is not None:
            self._current.upstream.fanout.set_paused(self._current, False)

    def stopProducing(self) -> None:
        self.stop("stopped")

    # -- timers ----------------------------------------------------------------------

    def idle_for(self, now: float) -> float:
        """Seconds since real data (not keepalive) last reached a client."""
        return self.output.idle_for(now)

    @property
    def provider_slots(self) -> set[str]:
        """Providers whose connections this channel holds."""
        return {t.upstream.provider for t in (self._current, self._pending) if t is not None}

    def status(self, now: float) -> dict[str, Any]:
        url = self.source_url
        return {
            "stream_url": self._redactor.mask(url) if url else None,
            "event": self.event.title if self.event is not None else None,
            "uptime_seconds": int(now - self.started_at),
            "idle_seconds": int(self.idle_for(now)),
            "last_check": self.last_check,
            "clients": len(self.clients),
            "bytes_sent": self.output.bytes_sent,
            "bitrate_kbps": self.output.bitrate_kbps,
            "switches": self.switches,
            "error": self.error,
        }

    # -- teardown --------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """End the stream: release the provider connections, finish every client."""
        if self.stopped:
            return
        self.stopped = True
        if self._ticker.running:
            self._ticker.stop()
        self._cancel_retry()
        self._drop_sources()
        self.output.end(reason)
        if self._on_stopped is not None:
            self._on_stopped(self)

    def _drop_sources(self) -> None:
        self.output.flush()
        self._cancel_pending()
        current, self._current = self._current, None
        if current is not None:
            self._release(current)
        self._source_changed()

    def _cancel_pending(self) -> None:
        pending, self._pending = self._pending, None
        self._cancel_pat_timer()
        self._pending_buf = []
        self._pending_bytes = 0
        if pending is not None:
            self._release(pending)

    def _release(self, tap: _Tap) -> None:
        tap.upstream.unsubscribe(tap)
        self._registry.release(tap.upstream)

    def _cancel_pat_timer(self) -> None:
        if self._pat_timer is not None and self._pat_timer.active():
            self._pat_timer.cancel()
        self._pat_timer = None

    def _cancel_retry(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
