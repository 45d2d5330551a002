"""
The one clock of a splicer's output (SPEC §7.1): at each cut the new source's PCR, PTS and
DTS are shifted so they continue the output's timeline (modulo 2^33), and a source's own clock
jumping is noticed so the splicer can re-enter it. Pure arithmetic on 90 kHz ticks and the
wall-clock times it is given.
"""

from __future__ import annotations

from epgd.mpegts.pes import HALF, WRAP, ring_diff

#: a frame when nothing better is known (25 fps), and the range frame estimates are kept in
DEFAULT_FRAME = 3600
FRAME_RANGE = (300, 9000)
#: how far ahead of its PCR a source carries its frames, when the splicer cannot tell
DEFAULT_LEAD = 45000
#: a wait at a cut shorter than this (seconds) does not move the output's clock on (``_waited``)
ABSORBED = 0.75
#: two sources' sound may overlap this much at a cut (ticks, 1 ms): their clocks rarely meet
#: to the tick, and refusing a PES for a tick's overlap would leave a PES-long gap instead
SOUND_OVERLAP = 90
#: a source's own clock jumped (it looped a file, its encoder restarted) when its PCR steps
#: back or leaps ahead this far, or a stream's decode timestamps do
PCR_JUMP = (-9000, 2 * 90000)
TS_JUMP = (-9000, 10 * 90000)


