"""
One combined channel's stream: follows the schedule, carries the playing event's source to
its clients, switches sources inside their connections.

A switch subscribes to the new source while the old keeps flowing (make-before-break), reads
the new bytes until the new source's entry point (a PAT followed by a random-access point;
bounded), then cuts over and lets go of the old. Every cut — a switch, a reconnection, a
fail-over — goes through the channel's splicer, so its clients see one unbroken program.
Fail-over walks the event's sources in order. Whenever clients wait for data they get null
packets, so players keep the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from epgd.config import StreamConfig
from epgd.mpegts.entry import ENTRY_WAIT_BYTES, ENTRY_WAIT_SECONDS, Entry, EntryFinder
from epgd.mpegts.splice.continuous import Splicer
from epgd.mpegts.splice.passthrough import PassthroughSplicer
from epgd.net.timers import backoff
from epgd.net.urls import last_segment
from epgd.redact import Redactor
from epgd.schedule.model import Event, Schedule, Source
from epgd.stream.out.client import Client
from epgd.stream.out.output import Output
from epgd.stream.registry import ProviderFull, UpstreamRegistry
from epgd.stream.upstream import Upstream

#: past the wait for a random-access point, a new source that still shows no way in (no
#: PAT/PMT) after this many times the wait has failed
ENTRY_GIVE_UP = 3
#: once the new source's entry is found, the old one may take this long to finish its frame
CLOSE_WAIT_SECONDS = 0.5
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
        self._finder: EntryFinder | None = None  # the pending source's entry, looked for
        self._entry_timer: IDelayedCall | None = None
        self._entry_waits = 0
        self._ready: Entry | None = None  # the new source's entry, while the old one closes
        self._ready_more: list[bytes] = []  # what the new source sent since
        self._close_timer: IDelayedCall | None = None
        self._closing_token: object | None = None  # a break-before-make waiting for the old to close
        self._awaiting: Source | None = None  # ... and the source it opens then
        self._retry_call: IDelayedCall | None = None
        self._retry_count = 0
        self._source_index = 0
        self._started_once = False
        self._announced = False  # "Starting proxy" is logged once per stream, not per retry
        self._paused = False
        self._continuous = config.output == "continuous"
        self._close_at_cut = False
        self.splicer: Splicer | PassthroughSplicer = (
            Splicer(self._codecs_changed) if self._continuous else PassthroughSplicer(self._codecs_changed)
        )
        now = clock.seconds()
        self.started_at = now
        self.last_check = now
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = clock
        self._ticker.start(TICK, now=False).addErrback(self._ticker_died)

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
        if self._closing_token is not None:
            return True  # the old connection is closing; the new one opens once it is gone
        tap = self._pending or self._current
        return tap is not None and tap.upstream.active

    @property
    def source_url(self) -> str | None:
        """The URL clients get (or are about to get)."""
        if self._closing_token is not None and self._awaiting is not None:
            return self._awaiting.url
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
        self._closing_token = None  # a break-before-make waiting to open something else: not now
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
            closing = self._release(current)
            self._source_changed()
            if not closing.called:
                self._open_after(closing, source)
                return
        self._connect(source)

    def _open_after(self, closing: Deferred[None], source: Source) -> None:
        """
        Break-before-make: open the new connection once the old one is gone (at most
        ``connect_timeout`` later), not while a single-connection panel still counts it.
        """
        token = object()
        self._closing_token, self._awaiting = token, source

        def go(result: object = None, late: bool = False) -> object:
            if self._closing_token is token:
                self._closing_token = None
                if timer.active():
                    timer.cancel()
                if not self.stopped and self._pending is None:
                    self._connect(source, over_closing=late)
            return result

        timer = self._clock.callLater(self._config.connect_timeout, go, None, True)
        closing.addBoth(go)

    def _connect(self, source: Source, over_closing: bool = False) -> None:
        registry = self._registry
        masked = self._redactor.mask(source.url)
        try:
            upstream = registry.acquire(source, asking=self, over_closing=over_closing)
        except ProviderFull as e:
            freed = None if over_closing else registry.slot_freed(source.provider)
            if freed is not None:  # a connection of that provider is closing: take its slot
                self._open_after(freed, source)
                return
            self.error = str(e)
            self.log.warn("[PROXY] {channel} cannot open {url}: {error}",
                          channel=self.channel_id, url=masked, error=self.error)
            self._schedule_retry()
            return
        tap = _Tap(self, upstream)
        self._pending = tap
        # With a source flowing, its entry point is looked for on the side while the old one
        # keeps flowing; with none, the splicer finds it and clients wait on keepalive.
        self._finder = self.splicer.finder() if self._current is not None else None
        self._entry_waits = 0
        upstream.subscribe(tap)
        upstream.start()

    def _tap_data(self, tap: _Tap, data: bytes) -> None:
        if tap is self._current:
            self._deliver(data)
            if self._ready is not None and self.splicer.closed:
                self._cut_to_ready()
        elif tap is self._pending:
            if self._ready is not None:
                self._ready_more.append(data)
                return
            finder = self._finder
            if finder is None:
                self._cut(None)
                self._deliver(data)
                return
            if self._entry_timer is None:
                self._entry_timer = self._clock.callLater(ENTRY_WAIT_SECONDS, self._entry_timeout)
            entry = finder.feed(data)
            if entry is not None:
                self._entry_found(entry)
            elif finder.seen >= ENTRY_WAIT_BYTES * (self._entry_waits + 1):
                self._entry_timeout()

    def _entry_found(self, entry: Entry) -> None:
        """The new source can start: let the old one finish its current frame first."""
        self._cancel_entry_wait()
        self._ready, self._ready_more = entry, []
        self.splicer.close()
        if self.splicer.closed:
            self._cut_to_ready()
        else:
            self._close_timer = self._clock.callLater(CLOSE_WAIT_SECONDS, self._cut_to_ready)

    def _cut_to_ready(self) -> None:
        entry, more = self._ready, self._ready_more
        self._cancel_close_wait()
        if entry is None or self._pending is None:
            return
        self._cut(entry)
        for data in more:
            self._deliver(data)

    def _tap_cut(self, tap: _Tap) -> None:
        """The current source resumes elsewhere (a reconnection): re-enter it cleanly."""
        if tap is self._current:
            self.output.flush()
            self._source_changed()
            self.splicer.cut()

    def _entry_timeout(self) -> None:
        """
        No random-access point in time: take the new source's next frame instead; when even
        that does not come (no PAT/PMT at all), the new source has failed.
        """
        if self._entry_timer is not None and self._entry_timer.active():
            self._entry_timer.cancel()
        self._entry_timer = None
        pending, finder = self._pending, self._finder
        if pending is None or finder is None:
            return
        self._entry_waits += 1
        if self._entry_waits >= ENTRY_GIVE_UP:
            self._tap_failed(pending, "sent no PAT, PMT and frame to cut in at within "
                                      f"{ENTRY_WAIT_SECONDS * ENTRY_GIVE_UP:g}s")
            return
        if self._entry_waits == 1:
            wanted = "random-access point" if finder.mode == "rap" else "PAT"
            self.log.info("[PROXY] {channel}: no {wanted} from {new} in time, cutting over at "
                          "its next {then}", channel=self.channel_id, wanted=wanted,
                          new=pending.upstream.name, then="frame" if finder.mode == "rap" else "packet")
            finder.relax()
        self._entry_timer = self._clock.callLater(ENTRY_WAIT_SECONDS, self._entry_timeout)

    def _cut(self, entry: Entry | None) -> None:
        """The pending source is the current one from now on (at ``entry``, when found)."""
        tap = self._pending
        assert tap is not None
        self.output.flush()  # the old source's last bytes go out before the new one's
        self._pending = None
        self._cancel_entry_wait()
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
        if entry is None:
            self.splicer.cut()
        else:
            self._emit(self.splicer.enter(entry, self._clock.seconds()))

    def _tap_failed(self, tap: _Tap, reason: str) -> None:
        if tap is self._current and self._ready is not None:
            self._cut_to_ready()  # the old source ended while finishing its frame: switch now
            self.log.info("[PROXY] {channel}: {old} failed while the switch was under way: {why}",
                          channel=self.channel_id, old=tap.upstream.name, why=reason)
            return
        if tap is self._pending:
            self._pending = None
            self._cancel_entry_wait()
            self._cancel_close_wait()
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
        self._emit(self.splicer.feed(data, self._clock.seconds()))

    def _emit(self, out: bytes) -> None:
        splicer = self.splicer
        if splicer.notes:
            for note in splicer.notes:
                self.log.info("[PROXY] {channel}: {note}", channel=self.channel_id, note=note)
            splicer.notes.clear()
        if self._close_at_cut:
            # on_codec_change = "close": players re-tune and probe the new codecs
            self._close_at_cut = False
            self.output.flush()
            self.output.end("the codecs changed: tune in again", dropped="codec_change")
        if out:
            self.output.deliver(out, splicer.entry, splicer.first_entry)

    def _codecs_changed(self, old: str, new: str) -> None:
        self.log.info("[PROXY] {channel} codecs change: {old} -> {new}", channel=self.channel_id,
                      old=old, new=new)
        if self._config.on_codec_change == "close":
            self._close_at_cut = True

    def _source_changed(self) -> None:
        """
        A new source (or none) follows. Continuous output stays one program, so joiners may
        still start from the old source's recent packets; passthrough never mixes two.
        """
        if not self._continuous:
            self.output.reset_join()

    def add_client(self, client: Client) -> None:
        """A new viewer starts at once, at the latest entry point of the recent packets."""
        self.output.add(client)

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

    @property
    def client_count(self) -> int:
        return self.output.client_count

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
            "clients": self.client_count,
            "bytes_sent": self.output.bytes_sent,
            "bitrate_kbps": self.output.bitrate_kbps,
            "switches": self.switches,
            "error": self.error,
            "source_kind": self._source_kind(),
            "codecs": self.splicer.codecs or None,
        }

    def _source_kind(self) -> str | None:
        tap = self._pending or self._current
        return tap.upstream.kind if tap is not None else None

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
        self._cancel_entry_wait()
        self._cancel_close_wait()
        if pending is not None:
            self._release(pending)

    def _release(self, tap: _Tap) -> Deferred[None]:
        """Let go of a source; fires when its provider slot is free."""
        tap.upstream.unsubscribe(tap)
        return self._registry.release(tap.upstream)

    def _cancel_close_wait(self) -> None:
        self._ready, self._ready_more = None, []
        if self._close_timer is not None and self._close_timer.active():
            self._close_timer.cancel()
        self._close_timer = None

    def _cancel_entry_wait(self) -> None:
        self._finder = None
        if self._entry_timer is not None and self._entry_timer.active():
            self._entry_timer.cancel()
        self._entry_timer = None

    def _cancel_retry(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
