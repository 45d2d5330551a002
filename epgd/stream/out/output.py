"""
What a channel's clients receive: the splicer's output coalesced once for all of them into one
shared backlog, from which each viewer is written a few per reactor turn (``writes``,
``turns``: the provider is read between turns, however many viewers there are); the recent
packets (from the latest entry point: a PAT + PMT before a random-access point) a joining
client starts with, kept in that same backlog; null packets while they wait; and the figures
/streams/status shows (bytes, bitrate, idle time).

Memory: the backlog holds what the slowest viewer (at most ``client_buffer`` behind) or a
joiner (from the latest entry point, at most JOIN_MAX_BYTES) still needs, once for every
viewer; a viewer itself holds an offset, and at most one write (``write_max``) in its
socket's Twisted buffer.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from epgd.mpegts.packet import null_packets
from epgd.net.timers import cancel
from epgd.stream.out.backlog import Backlog, Part
from epgd.stream.out.client import FLUSH_AFTER, Client
from epgd.stream.out.fanout import Fanout
from epgd.stream.out.turns import Turns
from epgd.stream.out.writes import Writes

#: the recent packets (from the latest entry point) a joining client gets at once
JOIN_MAX_BYTES = 8 << 20
KEEPALIVE_EVERY = 0.5
KEEPALIVE = null_packets(4)
RATE_WINDOW = 5.0
#: each flush costs one write per client, so with more clients a channel writes more at once
#: (``chunk_size`` times the client count, up to this many times): fewer, larger writes for
#: the same bytes, never held longer than FLUSH_AFTER
COALESCE_CLIENTS = 64
#: the most one write to a viewer carries (at least a full flush): a joiner or a viewer that
#: was paused catches up in writes this big, one per turn, not in one that fills its memory
WRITE_MIN = 256 << 10


class Sink(Protocol):
    """
    One more reader of a channel's output beside its viewers (the HLS segmenter): it gets
    every flushed byte, never pauses the channel, and is told when a new program follows.
    """

    def write(self, data: bytes) -> None: ...

    def cut(self) -> None: ...


class Output:
    """The client side of one channel stream."""

    log = Logger()

    def __init__(self, clock: IReactorTime, chunk_size: int, producer: IPushProducer,
                 turns: Turns | None = None) -> None:
        """``turns``: the process's writes to viewers (one per manager); None: this channel's own."""
        self.clients: Fanout[Client] = Fanout(producer, on_error=self._write_failed)
        self._clock = clock
        self._chunk_size = chunk_size
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._out_entry = -1  # offset in the coalesced bytes of their last entry point
        self._out_first_entry = -1  # ... and of their first
        self._out_timer: IDelayedCall | None = None
        self.backlog = Backlog()
        self._join_at: int | None = None  # backlog offset of the latest entry point, if kept
        self.writes = Writes(turns if turns is not None else Turns(clock),
                             max(WRITE_MIN, chunk_size * COALESCE_CLIENTS), self._failed)
        #: viewers who joined when no entry point was at hand: they start at the next one
        self._waiting: list[Client] = []
        self.sinks: list[Sink] = []
        self._flowed = False
        self._sent_before = 0  # bytes_sent of clients already gone
        self.bytes_in = 0
        now = clock.seconds()
        self.last_delivery = now
        self._last_data = now
        self._last_keepalive = now
        self._last_waiting_keepalive = now
        self._rate: deque[tuple[float, int]] = deque([(now, 0)])

    # -- data ------------------------------------------------------------------------

    def deliver(self, data: bytes, entry: int = -1, first_entry: int = -1) -> None:
        """
        Coalesce here, once for every client, to at least ``chunk_size`` bytes (or 100 ms):
        each client then writes what it gets straight through, with no timer of its own.
        ``entry``: where in ``data`` a joining client may start (the last such place), or -1;
        ``first_entry``: the first such place, when there are several.
        """
        if entry >= 0:
            self._out_entry = self._out_bytes + entry
            if self._out_first_entry < 0:
                first = first_entry if 0 <= first_entry <= entry else entry
                self._out_first_entry = self._out_bytes + first
        self.bytes_in += len(data)
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes >= self._chunk_size * max(1, min(len(self.clients), COALESCE_CLIENTS)):
            self.flush()
        elif self._out_timer is None:
            self._out_timer = self._clock.callLater(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        """Send what is coalesced now (before a cut, a keepalive, a stop)."""
        if self._out_timer is not None:
            cancel(self._out_timer)
            self._out_timer = None
        if not self._out:
            return
        out = self._out
        data = out[0] if len(out) == 1 else b"".join(out)
        entry, self._out_entry = self._out_entry, -1
        first, self._out_first_entry = self._out_first_entry, -1
        self._out = []
        self._out_bytes = 0
        at = self._append(data, entry)
        for sink in tuple(self.sinks) if self.sinks else ():
            self._to_sink(sink, data)
        if len(self.clients):
            self._flowed = True
        if self._waiting and first >= 0:
            self._start_waiting(at + first)
        self._owe_all()

    def _append(self, data: bytes, entry: int) -> int:
        """``data`` to the backlog (split at ``entry``, where joiners start); its offset."""
        backlog = self.backlog
        at = backlog.end
        if entry >= 0:
            if entry:
                backlog.append(data[:entry])
                backlog.append(data[entry:])
            else:
                backlog.append(data)
            self._join_at = at + entry
        else:
            backlog.append(data)
            if self._join_at is not None and backlog.end - self._join_at > JOIN_MAX_BYTES:
                self._join_at = None  # entry points too rare: joiners wait for the next one
        return at

    def _owe_all(self) -> None:
        """
        Every viewer that can take bytes is owed the new ones (written in turn); one past
        ``client_buffer`` behind is dropped; the backlog forgets what nobody needs.
        """
        backlog = self.backlog
        keep = self._join_at if self._join_at is not None else backlog.end
        writes = self.writes
        for client in self.clients.consumers:
            if client.fell_behind():
                continue
            if client.position < keep:
                keep = client.position
            if not client.paused:
                writes.queue(client)
        backlog.trim(keep)
        writes.start()

    def reset_join(self) -> None:
        """A new program follows (passthrough starts a new source): never mix two."""
        self._join_at = None
        for sink in list(self.sinks):
            try:
                sink.cut()
            except Exception:
                self.log.failure("[PROXY] dropping {sink!r}: its cut failed", sink=sink)
                self.remove_sink(sink)

    def _recent(self) -> list[Part]:
        """The backlog from the latest entry point (one chunk: shared by a burst of joiners)."""
        if self._join_at is None:
            return []
        self.backlog.merge(self._join_at)
        return self.backlog.since(self._join_at, self.backlog.size)

    # -- sinks -----------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        """``sink`` reads on from here, starting with the recent packets (an entry point first)."""
        self.sinks.append(sink)
        recent = self._recent()
        if recent:
            self._to_sink(sink, b"".join(recent))

    def remove_sink(self, sink: Sink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)

    def _to_sink(self, sink: Sink, data: bytes) -> None:
        """One sink's failure is its own: dropped, logged; the viewers never see it."""
        try:
            sink.write(data)
        except Exception:
            self.log.failure("[PROXY] dropping {sink!r}: writing to it failed", sink=sink)
            self.remove_sink(sink)

    # -- clients ---------------------------------------------------------------------

    @property
    def client_count(self) -> int:
        return len(self.clients) + len(self._waiting)

    def add(self, client: Client) -> None:
        """
        A new viewer starts at once, at the latest entry point of the recent packets; with
        none at hand it gets its headers now and its first bytes at the next entry point.
        """
        client.fanout = self.clients
        client.on_ready = self.writes.owe
        start = self._join_at
        if start is None:
            self._waiting.append(client)
        else:
            self._recent()
            client.follow(self.backlog, start)
            self.clients.add(client, paused=client.paused)
        try:
            client.start()
        except Exception:
            self._failed(client, Failure())
            return
        if start is not None and not client.detached:
            self._flowed = True
            self.writes.write(client)  # a joiner's first bytes at once; the rest, if any, in turn

    def _start_waiting(self, at: int) -> None:
        """The joiners who waited start at ``at``, an entry point just flushed."""
        waiting, self._waiting = self._waiting, []
        for client in waiting:
            if client.detached:
                continue
            client.follow(self.backlog, at)
            self.clients.add(client, paused=client.paused)
        self._flowed = True

    def _failed(self, client: Client, failure: Failure) -> None:
        """A write to ``client`` raised: drop it alone, whether it flows or waits."""
        if client in self.clients:
            self.clients.failed(client, failure)
            return
        if client in self._waiting:
            self._waiting.remove(client)
        self.log.failure("[PROXY] dropping {client!r}: writing to it failed", failure,
                         client=client)
        client.fail()

    def _write_failed(self, client: Client, failure: Failure) -> None:
        client.fail()

    def remove(self, client: Client) -> None:
        self.clients.remove(client)
        if client in self._waiting:
            self._waiting.remove(client)
        self._sent_before += client.bytes_sent

    def end(self, reason: str, dropped: str | None = None) -> None:
        """Finish every client's response; ``dropped``: the /metrics word for why, if epgd chose to."""
        self.flush()
        self.writes.clear()  # each gets the rest now, as it ends
        clients = [*self.clients.consumers, *self._waiting]
        for client in clients:
            if dropped:
                client.dropped = dropped
            try:
                client.end(reason)
            except Exception:
                self._failed(client, Failure())

    # -- timing ----------------------------------------------------------------------

    def tick(self) -> None:
        """Keepalive while clients wait for data; idle bookkeeping; bitrate samples."""
        now = self._clock.seconds()
        if self._flowed:
            self._flowed = False
            self.last_delivery = self._last_data = now
        elif (
            len(self.clients)
            and not self.clients.all_paused  # paused viewers are not waiting: nothing to keep
            and now - max(self._last_data, self._last_keepalive) >= KEEPALIVE_EVERY - 1e-6
        ):
            self._last_keepalive = now
            self.flush()
            self.backlog.append(KEEPALIVE)
            self._owe_all()
        if self._waiting and now - self._last_waiting_keepalive >= KEEPALIVE_EVERY - 1e-6:
            # joiners waiting for an entry point, however long the source's key frames are apart
            self._last_waiting_keepalive = now
            for client in list(self._waiting):
                try:
                    client.write(KEEPALIVE)
                except Exception:
                    self._failed(client, Failure())
        self._rate.append((now, self.bytes_in))
        while len(self._rate) > 2 and now - self._rate[1][0] >= RATE_WINDOW:
            self._rate.popleft()

    def idle_for(self, now: float) -> float:
        """Seconds since real data (not keepalive) last reached a client."""
        return max(0.0, now - self.last_delivery) if not self._flowed else 0.0

    @property
    def bitrate_kbps(self) -> int:
        (t0, b0), (t1, b1) = self._rate[0], self._rate[-1]
        return int((b1 - b0) * 8 / 1000 / (t1 - t0)) if t1 > t0 else 0

    @property
    def bytes_sent(self) -> int:
        live = sum(c.bytes_sent for c in self.clients.consumers)
        live += sum(c.bytes_sent for c in self._waiting)
        return self._sent_before + live
