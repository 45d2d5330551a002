"""
The slate as one more source of a channel (SPEC §14): what an ``Upstream`` is to a provider
stream, ``SlateFeed`` is to the slate — a fanout its channel's tap subscribes to, started,
paused with the viewers, closed — so the switching machine connects it like any source and
its bytes take the same path (tap -> splicer -> output). It holds no provider connection.

A feed is one showing of the slate: a ``SlateSource`` (epgd.mpegts.slate) run by a reactor
timer that hands on, every ``FEED_EVERY`` seconds, the packets due by then. Its source time
stands still while every viewer is paused, so a resumed slate neither bursts nor jumps. Each
showing starts with PAT, PMT and a key frame, which is where the splicer enters it.

``ChannelSlate`` is a channel's slate across its showings: the words it shows now, their
picture (made by the process's ``SlatePainter``, off the reactor thread, only when the words
change) and the feed showing it. A failure of the slate stays the slate's: the feed goes
silent (viewers get keepalive, as with no slate), the channel is told once, and it shows no
slate again; the channel itself goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from epgd.mpegts.slate.source import FRAME_TICKS, TICKS, KeyFrame, SlateSource
from epgd.net.timers import cancel
from epgd.publish import slatetext
from epgd.publish.slatetext import SlateText
from epgd.schedule.model import Channel, Event
from epgd.stream.out.fanout import Fanout
from epgd.stream.registry import ProviderFull
from epgd.stream.slatepaint import SlatePainter
from epgd.stream.upstream import UpstreamConsumer

#: how often a showing hands on the packets due. Each step is one write per viewer (its
#: cost with many viewers), and a longer one only means larger, rarer writes: a joiner starts
#: from the channel's join buffer (the latest key frame), and a cut away from the slate does
#: not wait for the next step (``hurry``). Players buffer a second or more of any live stream.
FEED_EVERY = 0.4
#: how far ahead of its time ``hurry`` hands packets on: two video frames (40 ms each), so the
#: next frame starts in them and the splicer can end the slate there (unless a key frame is
#: being sent: then the next step, or the machine's close wait, ends it)
HURRY_AHEAD = 0.08
SLATE = "slate"


@implementer(IPushProducer)
class SlateFeed:
    """One showing of a channel's slate, as a source its tap subscribes to."""

    log = Logger()
    #: what the channel, /streams/status and the log read of any source
    kind = SLATE
    name = SLATE
    url = ""
    provider = ""
    masked_url = "the slate"

    def __init__(self, clock: IReactorTime, size: str, channel_id: str = "",
                 on_broken: Callable[[], None] | None = None) -> None:
        self.fanout: Fanout[UpstreamConsumer] = Fanout(self)
        self.channel_id = channel_id
        self._clock = clock
        self._size = size
        self._on_broken = on_broken
        self._key: KeyFrame | None = None
        self._source: SlateSource | None = None
        self._origin = 0.0  # the wall time of source time 0 (moved on by each pause)
        self._paused_at: float | None = None
        self._timer: IDelayedCall | None = None
        self._ahead = 0.0
        self.started = False
        self.closed = False
        self.broken = False

    # -- what a tap and the channel's core call, as on an Upstream --------------------

    def subscribe(self, consumer: UpstreamConsumer, paused: bool = False) -> None:
        self.fanout.add(consumer, paused)

    def unsubscribe(self, consumer: UpstreamConsumer) -> None:
        self.fanout.remove(consumer)

    @property
    def active(self) -> bool:
        return not (self.closed or self.broken)

    def start(self) -> None:
        if self.started or self.closed:
            return
        self.started = True
        self._arm(0.0)

    def close(self) -> Deferred[None]:
        """Stop for good; there is no connection to wait for."""
        self.closed = True
        cancel(self._timer)
        self._timer = None
        return succeed(None)

    def show(self, key: KeyFrame) -> None:
        """Show ``key``'s picture: from the start, or from the next key frame on."""
        if not self.active:
            return
        self._key = key
        if self._source is not None:
            try:
                self._source.show(key)
            except Exception:
                self._break(Failure())
        elif self.started and self._paused_at is None:
            self._arm(0.0)  # the first picture is here: start at once

    def hurry(self) -> None:
        """The channel cuts away from the slate: hand on its next frame now, not at the next step."""
        if self.started and self.active and self._paused_at is None and self._source is not None:
            self._ahead = HURRY_AHEAD
            self._arm(0.0)

    # -- IPushProducer: the tap's fanout pauses the slate with its viewers -------------

    def pauseProducing(self) -> None:
        if self._paused_at is None:
            self._paused_at = self._clock.seconds()
            cancel(self._timer)
            self._timer = None

    def resumeProducing(self) -> None:
        if self._paused_at is not None:
            self._origin += self._clock.seconds() - self._paused_at
            self._paused_at = None
            if self.started and self.active:
                self._arm(0.0)

    def stopProducing(self) -> None:
        self.close()

    # -- the timer ---------------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        cancel(self._timer)
        self._timer = self._clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        """Hand on what is due; never raises (a failing slate only silences itself)."""
        self._timer = None
        if not self.active or self._paused_at is not None:
            return
        try:
            now = self._clock.seconds()
            source = self._source
            if source is None:
                if self._key is None:
                    return  # the picture is still being made: shown() starts us
                source = self._source = SlateSource(self._size, self._key.text, key=self._key)
                # source time starts where the first key frame's sending does: bytes at once
                self._origin = now - (source.first_frame * FRAME_TICKS - source.key.spread) / TICKS - 1e-6
            data = source.packets_until(now - self._origin + self._ahead)
            self._ahead = 0.0
            if data:
                self.fanout.write(data)
        except Exception:
            self._break(Failure())
            return
        if self.active and self._paused_at is None and self._timer is None:
            self._arm(FEED_EVERY)

    def _break(self, failure: Failure) -> None:
        self.log.failure("[PROXY] {channel}: the slate failed; its viewers get keepalive instead",
                         failure, channel=self.channel_id)
        self.broken = True
        cancel(self._timer)
        self._timer = None
        if self._on_broken is not None:
            self._on_broken()

    def __repr__(self) -> str:
        return f"<SlateFeed {self.channel_id}>"


