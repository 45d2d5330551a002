"""
A channel's switching, as an automat state machine (the typed builder, as Twisted's
``ClientService`` uses it): named states, declared inputs, and ``automat.NoTransition`` for
any pair not declared below.

States that wait own their wait: the timer (and the Deferred) a state arms on entry is its
data, cancelled by every transition that leaves it (``_edge`` sees to that), so a stale timer
can never fire into another state. Which source to open, and whether the old connection must
close first, is the façade's policy (``policy.py``): it decides, then sends an input.

The slate (SPEC §14) is one more source: the façade makes its tap, and two inputs put it on
as the current source — ``show_slate`` when nothing flows, ``stalled`` when what flows has
given the viewers nothing too long. A provider source the channel still wants goes on beside
it as the pending one, so the cut back is a switch like any other (seeking, closing, cut).
``nothing_on`` keeps a slate that is on.

::

    steady ──connect──> connecting ──pending_data──> steady (cut: the splicer enters it)
      │  └─connect_beside─> seeking ──found──> closing ──old_done / close_wait_over──> steady (cut)
      ├─await_slot──> awaiting_slot ──slot_free──> steady (the channel connects)
      ├─retry_later─> retrying ──retry_due──> steady (the channel opens the source again)
      ├─show_slate──> steady (the slate on)    connecting ──show_slate──> seeking (beside the slate)
      ├─stalled──> seeking (the stalled source steps aside, beside the slate, for its way back)
      └─stop──> stopped            (every state: abandon / nothing_on -> steady, stop -> stopped)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from automat import TypeMachineBuilder
from automat._typed import TypedDataState, TypedState
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from epgd.mpegts.entry import (
    ENTRY_GIVE_UP,
    ENTRY_WAIT_BYTES,
    ENTRY_WAIT_SECONDS,
    Entry,
    EntryMode,
    latest_entry,
)
from epgd.mpegts.liveedge import LiveEdge
from epgd.net.timers import backoff, cancel
from epgd.schedule.model import Source
from epgd.stream.channel.core import SwitchCore
from epgd.stream.channel.tap import Tap
from epgd.stream.channel.waits import Ready, Seek, SlotWait, Wait

#: once the new source's entry is found, the old one may take this long to finish its frame
#: and its sound's PES under way (some muxers spread a 0.7 s AAC PES over its whole length)
CLOSE_WAIT_SECONDS = 1.0


class Switching(Protocol):
    """The inputs of a channel's switching machine."""

    def connect(self, tap: Tap) -> None:
        """A source opens with nothing flowing: the splicer finds its way in itself."""

    def connect_beside(self, tap: Tap) -> None:
        """A source opens while the current one flows: its way in is looked for on the side."""

    def await_slot(self, source: Source, closing: Deferred[None] | None) -> None:
        """``source`` opens once ``closing`` (a provider connection going away) fires; None:
        once the current source's connection, closed now, is gone (break-before-make)."""

    def retry_later(self) -> None:
        """Nothing could be opened: try again after a backoff."""

    def pending_data(self, data: bytes) -> None:
        """Packets of the pending source."""

    def found(self, entry: Entry) -> None:
        """The pending source's way in."""

    def wait_over(self) -> None:
        """The wait for the pending source's random-access point ran out (time or bytes)."""

    def old_done(self) -> None:
        """The current source has finished its last frame (the splicer closed it)."""

    def close_wait_over(self) -> None:
        """The current source took too long to finish its frame."""

    def slot_free(self, late: bool) -> None:
        """The awaited connection is gone (``late``: waited ``connect_timeout`` for it instead)."""

    def retry_due(self) -> None: ...

    def pending_failed(self, reason: str) -> None: ...

    def current_failed(self, reason: str) -> None: ...

    def show_slate(self, slate: Tap) -> None:
        """Nothing flows: the slate goes on; a source still opening goes on beside it."""

    def stalled(self, slate: Tap) -> None:
        """
        What flows has given the viewers nothing too long: the slate goes on in its place. In
        steady it steps aside, beside the slate, its way back in looked for; while a switch
        waits it is let go (what comes next is under way).
        """

    def abandon(self) -> None:
        """Drop whatever switch is under way; what flows goes on."""

    def nothing_on(self) -> None:
        """Nothing is to be played: drop everything but a slate that is on."""

    def stop(self) -> None: ...


# -- what waiting states own (waits.py) ------------------------------------------

def _seek(c: Switching, core: SwitchCore, tap: Tap) -> Seek:
    finder = core.splicer.finder()
    return Seek(finder=finder, edge=LiveEdge(finder))


