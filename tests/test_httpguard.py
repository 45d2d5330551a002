"""
Tests for epgd.httpguard on a real loopback socket: what Twisted answers before any route
runs (malformed requests), paths that are not UTF-8, and the bounded access log.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from epgd.httpguard import EpgdSite, access_log_formatter
from epgd.redact import Redactor
from epgd.web import EpgdApi
from tests.test_web import FakeCatalog, FakePublished, FakeStreams, make_config


class _Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(self.data)


class SiteEdgeTests(TestCase):
    def setUp(self) -> None:
        self.streams = FakeStreams()
        api = EpgdApi(make_config(), FakeCatalog(FakePublished()), self.streams, reactor)
        self.site = EpgdSite(api.app.resource(), Redactor())
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    @inlineCallbacks
    def send(self, raw: bytes) -> Any:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        protocol = yield connectProtocol(endpoint, _Collect())
        protocol.transport.write(raw)
        answer = yield protocol.done
        head, _, body = answer.partition(b"\r\n\r\n")
        return head.split(b"\r\n"), body

    def assertOneLineAnswer(self, head: list[bytes], body: bytes, status: bytes) -> None:
        self.assertEqual(head[0], b"HTTP/1.1 " + status)
        self.assertIn(b"content-type: text/plain; charset=utf-8", [h.lower() for h in head])
        self.assertTrue(body.endswith(b"\n") and b"\n" not in body[:-1] and body.strip(), body)
        self.assertEqual([e for e in self.events if e.get("log_failure")], [])

    @inlineCallbacks
    def test_malformed_requests_get_a_one_line_400(self) -> Any:
        for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
                    b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n"):
            head, body = yield self.send(raw)
            self.assertOneLineAnswer(head, body, b"400 Bad Request")
            self.assertIn(b"malformed", body)

    @inlineCallbacks
    def test_path_that_is_not_utf8(self) -> Any:
        head, body = yield self.send(
            b"GET /stream/%ff%fe.ts HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertOneLineAnswer(head, body, b"400 Bad Request")
        self.assertIn(b"not UTF-8", body)
        self.assertEqual(self.streams.served, [])

    @inlineCallbacks
    def test_good_requests_still_pass(self) -> Any:
        head, body = yield self.send(
            b"GET /stream/a_1.ts HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertEqual(head[0], b"HTTP/1.1 200 OK")
        self.assertEqual(self.streams.served, ["a_1"])

    def test_access_log_is_bounded_and_masked(self) -> None:
        class Request:
            uri = b"/stream/" + b"a" * 15_000 + b".ts?token=hunter2"
            method = b"GET"
            clientproto = b"HTTP/1.1"
            code = 404
            sentLength = 40

            def getClientAddress(self) -> Any:
                return None

            def getHeader(self, name: bytes) -> bytes:
                return b"x" * 20_000 if name == b"user-agent" else b"http://u:hunter2@h/"

        line = access_log_formatter(Redactor(["hunter2"]))("[24/Nov/2026:01:00:00 +0000]",
                                                           Request())
        self.assertLess(len(line), 1200)
        self.assertIn("more)", line)
        self.assertNotIn("hunter2", line)
