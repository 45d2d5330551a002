"""
Tests for epgd.web: the routes of SPEC §4, with small fake Catalog and StreamManager objects,
through treq's in-memory agent (no sockets). Raw ``RequestTraversalAgent`` requests are used
because ``treq`` itself asks for and decodes gzip, which would hide the negotiation under test.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from attrs import evolve
from treq.testing import RequestTraversalAgent, StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from epgd.config import Config, ProviderConfig, ServerConfig
from epgd.web import EpgdApi

EPG = b'<?xml version="1.0"?>\n<tv generator-info-name="epgd"/>\n'


class FakePublished:
    epg_xml = EPG
    epg_gz = gzip.compress(EPG)
    etag = '"v1"'
    last_modified = "Tue, 24 Nov 2026 01:00:00 GMT"

    def playlist(self, base_url: str) -> bytes:
        return f"#EXTM3U\n{base_url}/stream/a_1.ts\n".encode()

    def schedule_json(self, now: float) -> bytes:
        return json.dumps({"generated_at": "2026-11-24T01:00:00Z", "now": now}).encode()


class FakeCatalog:
    def __init__(self, published: FakePublished | None = None, status: str = "ok") -> None:
        self._published = published
        self.status = status
        self.refreshes = 0
        self.refresh_result: Deferred[None] = succeed(None)

    def health(self) -> dict[str, Any]:
        return {"status": self.status, "providers": {"main": {"loaded": self.status != "starting"}}}

    def published(self) -> FakePublished | None:
        return self._published

    def refresh(self) -> Deferred[None]:
        self.refreshes += 1
        return self.refresh_result


class FakeStreams:
    def __init__(self) -> None:
        self.stopped: list[str] = []
        self.served: list[str] = []

    def serve(self, request: IRequest, channel_id: str) -> bytes:
        self.served.append(channel_id)
        request.setHeader(b"Content-Type", b"video/mp2t")
        return b"\x47" + b"\xff" * 187

    def serve_slate(self, request: IRequest, channel_id: str, reason: str) -> bytes:
        self.served.append(f"{channel_id} (slate: {reason})")
        request.setHeader(b"Content-Type", b"video/mp2t")
        return b"\x47" + b"\xff" * 187

    def serve_hls(self, request: IRequest, channel_id: str, prefix: str = "") -> bytes:
        self.served.append(f"{channel_id}.m3u8" + (f" (segments at {prefix})" if prefix else ""))
        request.setHeader(b"Content-Type", b"application/vnd.apple.mpegurl")
        return b"#EXTM3U\n"

    def serve_hls_segment(self, request: IRequest, channel_id: str, name: str) -> bytes:
        self.served.append(f"{channel_id}/{name}")
        return b"\x47" + b"\xff" * 187

    def status(self) -> dict[str, Any]:
        return {"a_1": {"clients": 2}}

    def connections(self) -> dict[str, int]:
        return {}

    def stop(self, channel_id: str) -> bool:
        if channel_id == "a_1":
            self.stopped.append(channel_id)
            return True
        return False


def make_config(token: str = "", base_url: str = "") -> Config:
    return Config(
        server=ServerConfig(admin_token=token, base_url=base_url),
        providers=(ProviderConfig(name="main", playlist="p.m3u"),),
    )


class ApiTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1764000000)
        self.catalog = FakeCatalog(FakePublished())
        self.streams = FakeStreams()
        self.use(make_config())

    def use(self, config: Config) -> None:
        self.api = EpgdApi(config, self.catalog, self.streams, self.clock)
        self.agent = RequestTraversalAgent(self.api.app.resource())

    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> tuple[Any, bytes]:
        raw = Headers({k: [v] for k, v in (headers or {}).items()})
        d = self.agent.request(method.encode(), b"http://epgd.example:8080" + url.encode(), raw)
        self.agent.flush()
        response = self.successResultOf(d)
        body = readBody(response)
        self.agent.flush()
        return response, self.successResultOf(body)

    def header(self, response: Any, name: str) -> str | None:
        values = response.headers.getRawHeaders(name)
        return values[0] if values else None

    def assertOneLine(self, body: bytes) -> None:
        text = body.decode("utf-8")
        self.assertTrue(text.endswith("\n"))
        self.assertNotIn("\n", text[:-1])
        self.assertTrue(text.strip())


class GuideTests(ApiTestCase):
    def test_playlist_uses_host_header(self) -> None:
        response, body = self.request("GET", "/playlist.m3u")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Content-Type"), "audio/x-mpegurl")  # SPEC §4
        self.assertIn(b"http://epgd.example:8080/stream/a_1.ts", body)

    def test_playlist_for_ffmpeg_is_hls_shaped(self) -> None:
        """ffprobe/ffmpeg (User-Agent Lavf/...) open an M3U only when it looks like HLS."""
        _, body = self.request("GET", "/playlist.m3u", {"User-Agent": "Lavf/59.27.100"})
        lines = body.decode().splitlines()
        self.assertEqual(lines[0], "#EXTM3U")
        self.assertIn("#EXT-X-TARGETDURATION:10", lines)
        self.assertIn("http://epgd.example:8080/stream/a_1.ts", lines)
        self.assertEqual(lines[-1], "#EXT-X-ENDLIST")
        _, vlc = self.request("GET", "/playlist.m3u", {"User-Agent": "VLC/3.0.20 LibVLC/3.0.20"})
        self.assertNotIn(b"#EXT-X-", vlc)

    def test_playlist_as_hls(self) -> None:
        """SPEC §16: ?output=m3u8 is the same playlist with .m3u8 stream URLs."""
        response, body = self.request("GET", "/playlist.m3u?output=m3u8")
        self.assertEqual(self.header(response, "Content-Type"), "audio/x-mpegurl")
        self.assertEqual(body, b"#EXTM3U\nhttp://epgd.example:8080/stream/a_1.m3u8\n")
        _, plain = self.request("GET", "/playlist.m3u?output=ts")
        self.assertIn(b"/stream/a_1.ts\n", plain)

    def test_playlist_uses_base_url(self) -> None:
        self.use(make_config(base_url="http://nordvpn:8080/"))
        _, body = self.request("GET", "/playlist.m3u")
        self.assertIn(b"http://nordvpn:8080/stream/a_1.ts", body)

    def test_epg_plain(self) -> None:
        response, body = self.request("GET", "/epg.xml")
        self.assertEqual(body, EPG)
        self.assertEqual(self.header(response, "Content-Type"), "application/xml")  # SPEC §4
        self.assertEqual(self.header(response, "ETag"), '"v1"')
        self.assertEqual(self.header(response, "Last-Modified"), FakePublished.last_modified)
        self.assertIsNone(self.header(response, "Content-Encoding"))

    def test_epg_gzip_when_accepted(self) -> None:
        response, body = self.request("GET", "/epg.xml", headers={"Accept-Encoding": "gzip, deflate"})
        self.assertEqual(self.header(response, "Content-Encoding"), "gzip")
        self.assertEqual(gzip.decompress(body), EPG)
        self.assertIn("Accept-Encoding", self.header(response, "Vary"))
        self.assertEqual(self.header(response, "ETag"), '"v1-gzip"', "its own representation")
        gzip_tag = self.header(response, "ETag")
        for offered in (gzip_tag, "W/" + gzip_tag, '"v1"'):  # proxies weaken tags
            response, body = self.request("GET", "/epg.xml", headers={
                "Accept-Encoding": "gzip", "If-None-Match": offered})
            self.assertEqual((response.code, body), (304, b""), offered)

    def test_epg_no_gzip_when_refused(self) -> None:
        response, body = self.request("GET", "/epg.xml", headers={"Accept-Encoding": "gzip;q=0, identity"})
        self.assertEqual(body, EPG)
        self.assertIsNone(self.header(response, "Content-Encoding"))

    def test_epg_304_on_matching_etag(self) -> None:
        response, body = self.request("GET", "/epg.xml", headers={"If-None-Match": '"old", "v1"'})
        self.assertEqual((response.code, body), (304, b""))
        response, body = self.request("GET", "/epg.xml", headers={"If-None-Match": '"old"'})
        self.assertEqual((response.code, body), (200, EPG))

    def test_epg_xml_gz(self) -> None:
        response, body = self.request("GET", "/epg.xml.gz")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "Content-Type"), "application/gzip")
        self.assertIsNone(self.header(response, "Content-Encoding"))
        self.assertEqual(gzip.decompress(body), EPG)

    def test_schedule_json_gets_clock_time(self) -> None:
        response, body = self.request("GET", "/schedule.json")
        self.assertEqual(self.header(response, "Content-Type"), "application/json")
        self.assertEqual(json.loads(body)["now"], 1764000000)

    def test_no_schedule_yet(self) -> None:
        self.catalog._published = None
        for path in ("/playlist.m3u", "/epg.xml", "/epg.xml.gz", "/schedule.json"):
            response, body = self.request("GET", path)
            self.assertEqual(response.code, 503, path)
            self.assertEqual(self.header(response, "Retry-After"), "10")
            self.assertOneLine(body)


class HealthTests(ApiTestCase):
    def test_ok(self) -> None:
        response, body = self.request("GET", "/health")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)["status"], "ok")

    def test_degraded_is_still_200(self) -> None:
        self.catalog.status = "degraded"
        response, body = self.request("GET", "/health")
        self.assertEqual((response.code, json.loads(body)["status"]), (200, "degraded"))

    def test_starting_is_503(self) -> None:
        self.catalog.status = "starting"
        response, body = self.request("GET", "/health")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(body)["status"], "starting")


class AdminTests(ApiTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.use(make_config(token="s3cret-token"))

    def test_refresh_needs_token(self) -> None:
        response, body = self.request("POST", "/refresh")
        self.assertEqual(response.code, 401)
        self.assertOneLine(body)
        response, _ = self.request("POST", "/refresh", headers={"Authorization": "Bearer wrong"})
        self.assertEqual(response.code, 401)
        self.assertEqual(self.catalog.refreshes, 0)

    def test_refresh_with_bearer_header(self) -> None:
        response, body = self.request("POST", "/refresh", headers={"Authorization": "Bearer s3cret-token"})
        self.assertEqual(response.code, 202)
        self.assertEqual(self.catalog.refreshes, 1)

    def test_refresh_with_query_token(self) -> None:
        response, _ = self.request("POST", "/refresh?token=s3cret-token")
        self.assertEqual((response.code, self.catalog.refreshes), (202, 1))

    def test_refresh_answers_at_once_and_logs_failure(self) -> None:
        self.catalog.refresh_result = Deferred()
        response, _ = self.request("POST", "/refresh?token=s3cret-token")
        self.assertEqual(response.code, 202)
        self.catalog.refresh_result.errback(RuntimeError("provider down"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_refresh_open_without_token(self) -> None:
        self.use(make_config())
        response, _ = self.request("POST", "/refresh")
        self.assertEqual(response.code, 202)

    def test_refresh_get_is_405(self) -> None:
        response, body = self.request("GET", "/refresh?token=s3cret-token")
        self.assertEqual(response.code, 405)
        self.assertOneLine(body)

    def test_stop(self) -> None:
        response, _ = self.request("POST", "/streams/stop/a_1")
        self.assertEqual(response.code, 401)
        self.assertEqual(self.streams.stopped, [])
        response, body = self.request("GET", "/streams/stop/a_1?token=s3cret-token")
        self.assertEqual((response.code, json.loads(body)), (200, {"stopped": "a_1"}))
        response, body = self.request("POST", "/streams/stop/zz_9", headers={"Authorization": "Bearer s3cret-token"})
        self.assertEqual(response.code, 404)
        self.assertOneLine(body)


class StreamRouteTests(ApiTestCase):
    def test_stream_delegates(self) -> None:
        response, body = self.request("GET", "/stream/a_1.ts")
        self.assertEqual(self.streams.served, ["a_1"])
        self.assertEqual(self.header(response, "Content-Type"), "video/mp2t")
        self.assertEqual(body[:1], b"\x47")

    def test_stream_needs_ts_or_m3u8(self) -> None:
        for path in ("/stream/a_1.mp4", "/stream/a_1", "/stream/a_1.m3u8.ts.x"):
            response, body = self.request("GET", path)
            self.assertEqual(response.code, 404, path)
            self.assertOneLine(body)
        self.assertEqual(self.streams.served, [])

    def test_hls_playlist_and_segments_delegate(self) -> None:
        """SPEC §16: /stream/{id}.m3u8 and /stream/{id}/{sequence}.ts."""
        response, body = self.request("GET", "/stream/a_1.m3u8")
        self.assertEqual((response.code, body), (200, b"#EXTM3U\n"))
        response, _ = self.request("GET", "/stream/a_1/1764000000.ts")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.streams.served, ["a_1.m3u8", "a_1/1764000000.ts"])
        response, body = self.request("GET", "/stream/" + "x" * 300 + "/1.ts")
        self.assertEqual(response.code, 404)
        self.assertOneLine(body)

    def test_status(self) -> None:
        response, body = self.request("GET", "/streams/status")
        self.assertEqual((response.code, json.loads(body)), (200, {"a_1": {"clients": 2}}))

    def test_unknown_path_404(self) -> None:
        response, body = self.request("GET", "/nope")
        self.assertEqual(response.code, 404)
        self.assertOneLine(body)
        self.assertTrue(self.header(response, "Content-Type").startswith("text/plain"))

    def test_unexpected_error_is_500_one_line(self) -> None:
        def broken(request: IRequest, channel_id: str) -> Deferred[None]:
            return fail(RuntimeError("boom\nsecond line"))

        self.streams.serve = broken  # type: ignore[method-assign]
        response, body = self.request("GET", "/stream/a_1.ts")
        self.assertEqual(response.code, 500)
        self.assertOneLine(body)
        self.assertNotIn(b"boom", body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ConfigUseTests(SynchronousTestCase):
    def test_evolved_config_is_used(self) -> None:
        config = evolve(make_config(), server=ServerConfig(base_url="https://tv.example"))
        api = EpgdApi(config, FakeCatalog(FakePublished()), FakeStreams(), Clock())
        stub = StubTreq(api.app.resource())
        d = stub.get("http://ignored/playlist.m3u")
        stub.flush()
        body = self.successResultOf(stub.content(self.successResultOf(d)))
        self.assertIn(b"https://tv.example/stream/a_1.ts", body)


class HostileRequestTests(ApiTestCase):
    """Odd paths and headers still get a one-line answer, and nothing is logged as a crash."""

    def test_doubled_slashes_are_404_not_500(self) -> None:
        for path in ("//stream//a_1.ts", "/streams//status", "/streams/stop//a_1"):
            response, body = self.request("GET", path)
            self.assertEqual(response.code, 404, path)
            self.assertOneLine(body)
        self.assertEqual(self.streams.served, [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_a_huge_channel_id_is_not_echoed(self) -> None:
        response, body = self.request("GET", "/stream/" + "a" * 15_000 + ".ts")
        self.assertEqual(response.code, 404)
        self.assertOneLine(body)
        self.assertLess(len(body), 200)
        self.assertEqual(self.streams.served, [])
        self.use(make_config(token="t"))
        response, body = self.request("POST", "/streams/stop/" + "b" * 15_000 + "?token=t")
        self.assertEqual(response.code, 404)
        self.assertLess(len(body), 200)

    def test_401_names_the_bearer_scheme(self) -> None:
        self.use(make_config(token="s3cret-token"))
        for method, path in (("POST", "/refresh"), ("GET", "/streams/stop/a_1")):
            response, body = self.request(method, path)
            self.assertEqual(response.code, 401)
            self.assertEqual(self.header(response, "WWW-Authenticate"), 'Bearer realm="epgd"')
            self.assertOneLine(body)

    def test_405_lists_the_allowed_methods(self) -> None:
        response, body = self.request("GET", "/refresh")
        self.assertEqual((response.code, self.header(response, "Allow")), (405, "POST"))
        self.assertOneLine(body)
        response, _ = self.request("DELETE", "/epg.xml")
        self.assertEqual((response.code, self.header(response, "Allow")), (405, "GET, HEAD"))

    def test_gzip_refused_explicitly_beside_a_wildcard(self) -> None:
        for accept, gzipped in (("gzip;q=0, *", False), ("*", True), ("identity", False),
                                ("br, GZIP;q=0.5", True), ("*;q=0", False), ("gzip;q=0.000", False)):
            response, body = self.request("GET", "/epg.xml", headers={"Accept-Encoding": accept})
            self.assertEqual(self.header(response, "Content-Encoding") == "gzip", gzipped, accept)
            self.assertEqual(gzip.decompress(body) if gzipped else body, EPG)

    def test_if_modified_since(self) -> None:
        stamp = FakePublished.last_modified
        response, body = self.request("GET", "/epg.xml", headers={"If-Modified-Since": stamp})
        self.assertEqual((response.code, body), (304, b""))
        self.assertEqual(response.headers.getRawHeaders("Last-Modified"), [stamp])
        earlier = "Mon, 23 Nov 2026 01:00:00 GMT"
        response, body = self.request("GET", "/epg.xml", headers={"If-Modified-Since": earlier})
        self.assertEqual((response.code, body), (200, EPG))
        self.assertEqual(response.headers.getRawHeaders("Last-Modified"), [stamp])
        # If-None-Match decides when both are sent (RFC 9110 §13.1.3).
        response, body = self.request("GET", "/epg.xml", headers={
            "If-Modified-Since": stamp, "If-None-Match": '"other"'})
        self.assertEqual((response.code, body), (200, EPG))
        response, body = self.request("GET", "/epg.xml.gz", headers={"If-Modified-Since": stamp})
        self.assertEqual((response.code, body), (304, b""))
