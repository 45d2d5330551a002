"""
One HLS segment at a time (epgd.hls.segment, SPEC §11): a failed segment is retried once,
resuming where it stopped, then skipped as a gap; a silent body fails; a paused audience pauses
the segment's connection; keys are fetched once and decrypt; byte ranges are Range requests.
Driven through the Upstream a channel holds, on a task.Clock (in-memory HTTP, no sockets).
"""

from __future__ import annotations

from twisted.logger import capturedLogs

from tests.fakehls import encrypt
from tests.hlsfakes import BASE, KEY, Answer, HlsCase, Seen, Tap, media, seg, segment_numbers


class PaceTests(HlsCase):
    def test_a_segment_paused_mid_body_pauses_its_connection(self) -> None:
        self.live()
        self.http.routes[f"{BASE}s13.ts"] = Answer(stream=True)
        upstream, tap = self.start()
        response = self.http.requests[-1].response
        assert response is not None
        response.send(seg(13)[:1000])
        upstream.fanout.set_paused(tap, True)
        self.assertTrue(response.transport.paused)
        self.advance(5)  # longer than connect_timeout: a paused body is not a silent one
        self.assertFalse(response.transport.stopped)
        upstream.fanout.set_paused(tap, False)
        self.assertFalse(response.transport.paused)
        response.send(seg(13)[1000:])
        response.end()
        self.assertEqual(segment_numbers(self.http), [13, 14, 15, 16])  # 16 came at 4 s
        self.assertEqual(bytes(tap.data), b"".join(seg(n) for n in range(13, 17)))

    def test_segments_stream_into_the_fanout_as_they_arrive(self) -> None:
        self.live()
        self.http.routes[f"{BASE}s13.ts"] = Answer(stream=True)
        _, tap = self.start()
        response = self.http.requests[-1].response
        assert response is not None
        response.send(seg(13, packets=2000)[:100_000])
        self.assertGreater(len(tap.data), 90_000)  # not held until the segment ends


class SegmentFaultTests(HlsCase):
    def test_a_failed_segment_is_retried_once_then_skipped_as_a_gap_with_a_cut(self) -> None:
        self.live()
        self.http.routes[f"{BASE}s14.ts"] = Answer(b"gone", 404, b"text/plain")
        with capturedLogs() as events:
            _, tap = self.start()
        self.assertEqual(segment_numbers(self.http), [13, 14, 14, 15])
        self.assertEqual(bytes(tap.data), seg(13) + seg(15))
        self.assertEqual(tap.cuts, [len(seg(13))])
        text = " ".join(e["log_format"].format(**e) for e in events)
        self.assertIn("segment 14 skipped (HTTP 404", text)
        self.assertEqual(tap.faults, [])  # a gap is not a failure of the source

    def test_a_segment_that_fails_once_is_fetched_again_without_a_gap(self) -> None:
        self.live()
        self.http.routes[f"{BASE}s14.ts"] = lambda seen: (
            Answer(b"busy", 503, b"text/plain") if self.http.count(seen.url) == 1 else Answer(seg(14)))
        _, tap = self.start()
        self.assertEqual(segment_numbers(self.http), [13, 14, 14, 15])
        self.assertEqual(bytes(tap.data), seg(13) + seg(14) + seg(15))
        self.assertEqual(tap.cuts, [])

    def test_the_retry_of_a_broken_body_resumes_with_a_range(self) -> None:
        self.live()
        data = seg(14, packets=40)
        self.http.routes[f"{BASE}s14.ts"] = lambda seen: (
            Answer(stream=True) if self.http.count(seen.url) == 1
            else Answer(data[3000:], 206))
        _, tap = self.start()
        first = [r for r in self.http.requests if r.url.endswith("s14.ts")][0].response
        assert first is not None
        first.send(data[:3000])
        first.drop()
        retry = [r for r in self.http.requests if r.url.endswith("s14.ts")][1]
        self.assertEqual(retry.headers.get("Range"), ["bytes=3000-"])
        self.assertEqual(bytes(tap.data), seg(13) + data + seg(15))
        self.assertEqual(tap.cuts, [])

    def test_a_silent_segment_body_fails_after_connect_timeout(self) -> None:
        self.live()
        self.http.routes[f"{BASE}s13.ts"] = lambda seen: (
            Answer(stream=True) if self.http.count(seen.url) == 1 else Answer(seg(13)))
        _, tap = self.start()
        self.advance(3)
        self.assertEqual(segment_numbers(self.http), [13])
        self.advance(2)
        self.assertEqual(segment_numbers(self.http)[:3], [13, 13, 14])
        self.assertEqual(bytes(tap.data)[:len(seg(13))], seg(13))


