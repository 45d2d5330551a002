"""
One channel's HLS output (SPEC §16): the key-frame segmenter fed by the channel's ``Output``
(the splicer's bytes, once for every HLS viewer), the window of the newest segments kept as
bytes that every request shares, and the media playlist rendered from it.

Sequence numbers count up for the life of the process and start from the wall clock's
seconds: a segment is at least a second long, so numbers never repeat across a restart of the
channel or of epgd, and an HTTP cache keyed by URI never serves an old segment under a new
number's name.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections import deque

from attrs import frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from epgd.mpegts.segment import Segment, Segmenter

#: PROGRAM-DATE-TIME runs on with the media's durations unless the wall clock moved further
DATE_DRIFT = 1.0


@frozen
class WindowSegment:
    """A segment in the window: its bytes and its playlist entry."""

    sequence: int
    data: bytes
    duration: float
    discontinuity: bool
    date: float  # EXT-X-PROGRAM-DATE-TIME, POSIX seconds
    etag: bytes


class OutputStopped(Exception):
    """The channel stopped before its first segment was complete."""


def _date(when: float) -> str:
    moment = _dt.datetime.fromtimestamp(when, _dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class HlsOutput:
    """The HLS state of one running channel stream; a sink of its ``Output``."""

    log = Logger()

    def __init__(self, channel_id: str, clock: IReactorTime, target: float, window: int,
                 first_sequence: int, longest: float = 0.0) -> None:
        """
        ``target``: ``hls_segment``; ``longest``: a segment length known to come (the slate's
        key-frame interval), so that the target duration need not grow when it does.
        """
        self.channel_id = channel_id
        self.segmenter = Segmenter(target)
        self.window = window
        self.segments: deque[WindowSegment] = deque()
        self.next_sequence = first_sequence
        self.discontinuity_sequence = 0
        #: never shrinks: RFC 8216 §6.2.1 lets no playlist change it (it only grows past a long GOP)
        self.target_duration = max(1, math.ceil(target), math.ceil(longest))
        self.closed = False
        self._clock = clock
        self._waiters: list[Deferred[None]] = []
        self._rendered: dict[str, bytes] = {}

    # -- the sink ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """The channel's output bytes; never raises (the channel's viewers go on regardless)."""
        try:
            self._add(self.segmenter.feed(data, self._clock.seconds()))
        except Exception:
            self.log.failure("[PROXY] {channel}: HLS segmenting failed", channel=self.channel_id)
            self.segmenter = Segmenter(self.segmenter.target)  # starts over at the next key frame

    def cut(self) -> None:
        """A new program follows (passthrough output): the open segment ends here."""
        try:
            self._add(self.segmenter.cut(self._clock.seconds()))
        except Exception:
            self.log.failure("[PROXY] {channel}: HLS segmenting failed", channel=self.channel_id)
            self.segmenter = Segmenter(self.segmenter.target)

    def _add(self, segments: list[Segment]) -> None:
        notes = self.segmenter.notes
        for note in notes:
            self.log.info("[PROXY] {channel} HLS: {note}", channel=self.channel_id, note=note)
        notes.clear()
        if not segments or self.closed:
            return
        for segment in segments:
            previous = self.segments[-1] if self.segments else None
            date = segment.started
            if previous is not None and not segment.discontinuity:
                follows = previous.date + previous.duration
                if abs(follows - segment.started) <= DATE_DRIFT:
                    date = follows  # one timeline: the dates follow the durations
            sequence = self.next_sequence
            self.next_sequence += 1
            self.segments.append(WindowSegment(
                sequence, segment.data, segment.duration, segment.discontinuity, date,
                f'"{sequence:x}-{len(segment.data):x}"'.encode("ascii")))
            self.target_duration = max(self.target_duration, math.ceil(round(segment.duration, 3)))
            while len(self.segments) > self.window:
                if self.segments.popleft().discontinuity:
                    self.discontinuity_sequence += 1
        self._rendered.clear()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # -- readers ----------------------------------------------------------------------

    def ready(self) -> Deferred[None]:
        """Fires once a segment is in the window (at once when one is); cancellable."""
        if self.segments:
            return succeed(None)
        if self.closed:
            raise OutputStopped(f"{self.channel_id} stopped")
        waiter: Deferred[None] = Deferred(lambda d: self._waiters.remove(d) if d in self._waiters else None)
        self._waiters.append(waiter)
        return waiter

    def close(self) -> None:
        """The channel stopped: nothing more comes; waiting requests are told."""
        self.closed = True
        self.segments.clear()
        self._rendered.clear()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(OutputStopped(f"the stream of {self.channel_id} stopped"))

    def playlist(self, prefix: str) -> bytes:
        """The live media playlist; segment URIs are ``prefix`` + ``{sequence}.ts``."""
        cached = self._rendered.get(prefix)
        if cached is not None:
            return cached
        segments = self.segments
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{segments[0].sequence if segments else self.next_sequence}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
        ]
        for segment in segments:
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_date(segment.date)}")
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(f"{prefix}{segment.sequence}.ts")
        rendered = ("\n".join(lines) + "\n").encode("ascii")
        if len(self._rendered) < 8:  # a few prefixes (the /live/ form adds one per user)
            self._rendered[prefix] = rendered
        return rendered

    def find(self, sequence: int) -> tuple[WindowSegment, int] | None:
        """The segment ``sequence`` while it is in the window, and its ``max-age``: its time left there."""
        segments = self.segments
        if not segments:
            return None
        index = sequence - segments[0].sequence
        if not 0 <= index < len(segments):
            return None
        segment = segments[index]
        # it leaves once as many newer segments came as the window has room for after it
        average = sum(s.duration for s in segments) / len(segments)
        left = (self.window - (len(segments) - 1 - index)) * average
        return segment, max(1, int(left))
