"""
HLS sources end to end (SPEC §11) over real 127.0.0.1 sockets: what a player gets of
``/stream/{id}.ts`` when the provider serves HLS (exact bytes, ``stream.output = "passthrough"``),
and what the provider sees epgd fetch.
"""

from __future__ import annotations

import itertools
from typing import Any

from tests import tsverify
from tests.fakehls import clip_pieces
from tests.hlshelpers import HlsTestCase, without_keepalive
from tests.streamhelpers import A_PIDS, B_PIDS, HTTPReader, event, pids

FIRST = 100 + 5 - 3  # a window of five from 100: playback starts three from its end


class FollowTests(HlsTestCase):
    def watch(self, url: str, **settings: Any) -> Any:
        now = self.now()
        return self.epgd_hls({"test_1": [event("Game", now - 60, now + 600, url, provider="hls")]},
                             **settings)

    async def media(self, client: HTTPReader, want: bytes, timeout: float = 10) -> bytes:
        await client.wait_for(lambda: len(without_keepalive(client.body)) >= len(want), timeout,
                              f"{len(want)} media bytes")
        return without_keepalive(client.body)[:len(want)]

    async def test_live_hls_is_streamed_as_its_segments_bytes(self) -> None:
        epgd = self.watch(self.hls.live("a", duration=0.5))
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.expected("a", FIRST, 6)
        self.assertEqual(await self.media(client, want), want)
        self.assertEqual(client.headers.get("content-type"), "video/mp2t")
        upstreams = epgd.manager.registry.upstreams()
        self.assertEqual([u.kind for u in upstreams], ["hls"])
        self.assertEqual(self.hls.headers[0].get(b"referer"), b"http://tv.example/")

    async def test_three_clients_on_two_channels_fetch_each_segment_once(self) -> None:
        url = self.hls.live("a", duration=0.4)
        now = self.now()
        games = [event("Game", now - 60, now + 600, url, provider="hls")]
        epgd = self.epgd_hls({"test_1": games, "test_2": games})
        clients = [await epgd.open(path) for path in
                   ("/stream/test_1.ts", "/stream/test_1.ts", "/stream/test_2.ts")]
        want = self.hls.expected("a", FIRST, 8)
        for client in clients:
            await self.media(client, want, timeout=15)
        fetched = sorted(n for (name, n) in self.hls.segment_requests if name == "a")
        self.assertGreaterEqual(len(fetched), 8)
        self.assertEqual(fetched, list(range(FIRST, FIRST + len(fetched))))
        self.assertEqual({self.hls.segment_requests[("a", n)] for n in fetched}, {1})
        self.assertEqual(len(epgd.manager.registry.upstreams()), 1)
        self.assertEqual(epgd.manager.registry.used("hls"), 1)

    async def test_a_missing_segment_is_a_gap(self) -> None:
        epgd = self.watch(self.hls.live("a", duration=0.5, missing={FIRST + 1}))
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.segment_bytes("a", FIRST) + self.hls.expected("a", FIRST + 2, 3)
        self.assertEqual(await self.media(client, want), want)
        self.assertEqual(self.hls.segment_requests[("a", FIRST + 1)], 2)  # retried once
        self.assert_logged(f"HLS segment {FIRST + 1} skipped (HTTP 404")

    async def test_a_discontinuity_to_a_clip_with_other_pids(self) -> None:
        url = self.hls.live("a", duration=0.5, switch_at=FIRST + 2, other=clip_pieces("b"))
        epgd = self.watch(url)
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.expected("a", FIRST, 5)
        got = await self.media(client, want)
        self.assertEqual(got, want)
        seen = pids(got)
        switch = len(self.hls.expected("a", FIRST, 2)) // 188
        self.assertTrue(set(seen[:switch]) & A_PIDS and not set(seen[:switch]) & B_PIDS)
        self.assertTrue(set(seen[switch:]) & B_PIDS and not set(seen[switch:]) & A_PIDS)

    async def test_aes128_with_the_iv_in_the_tag(self) -> None:
        await self.decrypts("iv")

    async def test_aes128_with_the_iv_from_the_sequence_number(self) -> None:
        await self.decrypts("seq")

    async def decrypts(self, how: str) -> None:
        epgd = self.watch(self.hls.live("a", duration=0.5, key=how))
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.expected("a", FIRST, 5)
        self.assertEqual(await self.media(client, want), want)
        self.assertEqual(self.hls.requests[f"/live/{self.hls_user}/key.bin"], 1)

    @property
    def hls_user(self) -> str:
        from tests.fakehls import PASSWORD, USER
        return f"{USER}/{PASSWORD}"

    async def test_a_302_to_a_cdn_with_relative_uris(self) -> None:
        epgd = self.watch(self.hls.live("a", duration=0.5, redirect=True))
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.expected("a", FIRST, 4)
        self.assertEqual(await self.media(client, want), want)
        self.assertGreaterEqual(self.hls.requests[f"/cdn/abc/a-{FIRST}.ts"], 1)
        # reloads go where the redirect led; the original URL was asked once
        self.assertEqual(self.hls.requests[f"/live/{self.hls_user}/a.m3u8"], 1)
        self.assertGreater(self.hls.requests["/cdn/abc/a.m3u8"], 1)

    async def test_a_session_cookie_and_the_provider_header_go_with_every_request(self) -> None:
        self.hls.required_headers["referer"] = "http://tv.example/"
        epgd = self.watch(self.hls.live("a", duration=0.5, cookie=True))
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.expected("a", FIRST, 4)
        self.assertEqual(await self.media(client, want), want)

    async def test_a_ts_url_answering_a_playlist_with_the_wrong_content_type(self) -> None:
        self.hls.live("a", duration=0.5, content_type=b"video/mp2t")
        epgd = self.watch(self.hls.url("a", "ts"))
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.expected("a", FIRST, 4)
        self.assertEqual(await self.media(client, want), want)
        self.assertEqual([u.kind for u in epgd.manager.registry.upstreams()], ["hls"])
        status = await epgd.status()
        self.assertEqual(status["test_1"]["source_kind"], "hls")

    async def test_byte_ranges_from_a_server_that_honours_range(self) -> None:
        await self.ranged("range")

    async def test_byte_ranges_from_a_server_that_ignores_range(self) -> None:
        await self.ranged("ignore")

    async def ranged(self, how: str) -> None:
        epgd = self.watch(self.hls.live("a", duration=0.5, byterange=how))
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.expected("a", FIRST, 4)
        self.assertEqual(await self.media(client, want), want)
        ranges = [h.get(b"range") for h in self.hls.headers if h.get(b"range")]
        self.assertGreaterEqual(len(ranges), 4)

    async def test_a_master_picks_its_variant_and_never_the_i_frame_one(self) -> None:
        for name in ("lo", "mid", "hi"):
            self.hls.live(name, duration=0.5)
        url = self.hls.master("tv", [
            ("IFRAME,BANDWIDTH=90000000,RESOLUTION=1920x1080", "iframe.m3u8"),
            ("BANDWIDTH=800000,RESOLUTION=640x360", "lo.m3u8"),
            ("BANDWIDTH=2500000,RESOLUTION=1280x720", "mid.m3u8"),
            ("BANDWIDTH=6000000,RESOLUTION=1920x1080", "hi.m3u8"),
        ])
        epgd = self.watch(url, hls_variant="720p")
        client = await epgd.open("/stream/test_1.ts")
        want = self.hls.expected("mid", FIRST, 3)
        self.assertEqual(await self.media(client, want), want)
        asked = {path.rsplit("/", 1)[1] for path in self.hls.requests if path.endswith(".m3u8")}
        self.assertEqual(asked, {"tv.m3u8", "mid.m3u8"})
        self.assert_logged("HLS master: following the 720p, 2500000 bit/s variant of 3 (720p)")


