"""
HLS playlists as values (SPEC §11, RFC 8216): segments, URIs, byte ranges, keys, variants,
reload timing, what is unsupported, and real-world playlists that must never crash a source.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.hls.playlist import (
    ByteRange,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    Unsupported,
    choose_variant,
    is_hls_content_type,
    is_hls_url,
    looks_like_playlist,
    parse,
    reload_delay,
    tail,
)

DATA = Path(__file__).parent.parent / "data" / "hls"
URL = "http://cdn.test/a/b/index.m3u8?token=1"


def media(text: str) -> MediaPlaylist:
    result = parse(("#EXTM3U\n#EXT-X-TARGETDURATION:6\n" + text).encode(), URL)
    assert isinstance(result, MediaPlaylist)
    return result


class MediaTests(SynchronousTestCase):
    def test_sequence_numbers_follow_the_media_sequence(self) -> None:
        playlist = media("#EXT-X-MEDIA-SEQUENCE:41\n#EXTINF:6,\na.ts\n#EXTINF:5.5,\nb.ts\n")
        self.assertEqual([s.sequence for s in playlist.segments], [41, 42])
        self.assertEqual([s.duration for s in playlist.segments], [6.0, 5.5])
        self.assertEqual((playlist.first, playlist.last, playlist.ended), (41, 42, False))

    def test_uris_resolve_against_the_playlist_url(self) -> None:
        playlist = media("#EXTINF:6,\nseg.ts\n#EXTINF:6,\n../up.ts?x=1\n#EXTINF:6,\n/root.ts\n"
                         "#EXTINF:6,\nhttp://other.test/abs.ts\n")
        self.assertEqual([s.uri for s in playlist.segments], [
            "http://cdn.test/a/b/seg.ts", "http://cdn.test/a/up.ts?x=1",
            "http://cdn.test/root.ts", "http://other.test/abs.ts"])

    def test_live_start_is_three_segments_from_the_end(self) -> None:
        playlist = media("".join(f"#EXTINF:6,\n{n}.ts\n" for n in range(7)))
        self.assertEqual(playlist.live_start(), 4)
        short = media("#EXTINF:6,\n0.ts\n#EXTINF:6,\n1.ts\n")
        self.assertEqual(short.live_start(), 0)
        ended = media("".join(f"#EXTINF:6,\n{n}.ts\n" for n in range(7)) + "#EXT-X-ENDLIST\n")
        self.assertEqual(ended.live_start(), 0)

    def test_byteranges_with_and_without_an_offset(self) -> None:
        playlist = media("#EXTINF:6,\n#EXT-X-BYTERANGE:100@50\nall.ts\n"
                         "#EXTINF:6,\n#EXT-X-BYTERANGE:200\nall.ts\n"
                         "#EXTINF:6,\n#EXT-X-BYTERANGE:300\nother.ts\n")
        ranges = [s.byterange for s in playlist.segments]
        self.assertEqual(ranges, [ByteRange(50, 100), ByteRange(150, 200), ByteRange(0, 300)])
        self.assertEqual(ranges[1].header if ranges[1] else "", "bytes=150-349")

    def test_keys_and_ivs(self) -> None:
        playlist = media(
            "#EXT-X-MEDIA-SEQUENCE:7794\n"
            '#EXT-X-KEY:METHOD=AES-128,URI="k?r=52"\n#EXTINF:6,\na.ts\n'
            '#EXT-X-KEY:METHOD=AES-128,URI="https://keys.test/k",IV=0x00000000000000000000014BB69D61E4\n'
            "#EXTINF:6,\nb.ts\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:6,\nc.ts\n")
        a, b, c = playlist.segments
        self.assertEqual(a.key.uri if a.key else None, "http://cdn.test/a/b/k?r=52")
        self.assertEqual(a.iv, (7794).to_bytes(16, "big"))
        self.assertEqual(b.iv, bytes.fromhex("00000000000000000000014BB69D61E4"))
        self.assertIsNone(c.key)

    def test_a_ts_init_section_and_discontinuities(self) -> None:
        playlist = media('#EXT-X-MAP:URI="init.ts",BYTERANGE="376@0"\n#EXTINF:6,\na.ts\n'
                         "#EXT-X-DISCONTINUITY\n#EXTINF:6,\nb.ts\n")
        a, b = playlist.segments
        self.assertEqual(a.init.uri if a.init else None, "http://cdn.test/a/b/init.ts")
        self.assertEqual(a.init.byterange if a.init else None, ByteRange(0, 376))
        self.assertEqual((a.discontinuity, b.discontinuity), (False, True))

    def test_a_missing_target_duration_falls_back_to_the_longest_segment(self) -> None:
        result = parse(b"#EXTM3U\n#EXTINF:4,\na.ts\n#EXTINF:7,\nb.ts\n", URL)
        assert isinstance(result, MediaPlaylist)
        self.assertEqual(result.target_duration, 7.0)

    def test_not_a_playlist(self) -> None:
        for body in (b"", b"<html>nope</html>", b"\x47\x40\x00\x10" * 50):
            with self.assertRaises(PlaylistError):
                parse(body, URL)


class UnsupportedTests(SynchronousTestCase):
    def assert_unsupported(self, text: str, *words: str) -> None:
        with self.assertRaises(Unsupported) as caught:
            media(text)
        for word in words:
            self.assertIn(word, str(caught.exception))

    def test_fmp4(self) -> None:
        self.assert_unsupported('#EXT-X-MAP:URI="init.mp4"\n#EXTINF:6,\na.m4s\n', "fMP4")
        self.assert_unsupported("#EXTINF:6,\na.m4s\n", "fMP4", ".m4s")

    def test_sample_aes_and_drm_key_formats(self) -> None:
        self.assert_unsupported('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k"\n#EXTINF:6,\na.ts\n', "SAMPLE-AES")
        self.assert_unsupported('#EXT-X-KEY:METHOD=AES-128,URI="k",KEYFORMAT="urn:uuid:edef8ba9"\n'
                                "#EXTINF:6,\na.ts\n", "key format", "urn:uuid:edef8ba9")
        self.assert_unsupported('#EXT-X-KEY:METHOD=ROT13,URI="k"\n#EXTINF:6,\na.ts\n', "ROT13")

    def test_packed_audio(self) -> None:
        self.assert_unsupported("#EXTINF:6,\na.aac\n", "packed audio")


class VariantTests(SynchronousTestCase):
    def master(self) -> MasterPlaylist:
        text = (DATA / "grafov" / "master-with-hlsv7.m3u8").read_bytes()
        result = parse(text, "http://cdn.test/m/master.m3u8")
        assert isinstance(result, MasterPlaylist)
        return result

    def test_i_frame_variants_are_never_offered(self) -> None:
        uris = [v.uri for v in self.master().variants]
        self.assertTrue(uris)
        self.assertFalse([u for u in uris if "iframe" in u.lower()], uris)

    def test_choices(self) -> None:
        master = self.master()
        heights = sorted({v.height for v in master.variants if v.height})
        best = choose_variant(master, "best")
        self.assertEqual(best.bandwidth, max(v.bandwidth for v in master.variants))
        self.assertEqual(choose_variant(master, "worst").bandwidth,
                         min(v.bandwidth for v in master.variants))
        self.assertEqual(choose_variant(master, f"{heights[0]}p").height, heights[0])
        below = choose_variant(master, f"{heights[-1] - 1}p")
        self.assertLess(below.height or 0, heights[-1])
        cap = sorted(v.bandwidth for v in master.variants)[1]
        self.assertEqual(choose_variant(master, str(cap)).bandwidth, cap)
        self.assertEqual(choose_variant(master, "1").bandwidth, min(v.bandwidth for v in master.variants))

    def test_separate_audio_renditions_are_noted(self) -> None:
        result = parse((DATA / "videojs" / "master-fmp4.m3u8").read_bytes(), URL)
        assert isinstance(result, MasterPlaylist)
        self.assertTrue(all(v.separate_audio for v in result.variants))


class TimingTests(SynchronousTestCase):
    def test_reload_delay(self) -> None:
        self.assertEqual(reload_delay(6.0, changed=True), 6.0)
        self.assertEqual(reload_delay(6.0, changed=False), 3.0)
        self.assertEqual(reload_delay(0.0, changed=True), 0.5)  # never a busy loop


class DetectTests(SynchronousTestCase):
    def test_urls_content_types_and_bodies(self) -> None:
        self.assertTrue(is_hls_url("http://p.test/live/u/p/1.m3u8?token=x"))
        self.assertTrue(is_hls_url("http://p.test/INDEX.M3U8"))
        self.assertFalse(is_hls_url("http://p.test/live/u/p/1.ts?f=.m3u8"))
        for value in (b"application/vnd.apple.mpegurl", b"application/x-mpegURL; charset=utf-8",
                      "audio/mpegurl"):
            self.assertTrue(is_hls_content_type(value))
        self.assertFalse(is_hls_content_type(b"video/mp2t"))
        self.assertTrue(looks_like_playlist(b"\xef\xbb\xbf\r\n#EXTM3U\n"))
        self.assertFalse(looks_like_playlist(b"\x47\x40\x00"))


class RealWorldTests(SynchronousTestCase):
    def test_every_sample_playlist_parses_or_is_a_playlist_error(self) -> None:
        files = sorted(DATA.glob("*/*.m3u8"))
        self.assertGreaterEqual(len(files), 45)
        kinds = {"master": 0, "media": 0, "error": 0}
        for path in files:
            try:
                result = parse(path.read_bytes(), "http://cdn.test/x/" + path.name)
            except PlaylistError:
                kinds["error"] += 1
                continue
            kinds["master" if isinstance(result, MasterPlaylist) else "media"] += 1
        self.assertGreater(kinds["master"], 8)
        self.assertGreater(kinds["media"], 25)
        self.assertGreater(kinds["error"], 3)  # the malformed ones

    def test_a_long_playlist_is_read_from_its_tail_exactly_as_in_full(self) -> None:
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:6", "#EXT-X-MEDIA-SEQUENCE:500",
                 "#EXT-X-PLAYLIST-TYPE:EVENT"]
        for n in range(60):
            if n % 7 == 0:
                lines.append(f'#EXT-X-KEY:METHOD=AES-128,URI="k{n}"')
            if n % 11 == 0:
                lines.append(f'#EXT-X-MAP:URI="init{n}.ts"')
            if n % 13 == 0:
                lines.append("#EXT-X-DISCONTINUITY")
            size = 1000 + n
            at = "@0" if n == 0 else ""
            lines += ["#EXTINF:6,", f"#EXT-X-BYTERANGE:{size}{at}", "all.ts"]
        text = "\n".join(lines) + "\n"
        full = parse(text.encode(), URL)
        assert isinstance(full, MediaPlaylist)
        for keep in (1, 5, 17, 59):
            cut = tail(text, keep)
            self.assertLess(cut.count("#EXTINF"), text.count("#EXTINF"))
            short = parse(cut.encode(), URL)
            assert isinstance(short, MediaPlaylist)
            self.assertEqual(short.segments, full.segments[-keep:], keep)
            self.assertEqual((short.target_duration, short.ended), (full.target_duration, full.ended))

    def test_a_playlist_of_forty_thousand_segments(self) -> None:
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:10"]
        lines += [f"#EXTINF:10.0,\nsegment-{n}.ts" for n in range(40_000)]
        result = parse("\n".join(lines).encode(), URL)
        assert isinstance(result, MediaPlaylist)
        self.assertEqual(result.live_start(), 39_997)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from([
        "#EXTM3U", "#EXT-X-TARGETDURATION:6", "#EXT-X-TARGETDURATION:", "#EXT-X-MEDIA-SEQUENCE:x",
        "#EXTINF:6,", "#EXTINF:abc,", "seg.ts", "../s.ts", "#EXT-X-BYTERANGE:10@0",
        "#EXT-X-BYTERANGE:zz", '#EXT-X-KEY:METHOD=AES-128,URI="k"', "#EXT-X-KEY:METHOD=AES-128",
        '#EXT-X-KEY:METHOD=AES-128,URI="k",IV=0xZZ', "#EXT-X-STREAM-INF:BANDWIDTH=1", "v.m3u8",
        "#EXT-X-STREAM-INF:RESOLUTION=1x", '#EXT-X-MAP:URI="i.ts"', "#EXT-X-DISCONTINUITY",
        "#EXT-X-ENDLIST", "", "\x00\xff", '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="i.m3u8"',
    ]), max_size=14))
    def test_any_line_soup_is_a_value_or_a_playlist_error(self, lines: list[str]) -> None:
        try:
            parse("\n".join(lines).encode(), URL)
        except PlaylistError:
            pass
