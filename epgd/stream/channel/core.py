"""
What a channel's switching machine acts on: the source flowing now (``current``: a provider's
stream or the channel's slate), the one opening beside or instead of it (``pending``: always a
provider's), the splicer every byte goes through, and the output its viewers share.
Transitions change these through the methods here and nothing else; the façade only reads them.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from epgd.config import StreamConfig
from epgd.mpegts.entry import Entry
from epgd.mpegts.splice.seam import Splicer
from epgd.schedule.model import Source
from epgd.stream.channel.slate import SlateFeed
from epgd.stream.channel.tap import Tap
from epgd.stream.out.output import Output
from epgd.stream.registry import UpstreamRegistry


class SwitchOwner(Protocol):
    """What the machine asks of its channel once a state's wait is over: the policy."""

    def failover(self, failed: str) -> None:
        """``failed`` (a source's short name) is gone: the event's next source, or a retry."""

    def retry(self) -> None:
        """The retry wait is over: open the event's source again."""

    def connect(self, source: Source, over_closing: bool) -> None:
        """A provider slot is free (``over_closing``: waited long enough): open ``source``."""


class SwitchCore:
    """The mutable half of a channel: its taps, splicer and output, and their effects."""

    log = Logger()

    def __init__(
        self,
        channel_id: str,
        clock: IReactorTime,
        config: StreamConfig,
        registry: UpstreamRegistry,
        output: Output,
        splicer: Splicer,
        owner: SwitchOwner,
    ) -> None:
        self.channel_id = channel_id
        self.clock = clock
        self.config = config
        self.registry = registry
        self.output = output
        self.splicer = splicer
        self.owner = owner
        self.state = "steady"  # the machine's state, by name (status, tests, the façade's policy)
        self.current: Tap | None = None  # the source the viewers get
        self.on_slate = False  # ... and it is the slate
        self.media_at: float | None = None  # when provider media (not the slate) last went out
        self.pending: Tap | None = None  # a source opening (beside the current one, or in its place)
        self.awaiting: Source | None = None  # the source waiting for a provider slot
        self.paused = False  # every viewer is paused
        self.continuous = config.output == "continuous"
        self.close_at_cut = False  # on_codec_change = "close" and the codecs changed
        self.switches = 0
        self.retry_count = 0
        self.error: str | None = None
        self._started_once = False
        self._last_url = ""  # the provider source last cut to

    # -- sources ---------------------------------------------------------------------

    def begin(self, tap: Tap) -> None:
        """``tap``'s source opens as the pending one."""
        self.pending = tap
        tap.upstream.subscribe(tap)
        tap.upstream.start()

    def release(self, tap: Tap) -> Deferred[None]:
        """Let go of a source; fires when its provider slot is free (the slate holds none)."""
        feed = tap.upstream
        feed.unsubscribe(tap)
        if isinstance(feed, SlateFeed):
            return feed.close()
        return self.registry.release(feed)

    def drop_pending(self) -> Tap | None:
        tap, self.pending = self.pending, None
        if tap is not None:
            self.release(tap)
        return tap

    def drop_current(self) -> Deferred[None]:
        """Let go of the flowing source (its last bytes go out first); fires when its slot is free."""
        tap, self.current = self.current, None
        self.on_slate = False
        if tap is None:
            return succeed(None)
        self.output.flush()
        closing = self.release(tap)
        self.source_changed()
        return closing

    def failed(self, tap: Tap, reason: str) -> None:
        self.error = f"{tap.upstream.masked_url}: {reason}"

    def cut(self, entry: Entry | None) -> None:
        """The pending source is the current one from now on (at ``entry``, when found)."""
        tap = self.pending
        assert tap is not None, "a cut needs a pending source"
        self.output.flush()  # the old source's last bytes go out before the new one's
        self.pending = None
        old, self.current = self.current, tap
        from_slate, self.on_slate = self.on_slate, False
        url = tap.upstream.url
        if self._started_once and not (from_slate and url == self._last_url):
            self.switches += 1  # a source's recovery behind the slate is no switch
        self._started_once = True
        self._last_url = url
        self.retry_count = 0
        self.error = None
        if old is not None:
            self.release(old)
        self.source_changed()
        if entry is None:
            self.splicer.cut()
        else:
            now = self.clock.seconds()
            self.emit(self.splicer.enter(entry, now), now)
        tap.upstream.fanout.set_paused(tap, self.paused)  # last: a resumed provider may send at once

    def show(self, tap: Tap) -> None:
        """
        The slate (``tap``) is what the viewers get from now on, whatever flowed let go
        first; the splicer enters it at its first key frame, which it starts with.
        """
        self.drop_current()
        self.current = tap
        self.on_slate = True
        self.source_changed()
        self.splicer.cut()
        tap.upstream.subscribe(tap, self.paused)
        tap.upstream.start()

    def demote(self) -> None:
        """
        The current (provider) source goes on beside the slate, as the pending one: read
        unpaused, its way back in looked for like a new source's.
        """
        tap, self.current = self.current, None
        assert tap is not None and not self.on_slate, "only a provider's source steps aside"
        self.output.flush()
        self.pending = tap
        tap.upstream.fanout.set_paused(tap, False)

    def close_current(self, upcoming: Entry | None = None) -> None:
        """A switch is ready: what flows ends at its next frame (the slate's comes at once)."""
        self.splicer.close(upcoming)
        feed = self.current.upstream if self.current is not None else None
        if isinstance(feed, SlateFeed) and not self.splicer.closed:
            feed.hurry()

    def reenter(self) -> None:
        """The current source goes on from a clean point (a reconnection, a switch given up)."""
        self.output.flush()
        self.source_changed()
        self.splicer.cut()

    def source_changed(self) -> None:
        """
        A new source (or none) follows. Continuous output stays one program, so joiners may
        still start from the old source's recent packets; passthrough never mixes two.
        """
        if not self.continuous:
            self.output.reset_join()

    # -- bytes -----------------------------------------------------------------------

    def deliver(self, data: bytes) -> None:
        now = self.clock.seconds()
        self.emit(self.splicer.feed(data, now), now)

    def emit(self, out: bytes, now: float) -> None:
        splicer = self.splicer
        if splicer.notes:
            for note in splicer.notes:
                self.log.info("[PROXY] {channel}: {note}", channel=self.channel_id, note=note)
            splicer.notes.clear()
        if self.close_at_cut:
            # on_codec_change = "close": players re-tune and probe the new codecs
            self.close_at_cut = False
            self.output.flush()
            self.output.end("the codecs changed: tune in again", dropped="codec_change")
        if out:
            if not self.on_slate:
                self.media_at = now
            self.output.deliver(out, splicer.entry, splicer.first_entry)

    def set_paused(self, paused: bool) -> None:
        """Every viewer paused (or one resumed): the current source's reading follows."""
        self.paused = paused
        if self.current is not None:
            self.current.upstream.fanout.set_paused(self.current, paused)
