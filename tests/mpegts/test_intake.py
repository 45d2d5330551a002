"""
A source's bytes in, whole packets out (epgd.mpegts.intake): the first bytes judged once
("is this MPEG-TS at all?") before anything is passed on, then aligned; ``finish`` at the clean
end of an HLS segment; ``realign`` (the next bytes do not continue these) versus ``reset`` (a
new connection, judged anew).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.intake import Intake, NotTs
from epgd.mpegts.packet import PACKET_SIZE, SNIFF_BYTES, sniff
from tests.tsutil import packet, stream

HTML = b"<!DOCTYPE html><html><body>Access denied</body></html>" + b" " * 1000


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


class JudgingTests(SynchronousTestCase):
    def test_nothing_comes_out_before_the_first_bytes_are_judged_once(self) -> None:
        judged: list[bytes] = []

        def judge(head: bytes) -> str | None:
            judged.append(head)
            return sniff(head)

        intake = Intake(judge)
        data = stream(20)
        self.assertEqual(intake.feed(data[:SNIFF_BYTES - 1]), b"")
        self.assertFalse(intake.judged)
        self.assertEqual(judged, [])
        out = intake.feed(data[SNIFF_BYTES - 1:])
        self.assertTrue(intake.judged)
        self.assertEqual(judged, [data[:SNIFF_BYTES - 1] + data[SNIFF_BYTES - 1:]])
        self.assertEqual(out, data[:-PACKET_SIZE])  # the last packet waits for its successor
        self.assertEqual(intake.packets_in, len(out))
        self.assertEqual(intake.feed(stream(5)), data[-PACKET_SIZE:] + stream(5)[:-PACKET_SIZE])
        self.assertEqual(len(judged), 1)

    def test_not_mpegts_says_what_it_is_and_keeps_the_head(self) -> None:
        intake = Intake()
        self.assertEqual(intake.feed(HTML[:300]), b"")
        self.assertEqual(intake.head, HTML[:300])
        with self.assertRaises(NotTs) as raised:
            intake.feed(HTML[300:])
        self.assertEqual(raised.exception.verdict, "an HTML page")
        self.assertEqual(str(raised.exception), "an HTML page")
        self.assertEqual(raised.exception.head, HTML)
        self.assertEqual(intake.packets_in, 0)

    def test_finish_judges_a_short_head_and_lets_the_last_packet_out(self) -> None:
        """A tiny HLS segment: three packets, fewer bytes than the judging window."""
        intake = Intake()
        data = stream(3)
        self.assertLess(len(data), SNIFF_BYTES)
        self.assertEqual(intake.feed(data), b"")
        self.assertEqual(intake.finish(), data)
        self.assertEqual(intake.packets_in, len(data))

    def test_finish_refuses_a_short_head_that_is_not_mpegts(self) -> None:
        intake = Intake()
        intake.feed(b"#EXTM3U\n")
        with self.assertRaises(NotTs) as raised:
            intake.finish()
        self.assertEqual(raised.exception.verdict, "an HLS playlist (#EXTM3U)")

    def test_finish_lets_the_last_whole_packet_out_but_not_a_partial_one(self) -> None:
        whole = Intake()
        data = stream(10)
        self.assertEqual(whole.feed(data) + whole.finish(), data)
        partial = Intake()
        self.assertEqual(partial.feed(data + packet(0x100)[:100]) + partial.finish(), data)


class RestartTests(SynchronousTestCase):
    def test_realign_forgets_a_partial_packet_but_not_the_judgement(self) -> None:
        intake = Intake()
        a, b = stream(10, fill=0xAA), stream(10, fill=0xBB)
        first = intake.feed(a[:-50])  # the last packet cut short: the bytes after do not continue it
        self.assertEqual(first, a[:9 * PACKET_SIZE])
        intake.realign()
        self.assertTrue(intake.judged)
        second = intake.feed(b + b"G")  # no new judging window: out at once
        self.assertEqual(second, b)

    def test_reset_judges_the_next_connection_anew(self) -> None:
        intake = Intake()
        intake.feed(stream(10))
        intake.reset()
        self.assertFalse(intake.judged)
        with self.assertRaises(NotTs):
            intake.feed(HTML)

    def test_after_realign_garbage_is_skipped_not_refused(self) -> None:
        intake = Intake()
        intake.feed(stream(10))
        intake.realign()
        data = stream(5)
        self.assertEqual(intake.feed(HTML + data + b"G"), data)


def take(data: bytes, cuts: list[int]) -> bytes | str:
    """What an intake passes on for ``data`` cut at ``cuts``, then finished; or its verdict."""
    intake = Intake()
    try:
        out = b"".join(intake.feed(c) for c in chunks(data, cuts)) + intake.finish()
    except NotTs as e:
        return e.verdict
    assert intake.packets_in == len(out)
    return out


class ChunkingProperties(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(count=st.integers(3, 30), cuts=st.lists(st.integers(0, 10_000), max_size=30),
           junk=st.binary(max_size=100).filter(lambda j: b"G" not in j))
    def test_any_chunking_gives_the_same_packets(self, count: int, cuts: list[int], junk: bytes) -> None:
        data = junk + stream(count)
        self.assertEqual(take(data, cuts), stream(count))

    @settings(max_examples=200, deadline=None)
    @given(data=st.one_of(st.binary(max_size=2000), st.builds(lambda n, j: j + stream(n), st.integers(0, 8),
                                                                st.binary(max_size=200))),
           cuts=st.lists(st.integers(0, 10_000), max_size=30))
    def test_any_chunking_gives_the_same_verdict(self, data: bytes, cuts: list[int]) -> None:
        self.assertEqual(take(data, cuts), take(data, []))
