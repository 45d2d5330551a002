"""
The header-limited client pool (epgd.net.pool) through a real Agent on 127.0.0.1: endless
response headers are cut off at 64 KiB; real answers, large bodies and persistent connections
are not touched.

What epgd says about such a provider is tested where it is said: the guide and playlist fetcher
(``tests.test_fetch``: ``test_endless_headers_are_refused``) and a live stream
(``tests.test_stream_e2e_faults``: ``test_a_provider_sending_endless_headers_is_a_failed_source``).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, ResponseFailed, readBody

from epgd.net.pool import MAX_HEADER_BYTES, HeaderLimitedPool, HeadersTooLong


def answer(header_lines: int = 0, line_bytes: int = 1000, body: bytes = b"ok") -> bytes:
    """A 200 whose header section holds ``header_lines`` filler lines of ``line_bytes`` each."""
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"x" * line_bytes) for i in range(header_lines))
    return (b"HTTP/1.1 200 OK\r\n" + filler + b"Content-Length: %d\r\n\r\n" % len(body) + body)


class _Provider(Protocol):
    """Answers each request on its connection with the next scripted answer, at once and whole."""

    factory: _Site

    def connectionMade(self) -> None:
        self.factory.connections += 1
        self.pending = b""
        self.closed: Deferred[None] = Deferred()
        self.factory.open.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.pending += data
        while b"\r\n\r\n" in self.pending:
            _, self.pending = self.pending.split(b"\r\n\r\n", 1)
            self.transport.write(self.factory.answers.pop(0))  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.factory.open.remove(self)
        self.closed.callback(None)


class _Site(Factory):
    protocol = _Provider

    def __init__(self) -> None:
        self.answers: list[bytes] = []
        self.connections = 0
        self.open: list[_Provider] = []


class HeaderLimitedPoolTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.site = _Site()
        port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = b"http://127.0.0.1:%d/get.php" % port.getHost().port
        self.pool = HeaderLimitedPool(reactor, persistent=True)
        self.agent = Agent(reactor, pool=self.pool)
        self.addCleanup(self.closed)

    async def closed(self) -> None:
        await self.pool.closeCachedConnections()
        for connection in list(self.site.open):
            connection.transport.abortConnection()  # type: ignore[union-attr]
            await connection.closed

    async def get(self) -> tuple[Any, bytes]:
        response = await self.agent.request(b"GET", self.url)
        return response, await readBody(response)

    async def test_endless_headers_fail_the_request_and_drop_the_connection(self) -> None:
        self.site.answers.append(answer(header_lines=2000))  # 2 MB of header lines
        failure = None
        try:
            await self.get()
        except ResponseFailed as e:  # or its subclass ResponseNeverReceived
            failure = e
        assert failure is not None, "a response whose headers never end was accepted"
        [reason] = failure.reasons
        self.assertTrue(reason.check(HeadersTooLong))
        self.assertEqual(reason.getErrorMessage(), "response headers longer than 64 KiB")
        if self.site.open:  # the provider sees its connection closed, not read to the end
            await self.site.open[0].closed

    async def test_large_real_headers_pass(self) -> None:
        """60 KiB of headers (real providers send a few hundred bytes) is still an answer."""
        self.site.answers.append(answer(header_lines=60, body=b"hello"))
        response, body = await self.get()
        self.assertEqual((response.code, body), (200, b"hello"))
        self.assertEqual(len(response.headers.getRawHeaders(b"x-filler-59")[0]), 1000)
        self.assertLess(60 * 1000, MAX_HEADER_BYTES)

    async def test_a_large_body_in_the_same_read_as_the_headers_is_not_header_bytes(self) -> None:
        body = bytes(range(256)) * 1024  # 256 KiB, sent with its headers in one write
        self.site.answers.append(answer(header_lines=2, body=body))
        response, got = await self.get()
        self.assertEqual(got, body)

    async def test_each_response_on_a_persistent_connection_counts_afresh(self) -> None:
        """Two 40 KiB header sections on one connection: 80 KiB in all, yet each is fine."""
        self.site.answers += [answer(header_lines=40, body=b"one"), answer(header_lines=40, body=b"two")]
        _, first = await self.get()
        _, second = await self.get()
        self.assertEqual((first, second), (b"one", b"two"))
        # the connection went back to the pool between them (the quiescent callback was kept)
        self.assertEqual(self.site.connections, 1)

    async def test_a_fetch_logs_no_factory_lines(self) -> None:
        """Twisted's "Starting factory _HTTP11ClientFactory(...)" pair per fetch is kept out of the log."""
        from twisted.logger import capturedLogs, formatEvent

        self.site.answers += [answer(body=b"one"), answer(body=b"two")]
        with capturedLogs() as events:
            await self.get()
            await self.pool.closeCachedConnections()
            self.pool = HeaderLimitedPool(self.pool._reactor, persistent=False)
            self.agent = Agent(self.pool._reactor, pool=self.pool)
            await self.get()
        text = "\n".join(formatEvent(e) for e in events)
        self.assertNotIn("factory", text.lower())
