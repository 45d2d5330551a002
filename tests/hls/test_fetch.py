"""
The small HTTP pieces of an HLS connection (epgd.hls.fetch): whole small bodies (playlists,
keys, init sections) within a size cap and a time limit, a Range answered or ignored, the URL
after redirects, AES-128 decrypted as it arrives, and "is this segment MPEG-TS?".
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from epgd.hls.fetch import Collect, Decrypt, SmallFetches, segment_verdict
from epgd.hls.playlist import ByteRange
from epgd.net.failure import RequestError, describe
from epgd.redact import Redactor
from tests.fakehls import encrypt
from tests.hlsfakes import BASE, KEY, Answer, ScriptedHTTP, seg
from tests.streamfakes import FakeTransport

IV = bytes(range(100, 116))


class VerdictTests(SynchronousTestCase):
    def test_mpeg_ts_is_welcome(self) -> None:
        self.assertIsNone(segment_verdict(seg(1)))

    def test_fmp4_boxes(self) -> None:
        for box in (b"ftyp", b"styp", b"moof", b"moov", b"sidx"):
            self.assertEqual(segment_verdict(b"\x00\x00\x00\x18" + box + b"\x00" * 200), "fMP4", box)

    def test_anything_else_says_what_it_is(self) -> None:
        self.assertEqual(segment_verdict(b"<html><body>expired</body></html>" * 40), "an HTML page")
        self.assertEqual(segment_verdict(b""), "no bytes at all")

    def test_ts_after_some_leading_junk_is_still_ts(self) -> None:
        """Judged MPEG-TS once packets line up anywhere in the head; the aligner skips the junk."""
        self.assertIsNone(segment_verdict(b"junk" + seg(1)))


class DecryptTests(SynchronousTestCase):
    def test_any_pieces_decrypt_to_the_segment(self) -> None:
        data = seg(7, packets=20)
        secret = encrypt(data, KEY, IV)
        for size in (1, 15, 16, 17, 188, 1000, len(secret)):
            decrypt = Decrypt(KEY, IV)
            out = b"".join(decrypt.update(secret[i:i + size]) for i in range(0, len(secret), size))
            self.assertEqual(out + decrypt.finish(), data, size)

    def test_bytes_come_out_as_they_arrive(self) -> None:
        """Nothing of a segment is held beyond a cipher block or two: it streams."""
        data = seg(7, packets=100)
        decrypt = Decrypt(KEY, IV)
        out = decrypt.update(encrypt(data, KEY, IV))
        self.assertGreaterEqual(len(out), len(data) - 32)

    def test_a_wrong_key_fails_at_the_end(self) -> None:
        decrypt = Decrypt(KEY[::-1], IV)
        decrypt.update(encrypt(seg(7), KEY, IV))
        self.assertRaises(ValueError, decrypt.finish)


class CollectTests(SynchronousTestCase):
    def collect(self, limit: int = 100) -> tuple[Collect, FakeTransport]:
        collect = Collect(limit, "playlist")
        transport = FakeTransport()
        transport.protocol = collect
        collect.makeConnection(transport)
        return collect, transport

    def test_a_whole_body(self) -> None:
        collect, _ = self.collect()
        collect.dataReceived(b"#EXTM3U\n")
        collect.dataReceived(b"#EXT-X-TARGETDURATION:4\n")
        collect.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(collect.done), b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n")
        self.successResultOf(collect.lost)

    def test_an_end_without_a_length_is_a_normal_end(self) -> None:
        collect, _ = self.collect()
        collect.dataReceived(b"#EXTM3U\n")
        collect.connectionLost(Failure(PotentialDataLoss()))
        self.assertEqual(self.successResultOf(collect.done), b"#EXTM3U\n")

    def test_over_the_limit_fails_and_closes_the_connection(self) -> None:
        collect, transport = self.collect(limit=10)
        collect.dataReceived(b"x" * 6)
        collect.dataReceived(b"x" * 6)
        error = self.failureResultOf(collect.done, RequestError).value
        self.assertEqual(str(error), "playlist is over 10 bytes")
        self.assertIsNone(error.code)  # a body problem: not_ts, not http_error
        self.assertTrue(transport.stopped)
        collect.dataReceived(b"more")  # what was still in flight is ignored
        self.assertEqual(collect.parts, [b"x" * 6])

    def test_cut_short(self) -> None:
        collect, _ = self.collect()
        collect.dataReceived(b"#EXTM3U\n")
        collect.connectionLost(Failure(ConnectionLost("reset by peer")))
        error = self.failureResultOf(collect.done, RequestError).value
        self.assertTrue(str(error).startswith("playlist cut short ("), str(error))
        self.assertIn("reset by peer", str(error))
        self.successResultOf(collect.lost)

    def test_cancelling_stops_the_body(self) -> None:
        """A timeout's cancel closes the connection (this fake one closes at once, hence "cut short")."""
        collect, transport = self.collect()
        collect.done.cancel()
        self.failureResultOf(collect.done, CancelledError, RequestError)
        self.assertTrue(transport.stopped)


class SmallFetchesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.http = ScriptedHTTP(self.clock)
        self.fetches = SmallFetches(self.http, {"User-Agent": ["epgd-test"]}, self.clock, timeout=4.0)

    def get(self, url: str, limit: int = 1000, byterange: ByteRange | None = None) -> Deferred[Any]:
        return self.fetches.get(url, limit, "init section", byterange)

    def test_the_body_and_the_url_after_redirects(self) -> None:
        """Relative URIs in what was fetched resolve against where the redirects led."""
        self.http.routes[BASE + "k"] = Answer(KEY, final="http://keys.test/k?tok=1")
        self.assertEqual(self.successResultOf(self.get(BASE + "k")), ("http://keys.test/k?tok=1", KEY))
        self.assertEqual(self.http.requests[0].headers["User-Agent"], ["epgd-test"])

    def test_no_redirect_is_the_asked_url(self) -> None:
        self.http.routes[BASE + "k"] = Answer(KEY)
        self.assertEqual(self.successResultOf(self.get(BASE + "k")), (BASE + "k", KEY))

    def test_an_error_status_fails_with_its_status_line_and_is_not_read(self) -> None:
        self.http.routes[BASE + "k"] = Answer(b"denied", 403, b"text/plain")
        error = self.failureResultOf(self.get(BASE + "k"), RequestError).value
        self.assertEqual((str(error), error.code), ("HTTP 403 Error", 403))
        response = self.http.requests[0].response
        assert response is not None
        self.assertTrue(response.transport.stopped)

    def test_over_the_size_cap(self) -> None:
        self.http.routes[BASE + "map.ts"] = Answer(b"x" * 1001)
        error = self.failureResultOf(self.get(BASE + "map.ts"), RequestError).value
        self.assertEqual(str(error), "init section is over 1000 bytes")

    def test_a_byte_range_is_a_range_request(self) -> None:
        whole = bytes(range(200))
        self.http.routes[BASE + "all.ts"] = lambda seen: Answer(whole[50:60], 206)
        result = self.successResultOf(self.get(BASE + "all.ts", byterange=ByteRange(50, 10)))
        self.assertEqual(result, (BASE + "all.ts", whole[50:60]))
        self.assertEqual(self.http.requests[0].headers["Range"], ["bytes=50-59"])

    def test_a_server_that_ignores_the_range_still_gives_the_range(self) -> None:
        whole = bytes(range(200))
        self.http.routes[BASE + "all.ts"] = Answer(whole)  # 200 with the whole resource
        result = self.successResultOf(self.get(BASE + "all.ts", byterange=ByteRange(50, 10)))
        self.assertEqual(result, (BASE + "all.ts", whole[50:60]))

    def test_no_answer_within_the_timeout(self) -> None:
        self.http.routes[BASE + "k"] = Answer(KEY, hold=True)
        fetched = self.get(BASE + "k")
        self.clock.advance(3.9)
        self.assertNoResult(fetched)
        self.clock.advance(0.1)
        failure = self.failureResultOf(fetched)
        self.assertEqual(describe(failure, 4.0, Redactor()).line, "no answer within 4s")

    def test_a_url_the_client_refuses_is_a_failed_fetch(self) -> None:
        class Refusing:
            def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
                raise ValueError(f"bad URL {url!r}")

        fetches = SmallFetches(Refusing(), {}, self.clock, timeout=4.0)
        error = self.failureResultOf(fetches.get("http://[x/k", 16, "key"), RequestError).value
        self.assertEqual(str(error), "cannot request it: bad URL 'http://[x/k'")

    def test_close_drops_the_bodies_being_read(self) -> None:
        self.http.routes[BASE + "k"] = Answer(stream=True)
        fetched = self.get(BASE + "k")
        response = self.http.requests[0].response
        assert response is not None
        response.send(b"half")
        waits = self.fetches.close()
        self.assertEqual(len(waits), 1)
        self.assertTrue(response.transport.stopped)
        self.successResultOf(waits[0])
        self.failureResultOf(fetched, RequestError)
        self.assertEqual(self.fetches.open, set())
