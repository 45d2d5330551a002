"""URLs as epgd sends and names them (epgd.net.urls)."""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase

from epgd.net.urls import last_segment, split_userinfo


class SplitUserinfoTests(SynchronousTestCase):
    def test_userinfo_becomes_basic_authorization(self) -> None:
        """Agent refuses user:pass@ in the host; players send it as HTTP Basic, so epgd does."""
        url, authorization = split_userinfo("http://alice:s3cret@provider.test:8080/live/7.ts?x=1")
        self.assertEqual(url, "http://provider.test:8080/live/7.ts?x=1")
        self.assertEqual(authorization, b"Basic " + base64.b64encode(b"alice:s3cret"))

    def test_percent_escapes_are_decoded_before_encoding(self) -> None:
        _, authorization = split_userinfo("http://alice:s%40cret%3A1@provider.test/")
        self.assertEqual(authorization, b"Basic " + base64.b64encode(b"alice:s@cret:1"))

    def test_a_user_without_a_password(self) -> None:
        url, authorization = split_userinfo("http://alice@provider.test/x")
        self.assertEqual((url, authorization), ("http://provider.test/x", b"Basic " + base64.b64encode(b"alice:")))

    def test_a_url_without_userinfo_is_unchanged(self) -> None:
        for url in ("http://provider.test/get.php?username=a&password=b", "file:///srv/guide.xml",
                    "/srv/list.m3u", "http://provider.test/a@b"):
            self.assertEqual(split_userinfo(url), (url, None), url)

    def test_an_unparsable_url_is_unchanged(self) -> None:
        self.assertEqual(split_userinfo("http://[::1/x"), ("http://[::1/x", None))


class LastSegmentTests(SynchronousTestCase):
    def test_last_segment(self) -> None:
        self.assertEqual(last_segment("http://h/live/u/p/2.ts?token=x"), "2.ts")

    def test_fragments_and_trailing_slashes(self) -> None:
        self.assertEqual(last_segment("http://h/hls/chan/index.m3u8#t=3"), "index.m3u8")
        self.assertEqual(last_segment("http://h/live/chan/"), "chan")
        self.assertEqual(last_segment("stream"), "stream")
