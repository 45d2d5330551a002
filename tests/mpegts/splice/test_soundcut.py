"""
Sound cut at whole audio frames at a cut (epgd.mpegts.splice.soundcut, SPEC §7.1): the pieces
on synthetic ADTS frames, then the splicer switching between real captures whose muxers put
several frames in a PES (hevc-aac44k-30.ts: three) or spread frames across PES
(aac44k-h264-720p2997.ts: 31 frames, each PES ending inside a frame), read back frame by frame
and by ffmpeg.
"""

from __future__ import annotations

import subprocess

from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.audioframes import first_frame, frame_at, frames_in
from epgd.mpegts.pes import read_stamp
from epgd.mpegts.splice.continuous import ContinuousSplicer
from epgd.mpegts.splice.heldpes import HEAD, TAIL, Held, head_start, packets, pes_bytes, tail_keep
from tests import realclips
from tests.mpegts.test_audioframes import elementary
from tests.programs import require
from tests.tsverify import pes_units

TICKS = 1920  # an ADTS frame at 48 kHz


def adts(size: int, marker: int = 0) -> bytes:
    """One ADTS AAC-LC frame, 48 kHz stereo, ``size`` bytes long."""
    header = bytes([0xFF, 0xF1, 0x4C, 0x80 | (size >> 11), (size >> 3) & 0xFF, ((size & 7) << 5) | 0x1F, 0xFC])
    return header + bytes([marker]) * (size - 7)


def held(kind: str, payload: bytes, pts: int = 90000, length: int | None = None) -> Held:
    header = bytearray(b"\x00\x00\x01\xc0\x00\x00\x80\x80\x05\x21\x00\x01\x00\x01")
    from epgd.mpegts.pes import write_stamp
    write_stamp(header, range(9, 14), pts)
    total = len(header) - 6 + len(payload) if length is None else length
    header[4:6] = total.to_bytes(2, "big")
    return Held(kind, "aac", header, total, pts, None, bytearray(payload))


