"""
How a failed provider request is named (epgd.net.failure.describe): the line users read in
the log, /status and errors, and the fault word /metrics counts it under.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import PartialDownloadError, ResponseFailed, ResponseNeverReceived

from epgd.net.failure import FAULTS, Failed, RequestError, describe, reasons
from epgd.net.pool import HeadersTooLong
from epgd.redact import Redactor

SECRET_URL = "http://alice:s3cret@provider.test/get.php?username=alice&password=s3cret"
REDACTOR = Redactor.for_urls([SECRET_URL])


def said(error: BaseException, timeout: float | None = 4.0) -> Failed:
    return describe(Failure(error), timeout, REDACTOR)


def never(*errors: BaseException) -> ResponseNeverReceived:
    """What Agent fails with when no response started: the reasons wrapped."""
    return ResponseNeverReceived([Failure(e) for e in errors])


class DescribeTests(SynchronousTestCase):
    def test_an_error_status_is_an_http_error(self) -> None:
        self.assertEqual(said(RequestError("HTTP 404 Not Found", 404)),
                         Failed("HTTP 404 Not Found", "http_error"))

    def test_an_unusable_body_without_a_status_is_not_ts(self) -> None:
        self.assertEqual(said(RequestError("playlist is over 4 bytes")),
                         Failed("playlist is over 4 bytes", "not_ts"))

    def test_a_request_error_is_one_masked_line(self) -> None:
        failed = said(RequestError(f"an HTML page\n  from {SECRET_URL}\r\n", 200))
        self.assertEqual(failed.line, "an HTML page from http://***@provider.test/get.php?username=***&password=***")
        self.assertEqual(failed.fault, "http_error")

    def test_a_timeout_names_the_limit_it_ran_into(self) -> None:
        for error in (DeferredTimeout(), ConnectTimeout(), CancelledError(), ConnectingCancelledError(None)):
            self.assertEqual(said(error), Failed("no answer within 4s", "timeout"), error)

    def test_a_timeout_wrapped_by_the_agent_is_read_inside(self) -> None:
        """``addTimeout`` cancels; Agent wraps the cancel: the line names the timeout, not the wrapper."""
        self.assertEqual(said(never(CancelledError()), timeout=2.5), Failed("no answer within 2.5s", "timeout"))

    def test_a_cancel_without_a_timeout_is_the_caller_giving_up(self) -> None:
        self.assertEqual(said(never(CancelledError()), timeout=None), Failed("cancelled", "timeout"))
        self.assertEqual(said(CancelledError(), timeout=None), Failed("cancelled", "timeout"))

    def test_endless_headers_are_an_http_error(self) -> None:
        self.assertEqual(said(ResponseFailed([Failure(HeadersTooLong(64 * 1024))])),
                         Failed("response headers longer than 64 KiB", "http_error"))
        self.assertEqual(said(never(HeadersTooLong(64 * 1024))),
                         Failed("response headers longer than 64 KiB", "http_error"))

    def test_a_body_cut_short_is_dropped(self) -> None:
        failed = said(ResponseFailed([Failure(ConnectionLost("reset by peer"))]))
        self.assertEqual(failed.fault, "dropped")
        self.assertTrue(failed.line.startswith("connection lost before the download completed ("), failed.line)
        self.assertIn("reset by peer", failed.line)

    def test_a_partial_download_is_dropped(self) -> None:
        failed = said(PartialDownloadError(b"200", b"not all of it", b"partial"))
        self.assertEqual(failed.fault, "dropped")
        self.assertTrue(failed.line.startswith("connection lost before the download completed"), failed.line)

    def test_dns_and_refused_connections_cannot_connect(self) -> None:
        failed = said(DNSLookupError("provider.test"))
        self.assertEqual(failed.fault, "connect_error")
        self.assertTrue(failed.line.startswith("cannot connect: "), failed.line)
        self.assertIn("provider.test", failed.line)
        failed = said(never(ConnectionRefusedError("127.0.0.1:9")))
        self.assertEqual(failed.fault, "connect_error")
        self.assertIn("Connection was refused", failed.line)

    def test_a_connection_closed_before_an_answer_cannot_connect(self) -> None:
        failed = said(never(ConnectionLost("closed")))
        self.assertEqual(failed.fault, "connect_error")
        self.assertTrue(failed.line.startswith("cannot connect: "), failed.line)

    def test_credentials_in_a_connect_error_are_masked(self) -> None:
        failed = said(DNSLookupError(f"no address for {SECRET_URL}"))
        self.assertNotIn("s3cret", failed.line)
        self.assertNotIn("alice", failed.line)
        self.assertIn("http://***@provider.test", failed.line)

    def test_files(self) -> None:
        self.assertEqual(said(FileNotFoundError(2, "No such file or directory")),
                         Failed("no such file", "connect_error"))
        self.assertEqual(said(PermissionError(13, "Permission denied")),
                         Failed("Permission denied", "connect_error"))

    def test_anything_else_names_its_type(self) -> None:
        self.assertEqual(said(ValueError(f"bad URL {SECRET_URL}")),
                         Failed("ValueError: bad URL http://***@provider.test/get.php?username=***&password=***",
                                "connect_error"))

    def test_every_fault_word_is_a_metrics_word(self) -> None:
        self.assertEqual(set(FAULTS), {"connect_error", "timeout", "http_error", "not_ts", "dropped", "ended"})


class ReasonsTests(SynchronousTestCase):
    def test_the_failures_inside_an_agent_failure(self) -> None:
        inner = Failure(ConnectionLost())
        self.assertEqual(reasons(Failure(ResponseFailed([inner]))), [inner])

    def test_a_plain_failure_is_its_own_reason(self) -> None:
        failure = Failure(ValueError("x"))
        self.assertEqual(reasons(failure), [failure])
        empty = Failure(ResponseNeverReceived([]))
        self.assertEqual(reasons(empty), [empty])