class FaultTests(HlsTestCase):
    def with_fallback(self, url: str) -> Any:
        """An event whose first source is ``url`` (HLS) and whose second is TS clip b."""
        fallback = self.provider.stream("b", "b")
        now = self.now()
        return self.epgd_hls({"test_1": [event("Game", now - 60, now + 600, url, fallback,
                                                provider="hls")]})

    async def got_b(self, client: HTTPReader) -> None:
        await client.wait_for(lambda: bool(set(pids(without_keepalive(client.body))) & B_PIDS),
                              12, "the fall-back source")

    async def test_endlist_ends_the_source_and_fails_over(self) -> None:
        epgd = self.with_fallback(self.hls.live("a", duration=0.4, end_at=FIRST + 3))
        client = await epgd.open("/stream/test_1.ts")
        await self.got_b(client)
        got = without_keepalive(client.body)
        want = self.hls.expected("a", FIRST, 4)
        self.assertEqual(got[:len(want)], want)
        self.assert_logged("EXT-X-ENDLIST")
        self.assertFalse(client.is_closed)
        self.assertEqual(epgd.manager.registry.failures[("hls", "ended")], 1)

    async def test_fmp4_fails_cleanly_and_fails_over(self) -> None:
        epgd = self.with_fallback(self.hls.live("a", duration=0.5, fmp4=True))
        client = await epgd.open("/stream/test_1.ts")
        await self.got_b(client)
        line = self.assert_logged("fMP4")
        self.assertIn("a.m3u8", line)
        self.assertEqual(sum(n for (name, _), n in self.hls.segment_requests.items() if name == "a"), 0)
        self.assertEqual(self.provider.requests["b"], 1)
        self.assertEqual(epgd.manager.registry.failures[("hls", "not_ts")], 1)

    async def test_a_sequence_reset_is_a_cut_and_the_stream_goes_on(self) -> None:
        epgd = self.with_fallback(self.hls.live("a", duration=0.5, reset_at=self.now() + 1.2))
        client = await epgd.open("/stream/test_1.ts")
        await self.wait_until(lambda: any(n < 50 for (_, n) in self.hls.segment_requests), 10,
                              "a segment of the new numbering")
        before = len(without_keepalive(client.body))
        await client.wait_for(lambda: len(without_keepalive(client.body)) > before + 60_000, 10,
                              "more media after the reset")
        self.assert_logged("a reset, going on at the live edge")
        self.assertEqual(self.provider.requests["b"], 0)

    async def test_a_stale_playlist_is_a_drop_and_a_reconnect(self) -> None:
        epgd = self.with_fallback(self.hls.live("a", duration=0.5, stale_at=FIRST + 2))
        client = await epgd.open("/stream/test_1.ts")
        await self.wait_until(lambda: any("no new segment for 3s" in line
                                          for line in self.log_lines()), 10, "the stall")
        self.hls.streams["a"].stale_at = None
        before = len(without_keepalive(client.body))
        await client.wait_for(lambda: len(without_keepalive(client.body)) > before + 60_000, 10,
                              "media after the playlist moves again")
        self.assert_logged("reconnect 1/2")
        self.assertEqual(self.provider.requests["b"], 0)
        fetched = [n for (name, n) in self.hls.segment_requests if name == "a"]
        self.assertEqual(len(fetched), len(set(fetched)))  # the reconnect went on, nothing twice