def _ready(c: Switching, core: SwitchCore, entry: Entry) -> Ready:
    return Ready(timer=core.clock.callLater(CLOSE_WAIT_SECONDS, c.close_wait_over), entry=entry)


def _slot_wait(c: Switching, core: SwitchCore, source: Source, closing: Deferred[None] | None) -> SlotWait:
    """Entering: the old connection closes first when asked to; the wait is for its slot."""
    if closing is None:
        closing = core.drop_current()
    core.awaiting = source
    wait = SlotWait(timer=core.clock.callLater(core.config.connect_timeout, c.slot_free, True),
                    watching=closing, source=source)
    closing.addCallbacks(lambda _: c.slot_free(False), _cancelled)
    return wait


def _retry_wait(c: Switching, core: SwitchCore) -> Wait:
    core.retry_count += 1
    delay = backoff(core.retry_count)
    core.log.info("[PROXY] {channel} retrying in {delay:g}s: {error}", channel=core.channel_id,
                  delay=delay, error=core.error)
    return Wait(timer=core.clock.callLater(delay, c.retry_due))


def _cancelled(failure: Failure) -> None:
    failure.trap(CancelledError)  # the state was left first: its wait no longer matters


# -- the machine ---------------------------------------------------------------------

AnyState = TypedState[Switching, SwitchCore] | TypedDataState[Switching, SwitchCore, Any, Any]


def _edge(source: AnyState, method: Callable[..., None], target: AnyState | None = None) -> Callable[
        [Callable[..., None]], Callable[..., None]]:
    """
    Declare ``source --method--> target`` (``None``: a loop) with ``effect(c, core, data, *args)``
    as what it does; ``data`` is the state left's (None for a state without). Leaving a waiting
    state cancels its wait before the effect runs; the core learns the new state's name.
    """
    upon = source.upon(method)
    registrar = upon.loop() if target is None else upon.to(target)
    leaving = target is not None and target is not source
    name = (target or source).name

    def register(effect: Callable[..., None]) -> Callable[..., None]:
        if isinstance(source, TypedDataState):
            def transition(c: Switching, core: SwitchCore, data: Wait, *args: Any) -> None:
                if leaving:
                    data.leave(core)
                core.state = name
                effect(c, core, data, *args)
        else:
            def transition(c: Switching, core: SwitchCore, *args: Any) -> None:  # type: ignore[misc]
                core.state = name
                effect(c, core, None, *args)
        transition.__name__ = effect.__name__
        registrar(transition)
        return effect

    return register


def _nothing(c: Switching, core: SwitchCore, data: object, *args: object) -> None:
    """Only the state changes."""


