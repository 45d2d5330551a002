"""
``stream.output = "passthrough"`` (epgd.mpegts.splice.passthrough): the provider's packets as
they are; a cut re-enters at a PAT, joiners start at the latest PAT, and each source's PMT is
read once for /streams/status ``codecs`` and the codec-change log line.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.entry import EntryMode
from epgd.mpegts.packet import find_pat, rfind_pat
from epgd.mpegts.splice.passthrough import PassthroughSplicer
from tests.tsgen import MP2, MPEG2, Source


def pats(data: bytes) -> list[int]:
    """The offsets of the PAT packets in ``data``."""
    return [p for p in range(0, len(data), 188) if data[p + 1:p + 3] == b"\x40\x00"]


class PassthroughTests(SynchronousTestCase):
    def test_bytes_unchanged_and_a_cut_re_enters_at_a_pat(self) -> None:
        splicer = PassthroughSplicer()
        a = Source(marker=1).frames(0, 10)
        self.assertEqual(splicer.feed(a, 0.0), a)
        self.assertEqual(splicer.codecs, "h264+aac")
        b = Source(marker=2, psi_every=5).frames(2, 10)  # its first PAT is at frame 5
        splicer.cut()
        out = splicer.feed(b, 1.0)
        self.assertEqual(out, b[b.index(b"\x47\x40\x00"):])
        self.assertEqual(splicer.first_entry, 0)

    def test_the_first_source_starts_at_its_first_pat(self) -> None:
        """A player never gets the middle of a program before it has seen a PAT."""
        splicer = PassthroughSplicer()
        data = Source(psi_every=4).frames(1, 10)  # PATs at frames 4 and 8
        self.assertTrue(splicer.entering)
        out = splicer.feed(data, 0.0)
        self.assertEqual(out, data[find_pat(data):])
        self.assertFalse(splicer.entering)
        self.assertEqual(splicer.feed(b"", 0.1), b"")

    def test_nothing_goes_out_until_a_pat_comes(self) -> None:
        splicer = PassthroughSplicer()
        data = Source(psi_every=8).frames(1, 10)  # the PAT comes with frame 8
        first, rest = data[:find_pat(data)], data[find_pat(data):]
        self.assertEqual(splicer.feed(first, 0.0), b"")
        self.assertEqual(splicer.feed(rest, 0.1), rest)

    def test_joiners_start_at_the_latest_pat(self) -> None:
        splicer = PassthroughSplicer()
        source = Source(psi_every=3)
        splicer.feed(source.frames(0, 3), 0.0)
        data = source.frames(3, 9)  # PATs at frames 3, 6 and 9
        out = splicer.feed(data, 1.0)
        self.assertEqual(out, data)
        self.assertEqual(len(pats(out)), 3)
        self.assertEqual(splicer.entry, rfind_pat(out))
        self.assertEqual(splicer.entry, pats(out)[-1])
        self.assertEqual(splicer.first_entry, 0)
        no_pat = source.frames(10, 2)
        self.assertEqual(splicer.feed(no_pat, 2.0), no_pat)
        self.assertEqual((splicer.entry, splicer.first_entry), (-1, -1))

    def test_close_ends_the_old_source_at_once(self) -> None:
        splicer = PassthroughSplicer()
        a = Source(marker=1)
        splicer.feed(a.frames(0, 5), 0.0)
        splicer.close()
        self.assertTrue(splicer.closed)
        self.assertEqual(splicer.feed(a.frames(5, 5), 0.5), b"")

    def test_side_entry_starts_the_new_source_at_its_pat(self) -> None:
        splicer = PassthroughSplicer()
        splicer.feed(Source(marker=1).frames(0, 5), 0.0)
        finder = splicer.finder()
        self.assertEqual(finder.mode, EntryMode.PAT)
        b = Source(marker=2, psi_every=5).frames(1, 10)
        entry = finder.feed(b)
        assert entry is not None
        splicer.close()
        out = splicer.enter(entry, 1.0)
        self.assertFalse(splicer.closed)
        self.assertEqual(out, b[find_pat(b):])
        self.assertEqual(splicer.first_entry, 0)
        more = Source(marker=2).frames(11, 2)
        self.assertEqual(splicer.feed(more, 1.5), more)

    def test_a_codec_change_at_a_cut_is_told_once(self) -> None:
        changes: list[tuple[str, str]] = []
        splicer = PassthroughSplicer(on_codecs=lambda old, new: changes.append((old, new)))
        splicer.feed(Source(marker=1).frames(0, 10), 0.0)
        splicer.cut()
        splicer.feed(Source(marker=2).frames(0, 10), 1.0)  # the same codecs: nothing to say
        self.assertEqual(changes, [])
        splicer.cut()
        splicer.feed(Source(marker=3, video_type=MPEG2, audio_type=MP2, pmt=0x300, video=0x301,
                            audio=(0x302,)).frames(0, 10), 2.0)
        self.assertEqual(changes, [("h264+aac", "mpeg2+mp2")])
        self.assertEqual(splicer.codecs, "mpeg2+mp2")
