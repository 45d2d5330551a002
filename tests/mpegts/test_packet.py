"""Packet alignment, PAT detection and source sniffing (epgd.mpegts.packet)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts import packet as ts
from tests.tsutil import packet, pat, pids, stream


def feed_all(chunks: list[bytes]) -> bytes:
    aligner = ts.Aligner()
    return b"".join(aligner.feed(c) for c in chunks)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points + [len(data)]:
        out.append(data[last:p])
        last = p
    return out


_payload_byte = st.integers(0, 255).filter(lambda b: b != 0x47)


class AlignerTests(SynchronousTestCase):
    def test_whole_stream_passes_unchanged(self) -> None:
        data = stream(50)
        # a packet goes out once the next one's sync byte is in
        self.assertEqual(feed_all([data, b"G"]), data)
        self.assertEqual(feed_all([data]), data[:-188])

    def test_byte_by_byte_gives_the_same_packets(self) -> None:
        data = stream(20) + b"G"
        self.assertEqual(feed_all([data[i:i + 1] for i in range(len(data))]), data[:-1])

    def test_output_is_always_whole_packets(self) -> None:
        aligner = ts.Aligner()
        data = stream(10)
        for size in (1, 100, 187, 189, 500):
            out = aligner.feed(data[:size])
            data = data[size:]
            self.assertEqual(len(out) % ts.PACKET_SIZE, 0)
            self.assertTrue(out == b"" or out[0] == 0x47)

    def test_leading_garbage_is_skipped(self) -> None:
        data = stream(10)
        self.assertEqual(feed_all([b"HTTP junk\r\n" + data + b"G"]), data)

    def test_resyncs_after_corruption(self) -> None:
        good = stream(10)
        damaged = good[:5 * 188] + b"\x00\x01\x02" + good[5 * 188:]
        self.assertEqual(feed_all([damaged, b"G"]), good)

    def test_truncated_packet_is_dropped_and_sync_refound(self) -> None:
        good = stream(10)
        damaged = good[:3 * 188 + 100] + good[4 * 188:]  # packet 3 lost 88 bytes
        out = feed_all([damaged, b"G"])
        self.assertEqual(len(out) % 188, 0)
        self.assertEqual(out[:3 * 188], good[:3 * 188])
        self.assertEqual(out[3 * 188:], good[4 * 188:])

    def test_reset_discards_partial_packet(self) -> None:
        aligner = ts.Aligner()
        a = stream(5, fill=0xAA)
        b = stream(5, fill=0xBB)
        first = aligner.feed(a[:-50])
        aligner.reset()
        second = aligner.feed(b + b"G")
        self.assertEqual(first, a[:4 * 188])
        self.assertEqual(second, b)

    @settings(max_examples=200, deadline=None)
    @given(count=st.integers(3, 40), cuts=st.lists(st.integers(0, 10_000), max_size=30))
    def test_any_chunking_gives_the_same_packets(self, count: int, cuts: list[int]) -> None:
        data = stream(count)
        self.assertEqual(feed_all(split(data + b"G", cuts)), data)

    @settings(max_examples=200, deadline=None)
    @given(
        segments=st.lists(
            st.tuples(
                st.binary(max_size=400).filter(lambda g: b"G" not in g),
                st.lists(_payload_byte, min_size=3, max_size=8),
            ),
            min_size=1, max_size=5,
        ),
        cuts=st.lists(st.integers(0, 10_000), max_size=12),
    )
    def test_garbage_between_packets_is_skipped(
        self, segments: list[tuple[bytes, list[int]]], cuts: list[int]
    ) -> None:
        dirty, clean = [], []
        for junk, fills in segments:
            packets = [packet(0x100, fill=f, counter=i) for i, f in enumerate(fills)]
            dirty.append(junk + b"".join(packets))
            clean.extend(packets)
        data = b"".join(dirty) + packet(0x101)  # the last packet waits for a successor
        self.assertEqual(feed_all(split(data, cuts)), b"".join(clean))


class PatTests(SynchronousTestCase):
    def test_find_and_rfind_pat(self) -> None:
        data = packet(0x100) + pat() + packet(0x100) + pat() + packet(0x101)
        self.assertEqual(ts.find_pat(data), 188)
        self.assertEqual(ts.rfind_pat(data), 3 * 188)
        self.assertTrue(ts.is_pat(pat()))
        self.assertFalse(ts.is_pat(packet(0x100, start=True)))

    def test_pat_pattern_inside_a_payload_is_not_a_pat(self) -> None:
        body = packet(0x100)
        fake = body[:50] + b"\x47\x40\x00" + body[53:]
        self.assertEqual(ts.find_pat(fake + packet(0x100)), -1)
        self.assertEqual(ts.rfind_pat(fake), -1)

    def test_null_packets(self) -> None:
        nulls = ts.null_packets(3)
        self.assertEqual(len(nulls), 3 * 188)
        self.assertEqual(pids(nulls), [0x1FFF] * 3)


class SniffTests(SynchronousTestCase):
    def test_mpegts_is_accepted(self) -> None:
        self.assertIsNone(ts.sniff(stream(5)))
        self.assertIsNone(ts.sniff(b"\x00\x00" + stream(5)))

    def test_html_page(self) -> None:
        self.assertEqual(ts.sniff(b"<!DOCTYPE html><html><body>Access denied" + b" " * 800),
                         "an HTML page")

    def test_hls_playlist(self) -> None:
        body = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nseg1.ts\n" * 20
        self.assertEqual(ts.sniff(body), "an HLS playlist (#EXTM3U)")

    def test_garbage(self) -> None:
        self.assertEqual(ts.sniff(b"\x00" * 800), "800 bytes that are not MPEG-TS")


def _naive_pats(data: bytes) -> list[int]:
    return [p for p in range(0, len(data) - 2, 188)
            if data[p] == 0x47 and data[p + 1] in (0x40, 0x60) and data[p + 2] == 0]


class PatSearchProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from([b"pat", b"pat-pri", b"pat-tei", b"video", b"pmt", b"fake"]),
                    max_size=40),
           st.integers(0, 200), st.integers(0, 40 * 188))
    def test_find_and_rfind_agree_with_a_packet_by_packet_reading(
        self, kinds: list[bytes], tail: int, start: int
    ) -> None:
        made = {
            b"pat": pat(),
            b"pat-pri": bytes([0x47, 0x60]) + pat()[2:],
            b"pat-tei": bytes([0x47, 0xC0]) + pat()[2:],
            b"video": packet(0x100, start=True),  # PID 0x100: byte 2 is 0 too
            b"pmt": packet(0x1000, start=True),
            b"fake": packet(0x101)[:100] + b"\x47\x40\x00" + packet(0x101)[103:],
        }
        data = b"".join(made[k] for k in kinds)
        data += pat()[: tail % 188]  # a cut-off last packet (3 bytes or more are judged)
        found = _naive_pats(data)
        self.assertEqual(ts.rfind_pat(data), found[-1] if found else -1)
        after = [p for p in found if p >= start]
        self.assertEqual(ts.find_pat(data, start), after[0] if after else -1)
