"""
One producer, many consumers, with backpressure: the piece both levels of the streaming chain
share (Upstream -> Channels, Channel -> Clients).

The producer is paused only when *every* consumer is paused and resumed as soon as any one
resumes: a shared provider connection is never slowed for one slow viewer. Bounding each
consumer's queue (and cutting it off past the bound) is the consumer's job, since only it knows
what it has not yet passed on; the fanout just stops writing to consumers it has lost.

One consumer's failure stays its own: a write that raises drops that consumer (logged once,
through the process's masking log observer) and the rest are written as if nothing happened.
Unguarded, the exception would unwind into whatever called ``write`` (Twisted's HTTP client,
for a provider's body) and take the shared connection down for everyone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure


class Consumer(Protocol):
    """What a fanout writes to: whole MPEG-TS packets, in order."""

    def write(self, data: bytes) -> None: ...


C = TypeVar("C", bound=Consumer)


class Fanout(Generic[C]):
    """
    Writes each chunk to every consumer; pauses its producer when all of them are paused.
    ``on_error(consumer, failure)`` is told of a consumer dropped for a failed write, after it
    is removed, so its owner can release it (close a viewer's connection, fail a source over).
    """

    log = Logger()

    def __init__(
        self,
        producer: IPushProducer | None = None,
        on_error: Callable[[C, Failure], None] | None = None,
    ) -> None:
        self._consumers: dict[C, bool] = {}  # consumer -> paused
        self._snapshot: tuple[C, ...] = ()
        self._paused_count = 0
        self._producer: IPushProducer | None = producer
        self._producer_paused = False
        self._on_error = on_error
        #: times the producer was paused so far (a gap in its reading that spans one is ours)
        self.pauses = 0

    # -- consumers -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._consumers)

    def __contains__(self, consumer: object) -> bool:
        return consumer in self._consumers

    @property
    def consumers(self) -> tuple[C, ...]:
        return self._snapshot

    def add(self, consumer: C, paused: bool = False) -> None:
        if consumer in self._consumers:
            return
        self._consumers[consumer] = paused
        self._paused_count += paused
        self._snapshot = tuple(self._consumers)
        self._update()

    def remove(self, consumer: C) -> None:
        paused = self._consumers.pop(consumer, None)
        if paused is None:
            return
        self._paused_count -= paused
        self._snapshot = tuple(self._consumers)
        self._update()

    def set_paused(self, consumer: C, paused: bool) -> None:
        """A consumer tells the fanout it can (not) take more bytes for now."""
        current = self._consumers.get(consumer)
        if current is None or current == paused:
            return
        self._consumers[consumer] = paused
        self._paused_count += 1 if paused else -1
        self._update()

    @property
    def all_paused(self) -> bool:
        """True when there are consumers and none of them wants bytes."""
        return bool(self._consumers) and self._paused_count == len(self._consumers)

    # -- producer --------------------------------------------------------------------

    @property
    def producer(self) -> IPushProducer | None:
        return self._producer

    def set_producer(self, producer: IPushProducer | None) -> None:
        """Attach a new producer (a reconnect's transport) in the current paused state."""
        self._producer = producer
        self._producer_paused = False
        self._update()

    def _update(self) -> None:
        producer = self._producer
        if producer is None:
            self._producer_paused = False  # a new producer starts out reading
            return
        want_paused = self.all_paused
        if want_paused == self._producer_paused:
            return
        self._producer_paused = want_paused
        if want_paused:
            self.pauses += 1
            producer.pauseProducing()
        else:
            producer.resumeProducing()

    # -- data ------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Give ``data`` to every consumer (a consumer may drop itself while being written)."""
        consumers = self._consumers
        for consumer in self._snapshot:
            if consumer in consumers:
                try:
                    consumer.write(data)
                except Exception:
                    self.failed(consumer, Failure())

    def failed(self, consumer: C, failure: Failure) -> None:
        """Drop ``consumer``, whose write raised ``failure``; never raises itself."""
        if consumer not in self._consumers:
            return  # already dropped: logged once
        self.log.failure("[PROXY] dropping {consumer!r}: writing to it failed", failure,
                         consumer=consumer)
        self.remove(consumer)
        if self._on_error is not None:
            try:
                self._on_error(consumer, failure)
            except Exception:
                self.log.failure("[PROXY] releasing {consumer!r} after its failed write failed",
                                 consumer=consumer)
