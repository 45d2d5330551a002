"""
The packets off the splicer's fast path (epgd.mpegts.splice.rewrite), each answered with a
``Verdict``: a closing source ends at its anchor's next frame and begins no new audio frame;
a stream starts at its first PES, never in the middle of one; the source's PAT and PMT are
replaced by ours, and a PMT that changes mid-source moves the layout; scrambled PES headers
pass unshifted, noted once.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.entry import EntryFinder
from epgd.mpegts.splice.chunk import rewrite
from epgd.mpegts.splice.layout import OUT_VIDEO, OutputProgram
from epgd.mpegts.splice.rewrite import Rewriter, Verdict
from tests.tsgen import Source
from tests.tsverify import read, video_marks


def pid_of(data: bytes, p: int) -> int:
    return ((data[p + 1] & 0x1F) << 8) | data[p + 2]


def starts(data: bytes, pid: int) -> list[int]:
    """Offsets of the packets of ``pid`` that start a PES (or section)."""
    return [p for p in range(0, len(data), 188) if pid_of(data, p) == pid and data[p + 1] & 0x40]


def begun(source: Source, count: int = 10, run: bool = True) -> tuple[Rewriter, bytes, list[str]]:
    """A rewriter that has begun ``source`` at its first entry; the output so far (``run``: of ``count`` frames)."""
    entry = EntryFinder().feed(source.frames(0, count))
    assert entry is not None
    notes: list[str] = []
    rw = Rewriter(OutputProgram(), notes.append)
    rw.begin(entry)
    return rw, rewrite(rw, entry.data, 0.0).data if run else b"", notes


class VerdictTests(SynchronousTestCase):
    def test_a_closing_source_ends_at_its_next_frame(self) -> None:
        """
        The old source's last frame reaches the decoder whole, nothing of the next one does;
        its sound goes on while the last picture is shown (frame 9's, shown until frame 11's
        time: each audio PES here is a frame long, so frame 10's sound), and ends whole at the
        next PES.
        """
        source = Source(marker=7)
        rw, before, _ = begun(source)
        self.assertFalse(rw.close())
        data = source.frames(10, 3)
        video = starts(data, source.video or 0)
        audio = starts(data, source.audio[0])
        out = rewrite(rw, data[video[0] + 188:], 0.4)  # from inside frame 10 on
        self.assertIs(out.stopped, Verdict.STOP)
        self.assertEqual(out.rest, data[audio[1]:])  # frame 11's sound begins as the picture ends
        tail = read(out.data)
        self.assertEqual(len(tail.stamps[0x101]), 1)  # frame 10's sound
        self.assertNotIn(0x100, tail.stamps)  # frame 11's picture never starts
        self.assertEqual(video_marks(read(before + out.data))[-1][0], 7)

    def test_a_stream_starts_at_its_first_pes(self) -> None:
        source = Source()
        rw, _, _ = begun(source, run=False)
        self.assertEqual(rw.started, {source.video})  # the anchor starts at the entry
        pes = source.packets(0x102, b"\x00\x00\x01\xc0" + b"\x00" * 300)  # an audio PES over two packets
        first, middle = pes[:188], pes[188:]
        self.assertIs(rw.es(middle, bytearray(middle), 0, 0, 1, 0.0), Verdict.GONE)  # no start in sight
        self.assertNotIn(0x102, rw.started)
        self.assertIs(rw.es(first, bytearray(first), 0, 0, 1, 0.0), Verdict.KEEP)
        self.assertIn(0x102, rw.started)

    def test_the_sources_pat_and_pmt_make_way_for_ours(self) -> None:
        source = Source(psi_every=2)
        rw, _, _ = begun(source)
        data = source.frames(10, 1)
        pat, pmt = starts(data, 0)[0], starts(data, source.pmt)[0]
        self.assertIs(rw.pat(data, pat), Verdict.PSI)
        self.assertIs(rw.pmt(data, pmt), Verdict.GONE)  # the same PMT again: nothing to follow
        out = rewrite(rw, data, 0.4).data
        self.assertEqual([pid_of(out, p) for p in range(0, 2 * 188, 188)], [0, 0x1000])  # ours, where theirs were

    def test_a_pmt_that_changes_mid_source_moves_the_layout(self) -> None:
        source = Source(pmt_change_at=12, psi_every=2)
        rw, _, _ = begun(source)
        table = rw.table
        data = source.frames(12, 1)
        self.assertIs(rw.pmt(data, starts(data, source.pmt)[0]), Verdict.PSI)
        self.assertEqual([s.pid for s in rw.layout.streams], [OUT_VIDEO, 0x101, 0x102])
        self.assertIsNot(rw.table, table)

    def test_scrambled_pes_pass_unshifted_and_are_noted(self) -> None:
        source = Source(scramble_every=2)
        rw, _, notes = begun(source)
        data = source.frames(10, 4)
        out = rewrite(rw, data, 0.4).data
        self.assertEqual(set(notes), {"scrambled packets: passed on without shifting their timestamps"})
        scrambled = [p for p in starts(out, OUT_VIDEO) if out[p + 3] & 0xC0]
        self.assertEqual(len(scrambled), 2)
        self.assertEqual([out[p + 4:p + 188] for p in scrambled],
                         [data[p + 4:p + 188] for p in starts(data, source.video or 0) if data[p + 3] & 0xC0])