class ChannelSlate:
    """
    A channel's slate: the words it shows (``said``), their picture, and the feed that shows
    it now. ``say`` changes the words (a picture is made only when they change); ``feed``
    makes the source for one showing.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, size: str, painter: SlatePainter, zone: ZoneInfo,
                 channel_id: str = "") -> None:
        self.zone = zone
        self.channel_id = channel_id
        self._clock = clock
        self._size = size
        self._painter = painter
        self.said: SlateText | None = None
        self._key: KeyFrame | None = None
        self._feed: SlateFeed | None = None
        self.broken = False

    @property
    def text(self) -> str:
        """What the slate says, as /streams/status shows it."""
        return self.said.text if self.said is not None else ""

    def words(self, channel: Channel | None, event: Event | None, full: ProviderFull | None,
              source_index: int, now: float) -> SlateText | None:
        """
        What the slate of ``channel`` says at ``now``: what is up next when nothing plays
        (``event`` None, or without a source), that the provider's connections are all in use
        (``full``), or that the source being tried is reconnecting.
        """
        if channel is None:
            return None
        if event is None or not event.sources:
            return slatetext.up_next(channel, now, self.zone)
        if full is not None:
            return slatetext.saying(channel, slatetext.provider_full(full.provider, full.limit))
        source = event.sources[min(source_index, len(event.sources) - 1)]
        return slatetext.saying(channel, slatetext.reconnecting(source.provider))

    def say(self, said: SlateText) -> None:
        """Show ``said`` from now on; its picture is made once, when the words change."""
        previous, self.said = self.said, said
        if previous is not None and previous.lines == said.lines:
            return
        painted = self._painter.paint(self._size, said.lines)
        painted.addCallbacks(self._painted, self._paint_failed, callbackArgs=(said.lines,))

    def feed(self) -> SlateFeed:
        """A new showing, with the picture of what the slate says (as soon as it is made)."""
        feed = SlateFeed(self._clock, self._size, self.channel_id, on_broken=self._feed_broke)
        key = self._key
        if key is not None and self.said is not None and key.text == self.said.lines:
            feed.show(key)
        self._feed = feed
        return feed

    def _painted(self, key: KeyFrame, lines: tuple[str, ...]) -> None:
        if self.said is None or self.said.lines != lines:
            return  # other words came meanwhile: their picture follows
        self._key = key
        feed = self._feed
        if feed is not None and feed.active:
            feed.show(key)

    def _paint_failed(self, failure: Failure) -> None:
        self.log.failure("[PROXY] {channel}: making the slate's picture failed; its viewers get "
                         "keepalive instead", failure, channel=self.channel_id)
        self._feed_broke()

    def _feed_broke(self) -> None:
        self.broken = True
        feed = self._feed
        if feed is not None and not feed.broken:
            feed.broken = True
            feed.close()