class ContinuousTests(HlsTestCase):
    """The default output: an HLS discontinuity is a cut through the splicer (SPEC §7.1)."""

    async def test_a_discontinuity_leaves_one_program_with_one_clock(self) -> None:
        url = self.hls.live("a", duration=0.5, switch_at=FIRST + 2, other=clip_pieces("b"))
        now = self.now()
        epgd = self.epgd_hls({"test_1": [event("Game", now - 60, now + 600, url, provider="hls")]},
                             output="continuous")
        client = await epgd.open("/stream/test_1.ts")
        enough = len(self.hls.expected("a", FIRST, 4))
        await client.wait_for(lambda: len(without_keepalive(client.body)) >= enough, 12,
                              "media past the discontinuity")
        body = without_keepalive(client.body)
        report = tsverify.read(body[:len(body) - len(body) % 188])
        self.assertEqual(report.cc_errors, [])
        self.assertEqual(report.pmt_pids, {0x1000})
        self.assertLessEqual(report.pids, {0, 0x1000, 0x100, 0x101})
        stamps = report.decode_stamps(0x100)
        self.assertGreater(len(stamps), 40)
        self.assertTrue(all(tsverify.ring(b, a) > 0 for a, b in itertools.pairwise(stamps)),
                        "video decode times go backwards")
        self.assertGreaterEqual(self.hls.segment_requests[("a", FIRST + 3)], 1)  # past the cut
        status = await epgd.status()
        self.assertEqual(status["test_1"]["source_kind"], "hls")
