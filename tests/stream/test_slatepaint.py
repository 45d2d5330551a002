"""
Who makes slate pictures (epgd.stream.slatepaint): once per text, kept for the next time,
shared while being made, slimmed to what showing needs, off the reactor thread on a real
reactor and inline on a task.Clock.
"""

from __future__ import annotations

import threading

from twisted.internet import reactor as global_reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from epgd.mpegts.slate.source import KeyFrame, prepare
from epgd.stream import slatepaint
from epgd.stream.slatepaint import SlatePainter

SIZE = "640x360"
LINES = ("101  NHL PPV 1", "No events scheduled")


class Counting:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.threads: set[str] = set()

    def __call__(self, size: str, lines: tuple[str, ...]) -> KeyFrame:
        self.calls.append((size, lines))
        self.threads.add(threading.current_thread().name)
        return prepare(size, lines)


class InlineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.make = Counting()
        self.painter = SlatePainter(Clock(), make=self.make)

    def test_a_clock_paints_inline(self) -> None:
        key = self.successResultOf(self.painter.paint(SIZE, LINES))
        self.assertEqual(key.text, LINES)
        self.assertEqual(self.make.threads, {threading.current_thread().name})

    def test_each_text_is_made_once(self) -> None:
        first = self.successResultOf(self.painter.paint(SIZE, LINES))
        again = self.successResultOf(self.painter.paint(SIZE, LINES))
        self.assertIs(first, again)
        self.successResultOf(self.painter.paint("960x540", LINES))
        self.assertEqual(len(self.make.calls), 2)
        self.assertEqual(self.painter.made, 2)

    def test_only_the_latest_texts_are_kept(self) -> None:
        self.patch(slatepaint, "KEEP", 2)
        for n in range(3):
            self.successResultOf(self.painter.paint(SIZE, (f"{n}",)))
        self.successResultOf(self.painter.paint(SIZE, ("0",)))
        self.assertEqual(len(self.make.calls), 4)  # "0" was let go, made again

    def test_kept_pictures_are_slim(self) -> None:
        key = self.successResultOf(self.painter.paint("1920x1080", LINES))
        self.assertEqual((key.picture.y, key.picture.cb, key.picture.cr), (b"", b"", b""))
        self.assertEqual(key.picture.rgb.size, (1, 1))
        self.assertEqual((key.picture.width, key.picture.height, key.picture.lines), (1920, 1080, LINES))
        self.assertEqual(key.template, prepare("1920x1080", LINES).template)

    def test_a_failure_reaches_every_waiter(self) -> None:
        def broken(size: str, lines: tuple[str, ...]) -> KeyFrame:
            raise RuntimeError("no font")

        painter = SlatePainter(Clock(), make=broken)
        self.failureResultOf(painter.paint(SIZE, LINES), RuntimeError)
        self.failureResultOf(painter.paint(SIZE, LINES), RuntimeError)  # not kept: tried again


class ThreadTests(TestCase):
    timeout = 20

    async def test_a_real_reactor_paints_in_one_worker_thread(self) -> None:
        make = Counting()
        painter = SlatePainter(global_reactor, make=make)
        painter.start()
        self.addCleanup(painter.stop)
        same = [painter.paint(SIZE, LINES), painter.paint(SIZE, LINES)]
        other = painter.paint(SIZE, ("other",))
        keys = [await d for d in same] + [await other]
        self.assertIs(keys[0], keys[1])
        self.assertEqual(len(make.calls), 2)  # the same text, asked twice while made, made once
        self.assertEqual(len(make.threads), 1)
        self.assertNotEqual(make.threads, {threading.current_thread().name})