class PieceTests(SynchronousTestCase):
    def test_packets_carry_the_pes_whole_with_stuffing_in_the_last(self) -> None:
        pes = bytes(range(256)) * 2  # 512 bytes: 184 + 184 + 144
        data, counter = packets(0x101, pes, 14)
        self.assertEqual((len(data), counter), (3 * 188, 1))
        self.assertEqual([data[p + 1] & 0x40 for p in range(0, len(data), 188)], [0x40, 0, 0])
        self.assertEqual([data[p + 3] & 0x0F for p in range(0, len(data), 188)], [15, 0, 1])
        last = data[376:]
        self.assertEqual((last[3] & 0x30, last[4]), (0x30, 183 - 144))  # stuffing, then its payload
        self.assertEqual(last[-144:], pes[-144:])
        for size in (183, 182):  # one byte short: an adaptation field of its length byte alone
            one, _ = packets(0x101, bytes(size), 0)
            self.assertEqual((len(one), one[4]), (188, 183 - size))

    def test_a_new_sources_first_pes_begins_at_its_first_frame_after_the_old_sound(self) -> None:
        frames = [adts(100, k) for k in range(5)]
        prefix = b"\x11" * 30  # the end of a frame the PES before began
        pes = held(HEAD, prefix + b"".join(frames))
        # the old sound ends 2.5 frames after this PES's first frame: frame 3 is the first whole one after it
        self.assertEqual(head_start(pes, 0, 90000 + 2 * TICKS + TICKS // 2), (30 + 300, 90000 + 3 * TICKS))
        self.assertEqual(head_start(pes, 0, 90000 + 2 * TICKS + 50), (30 + 200, 90000 + 2 * TICKS))  # 50 ticks over: fine
        self.assertEqual(head_start(pes, 0, 90000 + 9 * TICKS), (-1, 0))  # all of it before the old sound's end
        partial = held(HEAD, prefix + frames[0][:50], length=200)
        self.assertIsNone(head_start(partial, 0, 90000 + 3 * TICKS))  # not known yet

    def test_a_sync_pattern_in_the_previous_frames_end_is_no_frame_while_more_is_to_come(self) -> None:
        """
        A PES that begins with the end of a frame the one before began (frames spread over PES)
        may hold an ADTS header's pattern there; read before the next frame's header has come,
        it would pass for a frame, and a new source's sound begun there tears a frame.
        """
        false = bytes([0xFF, 0xF1, 0x4C, 0x80, (500 >> 3) & 0xFF, ((500 & 7) << 5) | 0x1F, 0xFC])
        prefix = b"\x11" * 10 + false + b"\x11" * 13  # 30 bytes, a "frame" of 500 in them
        frames = [adts(100, k) for k in range(5)]
        partial = held(HEAD, prefix + frames[0][:50], length=600)
        self.assertIsNone(head_start(partial, 0, 90000))  # not known yet: not at byte 10
        self.assertIsNone(tail_keep(held(TAIL, prefix + frames[0][:50], length=600), 0, 90000 + TICKS))
        whole = held(HEAD, prefix + b"".join(frames))
        self.assertEqual(head_start(whole, 0, 90000), (30, 90000))

    def test_a_closing_sources_pes_keeps_the_end_of_the_last_frame_and_what_fits(self) -> None:
        frames = [adts(100, k) for k in range(4)]
        pes = held(TAIL, b"\x22" * 40 + b"".join(frames))
        self.assertEqual(tail_keep(pes, 0, 90000 + 2 * TICKS), (40 + 200, True, 2 * TICKS))
        self.assertEqual(tail_keep(pes, 0, 90000), (40, True, 0))  # only the bytes that finish a frame
        self.assertEqual(tail_keep(pes, 0, 90000 + 4 * TICKS), (40 + 400, False, 4 * TICKS))  # all: it goes on
        spread = held(TAIL, b"".join(frames) + frames[0][:60])  # ends inside a frame the next PES finishes
        self.assertEqual(tail_keep(spread, 0, 90000 + 9 * TICKS), (460, False, 5 * TICKS))
        self.assertEqual(tail_keep(spread, 0, 90000 + 4 * TICKS + 10), (400, True, 4 * TICKS))

    def test_the_rebuilt_pes_says_its_length_and_its_first_frames_time(self) -> None:
        frames = b"".join(adts(100, k) for k in range(3))
        pes = held(HEAD, b"\x33" * 20 + frames)
        out = pes_bytes(pes, slice(120, None), 5000, None, whole=True)
        self.assertEqual(out[:4], b"\x00\x00\x01\xc0")
        self.assertEqual(int.from_bytes(out[4:6], "big"), len(out) - 6)
        self.assertEqual(read_stamp(out, range(9, 14)), 5000)
        self.assertEqual(out[14:], frames[100:])
        only_the_end = pes_bytes(pes, slice(0, 20), None, None, whole=False)
        self.assertEqual(only_the_end, b"\x00\x00\x01\xc0\x00\x17\x80\x00\x00" + b"\x33" * 20)  # no PTS


def switched(names: list[str], seconds: float, cuts: int) -> bytes:
    """
    The splicer switching make-before-break between live loops of ``names`` every ``seconds``
    of media, ``cuts`` times, as a channel does: the new source is read on the side until its
    way in, the old one closes while the new one's bytes are held and foreseen.
    """
    chunk = 188 * 40
    splicer = ContinuousSplicer()
    loops = [realclips.seamless(realclips.load(name), seconds * (cuts + 2) + 10) for name in names]
    position = [0] * len(loops)
    out: list[bytes] = []
    now = 1000.0

    def step(k: int, size: int = chunk) -> bytes:
        nonlocal now
        data, rate = loops[k]
        piece = data[position[k]:position[k] + size]
        position[k] += len(piece)
        now += len(piece) / rate
        return piece

    def play(k: int, secs: float) -> None:
        end = position[k] + int(secs * loops[k][1]) // 188 * 188
        while position[k] < end:
            out.append(splicer.feed(step(k), now))

    play(0, seconds)
    for cut in range(1, cuts + 1):
        old, new = (cut - 1) % len(loops), cut % len(loops)
        position[new] = max(position[new], int(seconds * cut * loops[new][1]) // 188 * 188)
        finder, entry = splicer.finder(), None
        for _ in range(2000):
            entry = finder.feed(step(new))
            if entry is not None:
                break
            out.append(splicer.feed(step(old), now))
        assert entry is not None
        splicer.close(entry)
        held_back = b""
        for n in range(5000):
            if splicer.closed:
                break
            out.append(splicer.feed(step(old, 188), now))
            if n % 8 == 0:
                more = step(new, 188 * 4)
                held_back += more
                splicer.foresee(more)
        out.append(splicer.enter(entry, now))
        out.append(splicer.feed(held_back, now))
        play(new, seconds)
    splicer.close()  # the recording ends as at a switch: the last source's frames whole
    last = cuts % len(loops)
    for _ in range(5000):
        if splicer.closed:
            break
        out.append(splicer.feed(step(last, 188), now))
    return b"".join(out)


class RealSoundTests(SynchronousTestCase):
    def test_frames_spread_across_pes_stay_whole_at_every_cut(self) -> None:
        """Between a capture with one frame per PES and one that spreads them: not one frame torn."""
        ffmpeg = require("ffmpeg", "the test decodes the spliced sound")
        # aac44k's only key frame is its first: a loop of it is entered every 10 s
        output = switched(["rollover-h264-aac48k.ts", "aac44k-h264-720p2997.ts"], 10.0, 3)
        sound = elementary(output, 0x101)
        at, whole = first_frame("aac", sound), 0
        self.assertEqual(at, 0)
        for offset, frame in frames_in("aac", sound, 0):
            whole = offset + frame.size
        self.assertEqual(whole, len(sound), f"a torn frame at byte {whole}")
        decoded = subprocess.run([ffmpeg, "-v", "error", "-i", "-", "-map", "0:a", "-f", "null", "-"],
                                 input=output, capture_output=True, timeout=120)
        self.assertEqual(decoded.stderr.decode(errors="replace"), "")

    def test_several_frames_per_pes_leave_a_gap_under_one_frame(self) -> None:
        """hevc-aac44k-30.ts carries three frames per PES: each cut leaves under a frame of silence."""
        output = switched(["hevc-aac44k-30.ts", "hevc-aac44k-30.ts"], 2.0, 4)
        spans = []  # each audio PES with a PTS: (its start, its end), from the frames that start in it
        for pts, payload in audio_pes(output, 0x101):
            at = first_frame("aac", payload)
            if pts is None or at < 0:
                continue
            ticks = 0.0
            while at < len(payload):
                frame = frame_at("aac", payload, at)
                if frame is None:
                    break
                ticks += frame.ticks
                at += frame.size
            spans.append((pts, pts + round(ticks)))
        gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]
        self.assertGreater(len(gaps), 20)
        self.assertLessEqual(max(gaps), 90000 * 1024 // 44100, gaps)  # one frame at most
        self.assertGreaterEqual(min(gaps), -90, gaps)  # and no overlap (a tick's rounding aside)


def audio_pes(data: bytes, pid: int) -> list[tuple[int | None, bytes]]:
    """Each PES of ``pid``: its PTS (None without one) and its payload."""
    return [(read_stamp(x, range(9, 14)) if x[7] & 0x80 else None, bytes(x[9 + x[8]:]))
            for x in pes_units(data, pid)]
