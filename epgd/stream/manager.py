"""
The stream manager: answers ``/stream/{id}.ts``, owns every channel stream and provider
connection, enforces ``max_clients`` and ``max_streams``, re-checks the schedule every
``check_interval`` and exactly at the next event boundary, and stops idle streams. With
``stream.slate`` it gives each channel its slate (SPEC §14) and owns the process's one
slate painter.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from epgd.config import Config
from epgd.net.timers import cancel
from epgd.plaintext import error_line
from epgd.publish.slatetext import saying
from epgd.redact import Redactor
from epgd.schedule.model import Schedule, utc_iso
from epgd.stream.channel.slate import ChannelSlate
from epgd.stream.channel.stream import ChannelStream
from epgd.stream.hlsout.service import HlsService
from epgd.stream.out.client import Client
from epgd.stream.out.turns import Turns
from epgd.stream.registry import HTTPFactory, ProviderFull, UpstreamRegistry
from epgd.stream.slatepaint import SlatePainter

#: how often idle streams are looked for
REAP_EVERY = 1.0


class StreamManager(Service):
    """Every live channel stream of this process."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: Any,
        schedule: Callable[[], Schedule | None],
        redactor: Redactor,
        http_factory: HTTPFactory | None = None,
        has_data: Callable[[], bool] = lambda: True,
    ) -> None:
        self.config = config
        self._has_data = has_data
        self.reactor = reactor
        self._schedule = schedule
        self.redactor = redactor
        self.registry = UpstreamRegistry(config, reactor, redactor, http_factory)
        self.registry.make_room = self._make_room
        self.channels: dict[str, ChannelStream] = {}
        self._lone: set[ChannelStream] = set()  # slate-only streams of refused viewers (serve_slate)
        self.painter = SlatePainter(reactor) if config.stream.slate else None
        self._clients: set[Client] = set()
        #: what /metrics counts beyond the live streams: viewers cut off by reason, and the
        #: bytes and switches of a channel's streams that have stopped (counters stay monotonic)
        self.dropped: Counter[str] = Counter()
        self.past_bytes: Counter[str] = Counter()
        self.past_switches: Counter[str] = Counter()
        self._boundary: IDelayedCall | None = None
        self._checker = LoopingCall(self._check_all)
        self._checker.clock = reactor
        self._reaper = LoopingCall(self._reap)
        self._reaper.clock = reactor
        self.hls = HlsService(reactor, config.stream, self._admit_hls, self._known)
        #: every channel's writes to its viewers, a bounded number per reactor turn
        self.turns = Turns(reactor)

    # -- service ---------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.painter is not None:
            self.painter.start()
        # Their bodies never raise; should one anyway, say so rather than stop silently.
        for name, loop, every in (("schedule check", self._checker, self.config.stream.check_interval),
                                  ("idle reaper", self._reaper, REAP_EVERY)):
            loop.start(every, now=False).addErrback(self._loop_stopped, name)

    def _loop_stopped(self, failure: Failure, what: str) -> None:
        self.log.failure("[PROXY] the {what} stopped", failure, what=what)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        for loop in (self._checker, self._reaper):
            if loop.running:
                loop.stop()
        self._cancel_boundary()
        for channel in [*self.channels.values(), *self._lone]:
            channel.stop("epgd is shutting down")
        if self.painter is not None:
            self.painter.stop()
        self.turns.stop()
        return self.registry.close().addCallback(lambda _: None)

    # -- requests --------------------------------------------------------------------

    def _unknown(self, request: IRequest, channel_id: str, schedule: Schedule | None,
                 loaded: bool) -> bytes | None:
        """The answer when ``channel_id`` cannot be served at all (unknown, no data yet); else None."""
        if schedule is None:
            request.setHeader(b"Retry-After", b"10")
            return error_line(request, 503, "no schedule yet: provider data is still loading")
        if schedule.channel(channel_id) is None:
            return error_line(request, 404, f"unknown channel {channel_id!r}")
        if not loaded:
            request.setHeader(b"Retry-After", b"10")
            return error_line(request, 503, "no provider data yet: the first fetch is still running "
                                       "(see /health)")
        return None

    def serve(self, request: IRequest, channel_id: str) -> Any:
        """The whole answer to ``GET``/``HEAD /stream/{channel_id}.ts``."""
        now = self.reactor.seconds()
        schedule, refused = self._refusal(request, channel_id, now, connection=True)
        if schedule is None:
            return refused
        if self._answer(request):
            return b""
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = self._start(channel_id, schedule, now)
        client = Client(
            request, self.reactor, self.config.stream.client_buffer, channel_id,
            on_detach=self._client_gone,
        )
        self._clients.add(client)
        channel.add_client(client)
        return client.done

    def _refusal(
        self, request: IRequest, channel_id: str, now: float, *, connection: bool,
    ) -> tuple[Schedule | None, bytes | None]:
        """
        The 404s and 503s a viewer of ``channel_id`` gets before it plays (the slate where §14
        puts one): (the schedule, None) to go on, else (None, the answer). ``connection``: the
        viewer holds one (TS), so ``max_clients`` counts it; an HLS viewer holds none.
        """
        schedule = self._schedule()
        hold = self.config.stream.hold_after_end
        event = schedule.playing(channel_id, now, hold) if schedule is not None else None
        refused = self._unknown(request, channel_id, schedule, event is not None or self._has_data())
        if refused is not None or schedule is None:
            return None, refused
        slate = self.config.stream.slate  # §14: every 503 below but max_clients is the slate
        if event is None and not slate:
            return None, self._nothing_on(request, schedule, channel_id, now)
        if connection and len(self._clients) >= self.config.server.max_clients:
            request.setHeader(b"Retry-After", b"30")
            return None, error_line(
                request, 503,
                f"too many clients: server.max_clients is {self.config.server.max_clients}",
            )
        if channel_id not in self.channels and event is not None and not slate:
            full = self._full_provider(event.sources, free=request.method != b"HEAD")
            if full is not None:
                request.setHeader(b"Retry-After", b"30")
                return None, error_line(request, 503, str(full))
        return schedule, None

    def _nothing_on(self, request: IRequest, schedule: Schedule, channel_id: str, now: float) -> bytes:
        """503 naming the next event (``stream.slate = false``: SPEC §7)."""
        upcoming = schedule.next(channel_id, now)
        if upcoming is None:
            request.setHeader(b"Retry-After", b"3600")
            return error_line(request, 503, f"nothing on {channel_id} now and nothing scheduled")
        wait = max(1, math.ceil(upcoming.live_from - now))
        request.setHeader(b"Retry-After", str(wait).encode("ascii"))
        return error_line(
            request, 503,
            f"nothing on {channel_id} now; next: {upcoming.title!r} at {utc_iso(upcoming.live_from)}",
        )

    def serve_hls(self, request: IRequest, channel_id: str, prefix: str = "") -> Any:
        """
        The whole answer to ``GET``/``HEAD /stream/{channel_id}.m3u8`` (SPEC §16); ``prefix``:
        what goes before ``{sequence}.ts`` in its segment URIs (default ``{channel_id}/``).
        """
        return self.hls.playlist(request, channel_id, prefix)

    def serve_hls_segment(self, request: IRequest, channel_id: str, name: str) -> Any:
        """The whole answer to ``GET``/``HEAD /stream/{channel_id}/{sequence}.ts``."""
        return self.hls.segment(request, channel_id, name)

    def _admit_hls(self, request: IRequest, channel_id: str) -> ChannelStream | bytes | None:
        """
        A playlist request: the 404s and 503s of ``serve`` (the slate where §14 puts one), but
        not ``max_clients`` (an HLS viewer holds no connection); the channel, started — or
        None for a HEAD of a channel not running.
        """
        now = self.reactor.seconds()
        schedule, refused = self._refusal(request, channel_id, now, connection=False)
        if schedule is None:
            return refused
        channel = self.channels.get(channel_id)
        if channel is None and request.method != b"HEAD":
            channel = self._start(channel_id, schedule, now)
        return channel

    def _known(self, channel_id: str) -> bool:
        schedule = self._schedule()
        return schedule is not None and schedule.channel(channel_id) is not None

    def serve_slate(self, request: IRequest, channel_id: str, reason: str) -> Any:
        """
        The whole answer to a ``/stream/{channel_id}.ts`` request epgd refuses the channel
        to, with the one line saying why — SPEC §15's user at ``max_connections``:
        ``reason = epgd.publish.slatetext.user_full(user, limit)``. With ``stream.slate``:
        200 and a stream of nothing but the slate (the channel's number and name, then
        ``reason``) until the viewer leaves; it opens no provider connection and is not in
        /streams/status. Without: 503 with ``reason``. Unknown channels and a server still
        loading answer as ``serve`` does.
        """
        schedule = self._schedule()
        refused = self._unknown(request, channel_id, schedule, self._has_data())
        if refused is not None or schedule is None:
            return refused
        known = schedule.channel(channel_id)
        if not self.config.stream.slate or len(self._clients) >= self.config.server.max_clients or known is None:
            request.setHeader(b"Retry-After", b"30")
            return error_line(request, 503, reason)
        if self._answer(request):
            return b""
        lone = ChannelStream(channel_id, self.reactor, self.config.stream, self.registry, self.redactor,
                             on_stopped=self._lone.discard, slate=self._slate(channel_id),
                             turns=self.turns)
        self._lone.add(lone)
        lone.hold_on_slate(saying(known, reason))
        client = Client(request, self.reactor, self.config.stream.client_buffer, channel_id,
                        on_detach=lambda gone: self._lone_gone(gone, lone))
        self._clients.add(client)
        lone.add_client(client)
        return client.done

    def _answer(self, request: IRequest) -> bool:
        """The headers of a stream; True when that is the whole answer (HEAD)."""
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"video/mp2t")
        request.setHeader(b"Cache-Control", b"no-cache, no-store")
        request.setHeader(b"Accept-Ranges", b"none")
        return request.method == b"HEAD"

    def _lone_gone(self, client: Client, lone: ChannelStream) -> None:
        self._clients.discard(client)
        lone.stop("the viewer left")

    def _slate(self, channel_id: str) -> ChannelSlate | None:
        """A new stream's slate (None with ``stream.slate = false``)."""
        if self.painter is None:
            return None
        return ChannelSlate(self.reactor, self.config.stream.slate_size, self.painter,
                            ZoneInfo(self.config.guide.timezone), channel_id)

    def _full_provider(self, sources: Any, free: bool) -> ProviderFull | None:
        """
        The limit a new stream would hit: only when no source of the event is already open
        or has room, and no client-less stream can make room. ``free``: really stop that
        stream (a GET); a HEAD only asks whether one could be stopped.
        """
        registry = self.registry
        first: ProviderFull | None = None
        for source in sources:
            if registry.get(source.url) is not None or registry.has_room(source.provider, soon=True):
                return None
            if not free and self._clientless(source.provider) is not None:
                return None
            if free and self._make_room(source.provider, None) and registry.has_room(source.provider, soon=True):
                return None
            if first is None:
                first = ProviderFull(source.provider, registry.limit(source.provider))
        return first

    def _start(self, channel_id: str, schedule: Schedule, now: float) -> ChannelStream:
        channel = ChannelStream(
            channel_id, self.reactor, self.config.stream, self.registry, self.redactor,
            on_stopped=self._channel_stopped, slate=self._slate(channel_id), turns=self.turns,
        )
        self.channels[channel_id] = channel
        channel.check(schedule, now)
        self._arm_boundary(schedule, now)
        return channel

    def _client_gone(self, client: Client) -> None:
        self._clients.discard(client)
        if client.dropped:
            self.dropped[client.dropped] += 1
        channel = self.channels.get(client.channel_id)
        if channel is not None:
            channel.client_gone(client)

    def _channel_stopped(self, channel: ChannelStream) -> None:
        self.hls.channel_stopped(channel)
        if self.channels.get(channel.channel_id) is channel:
            del self.channels[channel.channel_id]
            figures = channel.status(self.reactor.seconds())
            self.past_bytes[channel.channel_id] += figures["bytes_sent"]
            self.past_switches[channel.channel_id] += figures["switches"]
        if not self.channels:
            self._cancel_boundary()  # no stream left to switch: no timer left behind

    # -- control ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = self.reactor.seconds()
        found = {}
        for cid, channel in sorted(self.channels.items()):
            figures = channel.status(now)
            figures["idle_seconds"] = int(self._idle_for(channel, now))
            figures["hls_sessions"] = self.hls.sessions(cid, now)  # SPEC §16
            found[cid] = figures
        return found

    def _idle_for(self, channel: ChannelStream, now: float) -> float:
        """Seconds nobody watched: no byte to a TS viewer, no HLS request for 3 segment lengths."""
        idle = channel.idle_for(now)
        if self.channels.get(channel.channel_id) is not channel:
            return idle  # a slate-only stream of one refused viewer: HLS is not its
        return min(idle, self.hls.idle_for(channel.channel_id, now))

    def stop(self, channel_id: str) -> bool:
        channel = self.channels.get(channel_id)
        if channel is None:
            return False
        self.log.info("[PROXY] {channel} stopped by request", channel=channel_id)
        self.dropped["stopped"] += channel.client_count
        channel.stop("stopped by an administrator")
        return True

    def connections(self) -> dict[str, int]:
        """Provider connections open now, by configured provider (for /health and /metrics)."""
        return {p.name: self.registry.used(p.name) for p in self.config.providers}

    def _clientless(self, provider: str, asking: object = None) -> ChannelStream | None:
        """A stream with no clients that holds a connection of ``provider``."""
        now = self.reactor.seconds()
        for channel in self.channels.values():
            if (channel is not asking and not channel.client_count and provider in channel.provider_slots
                    and not self.hls.watched(channel.channel_id, now)):
                return channel
        return None

    def _make_room(self, provider: str, asking: object) -> bool:
        """Stop one client-less stream holding a connection of ``provider``."""
        channel = self._clientless(provider, asking)
        if channel is None:
            return False
        self.log.info(
            "[PROXY] {channel} has no clients; stopping it to free a {provider} connection",
            channel=channel.channel_id, provider=provider,
        )
        channel.stop("stopped to free a provider connection")
        return True

    # -- schedule --------------------------------------------------------------------

    def schedule_changed(self, schedule: Schedule | None = None) -> None:
        """A new schedule is in: re-check every active channel now, re-arm the boundary."""
        self._check_all(schedule)

    def _check_all(self, schedule: Schedule | None = None) -> None:
        """Never raises: a LoopingCall dies on the first exception."""
        try:
            schedule = schedule if schedule is not None else self._schedule()
            if schedule is None:
                return
            now = self.reactor.seconds()
            for channel_id, channel in list(self.channels.items()):
                if schedule.channel(channel_id) is None:
                    self.log.info("[PROXY] {channel} is gone from the schedule, stopping",
                                  channel=channel_id)
                    channel.stop("the channel is gone from the schedule")
                    continue
                try:
                    channel.check(schedule, now)
                except Exception:
                    self.log.failure("[PROXY] {channel} check failed", channel=channel_id)
            self._arm_boundary(schedule, now)
        except Exception:
            self.log.failure("[PROXY] schedule check failed")

    def _arm_boundary(self, schedule: Schedule, now: float) -> None:
        """One timer at the next moment anything changes on an active channel."""
        hold = self.config.stream.hold_after_end
        times = [
            t for t in (schedule.next_boundary(cid, now, hold) for cid in self.channels)
            if t is not None
        ]
        self._cancel_boundary()
        if times:
            delay = max(0.0, min(times) - now)
            self._boundary = self.reactor.callLater(delay, self._at_boundary)

    def _at_boundary(self) -> None:
        self._boundary = None
        self._check_all()

    def _cancel_boundary(self) -> None:
        cancel(self._boundary)
        self._boundary = None

    def _reap(self) -> None:
        """Stop streams that delivered nothing to any client for idle_timeout; never raises."""
        try:
            now = self.reactor.seconds()
            self.hls.reap(now)
            timeout = self.config.stream.idle_timeout
            lone = [(c.channel_id, c) for c in self._lone]  # a slate-only viewer paused for ever
            for channel_id, channel in [*self.channels.items(), *lone]:
                if self._idle_for(channel, now) >= timeout:
                    self.log.info("[PROXY] {channel} idle for {seconds}s, stopping",
                                  channel=channel_id, seconds=f"{timeout:g}")
                    self.dropped["idle"] += channel.client_count
                    channel.stop("idle")
        except Exception:
            self.log.failure("[PROXY] idle check failed")

