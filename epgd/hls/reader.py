"""
HLS sources (SPEC §11): one live HLS connection of an Upstream, read without FFmpeg.

An ``Upstream`` whose answer is an HLS playlist (by content type or by its first bytes, on any
URL; a ``.m3u8`` URL's Upstream is called ``hls`` from the start) hands that playlist to an
``HlsReader``, which reports to it as its ``HlsOwner``. Either way the registry, channels and
manager hold one object with one fanout and one provider slot, and the Upstream keeps what
both kinds share: the reconnect/fail-over policy and the signals to its consumers.

The reader follows a master playlist's chosen variant for its whole life, reloads the media
playlist on RFC 8216 §6.3.4's schedule, and has each media sequence number fetched once, in
order, one at a time (``epgd.hls.segment``), its bytes streamed into the fanout as they arrive. It is
the fanout's producer: while every consumer is paused it fetches nothing. It says "cut" before
bytes that do not continue the ones before: a discontinuity, a gap, a reset, a jump to the
live edge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from epgd.config import StreamConfig
from epgd.hls.fetch import SmallFetches, segment_verdict
from epgd.hls.playlist import (
    MAX_PLAYLIST_BYTES,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    Segment,
    Unsupported,
    choose_variant,
    parse,
    reload_delay,
)
from epgd.hls.segment import SegmentFetcher
from epgd.mpegts.intake import Intake, NotTs
from epgd.mpegts.packet import preview
from epgd.net.failure import Fault, RequestError, describe
from epgd.net.response import HTTPGetter
from epgd.net.timers import cancel
from epgd.redact import Redactor

#: a fresh source whose first segments all fail (after their retry) has failed to connect
SKIPS_BEFORE_FAIL = 2
#: no new segment for this many target durations (at least connect_timeout) is a drop
STALL_TARGETS = 3


class HlsOwner(Protocol):
    """What a reader reports to: its Upstream (``epgd.stream.upstream``)."""

    masked_url: str

    def hls_producer(self, reader: HlsReader, reading: bool) -> None:
        """``reader`` paces the connection now (``reading``: it is the fanout's producer), or
        no longer does."""

    def hls_packets(self, packets: bytes) -> None:
        """Whole packets of the source, in order."""

    def hls_streaming(self) -> None:
        """The first segment bytes of this connection follow (a re-open's cut is the owner's)."""

    def hls_cut(self) -> None:
        """The bytes that follow do not continue the ones before."""

    def hls_lost(self, why: str, reopen: bool, fault: Fault) -> None:
        """The connection is lost: re-open at once (``reopen``) or reconnect with backoff;
        ``fault`` is its /metrics word."""

    def hls_failed(self, reason: str, fault: Fault) -> None:
        """The source cannot go on (unsupported, ended): fail it."""


@implementer(IPushProducer)
class HlsReader:
    """One HLS connection: the variant, the reload timer, the segment queue, cuts."""

    log = Logger()

    def __init__(
        self,
        owner: HlsOwner,
        http: HTTPGetter,
        headers: Mapping[str, list[str]],
        clock: IReactorTime,
        config: StreamConfig,
        redactor: Redactor,
        variant: str = "best",
        resume_at: int | None = None,
    ) -> None:
        self._owner = owner
        self._clock = clock
        self._timeout = config.connect_timeout
        self._redactor = redactor
        self._variant = variant
        self._resume_at = resume_at
        self._url = owner.masked_url
        self._small = SmallFetches(http, headers, clock, config.connect_timeout)
        self._segments = SegmentFetcher(self, http, dict(headers), clock, config.connect_timeout,
                                        redactor, owner.masked_url)
        self._media_url = ""
        self._intake = Intake(segment_verdict)  # judged once, on the first segment
        self._queue: deque[Segment] = deque()
        self._next_seq: int | None = None  # the next sequence number to start
        self._last_uri: str | None = None  # the URI of the segment started last
        self._shape: tuple[int | None, int | None, bool] | None = None
        self._target = 0.0
        self._ended = False
        self._current: Segment | None = None  # the segment being fetched
        self._current_started = False  # bytes of it went out
        self._streamed = False
        self._cut_pending = False
        self._skips = 0
        self._loading: Deferred[Any] | None = None
        self._reload_due = False
        self._reload_call: IDelayedCall | None = None
        self._tick_call: IDelayedCall | None = None
        self._paused = False
        self._closed = False
        self._pumping = False
        self._pump_again = False
        self._progress_at = clock.seconds()

    @property
    def next_sequence(self) -> int | None:
        """The media sequence number this connection would send next (a re-open goes on there)."""
        if self._current is not None and not self._current_started:
            return self._current.sequence
        return self._next_seq

    # -- opening ---------------------------------------------------------------------

    def open(self, url: str, body: bytes, started: float) -> None:
        """Follow the playlist ``body`` fetched from ``url`` (its final URL), asked for at
        ``started`` (the next reload is counted from there)."""
        self._owner.hls_producer(self, True)
        self._arm_tick()
        try:
            playlist = parse(body, url)
        except Unsupported as e:
            self._owner.hls_failed(f"HLS: {e}", "not_ts")
            return
        except PlaylistError as e:
            self._owner.hls_lost(f"HLS: {e}", reopen=False, fault="not_ts")
            return
        if isinstance(playlist, MasterPlaylist):
            chosen = choose_variant(playlist, self._variant)
            self.log.info(
                "[PROXY] {url} HLS master: following the {desc} variant of {n} ({choice})",
                url=self._url, desc=chosen.describe(), n=len(playlist.variants),
                choice=self._variant,
            )
            if chosen.separate_audio:
                self.log.warn("[PROXY] {url} HLS: the variant's audio is a separate rendition, "
                              "which is not read", url=self._url)
            self._media_url = chosen.uri
            self._reload_due = True
            self._pump()
            return
        self._media_url = url
        self._loaded(playlist, started)

    # -- the media playlist ----------------------------------------------------------

    def _reload(self) -> None:
        self._reload_due = False
        started = self._clock.seconds()
        loading = self._small.get(self._media_url, MAX_PLAYLIST_BYTES, "playlist")
        self._loading = loading
        loading.addCallbacks(self._reloaded, self._reload_failed,
                             callbackArgs=(started, loading), errbackArgs=(started, loading))

    def _reloaded(self, result: tuple[str, bytes], started: float, loading: Deferred[Any]) -> None:
        if loading is not self._loading or self._closed:
            return
        self._loading = None
        url, body = result
        self._media_url = url  # reloads go where the redirects led; a re-open starts over
        try:
            playlist = parse(body, url)
            if isinstance(playlist, MasterPlaylist):
                raise PlaylistError("a master playlist where a media playlist was expected")
        except Unsupported as e:
            self._owner.hls_failed(f"HLS: {e}", "not_ts")
            return
        except PlaylistError as e:
            self._reload_failed(Failure(RequestError(str(e))), started, None)
            return
        self._loaded(playlist, started)

    def _reload_failed(self, failure: Failure, started: float, loading: Deferred[Any] | None) -> None:
        if loading is not None:
            if loading is not self._loading or self._closed:
                return
            self._loading = None
        failed = describe(failure, self._timeout, self._redactor)
        why = failed.line
        code = failure.value.code if isinstance(failure.value, RequestError) else None
        if self._shape is None:  # the first load of the variant: this connection never got going
            self._owner.hls_lost(f"HLS media playlist: {why}", reopen=False, fault=failed.fault)
            return
        if code in (403, 410):
            self._owner.hls_lost(f"HLS playlist answered {why}: re-opening from the original URL",
                                 reopen=True, fault="http_error")
            return
        self.log.warn("[PROXY] {url} HLS playlist reload failed: {why}", url=self._url, why=why)
        self._schedule(started, changed=False)
        self._pump()

    def _loaded(self, playlist: MediaPlaylist, started: float) -> None:
        changed = playlist.shape != self._shape
        self._shape = playlist.shape
        self._target = playlist.target_duration
        self._ended = playlist.ended
        first, last = playlist.first, playlist.last
        if first is not None and last is not None:
            if self._next_seq is None:
                resume = self._resume_at
                if resume is not None and first <= resume <= last + 1:
                    self._next_seq = resume
                else:
                    self._next_seq = playlist.live_start()
            elif (last < self._next_seq - 1 or first > self._next_seq) and self._renumbered(playlist):
                pass  # the same segments under other numbers: going on after the last one read
            elif last < self._next_seq - 1:
                self.log.info("[PROXY] {url} HLS media sequence went back from {old} to {new}: "
                              "a reset, going on at the live edge", url=self._url,
                              old=self._next_seq - 1, new=last)
                self._jump(playlist)
            elif first > self._next_seq:
                self.log.info("[PROXY] {url} HLS segments {old}..{gone} left the playlist before "
                              "they were read: going on at the live edge", url=self._url,
                              old=self._next_seq, gone=first - 1)
                self._jump(playlist)
            self._queue = deque(playlist.after(self._next_seq or 0))
        if not self._ended:
            self._schedule(started, changed)
        self._pump()

    def _renumbered(self, playlist: MediaPlaylist) -> bool:
        """The segment read last is listed under another number: go on after it (not a reset)."""
        found = playlist.sequence_of(self._last_uri) if self._last_uri is not None else None
        if found is not None:
            self._next_seq = found + 1
        return found is not None

    def _jump(self, playlist: MediaPlaylist) -> None:
        self._next_seq = playlist.live_start()
        self._cut_pending = True

    def _schedule(self, started: float, changed: bool) -> None:
        """The next load, counted from the start of this one (RFC 8216 §6.3.4)."""
        cancel(self._reload_call)
        delay = reload_delay(self._target, changed)
        wait = max(0.0, started + delay - self._clock.seconds())
        self._reload_call = self._clock.callLater(wait, self._reload_time)

    def _reload_time(self) -> None:
        self._reload_call = None
        self._reload_due = True
        self._pump()

    # -- segments --------------------------------------------------------------------

    def _pump(self) -> None:
        """
        Start what is due, unless every consumer is paused: a reload, the next segment. A call
        from inside a pump (a segment that fails or ends at once) only asks for another round,
        so a playlist of a thousand unfetchable segments is a loop, not a recursion.
        """
        if self._pumping:
            self._pump_again = True
            return
        self._pumping = True
        try:
            self._pump_again = True
            while self._pump_again:
                self._pump_again = False
                self._pump_once()
        finally:
            self._pumping = False

    def _pump_once(self) -> None:
        if self._closed or self._paused:
            return
        if self._reload_due and self._loading is None:
            self._reload()
        if self._closed or not self._segments.idle:
            return
        if not self._queue:
            if self._ended and self._loading is None:
                self._owner.hls_failed("the HLS playlist ended (EXT-X-ENDLIST)", "ended")
            return
        segment = self._queue.popleft()
        self._next_seq = segment.sequence + 1
        self._last_uri = segment.uri
        self._current, self._current_started = segment, False
        self._segments.fetch(segment)

    def segment_bytes(self, segment: Segment, data: bytes) -> None:
        if segment is not self._current or self._closed:
            return
        intake = self._intake
        if intake.judged:  # a segment's start goes first: a cut must come before its bytes
            if not self._current_started and not self._begin(segment):
                return
            self._packets(intake.feed(data))
            return
        try:
            packets = intake.feed(data)
        except NotTs as e:
            self._refuse(segment, e)
            return
        if intake.judged and self._begin(segment):  # this connection's first bytes were judged
            self._packets(packets)

    def _begin(self, segment: Segment) -> bool:
        """A segment's first bytes are here: say so (or "cut"); False when that closed us."""
        self._current_started = True
        self._progress_at = self._clock.seconds()
        if not self._streamed:
            self._streamed = True
            self._owner.hls_streaming()  # a re-open's cut is the owner's to send
        elif self._cut_pending or segment.discontinuity:
            self._intake.realign()
            self._owner.hls_cut()
        self._cut_pending = False
        return not self._closed and segment is self._current

    def _packets(self, packets: bytes) -> None:
        if packets:
            self._owner.hls_packets(packets)

    def _refuse(self, segment: Segment, error: NotTs) -> None:
        """The first segment is not MPEG-TS: fMP4 fails the source, anything else ends the connection."""
        if error.verdict == "fMP4":
            self._owner.hls_failed("HLS: fMP4 segments are not supported, only MPEG-TS", "not_ts")
            return
        shown = self._redactor.mask(preview(error.head))
        self._owner.hls_lost(f"HLS segment {segment.sequence} is {error.verdict}, not MPEG-TS: "
                             f"{shown!r}", reopen=False, fault="not_ts")

    def segment_done(self, segment: Segment) -> None:
        if segment is not self._current or self._closed:
            return
        judged = self._intake.judged
        try:
            last = self._intake.finish()  # segments end on a packet boundary: nothing waits
        except NotTs as e:  # a first segment shorter than the judging window
            self._refuse(segment, e)
            return
        if not judged and self._intake.judged and not self._begin(segment):
            return
        self._packets(last)
        if self._closed:
            return
        self._current = None
        self._skips = 0
        self._progress_at = self._clock.seconds()
        self._pump()

    def segment_skipped(self, segment: Segment, why: str, fault: Fault) -> None:
        if segment is not self._current or self._closed:
            return
        self._current = None
        if self._intake.judged:
            self._intake.realign()  # what came of it is cut short: never glued to the next
        else:
            self._intake.reset()
        self._cut_pending = True
        self._skips += 1
        if not self._streamed and self._skips >= SKIPS_BEFORE_FAIL:
            self._owner.hls_lost(f"HLS: no segment could be fetched (segment {segment.sequence}: "
                                 f"{why})", reopen=False, fault=fault)
            return
        self._pump()

    def segment_unsupported(self, reason: str) -> None:
        if not self._closed:
            self._owner.hls_failed(f"HLS: {reason}", "not_ts")

    # -- IPushProducer (the fanout pauses us when every consumer is paused) ----------

    def pauseProducing(self) -> None:
        self._paused = True
        self._segments.pause()

    def resumeProducing(self) -> None:
        if not self._paused:
            return
        self._paused = False
        self._progress_at = self._clock.seconds()  # paused is not silent
        self._segments.resume()
        self._pump()

    def stopProducing(self) -> None:
        self.close()

    # -- silence ---------------------------------------------------------------------

    def _arm_tick(self) -> None:
        self._tick_call = self._clock.callLater(self._timeout / 4, self._tick)

    def _tick(self) -> None:
        """Four times per connect_timeout: a silent segment body; no new segment at all."""
        self._tick_call = None
        now = self._clock.seconds()
        self._segments.check(now)
        if self._closed:
            return
        if self._paused:
            self._progress_at = now
        else:
            stall = max(STALL_TARGETS * self._target, self._timeout)
            if self._shape is not None and now - self._progress_at >= stall - 1e-9:
                self._owner.hls_lost(f"HLS: no new segment for {stall:g}s", reopen=False,
                                     fault="timeout")
                return
        self._arm_tick()

    # -- teardown --------------------------------------------------------------------

    def close(self) -> Deferred[None]:
        """Stop for good; fires once this connection's bodies are gone."""
        if self._closed:
            return succeed(None)
        self._closed = True
        cancel(self._reload_call)
        cancel(self._tick_call)
        self._reload_call = self._tick_call = None
        self._owner.hls_producer(self, False)
        waits = self._segments.close() + self._small.close()
        loading, self._loading = self._loading, None
        if loading is not None:
            loading.cancel()
        done: Deferred[Any] = DeferredList(waits, consumeErrors=True)
        return done.addCallback(lambda _: None)
