"""
Tests for epgd.sources.fetch against a real provider site on 127.0.0.1 (port 0).

``FakeProviderSite`` is shared with tests.test_feed.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, maybeDeferred
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from epgd.redact import Redactor
from epgd.sources import SourceError
from epgd.sources.fetch import Fetcher
from epgd.sources.m3u import parse_playlist
from epgd.sources.xmltv import parse_guide

PLAYLIST = b'#EXTM3U\n#EXTINF:-1 tvg-id="nhl07" group-title="NHL",NHL 07\nhttp://127.0.0.1:9/live/u/p/7.ts\n'
GUIDE = (b'<?xml version="1.0"?><tv><channel id="nhl07"><display-name>NHL 07</display-name></channel>'
         b'<programme channel="nhl07" start="20260101000000 +0000" stop="20260101030000 +0000">'
         b'<title>Bruins vs Rangers</title></programme></tv>')
HTML = b"<!DOCTYPE html><html><body><h1>Your account has expired</h1></body></html>"


def sync_thread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    """run_in_thread for tests: run at once, on this thread."""
    return maybeDeferred(f, *args, **kwargs)


class _Provider(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, Callable[[Request], bytes | int]] = {}
        self.headers: list[Any] = []
        self.stalled: list[Request] = []
        self.arrived: list[Deferred[Request]] = []

    def render_GET(self, request: Request) -> bytes | int:
        self.headers.append(request.requestHeaders)
        route = self.routes.get(request.path.decode())
        if route is None:
            request.setResponseCode(404)
            return b"not found"
        return route(request)


class FakeProviderSite:
    """A provider on 127.0.0.1: named routes, and every connection closed in cleanup."""

    def __init__(self, test: TestCase) -> None:
        from twisted.internet import reactor

        self.resource = _Provider()
        self.site = Site(self.resource)
        self.site.log = lambda request: None  # type: ignore[method-assign]  # the provider's own log
        self._connections: list[tuple[Any, Deferred[None]]] = []
        build = self.site.buildProtocol

        def tracked(addr: Any) -> Any:
            protocol = build(addr)
            lost: Deferred[None] = Deferred()
            made, gone = protocol.makeConnection, protocol.connectionLost

            def makeConnection(transport: Any) -> None:
                self._connections.append((transport, lost))
                made(transport)

            def connectionLost(reason: Any) -> None:
                gone(reason)
                lost.callback(None)

            protocol.makeConnection, protocol.connectionLost = makeConnection, connectionLost
            return protocol

        self.site.buildProtocol = tracked  # type: ignore[method-assign]
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        test.addCleanup(self.stop)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}{path}"

    def serve(self, path: str, body: bytes, code: int = 200,
              headers: dict[bytes, bytes] | None = None) -> None:
        def render(request: Request) -> bytes:
            request.setResponseCode(code)
            for name, value in (headers or {}).items():
                request.setHeader(name, value)
            return body

        self.resource.routes[path] = render

    def stall(self, path: str) -> Deferred[Request]:
        """Requests to ``path`` get no answer; fires when one arrives."""
        arrived: Deferred[Request] = Deferred()

        def render(request: Request) -> int:
            self.resource.stalled.append(request)
            if not arrived.called:
                arrived.callback(request)
            return NOT_DONE_YET

        self.resource.routes[path] = render
        return arrived

    def short(self, path: str, body: bytes, claimed: int) -> None:
        """Announce ``claimed`` bytes, send ``body``, hang up."""
        def render(request: Request) -> int:
            request.setHeader(b"Content-Length", str(claimed).encode())
            request.write(body)
            request.channel.transport.loseConnection()  # type: ignore[union-attr]
            return NOT_DONE_YET

        self.resource.routes[path] = render

    @inlineCallbacks
    def stop(self) -> Any:
        yield self.port.stopListening()
        waits = []
        for transport, lost in self._connections:
            if not lost.called:
                transport.loseConnection()
                waits.append(lost)
        yield gatherResults(waits)


class FetcherTests(TestCase):
    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.provider = FakeProviderSite(self)
        self.directory = os.path.abspath(self.mktemp())
        self.url = self.provider.url("/get.php?username=alice&password=s3cret&type=m3u_plus")
        self.fetcher = self.make_fetcher()

    def make_fetcher(self, **kwargs: Any) -> Fetcher:
        fetcher = Fetcher(
            self.reactor, "epgd-test/1.0", {"Referer": "http://provider.example/"},
            Redactor.for_urls([self.url]), run_in_thread=sync_thread, **kwargs,
        )
        self.addCleanup(fetcher.close)
        return fetcher

    def leftovers(self) -> list[str]:
        return [n for n in os.listdir(self.directory) if n.endswith(".part")]

    @inlineCallbacks
    def test_download_to_temp_file(self) -> Any:
        self.provider.serve("/get.php", PLAYLIST)
        path = yield self.fetcher.fetch(self.url, self.directory, "playlist")
        self.assertEqual(os.path.dirname(path), self.directory)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), PLAYLIST)
        self.assertEqual(parse_playlist(path, "main").channels[0].name, "NHL 07")
        headers = self.provider.resource.headers[-1]
        self.assertEqual(headers.getRawHeaders(b"user-agent"), [b"epgd-test/1.0"])
        self.assertEqual(headers.getRawHeaders(b"referer"), [b"http://provider.example/"])

    @inlineCallbacks
    def test_redirect_is_followed(self) -> Any:
        """Providers often answer get.php with a redirect to a CDN."""
        self.provider.serve("/cdn/list.m3u", PLAYLIST)
        self.provider.serve("/get.php", b"", code=302,
                            headers={b"Location": self.provider.url("/cdn/list.m3u").encode()})
        path = yield self.fetcher.fetch(self.url, self.directory, "playlist")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), PLAYLIST)

    @inlineCallbacks
    def test_gzip_content_encoding(self) -> Any:
        """Asked for, and undone while storing."""
        self.provider.serve("/xmltv.php", gzip.compress(GUIDE), headers={
            b"Content-Encoding": b"gzip", b"Content-Type": b"application/xml"})
        path = yield self.fetcher.fetch(self.provider.url("/xmltv.php"), self.directory, "guide")
        self.assertEqual(self.provider.resource.headers[-1].getRawHeaders(b"accept-encoding"),
                         [b"gzip"])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), GUIDE)

    @inlineCallbacks
    def test_gzip_file_is_stored_as_is_and_parsed(self) -> Any:
        for headers in ({}, {b"Content-Encoding": b"gzip"}):  # a .gz file, gzip-encoded again
            body = gzip.compress(GUIDE)
            self.provider.serve("/epg.xml.gz", gzip.compress(body) if headers else body,
                                headers=headers)
            path = yield self.fetcher.fetch(self.provider.url("/epg.xml.gz"), self.directory, "guide")
            with open(path, "rb") as f:
                self.assertEqual(f.read(2), b"\x1f\x8b")
            self.assertEqual(parse_guide(path).programmes[0].title, "Bruins vs Rangers")

    @inlineCallbacks
    def test_http_error_names_the_status_and_masks_credentials(self) -> Any:
        self.provider.serve("/get.php", b"nope", code=404)
        error = yield self.assertFailure(self.fetcher.fetch(self.url, self.directory, "playlist"),
                                         SourceError)
        port = self.provider.port.getHost().port
        self.assertEqual(str(error), f"playlist http://127.0.0.1:{port}/get.php?username=***"
                                     f"&password=***&type=m3u_plus failed: HTTP 404 Not Found")
        masked_again = Redactor.for_urls([self.url]).mask(str(error))
        self.assertEqual(masked_again, str(error))
        self.assertEqual(self.leftovers(), [])

    @inlineCallbacks
    def test_html_body_is_fetched_then_rejected_by_the_parser(self) -> Any:
        self.provider.serve("/get.php", HTML, headers={b"Content-Type": b"text/html"})
        path = yield self.fetcher.fetch(self.url, self.directory, "playlist")
        error = self.assertRaises(SourceError, parse_playlist, path, "main")
        self.assertEqual(str(error), "playlist is not M3U: got an HTML page")

    @inlineCallbacks
    def test_whole_download_timeout(self) -> Any:
        clock = task.Clock()
        fetcher = self.make_fetcher(clock=clock, timeout=120, inactivity=1000)
        arrived = self.provider.stall("/get.php")
        result = fetcher.fetch(self.url, self.directory, "playlist")
        request = yield arrived
        clock.advance(119)
        self.assertNoResult(result)
        clock.advance(1)
        error = yield self.assertFailure(result, SourceError)
        self.assertIn("no complete answer within 120 s", str(error))
        self.assertNotIn("s3cret", str(error))
        yield request.notifyFinish().addErrback(lambda _: None)  # the provider saw the hang-up
        self.assertEqual(self.leftovers(), [])

    @inlineCallbacks
    def test_body_cut_short(self) -> Any:
        self.provider.short("/get.php", PLAYLIST[:20], claimed=len(PLAYLIST) * 10)
        error = yield self.assertFailure(self.fetcher.fetch(self.url, self.directory, "playlist"),
                                         SourceError)
        self.assertIn("connection lost before the download completed", str(error))
        self.assertEqual(self.leftovers(), [])

    @inlineCallbacks
    def test_size_limit(self) -> Any:
        fetcher = self.make_fetcher(max_bytes=100)
        self.provider.serve("/get.php", PLAYLIST * 20)
        error = yield self.assertFailure(fetcher.fetch(self.url, self.directory, "playlist"),
                                         SourceError)
        self.assertIn("larger than 100 bytes", str(error))

    @inlineCallbacks
    def test_connection_refused(self) -> Any:
        port = self.provider.port.getHost().port
        yield self.provider.port.stopListening()
        url = f"http://127.0.0.1:{port}/get.php?username=alice&password=s3cret"
        error = yield self.assertFailure(self.fetcher.fetch(url, self.directory, "guide"), SourceError)
        self.assertIn("cannot connect", str(error))
        self.assertNotIn("s3cret", str(error))
        self.assertNotIn("alice", str(error))

    @inlineCallbacks
    def test_local_paths(self) -> Any:
        source = self.mktemp()
        with open(source, "wb") as f:
            f.write(PLAYLIST)
        for name in (source, "file://" + os.path.abspath(source)):
            path = yield self.fetcher.fetch(name, self.directory, "playlist")
            with open(path, "rb") as f:
                self.assertEqual(f.read(), PLAYLIST)
        error = yield self.assertFailure(
            self.fetcher.fetch(source + ".missing", self.directory, "playlist"), SourceError)
        self.assertEqual(str(error), f"playlist {source}.missing failed: no such file")
        error = yield self.assertFailure(
            self.fetcher.fetch("ftp://provider.example/list.m3u", self.directory, "playlist"),
            SourceError)
        self.assertIn("unsupported URL scheme 'ftp'", str(error))

    @inlineCallbacks
    def test_silence_fails_at_once(self) -> Any:
        """No answer for ``inactivity`` seconds fails, long before the whole-download cap."""
        clock = task.Clock()
        fetcher = self.make_fetcher(clock=clock, timeout=3600, inactivity=10)
        arrived = self.provider.stall("/get.php")
        result = fetcher.fetch(self.url, self.directory, "playlist")
        request = yield arrived
        clock.advance(9.9)
        self.assertNoResult(result)
        clock.advance(0.1)
        error = yield self.assertFailure(result, SourceError)
        self.assertIn("failed: nothing received for 10 s", str(error))
        self.assertNotIn("s3cret", str(error))
        yield request.notifyFinish().addErrback(lambda _: None)
        self.assertEqual(self.leftovers(), [])

    @inlineCallbacks
    def test_slow_but_steady_body_is_not_silence(self) -> Any:
        """Each chunk of body restarts the inactivity clock: a big guide may take its time."""
        from twisted.internet import reactor

        clock = task.Clock()
        fetcher = self.make_fetcher(clock=clock, timeout=3600, inactivity=10)
        arrived = self.provider.stall("/get.php")
        result = fetcher.fetch(self.url, self.directory, "playlist")
        request = yield arrived
        for part in (PLAYLIST[:10], PLAYLIST[10:30], PLAYLIST[30:]):
            [idle] = [c for c in clock.getDelayedCalls() if c.getTime() - clock.seconds() <= 10]
            due = idle.getTime()
            request.write(part)
            for _ in range(200):  # until the chunk has arrived and moved the timer on
                if idle.getTime() != due:
                    break
                yield task.deferLater(reactor, 0.01, lambda: None)
            clock.advance(9)  # 27 s in all, never 10 s of silence
            self.assertNoResult(result)
        request.finish()
        path = yield result
        with open(path, "rb") as f:
            self.assertEqual(f.read(), PLAYLIST)

    @inlineCallbacks
    def test_endless_headers_are_refused(self) -> Any:
        """A provider that sends header lines forever is cut off at 64 KiB, not buffered."""
        from twisted.internet import reactor
        from twisted.internet.protocol import Factory, Protocol

        sent: list[int] = []

        class Flood(Protocol):
            def dataReceived(self, data: bytes) -> None:
                if sent:
                    return
                sent.append(0)
                self.transport.write(b"HTTP/1.1 200 OK\r\n")
                for i in range(2000):  # 2000 lines of 1 KiB, far past any real header block
                    self.transport.write(b"X-Filler-%d: %s\r\n" % (i, b"x" * 1000))
                    sent[0] += 1

        port = reactor.listenTCP(0, Factory.forProtocol(Flood), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/get.php?username=alice&password=s3cret"
        error = yield self.assertFailure(self.fetcher.fetch(url, self.directory, "playlist"),
                                         SourceError)
        self.assertTrue(str(error).endswith("failed: response headers longer than 64 KiB"),
                        str(error))
        self.assertNotIn("s3cret", str(error))
        self.assertEqual(self.leftovers(), [])

    @inlineCallbacks
    def test_userinfo_becomes_basic_authorization(self) -> Any:
        """http://user:pass@host/... is fetched as players fetch it, and masked in errors."""
        import base64

        port = self.provider.port.getHost().port
        url = f"http://alice:s%40cret@127.0.0.1:{port}/list.m3u"
        self.provider.serve("/list.m3u", PLAYLIST)
        path = yield self.fetcher.fetch(url, self.directory, "playlist")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), PLAYLIST)
        headers = self.provider.resource.headers[-1]
        self.assertEqual(headers.getRawHeaders(b"authorization"),
                         [b"Basic " + base64.b64encode(b"alice:s@cret")])
        self.provider.serve("/list.m3u", b"denied", code=401)
        error = yield self.assertFailure(self.fetcher.fetch(url, self.directory, "playlist"),
                                         SourceError)
        self.assertEqual(str(error), f"playlist http://***@127.0.0.1:{port}/list.m3u failed: "
                                     "HTTP 401 Unauthorized")

    @inlineCallbacks
    def test_per_fetch_cap_counts_decompressed_bytes(self) -> Any:
        """A small gzip-encoded answer that expands past the guide cap is refused."""
        self.provider.serve("/xmltv.php", gzip.compress(b" " * 100_000),
                            headers={b"Content-Encoding": b"gzip"})
        error = yield self.assertFailure(
            self.fetcher.fetch(self.provider.url("/xmltv.php"), self.directory, "guide",
                               max_bytes=50_000), SourceError)
        self.assertIn("larger than 50000 bytes", str(error))
        self.assertEqual(self.leftovers(), [])
