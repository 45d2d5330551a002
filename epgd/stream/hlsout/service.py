"""
Every channel's HLS output in one process (SPEC §16): ``/stream/{id}.m3u8`` and
``/stream/{id}/{sequence}.ts`` answered from one ``HlsOutput`` per running channel, however
many HLS viewers it has, and who watched (a channel is watched while a playlist or segment of
it was asked for in the last 3 × ``hls_segment`` seconds).

The manager owns the channels; this service only reads their output (an ``Output`` sink) and
asks the manager, through ``open_channel``, to admit a playlist request and start the channel
(the same 404s and 503s as ``/stream/{id}.ts``). A failing HLS request never touches the
channel or its TS viewers: its errors stay in its own answer.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from epgd.config import StreamConfig
from epgd.mpegts.slate.source import DEFAULT_KEY_INTERVAL as SLATE_KEY_INTERVAL
from epgd.plaintext import error_line
from epgd.stream.hlsout.sender import SegmentSender
from epgd.stream.hlsout.window import HlsOutput, OutputStopped
from epgd.stream.out.output import Output

PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
#: a channel counts as watched this many segment lengths after its last HLS request
WATCHED_SEGMENTS = 3


class HlsChannel(Protocol):
    """What the service needs of a running channel stream."""

    channel_id: str
    output: Output
    stopped: bool


#: the manager's admission of a playlist request: the running (or just started) channel, a
#: finished error answer (bytes), or None for a HEAD that starts nothing
Opener = Callable[[IRequest, str], "HlsChannel | bytes | None"]


def client_address(request: IRequest) -> str:
    try:
        return str(getattr(request.getClientAddress(), "host", "") or "client")
    except Exception:
        return "client"


class HlsService:
    """The HLS outputs of a ``StreamManager``'s channels, and their viewers."""

    log = Logger()

    def __init__(self, clock: IReactorTime, config: StreamConfig, open_channel: Opener,
                 known: Callable[[str], bool]) -> None:
        self._clock = clock
        self._config = config
        self._open_channel = open_channel
        self._known = known
        self.outputs: dict[str, tuple[HlsChannel, HlsOutput]] = {}
        self._next_sequence: dict[str, int] = {}
        self._seen: dict[str, dict[str, float]] = {}  # channel -> client address -> last request
        #: what /metrics counts: HLS requests answered, by kind (playlist, segment, missing)
        self.requests: Counter[str] = Counter()

    @property
    def watch_span(self) -> float:
        return WATCHED_SEGMENTS * self._config.hls_segment

    # -- viewers ------------------------------------------------------------------------

    def _touch(self, request: IRequest, channel_id: str) -> None:
        now = self._clock.seconds()
        seen = self._seen.setdefault(channel_id, {})
        seen[client_address(request)] = now
        if len(seen) > 64:
            self._prune(channel_id, now)

    def _prune(self, channel_id: str, now: float) -> dict[str, float]:
        seen = self._seen.get(channel_id, {})
        gone = [address for address, at in seen.items() if now - at > self.watch_span]
        for address in gone:
            del seen[address]
        if not seen:
            self._seen.pop(channel_id, None)
        return seen

    def sessions(self, channel_id: str, now: float) -> int:
        """Distinct client addresses that asked for the channel's HLS in the last 3 segment lengths."""
        return len(self._prune(channel_id, now))

    def idle_for(self, channel_id: str, now: float) -> float:
        """Seconds the channel has not been watched over HLS (infinite: never)."""
        seen = self._seen.get(channel_id)
        if not seen:
            return math.inf
        return max(0.0, now - max(seen.values()) - self.watch_span)

    def watched(self, channel_id: str, now: float) -> bool:
        return self.idle_for(channel_id, now) == 0.0

    # -- channels -----------------------------------------------------------------------

    def _attach(self, channel: HlsChannel) -> HlsOutput:
        """The channel's HLS output, made (and fed from the channel's output) on first use."""
        found = self.outputs.get(channel.channel_id)
        if found is not None and found[0] is channel:
            return found[1]
        if found is not None:
            self.channel_stopped(found[0])
        now = self._clock.seconds()
        first = max(int(now), self._next_sequence.get(channel.channel_id, 0))
        # the slate's segments run from one of its key frames to the next: with it on, the
        # target duration covers them from the start rather than growing when it shows —
        # where the window still spans three target durations (RFC 8216 §6.2.2)
        config = self._config
        spans = config.hls_window * config.hls_segment >= 3 * SLATE_KEY_INTERVAL
        longest = SLATE_KEY_INTERVAL if config.slate and spans else 0.0
        out = HlsOutput(channel.channel_id, self._clock, self._config.hls_segment,
                        self._config.hls_window, first, longest)
        self.outputs[channel.channel_id] = (channel, out)
        channel.output.add_sink(out)
        self.log.info("[PROXY] {channel} HLS output started", channel=channel.channel_id)
        return out

    def reap(self, now: float) -> None:
        """
        Let go of the HLS output of channels nobody asked about for a window's length past
        being watched: a channel that goes on for its TS viewers keeps no segments for nobody.
        """
        keep = self._config.hls_window * self._config.hls_segment
        for channel_id, (channel, _) in list(self.outputs.items()):
            if self.idle_for(channel_id, now) >= keep:
                self.log.info("[PROXY] {channel} HLS output stopped: no HLS viewer", channel=channel_id)
                self.channel_stopped(channel)

    def channel_stopped(self, channel: Any) -> None:
        """The manager stopped ``channel``: its segments go, numbering goes on from there."""
        found = self.outputs.get(channel.channel_id)
        if found is None or found[0] is not channel:
            return
        del self.outputs[channel.channel_id]
        out = found[1]
        channel.output.remove_sink(out)
        self._next_sequence[channel.channel_id] = out.next_sequence
        out.close()

    # -- requests -----------------------------------------------------------------------

    def playlist(self, request: IRequest, channel_id: str, prefix: str = "") -> Any:
        """
        The whole answer to ``GET``/``HEAD /stream/{channel_id}.m3u8``; ``prefix``: what goes
        before ``{sequence}.ts`` in the segment URIs (default: ``{channel_id}/``, relative
        to the playlist's own URL).
        """
        self.requests["playlist"] += 1
        opened = self._open_channel(request, channel_id)
        if isinstance(opened, bytes):
            return opened
        self._touch(request, channel_id)
        request.setHeader(b"Cache-Control", b"max-age=1")
        if opened is None or request.method == b"HEAD":  # the answer's headers, nothing started
            request.setHeader(b"Content-Type", PLAYLIST_TYPE)
            return b""
        out = self._attach(opened)
        prefix = prefix or f"{channel_id}/"
        if out.segments:
            return self._render(request, out, prefix)
        wait = self._config.connect_timeout + 2 * self._config.hls_segment
        started = self._clock.seconds()
        ready = out.ready()
        ready.addTimeout(wait, self._clock)
        ready.addCallback(lambda _: self._render(request, out, prefix))
        ready.addErrback(self._not_ready, request, channel_id, wait, started)
        return ready

    def _render(self, request: IRequest, out: HlsOutput, prefix: str) -> bytes:
        request.setHeader(b"Content-Type", PLAYLIST_TYPE)
        return out.playlist(prefix)

    def _not_ready(self, failure: Failure, request: IRequest, channel_id: str, wait: float,
                   started: float) -> bytes:
        failure.trap(DeferredTimeout, OutputStopped)  # anything else (a cancel) is not ours to answer
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Retry-After", b"5")
        if failure.check(OutputStopped):
            return error_line(request, 503, f"the stream of {channel_id} stopped before its first "
                                            "HLS segment was complete")
        self.log.warn("[PROXY] {channel} HLS: no segment after {seconds}s", channel=channel_id,
                      seconds=f"{self._clock.seconds() - started:.1f}")
        return error_line(request, 503, f"no HLS segment of {channel_id} yet after {wait:g} s "
                                        "(waiting for the provider or a key frame)")

    def segment(self, request: IRequest, channel_id: str, name: str) -> Any:
        """The whole answer to ``GET``/``HEAD /stream/{channel_id}/{sequence}.ts``."""
        if not self._known(channel_id):
            return error_line(request, 404, f"unknown channel {channel_id!r}")
        stem = name[:-3] if name.endswith(".ts") else ""
        if not stem.isdigit() or not stem.isascii() or len(stem) > 20:
            return error_line(request, 404, f"unknown segment {name[:40]!r}: segment names are "
                                            "{sequence}.ts")
        found = self.outputs.get(channel_id)
        hit = found[1].find(int(stem)) if found is not None else None
        self._touch(request, channel_id)
        self.requests["segment" if hit is not None else "missing"] += 1
        if hit is None:
            request.setHeader(b"Cache-Control", b"no-store")
            return error_line(request, 404, f"segment {stem} of {channel_id} is not in the HLS "
                                            "window: load the playlist again")
        segment, max_age = hit
        request.setHeader(b"Cache-Control", f"public, max-age={max_age}".encode("ascii"))
        request.setHeader(b"ETag", segment.etag)
        request.setHeader(b"Content-Type", b"video/mp2t")
        offered = request.getHeader(b"if-none-match") or b""
        if offered and (offered.strip() == b"*" or segment.etag in
                        [t.strip().removeprefix(b"W/") for t in offered.split(b",")]):
            request.setResponseCode(304)
            return b""
        request.setHeader(b"Content-Length", str(len(segment.data)).encode("ascii"))
        if request.method == b"HEAD":
            return b""
        return SegmentSender(request, segment.data).start()
