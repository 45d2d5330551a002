"""
Sound at a cut (SPEC §7.1): the old source's sound runs on to where the new source's begins,
and both are cut at whole audio frames, so no frame is split or joined across sources and the
gap left is under one frame.

Some muxers put several frames in one PES, and some spread frames across PES (a PES ends in
the middle of a frame its successor finishes): cutting at PES boundaries would tear a frame
or leave a gap of a whole PES (0.7 s on one real capture). For the codecs
``epgd.mpegts.audioframes`` reads, an audio PES at a cut is held (``Held``) and goes out cut
at frames:

* the closing source's (``TAIL``): the bytes that finish the frame its last PES began, then
  the whole frames that end by the time the next source's sound begins (``sound_until``);
* the new source's first (``HEAD``): from its first whole frame that does not begin before
  the old sound ended, its PTS moved on to that frame.

A held PES goes out as our packets (its header rewritten, stuffing in its last packet); the
rest of a head PES follows as the source sends it. Other codecs are cut at whole PES.
``SoundEnds`` is the part of ``Rewriter`` that does this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from epgd.mpegts.audioframes import FRAMED, first_frame
from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.pes import HEADER_NEEDED, WRAP, read_stamp, ring_diff, stamp_fields
from epgd.mpegts.psi import payload_start
from epgd.mpegts.splice.heldpes import (
    FRAME_LOOKS,
    HEAD,
    MAX_HELD,
    TAIL,
    Held,
    head_start,
    held_pes,
    packets,
    pes_bytes,
    tail_keep,
)
from epgd.mpegts.splice.layout import OUT_VIDEO, slot_of
from epgd.mpegts.splice.timeline import SOUND_OVERLAP
from epgd.mpegts.splice.verdict import GONE, STOP, Verdict

if TYPE_CHECKING:
    from epgd.mpegts.psi import Stream
    from epgd.mpegts.splice.layout import Layout
    from epgd.mpegts.splice.timeline import Timeline

class SoundEnds:
    """The sound of a ``Rewriter``'s source at cuts: where it ends, where it begins."""

    timeline: Timeline
    layout: Layout
    kinds: dict[int, Stream]
    started: set[int]
    delta: dict[int, int]
    cc: dict[int, int]
    closing: bool
    pes_left: dict[int, int]
    pes_at: dict[int, int]
    sound_lead: int
    sound_from: int | None
    held: dict[int, Held]
    frames_seen: set[int]
    frame_misses: dict[int, int]
    unframed: set[int]
    extra: list[bytes]

    def build_table(self) -> None: ...

    # -- where the sound ends --------------------------------------------------------

    def close(self, sound_lead: int | None = None, shown: int | None = None) -> bool:
        """
        The source is to end as soon as its video has finished its frame under way and its
        sound its PES, lasting until the next source's sound begins: that is ``sound_lead``
        ticks (``Entry.sound_lead``; unknown: 0) after the next source's first picture, which
        is shown at ``shown`` (output time, ``Timeline.foresee``; unknown: as this source's
        last picture stops being shown). Its sound leaves the fast path so each packet is
        counted. True when it is over already (nothing under way to finish).
        """
        self.closing = True
        self.sound_lead = sound_lead or 0
        self.sound_from = shown
        for src in list(self.started):
            stream = self.kinds.get(src)
            if stream is not None and stream.kind == "audio" and self.sound_done(self.layout.mapping[src]):
                self.started.discard(src)
        self.build_table()
        return not self.awaited()

    def framed(self, src: int) -> bool:
        """Whether ``src``'s sound is cut at whole frames here (else at whole PES): its frames were seen."""
        return src in self.frames_seen and src not in self.unframed and self.layout.video >= 0

    def look_for_frames(self, data: bytes, p: int, src: int) -> None:
        """
        An audio PES of ``src`` that goes out as usual: whether its first packet shows frames
        of its codec (``framed``); a stream that shows none in its first PES is cut at whole PES.
        """
        stream = self.kinds.get(src)
        if stream is None or stream.kind != "audio" or src in self.frames_seen or src in self.unframed:
            return
        start = payload_start(data, p)
        if stream.codec not in FRAMED or start < 0 or start + 9 > PACKET_SIZE:
            self.unframed.add(src)
            return
        q = p + start
        if first_frame(stream.codec, data[q + 9 + data[q + 8]:p + PACKET_SIZE]) >= 0:
            self.frames_seen.add(src)
            return
        # its first packet may hold only the end of a frame the PES before began: look again
        self.frame_misses[src] = misses = self.frame_misses.get(src, 0) + 1
        if misses >= FRAME_LOOKS:
            self.unframed.add(src)

    def sound_done(self, out: int) -> bool:
        """
        A closing source's audio on ``out`` has ended whole, and one more PES of it would run
        past where the next source's sound begins (``sound_until``). Sound cut at frames is
        done only once its next PES has begun (``TAIL``): its first bytes may finish the last
        frame (some muxers spread frames across PES), and it may have frames still to go.
        """
        if self.pes_left.get(out, 1) > 0:
            return False
        if any(self.layout.mapping.get(src) == out and self.framed(src) for src in self.kinds):
            return False
        slot = slot_of(out)
        end, until = self.timeline.shown_until(slot), self.sound_until()
        return end is None or until is None or ring_diff(end + self.timeline.span(slot), until) > SOUND_OVERLAP

    def sound_until(self) -> int | None:
        """Where a closing source's sound must end (output time): the next source's sound begins."""
        picture = self.timeline.shown_until(OUT_VIDEO) if self.layout.video >= 0 else None
        if picture is None:
            return None
        shown = self.sound_from
        if shown is None or ring_diff(shown, picture) < 0:
            shown = picture
        return (shown + self.sound_lead) % WRAP

    def awaited(self) -> bool:
        """A closing source still has a video or audio PES to finish."""
        kinds = self.kinds
        return any(pid in self.started for pid in kinds if kinds[pid].kind in ("video", "audio"))

    def count_pes(self, data: bytes, p: int, i: int, out: int, unit_start: bool) -> bool:
        """
        Follow an audio stream's bounded PES through packet ``p`` (``i`` in the chunk, off the
        fast path); True when, in a closing source, this packet completes it.
        """
        start = payload_start(data, p)
        if start < 0:
            return False
        size = PACKET_SIZE - start
        if unit_start:
            q = p + start
            length = (data[q + 4] << 8) | data[q + 5] if data[q:q + 3] == b"\x00\x00\x01" else 0
            stream = self.kinds.get(((data[p + 1] & 0x1F) << 8) | data[p + 2])
            if not length or stream is None or stream.kind != "audio":
                self.pes_left.pop(out, None)
                return False
            self.pes_left[out] = length + 6 - size
            self.pes_at[out] = i
        elif out in self.pes_left:
            self.pes_left[out] -= size
        else:
            return False
        return self.closing and self.sound_done(out)

    def sound_needed(self, data: bytes, p: int, src: int, out: int) -> bool:
        """
        A closing source's audio PES that ends by the time the next source's sound begins
        (``sound_until``: as its last picture stops being shown, give or take how the next
        source muxes its sound): it goes out, whole, so the cut leaves a gap of less than one
        PES and no overlap (with B-frames the last pictures are shown well after their sound
        was sent).
        """
        stream = self.kinds.get(src)
        if stream is None or stream.kind != "audio" or self.layout.video < 0:
            return False
        until = self.sound_until()
        start = payload_start(data, p)
        if until is None or start < 0 or p + start + HEADER_NEEDED > len(data):
            return False
        at = range(p + start, p + start + HEADER_NEEDED)
        fields = stamp_fields(data, at)
        if fields is None or fields[0] < 0:
            return False
        pts = (read_stamp(data, at[fields[0]:fields[0] + 5]) + self.timeline.ts_offset) % WRAP
        span = self.timeline.span(slot_of(out))
        return ring_diff(pts + span, until) <= SOUND_OVERLAP if span else ring_diff(pts, until) < 0

    def end_stream(self, src: int) -> Verdict:
        """
        A closing source's stream starts a new PES: its last one went out whole, this one
        does not. The source ends (STOP) once its video and sound have each ended so: no
        frame is cut short or joined to the next source's (the channel waits 1 s at most).
        """
        self.held.pop(src, None)
        if src in self.started:
            self.started.discard(src)
            self.build_table()  # the rest of that PES leaves the fast path, to be dropped
        return GONE if self.awaited() else STOP

    # -- held PES --------------------------------------------------------------------

    def holds(self, data: bytes, p: int, src: int, out: int, unit_start: bool) -> str | None:
        """
        Whether this packet (of a PES start, ``unit_start``) begins a held PES: a closing
        source's (``TAIL``), or a new source's first after a cut (``HEAD``); None: it goes on
        as usual.
        """
        if not unit_start or not self.framed(src):
            return None
        if self.closing:
            return TAIL if src in self.started else None
        clock = self.timeline
        if src in self.started or clock.pending or clock.shown_until(slot_of(out)) is None:
            return None
        return HEAD if slot_of(out) in clock.guarded else None

    def hold(self, data: bytes, p: int, src: int, out: int, kind: str | None) -> Verdict:
        """
        Hold packet ``p`` of ``src``'s PES (a new one when ``kind``); what is held goes out
        (``extra``) as soon as it is known how to cut it. GONE (the packet itself never goes
        out as it is), or STOP when that ended the closing source.
        """
        held = self.held.get(src)
        if kind is not None:
            if held is not None and held.kind == TAIL:
                verdict = self._tail_done(src, out, held, final=True)
                if src not in self.started:
                    return verdict
            stream = self.kinds[src]
            held = held_pes(data, p, kind, stream.codec)
            if held is None:
                self.unframed.add(src)  # a header it cannot read: cut at whole PES
                self.held.pop(src, None)
                return GONE if kind == HEAD else self.end_stream(src)
            self.held[src] = held
        else:
            assert held is not None
            start = payload_start(data, p)
            if start >= 0:
                held.payload += data[p + start:p + PACKET_SIZE]
        if len(held.payload) > MAX_HELD:
            self.unframed.add(src)
        if held.kind == HEAD:
            return self._head(src, out, held)
        return self._tail_done(src, out, held, final=False)

    def _head(self, src: int, out: int, held: Held) -> Verdict:
        clock = self.timeline
        old_end = clock.shown_until(slot_of(out))
        found = head_start(held, clock.ts_offset, old_end) if old_end is not None else (-1, 0)
        if found is None and src not in self.unframed:
            return GONE  # more of it is needed
        if (found is None or found[0] < 0) and first_frame(held.codec, held.payload) < 0:
            return self._head_whole(src, out, held)  # no frame in a whole PES: cut at whole PES
        if found is None or found[0] < 0:
            del self.held[src]  # nothing of it may go out: the next PES is the first
            return GONE
        at, pts = found
        dts = held.dts + (pts - held.pts) if held.dts is not None and held.pts is not None else None
        new_dts = clock.stamp(slot_of(out), dts if dts is not None else pts, pts)
        del self.held[src]
        if new_dts is None:
            return GONE
        pes = pes_bytes(held, slice(at, None), (pts + clock.ts_offset) % WRAP,
                        new_dts if dts is not None else None, whole=True)
        self._send(src, out, pes)
        self.started.add(src)
        if held.length:
            self.pes_left[out] = held.length + 6 - len(held.header) - len(held.payload)
        self.build_table()
        return GONE

    def _tail_done(self, src: int, out: int, held: Held, final: bool) -> Verdict:
        """
        A closing source's held PES, once it is known what of it goes out (``final``: nothing
        more of it comes); the sound ends there when it must.
        """
        clock = self.timeline
        until = self.sound_until()
        keep = tail_keep(held, clock.ts_offset, until)
        if keep is None and (final or held.complete) and first_frame(held.codec, held.payload) < 0:
            return self._tail_whole(src, out, held, until)  # no frame in it: cut at whole PES
        if keep is None and final:
            keep = (len(held.payload), True, 0)
        if keep is None:
            return GONE
        size, ends, ticks = keep
        del self.held[src]
        first = first_frame(held.codec, held.payload)
        starts_frame = 0 <= first < size
        if size:
            pts = dts = None
            if starts_frame and held.pts is not None:
                pts = (held.pts + clock.ts_offset) % WRAP
                stamped = clock.stamp(slot_of(out), (held.dts if held.dts is not None else held.pts), held.pts)
                dts = stamped if held.dts is not None else None
                if ticks:
                    clock.sound_sent(slot_of(out), ticks)
            self._send(src, out, pes_bytes(held, slice(0, size), pts, dts, whole=False))
        if ends or final:
            return self.end_stream(src)
        return GONE

    def _tail_whole(self, src: int, out: int, held: Held, until: int | None) -> Verdict:
        """A closing source's held PES with no frame to be found: all of it, or none, as at whole PES."""
        del self.held[src]
        self.unframed.add(src)
        clock = self.timeline
        if held.pts is None or until is None:
            return self.end_stream(src)
        start = (held.pts + clock.ts_offset) % WRAP
        span = clock.span(slot_of(out))
        if not (ring_diff(start + span, until) <= SOUND_OVERLAP if span else ring_diff(start, until) < 0):
            return self.end_stream(src)
        dts = clock.stamp(slot_of(out), held.dts if held.dts is not None else held.pts, held.pts)
        self._send(src, out, pes_bytes(held, slice(None), start, dts if held.dts is not None else None, False))
        return GONE

    def _head_whole(self, src: int, out: int, held: Held) -> Verdict:
        """A new source's held first PES with no frame to be found: all of it, unless it overlaps the old sound."""
        del self.held[src]
        self.unframed.add(src)
        clock = self.timeline
        if held.pts is None:
            return GONE
        new_dts = clock.stamp(slot_of(out), held.dts if held.dts is not None else held.pts, held.pts)
        if new_dts is None:
            return GONE  # it would begin before the old sound ended
        pes = pes_bytes(held, slice(None), (held.pts + clock.ts_offset) % WRAP,
                        new_dts if held.dts is not None else None, whole=True)
        self._send(src, out, pes)
        self.started.add(src)
        if held.length:
            self.pes_left[out] = held.length + 6 - len(held.header) - len(held.payload)
        self.build_table()
        return GONE

    def _send(self, src: int, out: int, pes: bytes) -> None:
        """Our packets of ``pes`` on ``out``, before the packet being read; the source's next ones follow their counter."""
        data, counter = packets(out, pes, self.cc.get(out, 15))
        self.cc[out] = counter
        self.delta.pop(src, None)  # the source's next packet continues from our last
        self.extra.append(data)