class Timeline:
    """The output's clock across cuts: the current shifts and what went out last."""

    def __init__(self) -> None:
        self.ts_offset = 0  # added to the current source's PTS/DTS
        self.pcr_offset = 0  # ... and to its PCR (and OPCR)
        self.pending = False  # the shifts wait for the new source's first anchor frame
        self._pcr_pending = False  # the PCR's shift waits for its first PCR that goes out
        self._frame_now = DEFAULT_FRAME
        self._entry_pcr: int | None = None
        self.last_pcr: int | None = None  # the output's last PCR base ...
        self._last_pcr_at = 0.0  # ... and when it went out
        self._placed_wait = 0  # the wait a new source's frames were placed after (90 kHz ticks)
        self._last_ts: dict[int, int] = {}  # output PID -> its last decode timestamp
        self._top: dict[int, int] = {}  # output PID -> the latest presentation time it sent
        self._leading: dict[int, int] = {}  # output PID -> the entry's PTS, while pictures before it may come
        self._frame: dict[int, int] = {}  # output PID -> its frame: its shortest step in its source
        self._steps: dict[int, int] = {}  # ... that shortest step, in the current source
        self._learning: set[int] = set()  # output PIDs whose steps in the current source are frames
        self._span: dict[int, int] = {}  # output PID -> how long its last PES lasted
        self._guard: set[int] = set()  # output PIDs whose first PES after a cut is checked
        # the current source's own clock, to notice it jumping
        self._src_pcr: int | None = None
        self._src_ts: dict[int, int] = {}

    # -- cuts ------------------------------------------------------------------------

    def cut(self, entry_pcr: int | None, anchor: int) -> None:
        """A new source starts with its anchor stream (output PID ``anchor``)."""
        self.pending = self.last_pcr is not None or bool(self._last_ts)
        self._pcr_pending = False
        self._entry_pcr = entry_pcr
        self._guard = set(self._last_ts) - {anchor}
        self._src_pcr = None
        self._src_ts = {}
        self._steps = {}  # the new source's frames are learned afresh (the old ones place it),
        self._learning = set()  # ... from its second PES on: a step across the cut is no frame

    def place(self, dts: int, pcr: int | None, out: int, now: float, pts: int | None = None) -> None:
        """
        The new source's first anchor frame (decode time ``dts``, presentation time ``pts``,
        its PCR then if known) sets the shift. Its first frame comes at least a frame after
        the last one out, in decoding and in display (a source with B-frames shows frames
        after the one it sent last); beyond that, no later than keeping the output's PCR in
        real time and the frames as far ahead of it as they were (at least ``MIN_LEAD``)
        needs: a wait moves the clock on, and a new source that carries its frames much
        further ahead of its PCR does not open a gap that long. The PCR then continues in
        real time, or up to a frame beyond it when the frames must come later still (see
        ``_place_pcr``): neither goes backwards and the PCR never leaps ahead.
        """
        self.pending = False
        shift = self._shift(dts, pcr if pcr is not None else self._entry_pcr, out, now, pts)
        # the PCR moves on by the wait the frames did, however late the new source's first
        # PCR goes out (a PCR on a PID of its own, a burst read at once): else it runs ahead
        # of the frames and every one of them reaches the decoder late
        self._placed_wait = self._waited(now)
        self.ts_offset = self.pcr_offset = shift
        self._frame_now = self._frame.get(out, DEFAULT_FRAME)
        self._pcr_pending = self.last_pcr is not None
        if pts is not None:
            self._leading[out] = (pts + shift) % WRAP

    def foresee(self, dts: int, pcr: int | None, out: int, pts: int) -> int:
        """Where a new source's first frame would be shown (output PTS), placed with no wait."""
        return (pts + self._shift(dts, pcr, out, self._last_pcr_at, pts)) % WRAP

    def _shift(self, dts: int, pcr: int | None, out: int, now: float, pts: int | None) -> int:
        """``place``'s shift, from the output's state now (nothing changes)."""
        frame = self._frame.get(out, DEFAULT_FRAME)
        last = self._last_ts.get(out)
        old_lead = DEFAULT_LEAD
        last_pcr = self.last_pcr
        if last is not None and last_pcr is not None:
            # how far the old source's frames ran ahead of its clock; where the anchor's own
            # stamp is behind the clock (stale: the source before had no video), the frames
            # sent last say it
            ahead = ring_diff(last, last_pcr)
            if ahead < 0:
                ahead = max(ring_diff(ts, last_pcr) for ts in self._last_ts.values())
            old_lead = min(max(ahead, 0), 2 * 90000)
        if pcr is None:
            pcr = (dts - old_lead) % WRAP
        lead = min(max(ring_diff(dts, pcr), 0), 2 * 90000)
        need = None
        if last is not None:
            need = (last + frame - dts) % WRAP
        top = self._top.get(out)
        if top is not None and pts is not None:
            shown = (top + frame - pts) % WRAP  # displayed after the last picture shown
            need = shown if need is None or ring_diff(shown, need) > 0 else need
        if self.last_pcr is None:
            shift = need if need is not None else 0
        else:
            waited = self._waited(now)
            real = (self.last_pcr + waited - pcr) % WRAP
            floor = (real - lead + min(lead, max(old_lead, frame))) % WRAP
            shift = floor if need is None or ring_diff(need, floor) <= 0 else need
        return shift

    def _waited(self, now: float) -> int:
        """
        The wall time since the output's last PCR that a cut moves the clock on by, in 90 kHz
        ticks: none below ``ABSORBED``. A make-before-break switch spends a little (the old
        source finishing its frame and sound, a PCR interval of up to 0.1 s) that its own
        sound covers; moving the pictures on by it would only show as a stall. A real wait (a
        reconnection, break-before-make) moves the clock on in full.
        """
        waited = now - self._last_pcr_at
        return round(waited * 90000) if waited >= ABSORBED else 0

    def _place_pcr(self, source: int) -> None:
        """
        The PCR's shift, at the first PCR of a new source that goes out (which may come some
        packets after its way in): the frames' shift, kept between real time (the last PCR
        moved on by the wait the frames were placed after: the PCR never goes back, nor
        skips a wait) and real time plus a frame (it never leaps ahead). It moves on by a tick at least: only the 90 kHz base is shifted, the
        27 MHz extension stays the source's, so a PCR placed on the last one's base would go
        back by the difference of their extensions (GStreamer reads that as a new clock).
        """
        self._pcr_pending = False
        assert self.last_pcr is not None
        waited = self._placed_wait
        real = (self.last_pcr + waited - source) % WRAP
        floor = (self.last_pcr + max(waited, 1) - source) % WRAP
        if ring_diff(self.ts_offset, floor) < 0:
            self.pcr_offset = floor
        elif ring_diff(self.ts_offset, real) > self._frame_now:
            self.pcr_offset = (real + self._frame_now) % WRAP

    # -- the source's clock ----------------------------------------------------------

    def pcr_jumped(self, source: int, discontinuity: bool) -> bool:
        """The source's PCR (``source``, on its PCR PID) steps back or leaps ahead."""
        if self._src_pcr is None:
            return False
        step = ring_diff(source, self._src_pcr)
        return not PCR_JUMP[0] <= step <= PCR_JUMP[1] or discontinuity

    def ts_jumped(self, src: int, dts: int) -> bool:
        """Source PID ``src``'s decode timestamp steps back or leaps ahead; remembers it."""
        last = self._src_ts.get(src)
        if last is not None and not TS_JUMP[0] <= ring_diff(dts, last) <= TS_JUMP[1]:
            return True
        self._src_ts[src] = dts
        return False

    # -- what goes out ---------------------------------------------------------------

    def pcr(self, source: int, now: float, on_pcr_pid: bool) -> int:
        """The output PCR base for a source PCR; the PCR PID's is the clock's reference."""
        if on_pcr_pid:
            self._src_pcr = source
            if self._pcr_pending:
                self._place_pcr(source)
        base = (source + self.pcr_offset) % WRAP
        if on_pcr_pid:
            self.last_pcr, self._last_pcr_at = base, now
        return base

    def shown_until(self, out: int) -> int | None:
        """When what output PID ``out`` sent last stops being shown (its latest PTS plus a frame
        for video, plus its last PES's length for sound); None when it sent nothing."""
        top = self._top.get(out)
        if top is None:
            return None
        return (top + self._frame.get(out, DEFAULT_FRAME) if out == 0x100 else top + self._span.get(out, 0)) % WRAP

    @property
    def guarded(self) -> set[int]:
        """Output PIDs whose first PES after the cut is still to come (and is checked)."""
        return self._guard

    def sound_sent(self, out: int, ticks: int) -> None:
        """The PES ``out`` sent last lasts ``ticks`` (a closing source's, cut at whole frames)."""
        self._span[out] = ticks

    def span(self, out: int) -> int:
        """How long output PID ``out``'s last PES lasted (its step from the one before); 0: unknown."""
        return self._span.get(out, 0)

    def settled(self, out: int) -> bool:
        """
        A PES of output PID ``out`` is stamped by the shift alone now (``stamp`` drops none):
        no cut's first frame, first PES or leading pictures are still to come.
        """
        return not self.pending and out not in self._guard and out not in self._leading

    def source_ts(self, src: int) -> int | None:
        """Source PID ``src``'s last decode timestamp, as ``ts_jumped`` compares the next one with."""
        return self._src_ts.get(src)

    def stamped(self, src: int, out: int, stamps: list[int]) -> None:
        """
        What ``ts_jumped`` and ``stamp`` leave after a run of PES of source PID ``src`` on
        output PID ``out``, taken while ``settled(out)`` and none jumped: ``stamps`` is their
        source times, [dts, pts, dts, pts, ...]. One pass, for the hot path's steady state.
        """
        offset = self.ts_offset
        last = self._last_ts.get(out)
        top = self._top.get(out)
        learning = out in self._learning
        shortest = self._steps.get(out)
        span = learned = None
        for k in range(0, len(stamps), 2):
            new = (stamps[k] + offset) % WRAP
            if last is not None:
                if learning:
                    step = (new - last) % WRAP
                    if FRAME_RANGE[0] <= step <= FRAME_RANGE[1] and (shortest is None or step < shortest):
                        shortest = learned = step
                    if 0 < step <= 2 * 90000:
                        span = step
                learning = True
            last = new
            shown = (stamps[k + 1] + offset) % WRAP
            if top is None or 0 < (shown - top) % WRAP <= HALF:
                top = shown
        if learning:
            self._learning.add(out)
        if learned is not None:
            self._steps[out] = self._frame[out] = learned
        if span is not None:
            self._span[out] = span
        if last is not None:
            self._last_ts[out] = last
        if top is not None:
            self._top[out] = top
        self._src_ts[src] = stamps[-2]

    def stamp(self, out: int, dts: int, pts: int | None = None) -> int | None:
        """
        The output decode timestamp for a PES of output PID ``out`` (presentation time ``pts``,
        when known); None to drop it: a stream's first PES after a cut that would start before
        the old stream's last one ended (a PES of audio holds several frames) or be shown at or
        before a picture already shown; a picture the new source shows before its entry frame
        (an open GOP's leading B-frames, which need the GOP before it).
        """
        new = (dts + self.ts_offset) % WRAP
        shown = (pts + self.ts_offset) % WRAP if pts is not None else new
        last = self._last_ts.get(out)
        if out in self._guard:
            top = self._top.get(out)
            if last is not None and ring_diff(new, last) < max(1, self._span.get(out, 1) - SOUND_OVERLAP):
                return None
            if top is not None and ring_diff(shown, top) <= 0:
                return None
            self._guard.discard(out)
        entry = self._leading.get(out)
        if entry is not None:
            if ring_diff(shown, entry) < 0:
                return None  # a leading picture: its references went with the old GOP
            if ring_diff(shown, entry) > 0:
                del self._leading[out]  # past the entry frame in display order: no more come
        if last is not None:
            step = ring_diff(new, last)
            if out not in self._learning:
                self._learning.add(out)
            else:
                if FRAME_RANGE[0] <= step <= FRAME_RANGE[1]:
                    # the shortest step: a PES lost or dropped makes one step two frames long
                    shortest = min(step, self._steps.get(out, step))
                    self._steps[out] = self._frame[out] = shortest
                if 0 < step <= 2 * 90000:
                    self._span[out] = step
        self._last_ts[out] = new
        top = self._top.get(out)
        if top is None or ring_diff(shown, top) > 0:
            self._top[out] = shown
        return new
