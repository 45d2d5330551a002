"""
A response body written straight to its socket (epgd.stream.out.bodywriter), over real 127.0.0.1
sockets: the bytes a client decodes are exactly the bytes written, chunked or not, in order,
with Twisted's backpressure intact. The first test is the alarm for a Twisted upgrade: it
fails when the internals the module reads are no longer where it reads them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import http, server
from twisted.web.client import Agent, ResponseDone
from twisted.web.resource import Resource
from zope.interface import implementer

from epgd.internals import INTERNALS
from epgd.stream.out.bodywriter import BodyWriter, _rest, direct_transport
from tests.streamfakes import FakeRequest


@implementer(IPushProducer)
class Producer:
    """Records the pauses the transport asks for."""

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


class Streamer(Resource):
    """``GET /``: hands the test each request (unfinished) with a BodyWriter for it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[server.Request, BodyWriter, Producer]] = []
        self.arrived: Deferred[None] = Deferred()

    def render_GET(self, request: server.Request) -> Any:
        request.setHeader(b"Content-Type", b"video/mp2t")
        producer = Producer()
        request.registerProducer(producer, True)
        writer = BodyWriter(request)
        writer.write(b"")  # the headers, through Twisted
        self.requests.append((request, writer, producer))
        arrived, self.arrived = self.arrived, Deferred()
        arrived.callback(None)
        return server.NOT_DONE_YET

    render_HEAD = render_GET


class Body(Protocol):
    """Collects a response body (Agent decodes the chunks and fails on bad framing)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if reason.check(ResponseDone, http.PotentialDataLoss):
            self.done.callback(None)
        else:
            self.done.errback(reason)


class Raw(Protocol):
    """A raw client that sends one request and may stop reading (its socket fills up)."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = bytearray()
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed.callback(None)

    def body(self) -> bytes:
        return bytes(self.received).split(b"\r\n\r\n", 1)[1]


def pattern(n: int, seed: int) -> bytes:
    """``n`` bytes no other call's output can be mistaken for (order and gaps show)."""
    return bytes((seed * 31 + i * 7 + i // 251) & 0xFF for i in range(n))


class OverRealSockets(TestCase):
    timeout = 20

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.resource = Streamer()
        site = server.Site(self.resource)
        site.noisy = False
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def arrival(self) -> tuple[server.Request, BodyWriter, Producer]:
        """The next request, once its headers have left the transport's buffer."""
        await self.resource.arrived
        await deferLater(self.reactor, 0.01, lambda: None)
        return self.resource.requests[-1]

    def url(self) -> bytes:
        return b"http://127.0.0.1:%d/" % self.port.getHost().port

    async def raw(self, request: bytes) -> Raw:
        client = Raw(request)
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port.getHost().port)
        await connectProtocol(endpoint, client)

        def gone() -> Deferred[None] | None:
            if not client.transport.connected:
                return None
            client.transport.abortConnection()
            return client.closed

        self.addCleanup(gone)
        return client

    async def test_twisted_internals_are_where_the_writer_reads_them(self) -> None:
        response: Deferred[Any] = Agent(self.reactor).request(b"GET", self.url())
        request, writer, _ = await self.arrival()
        transport = request.channel.transport
        for owner, names in INTERNALS["epgd.stream.out.bodywriter"].items():
            holder = transport if owner.endswith("Connection") else request
            for name in names:
                self.assertTrue(hasattr(holder, name),
                                f"Twisted moved {owner}.{name}: epgd/stream/out/bodywriter.py "
                                "must follow it (until then every write takes Twisted's path)")
        self.assertIs(direct_transport(request), transport,
                      "a plain HTTP/1.1 response should be written straight to its socket")
        self.assertTrue(request.chunked)
        writer.write(b"packet" * 100)
        self.assertEqual(writer.direct, 1, "the write did not go straight to the socket")
        self.assertEqual(request.sentLength, 600)
        request.unregisterProducer()
        request.finish()
        body = Body()
        (await response).deliverBody(body)
        await body.done
        self.assertEqual(bytes(body.data), b"packet" * 100)

    async def test_chunked_body_decodes_to_exactly_what_was_written(self) -> None:
        response: Deferred[Any] = Agent(self.reactor).request(b"GET", self.url())
        request, writer, _ = await self.arrival()
        pieces = [pattern(n, i) for i, n in enumerate((1, 188, 7000, 65536, 3, 300_000, 1316))]
        for piece in pieces:
            writer.write(piece)
            writer.write(b"")  # nothing, not an empty chunk (that would end the body)
        request.unregisterProducer()
        request.finish()
        body = Body()
        (await response).deliverBody(body)
        await body.done
        self.assertEqual(bytes(body.data), b"".join(pieces))
        self.assertGreater(writer.direct, 0)

    async def test_http10_body_goes_unframed(self) -> None:
        client = await self.raw(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        request, writer, _ = await self.arrival()
        self.assertFalse(request.chunked)
        writer.write(b"abc")
        writer.write(b"def")
        self.assertEqual(writer.direct, 2)
        request.unregisterProducer()
        request.finish()
        await client.closed
        self.assertEqual(client.body(), b"abcdef")

    async def test_head_answer_sends_no_body(self) -> None:
        client = await self.raw(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        request, writer, _ = await self.arrival()
        writer.write(b"not for a HEAD")
        self.assertEqual(writer.direct, 0)
        request.unregisterProducer()
        request.finish()
        await client.closed
        self.assertTrue(bytes(client.received).startswith(b"HTTP/1.1 200"))
        self.assertTrue(bytes(client.received).endswith(b"\r\n\r\n"))

    async def test_a_full_socket_queues_in_order_and_pauses_the_producer(self) -> None:
        """What the kernel does not take goes to Twisted's buffer, which pauses the producer."""
        client = await self.raw(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        client.transport.pauseProducing()  # stop reading: the server's socket fills up
        request, writer, producer = await self.arrival()
        written = []
        for i in range(100):  # bounded: 100 x 300 KB is far beyond any socket buffer
            if producer.paused:
                break
            piece = pattern(300_001, i)  # the socket takes part of one of them
            written.append(piece)
            writer.write(piece)
            await deferLater(self.reactor, 0, lambda: None)
        self.assertTrue(producer.paused, "a client that does not read never paused the writer")
        transport = request.channel.transport
        self.assertTrue(transport.dataBuffer or transport._tempDataLen)
        writer.write(b"tail")  # behind the queue, never ahead of it
        written.append(b"tail")
        client.transport.resumeProducing()
        expected = b"".join(written)
        for _ in range(2000):
            if len(client.received) >= len(expected):
                break
            await deferLater(self.reactor, 0.005, lambda: None)
        self.assertFalse(producer.paused, "the transport resumed the producer once drained")
        request.unregisterProducer()
        request.finish()
        await client.closed
        self.assertEqual(client.body(), expected)


class WithoutASocket(SynchronousTestCase):
    def test_a_request_with_no_tcp_transport_is_written_through_twisted(self) -> None:
        request = FakeRequest()
        writer = BodyWriter(request)
        writer.write(b"")
        writer.write(b"x")
        self.assertIsNone(direct_transport(request))
        self.assertEqual(request.written, [b"", b"x"])
        self.assertEqual(writer.direct, 0)

    def test_what_a_partial_send_leaves_is_the_rest_of_the_frame(self) -> None:
        parts = (b"a\r\n", b"0123456789", b"\r\n")
        frame = b"".join(parts)
        for sent in range(len(frame) + 1):
            self.assertEqual(b"".join(_rest(parts, sent)), frame[sent:], sent)
