"""
The HLS output's segmenter (epgd.mpegts.segment) on synthetic streams (tests/tsgen.py) as
they leave the splicer: segments start with PAT, PMT and a key frame, end at the first key
frame at or after the target length, carry their media duration, and are marked discontinuous
at a codec change, a clock step and a passthrough cut — never at a plain switch.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.segment import FORCE_AFTER, Segment, Segmenter
from epgd.mpegts.splice.continuous import ContinuousSplicer
from epgd.mpegts.splice.layout import OUT_PMT, OUT_VIDEO
from tests.tsgen import MPEG2, Source
from tests.tsverify import read, ring, video_marks

FRAME = 3600  # tsgen's 25 frames a second
PACKET = 188


def spliced(*parts: tuple[Source, int, int]) -> bytes:
    """Each (source, first frame, frames) through one ContinuousSplicer, with a cut between them."""
    splicer = ContinuousSplicer()
    out = []
    now = 1000.0
    for index, (source, first, count) in enumerate(parts):
        if index:
            splicer.cut()
        data = source.frames(first, count)
        for at in range(0, len(data), 7 * PACKET):
            out.append(splicer.feed(data[at:at + 7 * PACKET], now))
            now += 0.01
    return b"".join(out)


def segments_of(data: bytes, target: float = 1.0, chunks: list[int] | None = None,
                segmenter: Segmenter | None = None) -> list[Segment]:
    """``data`` fed in pieces of ``chunks`` bytes (cycling; default 11 packets)."""
    segmenter = segmenter or Segmenter(target)
    sizes = chunks or [11 * PACKET]
    out: list[Segment] = []
    at, turn, now = 0, 0, 0.0
    while at < len(data):
        size = sizes[turn % len(sizes)]
        out += segmenter.feed(data[at:at + size], now)
        at += size
        turn += 1
        now += 0.01
    return out


def pids(data: bytes) -> list[int]:
    return [((data[i + 1] & 0x1F) << 8) | data[i + 2] for i in range(0, len(data), PACKET)]


class SegmenterTests(SynchronousTestCase):
    def assertStartsClean(self, segment: Segment, pmt: int = OUT_PMT, video: int = OUT_VIDEO) -> None:
        """PAT, then PMT, then (before any other video) a key frame."""
        order = pids(segment.data)
        self.assertEqual(order[:2], [0, pmt])
        report = read(segment.data)
        self.assertEqual(report.cc_errors, [])
        marks = video_marks(report, video)
        self.assertTrue(marks and marks[0][1], f"the first frame is no key frame: {marks[:3]}")

    def test_cuts_only_at_key_frames_at_or_after_the_target(self) -> None:
        # a key frame every 7 frames (0.28 s): 1 s segments end at the 4th, 1.12 s in
        data = spliced((Source(marker=1, gop=7), 0, 200))
        segments = segments_of(data, target=1.0)
        self.assertGreaterEqual(len(segments), 6)
        for segment in segments:
            self.assertStartsClean(segment)
            self.assertAlmostEqual(segment.duration, 28 * FRAME / 90000)
            self.assertFalse(segment.discontinuity)
            stamps = read(segment.data).decode_stamps(OUT_VIDEO)
            self.assertEqual(len(stamps), 28)  # every frame of it, none of the next
            self.assertTrue(segment.key_frame)

    def test_segments_are_the_output_cut_without_a_byte_lost_or_added(self) -> None:
        data = spliced((Source(marker=1), 0, 120))
        segments = segments_of(data, target=1.0)
        joined = b"".join(s.data for s in segments)
        start = data.find(joined[:PACKET * 3])
        self.assertEqual(data[start:start + len(joined)], joined)
        self.assertEqual(start % PACKET, 0)
        self.assertEqual([s.duration for s in segments], [1.0] * len(segments))
        # the durations add up to the media's own timeline
        first = read(segments[0].data).decode_stamps(OUT_VIDEO)[0]
        last = read(segments[-1].data).decode_stamps(OUT_VIDEO)[-1]
        self.assertAlmostEqual(sum(s.duration for s in segments), (ring(last, first) + FRAME) / 90000)

    def test_a_switch_is_no_discontinuity(self) -> None:
        """Continuous output keeps one clock across a switch: the segments run straight on."""
        data = spliced((Source(marker=1, pmt=0x100, video=0x101, audio=(0x102,)), 0, 80),
                       (Source(marker=2, pmt=0x200, video=0x201, audio=(0x202,), service=7,
                               clock=5_000_000), 0, 80),
                       (Source(marker=3, clock=(1 << 33) - 40 * FRAME), 0, 80))  # its clock wraps
        segments = segments_of(data, target=1.0)
        self.assertGreaterEqual(len(segments), 8)
        self.assertFalse(any(s.discontinuity for s in segments))
        markers = [video_marks(read(s.data))[0][0] for s in segments]
        self.assertEqual(sorted(set(markers)), [1, 2, 3])
        for segment in segments:
            self.assertStartsClean(segment)
            self.assertGreaterEqual(segment.duration, 1.0)
            self.assertLess(segment.duration, 1.5)

    def test_a_codec_change_is_a_discontinuity_at_the_new_codecs_first_key_frame(self) -> None:
        data = spliced((Source(marker=1), 0, 60), (Source(marker=2, video_type=MPEG2, clock=4_000_000), 0, 60))
        segmenter = Segmenter(1.0)
        segments = segments_of(data, segmenter=segmenter)
        flagged = [i for i, s in enumerate(segments) if s.discontinuity]
        self.assertEqual(len(flagged), 1)
        after = segments[flagged[0]]
        self.assertStartsClean(after)
        self.assertEqual(video_marks(read(after.data))[0], (2, True))
        before = segments[flagged[0] - 1]
        self.assertEqual({m for m, _ in video_marks(read(before.data))}, {1})  # nothing of the new one
        self.assertLess(before.duration, 1.5)
        self.assertEqual(segmenter.codecs, "mpeg2+aac")

    def test_window_of_any_chunking_is_the_same(self) -> None:
        data = spliced((Source(marker=1, gop=6), 0, 90), (Source(marker=2, clock=7_000_000), 0, 60))
        expected = [(s.data, s.duration) for s in segments_of(data)]
        self.assertGreater(len(expected), 3)

        @settings(max_examples=40, deadline=None)
        @given(st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=6))
        def check(sizes: list[int]) -> None:
            got = [(s.data, s.duration) for s in segments_of(data, chunks=sizes)]
            self.assertEqual(got, expected)

        check()

    def test_passthrough_cut_is_a_discontinuity_and_segments_get_psi_in_front(self) -> None:
        """Provider streams whose PAT is not right before each key frame, as passthrough sends them."""
        one = Source(marker=1, psi_every=3, gop=5)
        two = Source(marker=2, pmt=0x300, video=0x301, audio=(0x302,), psi_every=3, gop=5, clock=9_000_000)
        segmenter = Segmenter(1.0)
        segments = segments_of(one.frames(0, 90), segmenter=segmenter)
        segments += segmenter.cut(5.0)
        tail = segments[-1]
        segments += segments_of(two.frames(0, 90), segmenter=segmenter)
        self.assertTrue(all(not s.discontinuity for s in segments[:segments.index(tail) + 1]))
        self.assertEqual({m for m, _ in video_marks(read(tail.data), 0x101)}, {1})
        first_new = segments[segments.index(tail) + 1]
        self.assertTrue(first_new.discontinuity)
        self.assertStartsClean(first_new, pmt=0x300, video=0x301)
        self.assertEqual(sum(s.discontinuity for s in segments), 1)
        for segment in segments[:segments.index(tail) + 1]:
            self.assertStartsClean(segment, pmt=0x100, video=0x101)
        # the tail ended at the cut: its frames, and the last one's length
        self.assertAlmostEqual(tail.duration, len(read(tail.data).decode_stamps(0x101)) * FRAME / 90000)

    def test_a_clock_step_without_a_cut_is_a_discontinuity(self) -> None:
        source = Source(marker=1, psi_every=5, gop=5)
        data = source.frames(0, 60)
        source.clock = 100  # the provider's clock starts over
        data += source.frames(0, 60)
        segments = segments_of(data)
        self.assertEqual(sum(s.discontinuity for s in segments), 1)
        self.assertTrue(all(s.duration < 1.5 for s in segments))

    def test_audio_only_cuts_at_audio_frames(self) -> None:
        data = spliced((Source(marker=1, video=None), 0, 150))
        segments = segments_of(data)
        self.assertGreaterEqual(len(segments), 4)
        for segment in segments:
            self.assertEqual(pids(segment.data)[:2], [0, OUT_PMT])
            self.assertAlmostEqual(segment.duration, 1.0)

    def test_without_key_frames_a_segment_ends_anyway(self) -> None:
        data = spliced((Source(marker=1, gop=1000), 0, 200))
        segmenter = Segmenter(1.0)
        segments = segments_of(data, segmenter=segmenter)
        self.assertTrue(segments)
        self.assertTrue(segments[0].key_frame)
        self.assertFalse(segments[1].key_frame)
        self.assertAlmostEqual(segments[0].duration, FORCE_AFTER * 1.0)
        self.assertTrue(segmenter.notes)

    def test_waits_for_a_key_frame_to_start(self) -> None:
        source = Source(marker=1, gop=25)
        data = spliced((source, 0, 100))
        # joined in the middle of a GOP: the bytes before the next key frame are not a segment
        segmenter = Segmenter(1.0)
        segments = segments_of(data[len(data) // 3 - len(data) // 3 % PACKET:], segmenter=segmenter)
        self.assertTrue(segments)
        for segment in segments:
            self.assertStartsClean(segment)

    def test_holds_only_the_open_segment(self) -> None:
        segmenter = Segmenter(1.0)
        data = spliced((Source(marker=1), 0, 400))
        segments_of(data, segmenter=segmenter)
        self.assertLess(len(segmenter._buf), len(data) // 8)
