"""
Who makes slate pictures: ``prepare`` (Pillow drawing the text, the IDR coded, its TS packets:
4-30 ms of CPU by size) run once per distinct text, off the reactor thread.

One worker thread for the whole process (the slate's font cache is not shared across threads
safely, and one thread keeps a burst of new texts — a hundred channels' countdowns turning
the same minute — from taking more than one core away from the reactor). The pictures made
are kept, a few dozen by text, so a text seen again (a reconnection's slate and back, a
refused viewer's retries) costs nothing; only what showing needs is kept of each (the IDR's
packets and its lines: a picture's planes and its RGB image are 90% of its memory).

A reactor without threads (``task.Clock`` in tests) gets the same painter working inline.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from attrs import evolve
from PIL import Image
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from epgd.mpegts.slate.source import KeyFrame, prepare

#: pictures kept, by (size, lines): ~150-260 KB each once slimmed
KEEP = 48
_DOT = Image.new("RGB", (1, 1))

Key = tuple[str, tuple[str, ...]]


def slim(key: KeyFrame) -> KeyFrame:
    """``key`` with what only drawing needed dropped: its planes and its RGB image."""
    picture = evolve(key.picture, rgb=_DOT, y=b"", cb=b"", cr=b"")
    return evolve(key, picture=picture)


class SlatePainter:
    """
    ``paint(size, lines)`` fires with the slate showing ``lines`` (a ``KeyFrame`` for
    ``SlateSource``): from the kept pictures at once, else once the worker has made it. The
    same text asked for again while it is being made waits for that one.
    """

    def __init__(self, reactor: object, threaded: bool | None = None,
                 make: Callable[[str, tuple[str, ...]], KeyFrame] = prepare) -> None:
        """``threaded``: None to use a worker thread when ``reactor`` can (a real reactor)."""
        if threaded is None:
            threaded = IReactorThreads.providedBy(reactor) and IReactorFromThreads.providedBy(reactor)
        self._reactor = reactor
        self._make = make
        self._pool: ThreadPool | None = ThreadPool(0, 1, name="epgd-slate") if threaded else None
        self._kept: OrderedDict[Key, KeyFrame] = OrderedDict()
        self._making: dict[Key, list[Deferred[KeyFrame]]] = {}
        self.made = 0  # pictures made (not taken from those kept), for tests and the benchmark

    def start(self) -> None:
        if self._pool is not None and not self._pool.started:
            self._pool.start()
            # its worker is no daemon thread: it must not outlive the reactor (a process whose
            # services were never stopped would hang at exit)
            if IReactorCore.providedBy(self._reactor):
                self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        """Let the worker go (a picture being made is finished first, by the pool)."""
        if self._pool is not None and self._pool.started:
            self._pool.stop()

    def paint(self, size: str, lines: tuple[str, ...]) -> Deferred[KeyFrame]:
        key = (size, lines)
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return succeed(kept)
        waiting: Deferred[KeyFrame] = Deferred()
        if key in self._making:
            self._making[key].append(waiting)
            return waiting
        self._making[key] = [waiting]
        made = self._run(size, lines)
        made.addBoth(self._made, key)
        return waiting

    def _run(self, size: str, lines: tuple[str, ...]) -> Deferred[KeyFrame]:
        pool = self._pool
        if pool is None or not pool.started:
            try:
                return succeed(slim(self._make(size, lines)))
            except Exception:
                return fail(Failure())
        return deferToThreadPool(self._reactor, pool, lambda: slim(self._make(size, lines)))  # type: ignore[arg-type]

    def _made(self, result: KeyFrame | Failure, key: Key) -> None:
        waiting = self._making.pop(key, [])
        if isinstance(result, KeyFrame):
            self.made += 1
            self._kept[key] = result
            while len(self._kept) > KEEP:
                self._kept.popitem(last=False)
            for d in waiting:
                d.callback(result)
        else:
            for d in waiting:
                d.errback(result)
