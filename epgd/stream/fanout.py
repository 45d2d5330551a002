"""
One producer, many consumers, with backpressure: the piece both levels of the streaming chain
share (Upstream -> Channels, Channel -> Clients).

The producer is paused only when *every* consumer is paused and resumed as soon as any one
resumes: a shared provider connection is never slowed for one slow viewer. Bounding each
consumer's queue (and cutting it off past the bound) is the consumer's job, since only it knows
what it has not yet passed on; the fanout just stops writing to consumers it has lost.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IPushProducer


class Consumer(Protocol):
    """What a fanout writes to: whole MPEG-TS packets, in order."""

    def write(self, data: bytes) -> None: ...


class Fanout:
    """Writes each chunk to every consumer; pauses its producer when all of them are paused."""

    def __init__(self, producer: IPushProducer | None = None) -> None:
        self._consumers: dict[Consumer, bool] = {}  # consumer -> paused
        self._snapshot: tuple[Consumer, ...] = ()
        self._paused_count = 0
        self._producer: IPushProducer | None = producer
        self._producer_paused = False

    # -- consumers -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._consumers)

    def __contains__(self, consumer: object) -> bool:
        return consumer in self._consumers

    @property
    def consumers(self) -> tuple[Consumer, ...]:
        return self._snapshot

    def add(self, consumer: Consumer, paused: bool = False) -> None:
        if consumer in self._consumers:
            return
        self._consumers[consumer] = paused
        self._paused_count += paused
        self._snapshot = tuple(self._consumers)
        self._update()

    def remove(self, consumer: Consumer) -> None:
        paused = self._consumers.pop(consumer, None)
        if paused is None:
            return
        self._paused_count -= paused
        self._snapshot = tuple(self._consumers)
        self._update()

    def set_paused(self, consumer: Consumer, paused: bool) -> None:
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
            producer.pauseProducing()
        else:
            producer.resumeProducing()

    # -- data ------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Give ``data`` to every consumer (a consumer may drop itself while being written)."""
        for consumer in self._snapshot:
            if consumer in self._consumers:
                consumer.write(data)