def build() -> Callable[[SwitchCore], Switching]:
    """The machine's factory: call it with a channel's core."""
    builder = TypeMachineBuilder(Switching, SwitchCore)
    steady = builder.state("steady")
    connecting = builder.state("connecting")
    seeking = builder.state("seeking", _seek)
    closing = builder.state("closing", _ready)
    awaiting = builder.state("awaiting_slot", _slot_wait)
    retrying = builder.state("retrying", _retry_wait)
    stopped = builder.state("stopped")
    I = Switching  # noqa: E741 - the inputs, read as a table below

    # -- opening a source ------------------------------------------------------------
    @_edge(steady, I.connect, connecting)
    @_edge(steady, I.connect_beside, seeking)
    def begin(c: Switching, core: SwitchCore, data: None, tap: Tap) -> None:
        core.begin(tap)

    _edge(steady, I.await_slot, awaiting)(_nothing)
    _edge(steady, I.retry_later, retrying)(_nothing)

    @_edge(stopped, I.connect)
    @_edge(stopped, I.connect_beside)
    def refuse(c: Switching, core: SwitchCore, data: None, tap: Tap) -> None:
        core.release(tap)  # stopped: nothing opens any more

    @_edge(stopped, I.await_slot)
    def refuse_wait(c: Switching, core: SwitchCore, data: None, source: Source,
                    closing: Deferred[None] | None) -> None:
        if closing is not None and not closing.called:
            closing.cancel()

    _edge(stopped, I.retry_later)(_nothing)

    # -- the pending source's bytes ----------------------------------------------------
    @_edge(connecting, I.pending_data, steady)
    def cut_in(c: Switching, core: SwitchCore, data: None, packets: bytes) -> None:
        core.cut(None)  # the splicer finds the way in itself; viewers wait on keepalive
        core.deliver(packets)

    @_edge(seeking, I.pending_data)
    def look(c: Switching, core: SwitchCore, seek: Seek, packets: bytes) -> None:
        if seek.timer is None:
            seek.timer = core.clock.callLater(ENTRY_WAIT_SECONDS, c.wait_over)
        # a bursting source is entered at a key frame that came in real time (issue 17); with
        # nothing but the slate flowing, once the wait is relaxed, or from an HLS source (each
        # segment comes at once: every one would look like a burst), at its first
        pending = core.pending
        hls = pending is not None and pending.upstream.kind == "hls"
        patient = core.continuous and not core.on_slate and not seek.waits and not hls
        entry = seek.edge.feed(packets, core.clock.seconds(), patient)
        if entry is not None:
            c.found(entry)
        elif seek.finder.seen >= ENTRY_WAIT_BYTES * (seek.waits + 1):
            c.wait_over()

    @_edge(seeking, I.wait_over)
    def relax(c: Switching, core: SwitchCore, seek: Seek) -> None:
        """
        No key frame in real time: the latest held (as a burst's end is). No random-access
        point at all: take the next frame; no way in at all: failed.
        """
        if seek.edge.entry is not None:
            core.log.info("[PROXY] {channel}: {new} sent no key frame in real time within {s:g}s: "
                          "entering at its latest", channel=core.channel_id, s=ENTRY_WAIT_SECONDS,
                          new=core.pending.upstream.name if core.pending is not None else "?")
            c.found(seek.edge.take())
            return
        cancel(seek.timer)
        seek.timer = None
        seek.waits += 1
        if seek.waits >= ENTRY_GIVE_UP:
            c.pending_failed(seek.finder.why_not())
            return
        if seek.waits == 1:
            rap = seek.finder.mode is EntryMode.RAP
            assert core.pending is not None
            core.log.info("[PROXY] {channel}: no {wanted} from {new} in time, cutting over at its next "
                          "{then}", channel=core.channel_id, wanted="random-access point" if rap else "PAT",
                          new=core.pending.upstream.name, then="frame" if rap else "packet")
            seek.finder.relax()
        seek.timer = core.clock.callLater(ENTRY_WAIT_SECONDS, c.wait_over)

    @_edge(seeking, I.found, closing)
    def finish_old(c: Switching, core: SwitchCore, seek: Seek, entry: Entry) -> None:
        """The new source can start: the old one finishes its current frame first."""
        if seek.edge.skipped:
            core.log.info("[PROXY] {channel}: {new} sent media ahead of real time: entering it {n} key "
                          "frame(s) later, as it came in real time", channel=core.channel_id,
                          n=seek.edge.skipped, new=core.pending.upstream.name if core.pending else "?")
        core.close_current(entry)
        if core.splicer.closed:
            c.old_done()

    @_edge(closing, I.pending_data)
    def hold(c: Switching, core: SwitchCore, ready: Ready, packets: bytes) -> None:
        ready.more.append(packets)
        core.splicer.foresee(packets)  # where its sound begins: the old one's ends there

    @_edge(closing, I.old_done, steady)
    @_edge(closing, I.close_wait_over, steady)
    def cut_over(c: Switching, core: SwitchCore, ready: Ready) -> None:
        # in at the latest key frame it sent meanwhile: a burst of its recent past is skipped
        core.cut(latest_entry(ready.entry, b"".join(ready.more)))

    # -- waits over --------------------------------------------------------------------
    @_edge(awaiting, I.slot_free, steady)
    def open_now(c: Switching, core: SwitchCore, wait: SlotWait, late: bool) -> None:
        core.owner.connect(wait.source, late)

    @_edge(retrying, I.retry_due, steady)
    def again(c: Switching, core: SwitchCore, wait: Wait) -> None:
        core.owner.retry()

    # -- failures ----------------------------------------------------------------------
    @_edge(connecting, I.pending_failed, steady)
    @_edge(seeking, I.pending_failed, steady)
    def pending_gone(c: Switching, core: SwitchCore, data: object, reason: str) -> None:
        tap = core.drop_pending()
        assert tap is not None
        core.failed(tap, reason)
        core.owner.failover(tap.upstream.name)

    @_edge(closing, I.pending_failed, steady)
    def pending_gone_at_the_cut(c: Switching, core: SwitchCore, ready: Ready, reason: str) -> None:
        core.reenter()  # the old source was told to end: it goes on from its next way in
        pending_gone(c, core, ready, reason)

    @_edge(steady, I.current_failed)
    def current_gone(c: Switching, core: SwitchCore, data: object, reason: str) -> None:
        tap = core.current
        assert tap is not None
        core.drop_current()
        core.failed(tap, reason)
        core.owner.failover(tap.upstream.name)

    @_edge(seeking, I.current_failed, connecting)
    def pending_takes_over(c: Switching, core: SwitchCore, seek: Seek, reason: str) -> None:
        """The old source failed while the new one was being read: the new one goes on alone."""
        tap = core.current
        assert tap is not None
        core.drop_current()
        core.failed(tap, reason)

    @_edge(closing, I.current_failed, steady)
    def old_failed_at_the_cut(c: Switching, core: SwitchCore, ready: Ready, reason: str) -> None:
        assert core.current is not None
        core.log.info("[PROXY] {channel}: {old} failed while the switch was under way: {why}",
                      channel=core.channel_id, old=core.current.upstream.name, why=reason)
        cut_over(c, core, ready)

    @_edge(awaiting, I.current_failed)
    @_edge(retrying, I.current_failed)
    def lose_current(c: Switching, core: SwitchCore, wait: Wait, reason: str) -> None:
        """What flowed meanwhile failed; the wait under way opens what comes next."""
        tap = core.current
        assert tap is not None
        core.drop_current()
        core.failed(tap, reason)

    # -- the slate ---------------------------------------------------------------------
    @_edge(steady, I.show_slate)
    @_edge(awaiting, I.show_slate)
    @_edge(retrying, I.show_slate)
    @_edge(connecting, I.show_slate, seeking)
    @_edge(seeking, I.stalled)
    @_edge(awaiting, I.stalled)
    @_edge(retrying, I.stalled)
    def slate_on(c: Switching, core: SwitchCore, data: object, slate: Tap) -> None:
        """The slate in place of whatever flowed; a wait or a source opening goes on."""
        core.show(slate)

    @_edge(steady, I.stalled, seeking)
    def step_aside(c: Switching, core: SwitchCore, data: None, slate: Tap) -> None:
        """The stalled source goes on beside the slate until its way back in is found."""
        core.demote()
        core.show(slate)

    @_edge(closing, I.stalled)
    @_edge(stopped, I.show_slate)
    @_edge(stopped, I.stalled)
    def keep_off(c: Switching, core: SwitchCore, data: object, slate: Tap) -> None:
        """Closing: the cut is due within CLOSE_WAIT_SECONDS anyway. Stopped: nothing shows."""
        core.release(slate)

    # -- giving up what is under way ---------------------------------------------------
    _edge(steady, I.abandon)(_nothing)
    _edge(awaiting, I.abandon, steady)(_nothing)
    _edge(retrying, I.abandon, steady)(_nothing)

    @_edge(connecting, I.abandon, steady)
    @_edge(seeking, I.abandon, steady)
    def drop(c: Switching, core: SwitchCore, data: object) -> None:
        core.drop_pending()

    @_edge(closing, I.abandon, steady)
    def drop_at_the_cut(c: Switching, core: SwitchCore, ready: Ready) -> None:
        core.drop_pending()
        core.reenter()  # the old source was told to end: it goes on from its next way in

    @_edge(steady, I.nothing_on)
    @_edge(connecting, I.nothing_on, steady)
    @_edge(seeking, I.nothing_on, steady)
    @_edge(awaiting, I.nothing_on, steady)
    @_edge(retrying, I.nothing_on, steady)
    def let_go(c: Switching, core: SwitchCore, data: object) -> None:
        """Every provider source goes; a slate that is on stays (no needless cut)."""
        core.output.flush()
        core.drop_pending()
        if not core.on_slate:
            core.drop_current()

    @_edge(closing, I.nothing_on, steady)
    def let_go_at_the_cut(c: Switching, core: SwitchCore, ready: Ready) -> None:
        let_go(c, core, ready)
        if core.current is not None:
            core.reenter()  # the slate was told to end: it goes on from its next key frame

    @_edge(steady, I.stop, stopped)
    @_edge(connecting, I.stop, stopped)
    @_edge(seeking, I.stop, stopped)
    @_edge(closing, I.stop, stopped)
    @_edge(awaiting, I.stop, stopped)
    @_edge(retrying, I.stop, stopped)
    def drop_all(c: Switching, core: SwitchCore, data: object) -> None:
        core.output.flush()
        core.drop_pending()
        core.drop_current()

    _edge(stopped, I.abandon)(_nothing)
    _edge(stopped, I.nothing_on)(_nothing)
    _edge(stopped, I.stop)(_nothing)

    return builder.build()


#: one machine class for every channel
machine = build()
