"""
The HLS answers of a process (epgd.stream.hlsout.service): playlists wait for an idle
channel's first segment (bounded), segments answer with the SPEC's cache headers or 404 once
they left the window, and who watched is counted by address for 3 segment lengths.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import StreamConfig
from epgd.mpegts.splice.continuous import ContinuousSplicer
from epgd.stream.hlsout.service import HlsService
from epgd.stream.out.output import Output
from tests.streamfakes import FakeRequest, FakeTransport
from tests.tsgen import Source

START = 1764000000.0


class Request(FakeRequest):
    def __init__(self, method: bytes = b"GET", host: str = "192.0.2.1", headers: dict[bytes, bytes] | None = None):
        super().__init__(method)
        self.host = host
        self.request_headers = headers or {}

    def getClientAddress(self) -> IPv4Address:
        return IPv4Address("TCP", self.host, 40000)

    def getHeader(self, name: bytes) -> bytes | None:
        return self.request_headers.get(name.lower())


class Channel:
    def __init__(self, clock: Clock, channel_id: str = "nhl_ppv_1") -> None:
        self.channel_id = channel_id
        self.output = Output(clock, 188, FakeTransport())
        self.stopped = False
        self.splicer = ContinuousSplicer()
        self.source = Source(marker=1)
        self.frame = 0

    def play(self, clock: Clock, seconds: float) -> None:
        """``seconds`` of the source through the splicer to the output, in real time."""
        for _ in range(int(seconds * 25)):
            self.output.deliver(self.splicer.feed(self.source.frame_bytes(self.frame), clock.seconds()))
            self.output.flush()
            self.frame += 1
            clock.advance(0.04)


class ServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.config = StreamConfig(hls_segment=1.0, hls_window=3, connect_timeout=2.0)
        self.channel = Channel(self.clock)
        self.opened: list[str] = []
        self.answer: Any = None
        self.service = HlsService(self.clock, self.config, self.open, lambda cid: cid == "nhl_ppv_1")

    def open(self, request: Any, channel_id: str) -> Any:
        self.opened.append(channel_id)
        return self.answer if self.answer is not None else self.channel

    def test_the_first_playlist_waits_for_the_first_segment(self) -> None:
        request = Request()
        answer = self.service.playlist(request, "nhl_ppv_1")
        self.assertNoResult(answer)
        self.channel.play(self.clock, 1.2)
        body = self.successResultOf(answer)
        self.assertTrue(body.startswith(b"#EXTM3U\n"))
        self.assertIn(f"\nnhl_ppv_1/{int(START)}.ts\n".encode(), body)
        self.assertEqual(request.headers[b"content-type"], b"application/vnd.apple.mpegurl")
        self.assertEqual(request.headers[b"cache-control"], b"max-age=1")
        # the next one is answered at once, from the same output
        again = self.service.playlist(Request(), "nhl_ppv_1")
        self.assertEqual(again, body)
        self.assertEqual(len(self.channel.output.sinks), 1)

    def test_no_segment_in_time_is_a_one_line_503(self) -> None:
        request = Request()
        answer = self.service.playlist(request, "nhl_ppv_1")
        self.clock.advance(2.0 + 2 * 1.0)  # connect_timeout + 2 x hls_segment
        body = self.successResultOf(answer)
        self.assertEqual(request.code, 503)
        self.assertEqual(body.count(b"\n"), 1)
        self.assertIn(b"no HLS segment of nhl_ppv_1 yet", body)
        self.assertIn(b"retry-after", request.headers)

    def test_the_admission_answer_is_passed_on(self) -> None:
        self.answer = b"unknown channel\n"
        self.assertEqual(self.service.playlist(Request(), "zz_9"), b"unknown channel\n")
        self.assertEqual(self.service.outputs, {})

    def test_segments_answer_with_cache_headers_then_404(self) -> None:
        self.service.playlist(Request(), "nhl_ppv_1")
        self.channel.play(self.clock, 3.2)
        first = int(START)
        request = Request()
        done = self.service.segment(request, "nhl_ppv_1", f"{first + 2}.ts")
        self.assertEqual(self.successResultOf(done), b"")
        segment = request.body
        self.assertEqual(segment[:1], b"\x47")
        self.assertEqual(request.headers[b"content-length"], str(len(segment)).encode())
        self.assertEqual(request.headers[b"cache-control"], b"public, max-age=3")
        etag = request.headers[b"etag"]
        cached = Request(headers={b"if-none-match": etag})
        self.assertEqual(self.service.segment(cached, "nhl_ppv_1", f"{first + 2}.ts"), b"")
        self.assertEqual(cached.code, 304)
        head = Request(b"HEAD")
        self.assertEqual(self.service.segment(head, "nhl_ppv_1", f"{first + 2}.ts"), b"")
        self.assertEqual(head.headers[b"content-length"], str(len(segment)).encode())
        oldest = Request()
        self.successResultOf(self.service.segment(oldest, "nhl_ppv_1", f"{first}.ts"))
        self.assertEqual(oldest.headers[b"cache-control"], b"public, max-age=1")
        self.channel.play(self.clock, 1.0)
        gone = Request()
        self.assertIn(b"is not in the HLS window", self.service.segment(gone, "nhl_ppv_1", f"{first}.ts"))
        self.assertEqual(gone.code, 404)
        for name in ("x.ts", "12", "1e3.ts", "١٢.ts", "9" * 30 + ".ts"):
            bad = Request()
            self.service.segment(bad, "nhl_ppv_1", name)
            self.assertEqual(bad.code, 404, name)
        unknown = Request()
        self.service.segment(unknown, "zz_9", f"{first}.ts")
        self.assertEqual(unknown.code, 404)

    def test_sessions_are_addresses_of_the_last_three_segment_lengths(self) -> None:
        for host in ("192.0.2.1", "192.0.2.2", "192.0.2.1"):
            self.service.playlist(Request(host=host), "nhl_ppv_1")
        self.assertEqual(self.service.sessions("nhl_ppv_1", self.clock.seconds()), 2)
        self.assertTrue(self.service.watched("nhl_ppv_1", self.clock.seconds()))
        self.clock.advance(3.0)
        self.assertEqual(self.service.idle_for("nhl_ppv_1", self.clock.seconds()), 0.0)
        self.clock.advance(2.0)
        now = self.clock.seconds()
        self.assertEqual(self.service.idle_for("nhl_ppv_1", now), 2.0)
        self.assertEqual(self.service.sessions("nhl_ppv_1", now), 0)
        self.assertFalse(self.service.watched("nhl_ppv_1", now))
        self.assertEqual(self.service.idle_for("other_1", now), float("inf"))

    def test_a_stopped_channel_answers_those_waiting_and_numbers_run_on(self) -> None:
        request = Request()
        waiting = self.service.playlist(request, "nhl_ppv_1")
        self.service.channel_stopped(self.channel)
        self.assertIn(b"stopped before its first HLS segment", self.successResultOf(waiting))
        self.assertEqual(request.code, 503)
        self.assertEqual(self.channel.output.sinks, [])
        # a restarted channel numbers on from where the last one stopped
        self.service.playlist(Request(), "nhl_ppv_1")
        self.channel.play(self.clock, 2.2)
        last = self.service.outputs["nhl_ppv_1"][1].next_sequence
        self.service.channel_stopped(self.channel)
        self.clock.pump([0.0])
        restarted = Channel(self.clock)
        self.channel = restarted
        self.service.playlist(Request(), "nhl_ppv_1")
        self.assertEqual(self.service.outputs["nhl_ppv_1"][1].next_sequence, last)

    def test_an_output_nobody_reads_is_let_go(self) -> None:
        self.service.playlist(Request(), "nhl_ppv_1")
        self.channel.play(self.clock, 2.2)
        self.service.reap(self.clock.seconds())
        self.assertIn("nhl_ppv_1", self.service.outputs)
        # watched for 3 segment lengths, then kept for a window's length (3 x 1 s)
        self.clock.advance(3.0 + 3.0 - 2.2 - 0.5)
        self.service.reap(self.clock.seconds())
        self.assertIn("nhl_ppv_1", self.service.outputs)
        self.clock.advance(1.0)
        self.service.reap(self.clock.seconds())
        self.assertEqual(self.service.outputs, {})
        self.assertEqual(self.channel.output.sinks, [])

    def test_with_the_slate_the_target_duration_covers_its_segments_from_the_start(self) -> None:
        """The slate's key frames are 5 s apart: no change of target duration when it shows."""
        for segment, window, slate, expected in ((4.0, 6, True, 5), (4.0, 6, False, 4),
                                                 (1.0, 6, True, 1)):  # 6 s could not span 3 x 5 s
            config = StreamConfig(hls_segment=segment, hls_window=window, slate=slate)
            service = HlsService(self.clock, config, self.open, lambda cid: True)
            self.channel = Channel(self.clock)
            service.playlist(Request(), "nhl_ppv_1")
            self.assertEqual(service.outputs["nhl_ppv_1"][1].target_duration, expected,
                             (segment, window, slate))