class DecryptTests(HlsCase):
    def test_aes128_with_the_iv_from_the_tag_or_from_the_sequence_number(self) -> None:
        iv = bytes(range(100, 116))
        before = {10: ['#EXT-X-KEY:METHOD=AES-128,URI="k1"'],
                  12: [f'#EXT-X-KEY:METHOD=AES-128,URI="k2",IV=0x{iv.hex()}']}
        self.serve(media(10, 4, before=before, ended=True))
        self.http.routes[f"{BASE}k1"] = Answer(KEY)
        self.http.routes[f"{BASE}k2"] = Answer(KEY[::-1])
        for n in (10, 11):
            self.http.routes[f"{BASE}s{n}.ts"] = Answer(encrypt(seg(n), KEY, n.to_bytes(16, "big")))
        for n in (12, 13):
            self.http.routes[f"{BASE}s{n}.ts"] = Answer(encrypt(seg(n), KEY[::-1], iv))
        _, tap = self.start()
        self.assertEqual(bytes(tap.data), b"".join(seg(n) for n in range(10, 14)))
        self.assertEqual((self.http.count(f"{BASE}k1"), self.http.count(f"{BASE}k2")), (1, 1))

    def test_a_key_that_cannot_be_fetched_fails_its_segments(self) -> None:
        self.serve(media(10, 3, head=('#EXT-X-KEY:METHOD=AES-128,URI="k"',)))
        self.http.routes[f"{BASE}k"] = Answer(b"no", 403, b"text/plain")
        _, tap = self.start()
        self.assertEqual(segment_numbers(self.http), [])
        self.assertEqual(len(tap.failures), 1)
        self.assertIn("key: HTTP 403", tap.failures[0])


class ByteRangeTests(HlsCase):
    def ranged(self, honour: bool) -> tuple[Tap, bytes]:
        pieces = [seg(n, packets=12) for n in range(4)]
        whole = b"".join(pieces)
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
        for n, piece in enumerate(pieces):
            at = f"@{sum(len(p) for p in pieces[:n])}" if n in (0, 2) else ""
            lines += ["#EXTINF:4,", f"#EXT-X-BYTERANGE:{len(piece)}{at}", "all.ts"]
        self.serve(("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n").encode())

        def answer(seen: Seen) -> Answer:
            wanted = seen.headers["Range"][0][6:].split("-")
            start, end = int(wanted[0]), int(wanted[1])
            return Answer(whole[start:end + 1], 206) if honour else Answer(whole)
        self.http.routes[f"{BASE}all.ts"] = answer
        _, tap = self.start()
        return tap, whole

    def test_byteranges_are_range_requests(self) -> None:
        tap, whole = self.ranged(honour=True)
        ranges = [r.headers["Range"][0] for r in self.http.requests if r.url.endswith("all.ts")]
        size = len(seg(0, packets=12))
        self.assertEqual(ranges, [f"bytes={n * size}-{(n + 1) * size - 1}" for n in range(4)])
        self.assertEqual(bytes(tap.data), whole)

    def test_a_server_that_ignores_range_still_gives_the_right_bytes(self) -> None:
        tap, whole = self.ranged(honour=False)
        self.assertEqual(bytes(tap.data), whole)
