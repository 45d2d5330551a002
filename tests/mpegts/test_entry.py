"""Entry points (epgd.mpegts.entry): where a source may be cut in, in each EntryMode."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.entry import EntryFinder, EntryMode, latest_entry
from epgd.mpegts.pes import read_stamp
from tests.tsgen import Source


class EntryFinderTests(SynchronousTestCase):
    def test_rap_mode_waits_for_pat_pmt_and_a_key_frame(self) -> None:
        source = Source(gop=5, psi_every=5)
        data = source.frames(1, 10)  # PSI at frames 5 and 10; key frames at 5 and 10
        finder = EntryFinder()
        entry = finder.feed(data)
        assert entry is not None and entry.program is not None
        self.assertEqual(data.index(entry.data), data.index(source_frame_start(data, 5)))
        self.assertEqual((entry.program.program, entry.pmt_pid), (1, 0x100))
        self.assertEqual(entry.pcr, source.clock + 5 * 3600 - source.lead)  # the key frame's own PCR

    def test_pat_mode_and_relaxed_modes(self) -> None:
        source = Source(gop=1000, psi_every=4)
        data = source.frames(1, 6)
        self.assertEqual(EntryFinder("pat").feed(data), EntryFinder("pat").feed(data))
        pat_entry = EntryFinder("pat").feed(data)
        assert pat_entry is not None
        self.assertEqual(pat_entry.data[1:3], b"\x40\x00")
        finder = EntryFinder()
        self.assertIsNone(finder.feed(data))  # no key frame in sight
        finder.relax()
        later = source.frames(7, 2)
        relaxed = finder.feed(later)
        assert relaxed is not None
        self.assertEqual(relaxed.data, later[later.index(source_frame_start(later, 7)):])


def source_frame_start(data: bytes, frame: int) -> bytes:
    """The first video PES packet of ``frame`` (its DTS tells) in ``data``."""
    for i in range(0, len(data), 188):
        if (data[i + 1] & 0x5F) << 8 | data[i + 2] == 0x4101:
            start = i + 4 + (1 + data[i + 4] if data[i + 3] & 0x20 else 0)
            if read_stamp(data, range(start + 14, start + 19)) == Source().clock + frame * 3600:
                return data[i:i + 188]
    raise AssertionError(f"frame {frame} is not in the data")


class LatestEntryTests(SynchronousTestCase):
    def test_the_latest_key_frame_of_what_came(self) -> None:
        source = Source(gop=4, psi_every=4)
        data = source.frames(0, 14)
        finder = EntryFinder()
        entry = finder.feed(data[:188 * 10])
        assert entry is not None
        latest = latest_entry(entry, data[188 * 10:])
        self.assertTrue(data.endswith(latest.data))
        self.assertEqual(len(latest.data), len(source.frame_bytes(12)) + len(source.frame_bytes(13))
                         - len(source._psi(12)))  # from frame 12's key frame (after its PAT/PMT) on
        self.assertEqual(latest.program, entry.program)

    def test_no_later_key_frame_keeps_the_first_with_all_that_came(self) -> None:
        source = Source(gop=10, psi_every=10)
        data = source.frames(0, 8)
        entry = EntryFinder().feed(data[:188 * 4])
        assert entry is not None
        latest = latest_entry(entry, data[188 * 4:])
        self.assertEqual(latest.data, entry.data + data[188 * 4:])


class EntryWaitTests(SynchronousTestCase):
    """SPEC §7.1's bounds on a splicer's own search (a first entry, every re-entry)."""

    def test_five_seconds_without_random_access_relax_however_few_bytes(self) -> None:
        source = Source(gop=10_000)
        finder = EntryFinder()
        for n in range(1, 50):  # 49 frames over 4.9 s: a trickle
            self.assertEqual(finder.wait(source.frames(n, 1), n * 0.1), (None, None))
        found, note = finder.wait(source.frames(50, 1), 5.1)
        self.assertEqual(note, "no random-access point within 5 s: entering at the next frame")
        self.assertIsNotNone(found)  # the frame that came after the wait, read relaxed
        self.assertIsNone(finder.given_up(5.1))

    def test_a_scrambled_stream_gives_up_after_three_waits_saying_so(self) -> None:
        source = Source()
        finder = EntryFinder()
        for n in range(0, 160):
            data = bytearray(source.frames(n, 1))
            for p in range(0, len(data), 188):
                if ((data[p + 1] & 0x1F) << 8 | data[p + 2]) == source.video:
                    data[p + 3] |= 0x80
            self.assertIsNone(finder.wait(bytes(data), n * 0.1)[0])
        self.assertIsNone(finder.given_up(14.9))
        reason = finder.given_up(15.0)
        self.assertIsNotNone(reason)
        self.assertRegex(reason or "", r"^its stream is scrambled \(encrypted; \d+ packets\): no way in within 15s$")


class EntryModeTests(SynchronousTestCase):
    def test_a_mode_is_still_its_word(self) -> None:
        """Logs, status and the channel compare a finder's mode with ``"rap"``: that still holds."""
        self.assertEqual(EntryFinder().mode, "rap")
        self.assertIs(EntryFinder().mode, EntryMode.RAP)
        self.assertEqual([str(m) for m in EntryMode], ["rap", "any", "pat", "now"])
        self.assertIs(EntryFinder("pat").mode, EntryMode.PAT)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            EntryFinder("key")  # type: ignore[arg-type]

    def test_relax_falls_back_once(self) -> None:
        for mode, relaxed in ((EntryMode.RAP, EntryMode.ANY), (EntryMode.PAT, EntryMode.NOW),
                              (EntryMode.ANY, EntryMode.ANY), (EntryMode.NOW, EntryMode.NOW)):
            finder = EntryFinder(mode)
            finder.relax()
            self.assertIs(finder.mode, relaxed)

    def test_now_takes_the_next_packet(self) -> None:
        data = Source().frames(1, 2)  # no PAT in sight
        self.assertIsNone(EntryFinder(EntryMode.PAT).feed(data))
        entry = EntryFinder(EntryMode.NOW).feed(data)
        assert entry is not None
        self.assertEqual(entry.data, data)
