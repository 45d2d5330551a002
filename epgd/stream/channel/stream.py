"""
One combined channel's stream: follows the schedule, carries the playing event's source to
its clients, switches sources inside their connections.

A switch subscribes to the new source while the old keeps flowing (make-before-break), reads
the new bytes until the new source's entry point (a PAT followed by a random-access point;
bounded), then cuts over and lets go of the old. Every cut — a switch, a reconnection, a
fail-over — goes through the channel's splicer, so its clients see one unbroken program.
Fail-over walks the event's sources in order. Whenever clients wait for data they get null
packets, so players keep the connection.

``ChannelStream`` is the façade the manager holds. It decides (with ``policy``) what to open,
and tells the switching machine (``machine``), which owns the waits and acts on the
``SwitchCore``. A flowing source's bytes go straight to the splicer: the machine only hears
of the pending source's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from epgd.config import StreamConfig
from epgd.mpegts.splice.continuous import ContinuousSplicer
from epgd.mpegts.splice.passthrough import PassthroughSplicer
from epgd.mpegts.splice.seam import Splicer
from epgd.net.urls import last_segment
from epgd.redact import Redactor
from epgd.schedule.model import Event, Schedule, Source
from epgd.stream.channel import policy
from epgd.stream.channel.core import SwitchCore
from epgd.stream.channel.machine import machine
from epgd.stream.channel.tap import Tap
from epgd.stream.out.client import Client
from epgd.stream.out.output import Output
from epgd.stream.registry import ProviderFull, UpstreamRegistry

#: how often keepalive, idle time and bitrate are looked after
TICK = 0.25


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
        self.stopped = False
        self._clock = clock
        self._config = config
        self._registry = registry
        self._redactor = redactor
        self._on_stopped = on_stopped
        self._source_index = 0
        self._announced = False  # "Starting proxy" is logged once per stream, not per retry
        self._unsourced: str | None = None  # the playing event has no source
        splicer: Splicer = (
            ContinuousSplicer(self._codecs_changed) if config.output == "continuous"
            else PassthroughSplicer(self._codecs_changed)
        )
        self.splicer = splicer
        self._core = SwitchCore(channel_id, clock, config, registry, self.output, splicer, self)
        self._switching = machine(self._core)
        now = clock.seconds()
        self.started_at = now
        self.last_check = now
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = clock
        self._ticker.start(TICK, now=False).addErrback(self._ticker_died)

    @property
    def state(self) -> str:
        """The switching machine's state: steady, connecting, seeking, closing, awaiting_slot,
        retrying or stopped."""
        return self._core.state

    @property
    def switches(self) -> int:
        return self._core.switches

    @property
    def error(self) -> str | None:
        return self._unsourced or self._core.error

    # -- schedule --------------------------------------------------------------------

    def check(self, schedule: Schedule, now: float) -> None:
        """Carry what the schedule says is playing now; switch if that changed."""
        if self.stopped:
            return
        self.last_check = now
        event = schedule.playing(self.channel_id, now, self._config.hold_after_end)
        self._unsourced = None
        if event is None:
            if self.event is not None:
                self.log.info(
                    "[PROXY] {channel} nothing playing after {title!r}; keeping clients "
                    "with keepalive until the next event", channel=self.channel_id,
                    title=self.event.title,
                )
                self.event = None
                self._switching.nothing_on()
            return
        previous, self.event = self.event, event
        if not event.sources:
            self._unsourced = f"event {event.title!r} has no source"
            return
        core = self._core
        if policy.keeps_playing(event, previous, self.source_url, self._alive()):
            self._source_index = [s.url for s in event.sources].index(self.source_url or "")
            return
        if previous is not None and event.key == previous.key and core.state == "retrying":
            return  # a retry is already due
        self._source_index = 0
        core.retry_count = 0
        self._play(event.sources[0])

    def _alive(self) -> bool:
        """What plays (or is about to) is still going: it needs no opening anew."""
        core = self._core
        if core.state == "awaiting_slot":
            return True  # the old connection is closing; the new one opens once it is gone
        tap = core.pending or core.current
        return tap is not None and tap.upstream.active

    @property
    def source_url(self) -> str | None:
        """The URL clients get (or are about to get)."""
        core = self._core
        if core.awaiting is not None:
            return core.awaiting.url
        tap = core.pending or core.current
        return tap.upstream.url if tap is not None else None

    # -- policy: what to open ----------------------------------------------------------

    def _play(self, source: Source) -> None:
        """Make ``source`` what the viewers get: switch to it, or open it."""
        if self.stopped:
            return
        core = self._core
        current = core.current
        if current is not None and current.upstream.url == source.url and current.upstream.active:
            self._switching.abandon()  # back to what flows
            return
        if core.pending is not None and core.pending.upstream.url == source.url:
            return
        self._switching.abandon()
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
        if policy.breaks_before_make(self._registry, current.upstream if current else None, source):
            assert current is not None
            self.log.info(
                "[PROXY] {channel} closing {old} first: provider {provider} allows "
                "{limit} streams", channel=self.channel_id, old=current.upstream.name,
                provider=source.provider, limit=self._registry.limit(source.provider),
            )
            self._switching.await_slot(source, None)
            return
        self.connect(source, False)

    def connect(self, source: Source, over_closing: bool) -> None:
        """Open ``source`` now (``over_closing``: not counting connections still closing)."""
        if self.stopped:
            return
        registry = self._registry
        try:
            upstream = registry.acquire(source, asking=self, over_closing=over_closing)
        except ProviderFull as e:
            freed = None if over_closing else registry.slot_freed(source.provider)
            if freed is not None:  # a connection of that provider is closing: take its slot
                self._switching.await_slot(source, freed)
                return
            self._core.error = str(e)
            self.log.warn("[PROXY] {channel} cannot open {url}: {error}", channel=self.channel_id,
                          url=self._redactor.mask(source.url), error=self._core.error)
            self._switching.retry_later()
            return
        tap = Tap(self, upstream)
        if self._core.current is not None:
            self._switching.connect_beside(tap)
        else:
            self._switching.connect(tap)

    def failover(self, failed: str) -> None:
        """The event's next source, or a retry of them all after a backoff."""
        event = self.event
        if event is None or self.stopped:
            return
        following = policy.next_source(event, self._source_index)
        if following is not None:
            self._source_index = following
            source = event.sources[following]
            self.log.info("[PROXY] {channel} failing over from {old} to {new}",
                          channel=self.channel_id, old=failed, new=last_segment(source.url))
            self._play(source)
            return
        self._source_index = 0
        self._switching.retry_later()

    def retry(self) -> None:
        if self.event is not None and self.event.sources and not self.stopped:
            index = min(self._source_index, len(self.event.sources) - 1)
            self._play(self.event.sources[index])

    # -- what the taps report ----------------------------------------------------------

    def tap_data(self, tap: Tap, data: bytes) -> None:
        core = self._core
        if tap is core.current:
            core.deliver(data)  # the hot path: straight to the splicer
            if core.splicer.closed:
                self._switching.old_done()
        elif tap is core.pending:
            self._switching.pending_data(data)

    def tap_cut(self, tap: Tap) -> None:
        """The current source resumes elsewhere (a reconnection): re-enter it cleanly."""
        if tap is self._core.current:
            self._core.reenter()

    def tap_failed(self, tap: Tap, reason: str) -> None:
        core = self._core
        if tap is core.pending:
            self._switching.pending_failed(reason)
        elif tap is core.current:
            self._switching.current_failed(reason)

    def _codecs_changed(self, old: str, new: str) -> None:
        self.log.info("[PROXY] {channel} codecs change: {old} -> {new}", channel=self.channel_id,
                      old=old, new=new)
        if self._config.on_codec_change == "close":
            self._core.close_at_cut = True

    # -- viewers -----------------------------------------------------------------------

    def add_client(self, client: Client) -> None:
        """A new viewer starts at once, at the latest entry point of the recent packets."""
        self.output.add(client)

    def client_gone(self, client: Client) -> None:
        self.output.remove(client)

    # -- IPushProducer (for the clients' fanout) -------------------------------------

    def pauseProducing(self) -> None:
        self._core.set_paused(True)

    def resumeProducing(self) -> None:
        self._core.set_paused(False)

    def stopProducing(self) -> None:
        self.stop("stopped")

    # -- timers ----------------------------------------------------------------------

    def _tick(self) -> None:
        """Never raises: a LoopingCall stops for good on the first exception."""
        try:
            self.output.tick()
        except Exception:
            self.log.failure("[PROXY] {channel}: keepalive/bookkeeping tick failed",
                             channel=self.channel_id)

    def _ticker_died(self, failure: Any) -> None:
        self.log.failure("[PROXY] {channel}: its ticker stopped", failure, channel=self.channel_id)
        if not self.stopped:
            self.stop("internal error")

    # -- status ----------------------------------------------------------------------

    @property
    def client_count(self) -> int:
        return self.output.client_count

    def idle_for(self, now: float) -> float:
        """Seconds since real data (not keepalive) last reached a client."""
        return self.output.idle_for(now)

    @property
    def provider_slots(self) -> set[str]:
        """Providers whose connections this channel holds."""
        core = self._core
        return {t.upstream.provider for t in (core.current, core.pending) if t is not None}

    def status(self, now: float) -> dict[str, Any]:
        url = self.source_url
        tap = self._core.pending or self._core.current
        return {
            "stream_url": self._redactor.mask(url) if url else None,
            "event": self.event.title if self.event is not None else None,
            "uptime_seconds": int(now - self.started_at),
            "idle_seconds": int(self.idle_for(now)),
            "last_check": self.last_check,
            "clients": self.client_count,
            "bytes_sent": self.output.bytes_sent,
            "bitrate_kbps": self.output.bitrate_kbps,
            "switches": self.switches,
            "error": self.error,
            "source_kind": tap.upstream.kind if tap is not None else None,
            "codecs": self.splicer.codecs or None,
        }

    # -- teardown --------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """End the stream: release the provider connections, finish every client."""
        if self.stopped:
            return
        self.stopped = True
        if self._ticker.running:
            self._ticker.stop()
        self._switching.stop()
        self.output.end(reason)
        if self._on_stopped is not None:
            self._on_stopped(self)
