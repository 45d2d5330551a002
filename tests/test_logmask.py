"""Tests for epgd.logmask: every text an event carries is masked before observers see it."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger, LogPublisher, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from epgd.logmask import MaskingObserver
from epgd.redact import Redactor

URL = "http://alice7:hunter2x@p.example/get.php?username=alice7&password=hunter2x"


class MaskingObserverTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.publisher = LogPublisher()
        self.publisher.addObserver(MaskingObserver(Redactor.for_urls([URL])))
        self.seen: list[dict[str, Any]] = []
        self.publisher.addObserver(self.seen.append)  # after it, as twistd's file observer is
        self.log = Logger(namespace="t", observer=self.publisher)

    def text(self) -> str:
        return "".join(formatEventAsClassicLogText(e) or "" for e in self.seen)

    def test_failure_traceback_is_masked_and_still_a_failure(self) -> None:
        try:
            raise ConnectionError(f"cannot fetch {URL}")
        except ConnectionError:
            self.log.failure("fetch for {who} failed", who="hunter2x")
        text = self.text()
        self.assertIn("ConnectionError: cannot fetch http://***@p.example/", text)
        self.assertIn("fetch for *** failed", text)
        self.assertNotIn("hunter2x", text)
        self.assertNotIn("alice7", text)
        failure = self.seen[0]["log_failure"]
        self.assertIsInstance(failure, Failure)
        self.assertIs(failure.check(ConnectionError), ConnectionError)
        self.assertNotIn("hunter2x", failure.getErrorMessage() + failure.getBriefTraceback())

    def test_fields_of_every_kind(self) -> None:
        self.log.info("{error} {thing} {n}", error=ValueError(URL), thing=[URL], n=3,
                      log_format_extra=URL)
        text = self.text()
        self.assertNotIn("hunter2x", text)
        self.assertIn(" 3", text)
        self.assertEqual(self.seen[0]["n"], 3)
        self.assertNotIn("hunter2x", repr(self.seen[0]))

    def test_legacy_messages(self) -> None:
        event = {"message": (f"GET {URL}",), "isError": 0, "log_format": "{log_text}",
                 "log_text": f"GET {URL}", "log_level": None, "log_namespace": "legacy"}
        self.publisher(event)
        self.assertNotIn("hunter2x", repr(self.seen[0]))
