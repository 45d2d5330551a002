"""Reading a provider's answer (epgd.net.response): status line, final URL, content type, Discard."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from epgd.net.response import Discard, content_type, final_url, is_success, status_line, stop_body
from tests.streamfakes import FakeResponse, FakeTransport


class _Request:
    def __init__(self, uri: Any) -> None:
        self.absoluteURI = uri


def answered(code: int = 200, phrase: bytes = b"OK", uri: Any = None,
             headers: dict[bytes, list[bytes]] | None = None) -> FakeResponse:
    response = FakeResponse(code, phrase)
    response.request = _Request(uri)  # type: ignore[attr-defined]
    response.headers = Headers(headers or {})  # type: ignore[attr-defined]
    return response


class StatusTests(SynchronousTestCase):
    def test_status_line_is_how_a_failed_answer_is_named(self) -> None:
        self.assertEqual(status_line(answered(404, b"Not Found")), "HTTP 404 Not Found")
        self.assertEqual(status_line(answered(512, b"")), "HTTP 512")
        self.assertEqual(status_line(answered(503, None)), "HTTP 503")  # type: ignore[arg-type]
        self.assertEqual(status_line(answered(403, b"Verboten \xfc")), "HTTP 403 Verboten \u00fc")

    def test_only_2xx_is_a_success(self) -> None:
        self.assertEqual([is_success(answered(code)) for code in (199, 200, 206, 299, 300, 404)],
                         [False, True, True, True, False, False])


class FinalUrlTests(SynchronousTestCase):
    def test_the_url_after_redirects(self) -> None:
        after = "http://edge.test/s/index.m3u8?tok=1"
        self.assertEqual(final_url(answered(uri=after.encode()), "http://a.test/x"), after)
        self.assertEqual(final_url(answered(uri=after), "http://a.test/x"), after)

    def test_the_asked_url_when_the_answer_does_not_say(self) -> None:
        self.assertEqual(final_url(answered(uri=None), "http://a.test/x"), "http://a.test/x")
        self.assertEqual(final_url(object(), "http://a.test/x"), "http://a.test/x")


class ContentTypeTests(SynchronousTestCase):
    def test_the_first_content_type(self) -> None:
        response = answered(headers={b"Content-Type": [b"application/vnd.apple.mpegurl", b"text/plain"]})
        self.assertEqual(content_type(response), b"application/vnd.apple.mpegurl")

    def test_none_given(self) -> None:
        self.assertEqual(content_type(answered()), b"")
        self.assertEqual(content_type(object()), b"")


class DiscardTests(SynchronousTestCase):
    def test_an_unwanted_body_closes_its_connection_at_once(self) -> None:
        """An error page is never read: its connection goes (and with it the provider slot)."""
        response = answered(404, b"Not Found")
        response.deliverBody(Discard())
        self.assertTrue(response.transport.stopped)

    def test_stop_body(self) -> None:
        transport = FakeTransport()
        stop_body(transport)
        self.assertTrue(transport.stopped)
        stop_body(None)  # a body whose connection never came: nothing to close
