"""
An HLS source on a task.Clock (epgd.hls.reader, SPEC §11): the reload schedule, the live start,
each sequence number once, pause, cuts, playlist faults, variants, what is unsupported and the
hand-over from a TS URL, through the Upstream a channel holds (in-memory HTTP, no sockets).
Segment fetching itself (retries, keys, byte ranges) is tests/hls/test_segment.py's.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from twisted.logger import capturedLogs

from epgd.hls.playlist import MAX_PLAYLIST_BYTES
from tests.fakehls import encrypt
from tests.hlsfakes import (
    BASE,
    KEY,
    M3U8,
    URL,
    Answer,
    HlsCase,
    Seen,
    media,
    seg,
    segment_numbers,
)


class LiveTests(HlsCase):
    def test_starts_three_segments_from_the_end_and_fetches_each_once_in_order(self) -> None:
        self.live()
        upstream, tap = self.start()
        self.assertEqual(segment_numbers(self.http), [13, 14, 15])
        self.assertEqual(bytes(tap.data), seg(13) + seg(14) + seg(15))
        self.advance(12)
        self.assertEqual(segment_numbers(self.http), [13, 14, 15, 16, 17, 18])
        self.assertEqual(bytes(tap.data), b"".join(seg(n) for n in range(13, 19)))
        self.assertEqual(tap.cuts, [])
        self.assertEqual((upstream.kind, upstream.state), ("hls", "streaming"))
        self.assertEqual(upstream.bytes_in, len(tap.data))

    def test_reload_after_target_when_changed_and_half_when_not_from_the_load_start(self) -> None:
        # grows at 0 and 4, then stands still until 14, then grows again
        def window(t: float) -> bytes:
            return media(10, 6 + (t >= 4) + (t >= 14))
        self.serve(window)
        self.start()
        self.advance(20)
        self.assertEqual(self.http.times(URL), [0, 4, 8, 10, 12, 14, 18, 20])

    def test_a_slow_load_does_not_push_the_schedule_back(self) -> None:
        held: list[Seen] = []

        def route(seen: Seen) -> Answer:
            grown = media(10, 6 + int(seen.at / 4))
            if seen.at == 4:
                held.append(seen)
                return Answer(grown, content_type=M3U8, hold=True)
            return Answer(grown, content_type=M3U8)
        self.http.routes[URL] = route
        self.start()
        self.advance(5.5)
        self.http.release(held[0])  # the load begun at 4 s ends at 5.5 s
        self.advance(3)
        self.assertEqual(self.http.times(URL), [0, 4, 8])

    def test_relative_uris_resolve_against_the_final_url_after_redirects(self) -> None:
        edge = "http://edge.test/s/abc/"
        for n in range(10, 20):
            self.http.routes[f"{edge}s{n}.ts"] = Answer(seg(n))
        self.serve(media(10, 4), final=edge + "index.m3u8?tok=1")
        self.http.routes[edge + "index.m3u8?tok=1"] = Answer(media(10, 5), content_type=M3U8)
        _, tap = self.start()
        self.advance(4)
        wanted = [f"{edge}s11.ts", f"{edge}s12.ts", f"{edge}s13.ts", edge + "index.m3u8?tok=1",
                  f"{edge}s14.ts"]
        self.assertEqual(self.http.urls()[1:], wanted)
        self.assertEqual(bytes(tap.data), b"".join(seg(n) for n in range(11, 15)))

    def test_provider_headers_go_with_every_request(self) -> None:
        self.serve(media(10, 3, head=(f'#EXT-X-KEY:METHOD=AES-128,URI="{BASE}k"',)))
        self.http.routes[f"{BASE}k"] = Answer(KEY)
        for n in range(10, 13):
            self.http.routes[f"{BASE}s{n}.ts"] = Answer(encrypt(seg(n), KEY, n.to_bytes(16, "big")))
        self.start()
        self.assertEqual(len(self.http.requests), 5)
        for request in self.http.requests:
            self.assertEqual(request.headers.get("Referer"), ["http://tv.example/"], request.url)
            self.assertEqual(request.headers.get("User-Agent"), ["epgd-test"], request.url)

    def test_a_discontinuity_is_a_cut_before_its_bytes(self) -> None:
        self.serve(media(10, 6, before={14: ["#EXT-X-DISCONTINUITY"]}))
        _, tap = self.start()
        self.assertEqual(tap.cuts, [len(seg(13))])
        self.assertEqual(bytes(tap.data), seg(13) + seg(14) + seg(15))

    def test_a_sequence_reset_goes_on_at_the_live_edge_with_a_cut(self) -> None:
        self.serve(lambda t: media(10, 6) if t < 4 else media(0, 6))
        _, tap = self.start()
        self.advance(4)
        self.assertEqual(segment_numbers(self.http), [13, 14, 15, 3, 4, 5])
        self.assertEqual(tap.cuts, [3 * len(seg(0))])
        with capturedLogs() as events:
            self.advance(0)
        self.assertEqual(events, [])

    def test_a_window_numbered_anew_at_each_reload_is_read_once_in_real_time(self) -> None:
        """A server whose media sequence goes back at each reload while its segments move on."""
        self.serve(lambda t: media(10 + int(t / 4), 6).replace(
            f"#EXT-X-MEDIA-SEQUENCE:{10 + int(t / 4)}".encode(), f"#EXT-X-MEDIA-SEQUENCE:{(int(t) % 3) * 100}".encode()))  # back and forth
        _, tap = self.start()
        with capturedLogs() as events:
            self.advance(40)
        self.assertEqual(segment_numbers(self.http), list(range(13, 26)))  # each once, at the live pace
        self.assertEqual(tap.cuts, [])
        self.assertEqual([e for e in events if "went back" in str(e.get("log_format"))], [])

    def test_endlist_ends_the_source(self) -> None:
        self.serve(lambda t: media(10, 6) if t < 4 else media(11, 6, ended=True))
        upstream, tap = self.start()
        with capturedLogs() as events:
            self.advance(4)
        self.assertEqual(segment_numbers(self.http), [13, 14, 15, 16])
        self.assertEqual(len(tap.failures), 1)
        self.assertIn("EXT-X-ENDLIST", tap.failures[0])
        self.assertEqual(upstream.state, "failed")
        self.assertTrue(any("EXT-X-ENDLIST" in str(e.get("reason")) for e in events))
        self.advance(20)
        self.assertEqual(self.http.count(URL), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(tap.faults, ["ended"])

    def test_a_vod_playlist_plays_from_its_start(self) -> None:
        self.serve(media(0, 4, ended=True))
        _, tap = self.start()
        self.assertEqual(segment_numbers(self.http), [0, 1, 2, 3])
        self.assertEqual(len(tap.failures), 1)

    def test_close_leaves_no_timer_and_no_connection(self) -> None:
        self.live()
        self.http.routes[f"{BASE}s14.ts"] = Answer(stream=True)
        upstream, _ = self.start()
        body = self.http.requests[-1].response
        assert body is not None
        closed = upstream.close()
        self.assertTrue(body.transport.stopped)
        self.successResultOf(closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PauseTests(HlsCase):
    def test_nothing_is_fetched_while_every_consumer_is_paused(self) -> None:
        self.live()
        upstream, tap = self.start()
        before = len(self.http.requests)
        upstream.fanout.set_paused(tap, True)
        self.advance(60)
        self.assertEqual(len(self.http.requests), before)
        self.assertEqual(upstream.state, "streaming")  # paused is not silent: no drop
        self.assertEqual(tap.failures, [])

    def test_resume_after_the_source_moved_on_is_a_cut_at_the_live_edge(self) -> None:
        self.live()
        upstream, tap = self.start()
        upstream.fanout.set_paused(tap, True)
        self.advance(60)  # the window is now 25..30; 16 is long gone
        upstream.fanout.set_paused(tap, False)
        self.assertEqual(self.http.times(URL)[-1], 60)
        self.assertEqual(segment_numbers(self.http), [13, 14, 15, 28, 29, 30])
        self.assertEqual(tap.cuts, [3 * len(seg(0))])

    def test_a_short_pause_goes_on_where_it_was_without_a_cut(self) -> None:
        self.live()
        upstream, tap = self.start()
        upstream.fanout.set_paused(tap, True)
        self.advance(5)
        upstream.fanout.set_paused(tap, False)
        self.assertEqual(segment_numbers(self.http), [13, 14, 15, 16])
        self.assertEqual(tap.cuts, [])

class FirstSegmentTests(HlsCase):
    def test_a_fresh_source_whose_segments_all_fail_fails_over(self) -> None:
        self.serve(media(10, 3))
        for n in range(10, 13):
            self.http.routes[f"{BASE}s{n}.ts"] = Answer(b"no", 404, b"text/plain")
        upstream, tap = self.start()
        self.assertEqual(segment_numbers(self.http), [10, 10, 11, 11])
        self.assertEqual(len(tap.failures), 1)
        self.assertIn("no segment could be fetched", tap.failures[0])
        self.assertEqual(upstream.state, "failed")
        self.assertEqual(tap.faults, ["http_error"])

    def test_a_first_segment_that_is_an_html_page_fails_the_source(self) -> None:
        self.serve(media(10, 3))
        self.http.routes[f"{BASE}s10.ts"] = Answer(b"<html><body>expired</body></html>" * 40)
        _, tap = self.start()
        self.assertEqual(len(tap.failures), 1)
        self.assertIn("not MPEG-TS", tap.failures[0])


class PlaylistFaultTests(HlsCase):
    def test_403_on_a_reload_reopens_from_the_original_url(self) -> None:
        master = BASE + "master.m3u8"
        variant = BASE + "v1/index.m3u8"
        self.serve(f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100\n{variant}\n".encode(), url=master)
        expired: list[float] = []

        def answer(seen: Seen) -> Answer:
            if seen.at >= 4 and not expired:  # the token in the variant's URL ran out, once
                expired.append(seen.at)
                return Answer(b"expired", 403, b"text/plain")
            return Answer(media(10 + int(seen.at / 4), 6, name="../s{n}.ts"), content_type=M3U8)
        self.http.routes[variant] = answer
        upstream, tap = self.start(master)
        self.advance(4)
        # the 403 at 4 s: at once the master again, its variant, and on where it was
        self.assertEqual(self.http.urls()[-4:], [variant, master, variant, BASE + "s16.ts"])
        self.assertEqual(expired, [4])
        self.advance(1)
        self.assertEqual(self.http.count(master), 2)
        self.assertEqual(segment_numbers(self.http), [13, 14, 15, 16])  # goes on, none twice
        self.assertEqual(tap.cuts, [3 * len(seg(0))])
        self.assertEqual(upstream.state, "streaming")
        self.assertEqual(tap.faults, ["http_error"])

    def test_no_new_segment_for_three_target_durations_is_a_drop_then_a_failover(self) -> None:
        self.serve(media(10, 6))
        upstream, tap = self.start(reconnect_attempts=1)
        self.advance(11.75)
        self.assertEqual(self.http.times(URL), [0, 4, 6, 8, 10])  # unchanged: every half target
        self.assertEqual(upstream.state, "streaming")
        self.advance(0.25)
        self.assertEqual(upstream.state, "waiting")
        self.assertIn("no new segment for 12s", upstream.error)
        self.assertEqual(tap.faults, ["timeout"])
        self.advance(0.5)
        self.assertEqual(self.http.times(URL)[-1], 12.5)  # reconnected after the backoff
        self.assertEqual(tap.failures, [])
        self.advance(12)
        self.assertEqual(len(tap.failures), 1)
        self.assertIn("gave up after 1 reconnects", tap.failures[0])

    def test_a_failed_reload_is_logged_and_tried_again(self) -> None:
        self.serve(lambda t: b"#EXTM3U\n#EXT-X-TARGETDURATION:x\n" if 4 <= t < 6 else media(10 + int(t / 4), 6))
        with capturedLogs() as events:
            _, tap = self.start()
            self.advance(6)
        text = [e["log_format"].format(**e) for e in events]
        self.assertTrue(any("playlist reload failed: unreadable playlist" in line for line in text), text)
        self.assertEqual(self.http.times(URL), [0, 4, 6])
        self.assertEqual(segment_numbers(self.http), [13, 14, 15, 16])
        self.assertEqual(tap.failures, [])

    def test_a_playlist_over_the_size_cap_is_a_failed_reload(self) -> None:
        huge = media(10, 6) + b"#" + b"x" * MAX_PLAYLIST_BYTES + b"\n"
        self.serve(lambda t: huge if 4 <= t < 6 else media(10 + int(t / 4), 6))
        with capturedLogs() as events:
            self.start()
            self.advance(4)
        text = [e["log_format"].format(**e) for e in events]
        self.assertTrue(any(f"playlist is over {MAX_PLAYLIST_BYTES} bytes" in line for line in text), text)
        self.assertEqual(segment_numbers(self.http), [13, 14, 15])


class UnsupportedTests(HlsCase):
    def assert_fails_with(self, body: bytes, *words: str, segments: int = 0) -> None:
        self.serve(body)
        upstream, tap = self.start()
        self.assertEqual(len(tap.failures), 1, tap.events)
        for word in words:
            self.assertIn(word, tap.failures[0])
        self.assertEqual(upstream.state, "failed")
        self.assertEqual(len(segment_numbers(self.http)), segments)
        self.advance(30)
        self.assertEqual(self.http.count(URL), 1)  # not retried: it can never play
        self.assertEqual(tap.faults, ["not_ts"])

    def test_fmp4_init_section(self) -> None:
        self.assert_fails_with(media(10, 3, head=('#EXT-X-MAP:URI="init.mp4"',)), "fMP4")

    def test_fmp4_segments(self) -> None:
        self.assert_fails_with(media(10, 3, name="s{n}.m4s"), "fMP4", ".m4s")

    def test_fmp4_bytes_in_ts_named_segments(self) -> None:
        self.http.routes[f"{BASE}s10.ts"] = Answer(b"\x00\x00\x00\x18stypmsdh" + b"\x00" * 2000)
        self.assert_fails_with(media(10, 3), "fMP4", segments=1)

    def test_sample_aes(self) -> None:
        self.assert_fails_with(media(10, 3, head=('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k"',)),
                               "SAMPLE-AES")

    def test_an_unknown_key_format(self) -> None:
        self.assert_fails_with(
            media(10, 3, head=('#EXT-X-KEY:METHOD=AES-128,URI="skd://x",'
                               'KEYFORMAT="com.apple.streamingkeydelivery"',)),
            "com.apple.streamingkeydelivery", "key format")

    def test_a_master_of_only_i_frame_variants(self) -> None:
        self.assert_fails_with(
            b'#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="i.m3u8"\n', "I-frame")


class MasterTests(HlsCase):
    MASTER = (
        b"#EXTM3U\n"
        b'#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=99000000,RESOLUTION=1920x1080,URI="iframe.m3u8"\n'
        b"#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nlow/index.m3u8\n"
        b"#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1920x1080\nhigh/index.m3u8\n"
        b"#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720\nmid/index.m3u8\n"
        b'#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"\naudio/index.m3u8\n'
    )

    def chosen(self, variant: str) -> str:
        self.serve(self.MASTER, url=BASE + "master.m3u8")
        for name in ("low", "mid", "high", "audio"):
            self.serve(media(10, 6, name="../s{n}.ts"), url=f"{BASE}{name}/index.m3u8")
        self.start(BASE + "master.m3u8", variant=variant)
        self.advance(8)
        followed = {u for u in self.http.urls() if u.endswith("/index.m3u8")}
        self.assertEqual(len(followed), 1, followed)
        self.assertEqual(self.http.count(BASE + "master.m3u8"), 1)  # kept for the connection's life
        self.assertEqual(self.http.count(BASE + "iframe.m3u8"), 0)
        self.assertEqual(segment_numbers(self.http), [13, 14, 15])
        return followed.pop()[len(BASE):].split("/")[0]

    def test_best_is_the_highest_bandwidth_and_never_the_i_frame_variant(self) -> None:
        self.assertEqual(self.chosen("best"), "high")

    def test_worst_is_the_lowest_bandwidth_with_video(self) -> None:
        self.assertEqual(self.chosen("worst"), "low")

    def test_a_height_is_the_tallest_not_above_it(self) -> None:
        self.assertEqual(self.chosen("720p"), "mid")

    def test_a_height_between_variants_is_the_one_below(self) -> None:
        self.assertEqual(self.chosen("1000p"), "mid")

    def test_a_number_is_the_highest_bandwidth_not_above_it(self) -> None:
        self.assertEqual(self.chosen("3000000"), "mid")

    def test_nothing_fits_gives_the_smallest(self) -> None:
        self.assertEqual(self.chosen("240p"), "low")


class HandOverTests(HlsCase):
    def test_a_ts_url_answering_with_an_hls_content_type_is_followed(self) -> None:
        url = BASE + "7.ts"
        self.serve(media(10, 6), url=url)
        upstream, tap = self.start(url, hls=False)
        self.assertEqual(upstream.kind, "hls")
        self.assertEqual(bytes(tap.data), seg(13) + seg(14) + seg(15))

    def test_a_playlist_body_with_a_wrong_content_type_is_followed(self) -> None:
        url = BASE + "7.ts"
        self.http.routes[url] = Answer(b"\xef\xbb\xbf" + media(10, 6), content_type=b"video/mp2t")
        upstream, tap = self.start(url, hls=False)
        self.assertEqual(upstream.kind, "hls")
        self.assertEqual(bytes(tap.data), seg(13) + seg(14) + seg(15))
        self.advance(4)
        self.assertEqual(self.http.count(url), 2)  # reloaded like any playlist

    def test_a_first_playlist_over_the_size_cap_fails_the_source(self) -> None:
        url = BASE + "7.ts"
        self.http.routes[url] = Answer(media(10, 6) + b"#" * MAX_PLAYLIST_BYTES,
                                       content_type=b"text/plain")
        upstream, tap = self.start(url, hls=False)
        self.assertEqual(len(tap.failures), 1)
        self.assertIn(f"HLS playlist over {MAX_PLAYLIST_BYTES} bytes", tap.failures[0])
        self.assertEqual(segment_numbers(self.http), [])

    def test_an_m3u8_url_that_sends_mpeg_ts_is_streamed_as_ts(self) -> None:
        self.http.routes[URL] = Answer(stream=True)
        upstream, tap = self.start(URL)
        response = self.http.requests[0].response
        assert response is not None
        response.send(seg(1, packets=50))
        self.assertEqual((upstream.kind, upstream.state), ("ts", "streaming"))
        self.assertGreater(len(tap.data), 8000)

    def test_a_ts_source_reconnecting_to_a_playlist_says_cut(self) -> None:
        url = BASE + "7.ts"
        self.http.routes[url] = lambda seen: (
            Answer(seg(1, packets=50), stream=True) if self.http.count(url) == 1
            else Answer(media(10, 6), content_type=M3U8))
        upstream, tap = self.start(url, hls=False)
        first = self.http.requests[0].response
        assert first is not None
        first.send(seg(1, packets=50))
        first.drop()
        self.advance(1)
        self.assertEqual(upstream.kind, "hls")
        self.assertEqual(len(tap.cuts), 1)
        self.assertTrue(bytes(tap.data).endswith(seg(13) + seg(14) + seg(15)))


class RealWorldTests(HlsCase):
    """Every sample playlist, as a first answer and as a reload: followed, or one clear line."""

    FILES = sorted((Path(__file__).parent.parent / "data" / "hls").glob("*/*.m3u8"))

    def outcome(self, first: bytes, reload: bytes | None) -> str:
        self.setUp()
        # whatever the sample points at exists: variants are live playlists, segments are TS
        self.http.default = lambda seen: (
            Answer(media(10, 6, name=BASE + "s{n}.ts"), content_type=M3U8)
            if ".m3u8" in seen.url else Answer(seg(1)))
        bodies = [first] if reload is None else [first, reload]
        self.serve(lambda t: bodies[min(int(t / 4), len(bodies) - 1)])
        with capturedLogs() as events:
            upstream, tap = self.start()
            self.advance(4.25)
        upstream.close()
        lines = [e["log_format"].format(**e) for e in events]
        if tap.failures:
            self.assertTrue(tap.failures[0].strip())
            return "source failed"
        if any("reload failed" in line for line in lines):
            return "failed reload"
        return "followed"

    def test_as_a_reload(self) -> None:
        seen = Counter(self.outcome(media(10, 6), path.read_bytes()) for path in self.FILES)
        self.assertEqual(sum(seen.values()), len(self.FILES))
        self.assertGreater(seen["failed reload"], 10)  # masters, malformed ones
        self.assertGreater(seen["followed"], 8)  # live ones; a VOD is played to its end
        self.assertGreater(seen["source failed"], 8)

    def test_as_the_first_answer(self) -> None:
        seen = Counter(self.outcome(path.read_bytes(), None) for path in self.FILES)
        self.assertGreater(seen["source failed"], 10)  # unreadable, fMP4, VOD played to its end
        self.assertGreater(seen["followed"], 10)  # masters (a variant) and live playlists


class LongPlaylistTests(HlsCase):
    def test_thousands_of_segments_answered_at_once_are_a_loop_not_a_recursion(self) -> None:
        self.http.routes.clear()
        self.serve(media(0, 3000, ended=True))
        self.http.default = lambda seen: Answer(seg(7, packets=5))
        _, tap = self.start()
        self.assertEqual(len(segment_numbers(self.http)), 3000)
        self.assertEqual(len(tap.data), 3000 * 5 * 188)
        self.assertIn("EXT-X-ENDLIST", tap.failures[0])
