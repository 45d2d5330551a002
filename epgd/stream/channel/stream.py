"""
One combined channel's stream: follows the schedule, carries the playing event's source to
its clients, switches sources inside their connections.

A switch subscribes to the new source while the old keeps flowing (make-before-break), reads
the new bytes until the new source's entry point (a PAT followed by a random-access point;
bounded), then cuts over and lets go of the old. Every cut — a switch, a reconnection, a
fail-over — goes through the channel's splicer, so its clients see one unbroken program.
Fail-over walks the event's sources in order. Whenever clients wait for data they get null
packets, so players keep the connection.

With a slate (SPEC §14), a channel with nothing to play — no event, the provider's connections
all taken, or no media for its viewers for a while (``policy.slate_due``) — shows it: the slate
is one more source (``slate.SlateFeed``) the machine puts on, and the cut back to the event is a
switch like any other. What the slate says is worded by ``epgd.publish.slatetext``.

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
from epgd.publish.slatetext import SlateText
from epgd.redact import Redactor
from epgd.schedule.model import Channel, Event, Schedule, Source
from epgd.stream.channel import policy
from epgd.stream.channel.core import SwitchCore
from epgd.stream.channel.machine import machine
from epgd.stream.channel.slate import ChannelSlate
from epgd.stream.channel.tap import Tap
from epgd.stream.out.client import Client
from epgd.stream.out.output import Output
from epgd.stream.out.turns import Turns
from epgd.stream.registry import ProviderFull, UpstreamRegistry
from epgd.stream.upstream import Upstream

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
        slate: ChannelSlate | None = None,
        turns: Turns | None = None,
    ) -> None:
        """``slate``: shown when nothing plays (None: keepalive only); ``turns``: the manager's
        writes to viewers, shared by its channels (None: its own)."""
        self.channel_id = channel_id
        self.output = Output(clock, config.chunk_size, self, turns)
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
        self._slate = slate
        self._channel: Channel | None = None  # the schedule's (number, name, events): the slate's words
        self._full: ProviderFull | None = None  # the event's source could not open for it
        self._fixed: SlateText | None = None  # hold_on_slate: these words, whatever the schedule says
        splicer: Splicer = (
            ContinuousSplicer(self._codecs_changed, pid_per_codec=config.on_codec_change == "new_pid")
            if config.output == "continuous"
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
        retrying or stopped (``on_slate`` tells whether the slate is what flows)."""
        return self._core.state

    @property
    def on_slate(self) -> bool:
        return self._core.on_slate

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
        self._channel = schedule.channel(self.channel_id)
        if self._fixed is not None:
            return
        event = schedule.playing(self.channel_id, now, self._config.hold_after_end)
        self._unsourced = None
        if event is None:
            self._full = None
            if self.event is not None:
                self.log.info(
                    "[PROXY] {channel} nothing playing after {title!r}; keeping clients "
                    "with {what} until the next event", channel=self.channel_id,
                    title=self.event.title, what="the slate" if self._slate_usable else "keepalive",
                )
                self.event = None
                self._switching.nothing_on()
            self._slate_on(now)
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
        """The provider URL clients get (or are about to get); None for the slate."""
        core = self._core
        if core.awaiting is not None:
            return core.awaiting.url
        tap = core.pending or core.current
        return tap.upstream.url if tap is not None and not tap.slate else None

    def _playing(self) -> Upstream | None:
        """The provider stream flowing now (not the slate)."""
        tap = self._core.current
        upstream = tap.upstream if tap is not None else None
        return upstream if isinstance(upstream, Upstream) else None

    # -- policy: what to open ----------------------------------------------------------

    def _play(self, source: Source) -> None:
        """Make ``source`` what the viewers get: switch to it, or open it."""
        if self.stopped:
            return
        core = self._core
        current = self._playing()
        if current is not None and current.url == source.url and current.active:
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
                          channel=self.channel_id, old=current.name,
                          new=last_segment(source.url))
        else:
            self.log.info("[PROXY] {channel} connecting to {url}", channel=self.channel_id,
                          url=masked)
        if policy.breaks_before_make(self._registry, current, source):
            assert current is not None
            self.log.info(
                "[PROXY] {channel} closing {old} first: provider {provider} allows "
                "{limit} streams", channel=self.channel_id, old=current.name,
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
            self._full = e  # the slate says so (at the next tick: we may be inside a transition)
            self.log.warn("[PROXY] {channel} cannot open {url}: {error}", channel=self.channel_id,
                          url=self._redactor.mask(source.url), error=self._core.error)
            self._switching.retry_later()
            return
        self._full = None
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

    # -- the slate (SPEC §14) ----------------------------------------------------------

    @property
    def _slate_usable(self) -> bool:
        return self._slate is not None and not self._slate.broken and not self.stopped

    def hold_on_slate(self, said: SlateText) -> None:
        """
        Show nothing but the slate saying ``said``, whatever the schedule says: a viewer epgd
        will not give the channel (SPEC §15's user at ``max_connections``). Such a stream is
        never checked against the schedule and opens no source.
        """
        self._fixed = said
        self._slate_on(self._clock.seconds())

    def _words(self, now: float) -> SlateText | None:
        """What the slate says now: the held words, what is up next, or why nothing plays."""
        if self._fixed is not None or self._slate is None:
            return self._fixed
        return self._slate.words(self._channel, self.event, self._full, self._source_index, now)

    def _slate_on(self, now: float) -> None:
        """The slate goes on now (with what it is to say), unless it is on already."""
        slate = self._slate
        if slate is None or not self._slate_usable:
            return
        words = self._words(now)
        if words is not None:
            slate.say(words)
        core = self._core
        if core.on_slate:
            return
        self.log.info("[PROXY] {channel} showing the slate: {why}", channel=self.channel_id,
                      why=" / ".join(words.lines[1:]) if words is not None else "")
        tap = Tap(self, slate.feed())
        if core.current is None:
            self._switching.show_slate(tap)
        else:
            self._switching.stalled(tap)

    def _watch(self, now: float) -> None:
        """Each tick: keep the slate's words current; put it on when it is due."""
        core = self._core
        if not self._slate_usable:
            return
        if core.on_slate:
            words = self._words(now)  # a few microseconds; the picture is re-made only on change
            if words is not None and self._slate is not None:
                self._slate.say(words)
        elif core.state != "closing" and policy.slate_due(
                now, core.media_at, self.started_at, self._config.connect_timeout,
                self._full is not None and core.current is None):  # what flows goes on meanwhile
            self._slate_on(now)

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
        try:
            self._watch(self._clock.seconds())
            core = self._core
            stuck = core.splicer.stuck(self._clock.seconds()) if core.current is not None else None
            if stuck is not None and core.current is not None:  # SPEC §7.1: no way in: it fails, saying why
                self.log.warn("[PROXY] {channel}: {source} {why}", channel=self.channel_id,
                              source=core.current.upstream.masked_url, why=stuck)
                self._switching.current_failed(stuck)
        except Exception:
            self.log.failure("[PROXY] {channel}: looking after the slate failed", channel=self.channel_id)

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
        """Providers whose connections this channel holds (the slate holds none)."""
        core = self._core
        return {t.upstream.provider for t in (core.current, core.pending) if t is not None and not t.slate}

    def status(self, now: float) -> dict[str, Any]:
        """SPEC §8; on the slate (§14) no event or URL, ``source_kind`` "slate" and its words."""
        core = self._core
        url = None if core.on_slate else self.source_url
        tap = core.pending or core.current
        kind = "slate" if core.on_slate else tap.upstream.kind if tap is not None else None
        entry = {
            "stream_url": self._redactor.mask(url) if url else None,
            "event": self.event.title if self.event is not None and not core.on_slate else None,
            "uptime_seconds": int(now - self.started_at),
            "idle_seconds": int(self.idle_for(now)),
            "last_check": self.last_check,
            "clients": self.client_count,
            "bytes_sent": self.output.bytes_sent,
            "bitrate_kbps": self.output.bitrate_kbps,
            "switches": self.switches,
            "error": self.error,
            "source_kind": kind,
            "codecs": self.splicer.codecs or None,
        }
        if core.on_slate and self._slate is not None:
            entry["slate"] = self._slate.text
        return entry

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
