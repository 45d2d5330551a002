"""
The one clock of a splicer's output (SPEC §7.1): at each cut the new source's PCR, PTS and
DTS are shifted so they continue the output's timeline (modulo 2^33), and a source's own clock
jumping is noticed so the splicer can re-enter it. Pure arithmetic on 90 kHz ticks and the
wall-clock times it is given.
"""

from __future__ import annotations

from epgd.mpegts.pes import WRAP, ring_diff

#: a frame when nothing better is known (25 fps), and the range frame estimates are kept in
DEFAULT_FRAME = 3600
FRAME_RANGE = (300, 9000)
#: how far ahead of its PCR a source carries its frames, when the splicer cannot tell
DEFAULT_LEAD = 45000
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
        self._last_ts: dict[int, int] = {}  # output PID -> its last decode timestamp
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

    def place(self, dts: int, pcr: int | None, out: int, now: float) -> None:
        """
        The new source's first anchor frame (decode time ``dts``, its PCR then if known) sets
        the shift: its PCR continues the output's last one in real time, and its first frame
        comes at least one frame after the last one out. When those disagree (the new source
        carries its frames closer to its clock than the old one did) the frames win; the PCR
        then takes at most one frame more than real time (see ``_place_pcr``), so neither
        goes backwards and the PCR never leaps ahead.
        """
        self.pending = False
        frame = self._frame.get(out, DEFAULT_FRAME)
        last = self._last_ts.get(out)
        if pcr is None:
            pcr = self._entry_pcr
        if pcr is None:
            lead = DEFAULT_LEAD
            if last is not None and self.last_pcr is not None:
                lead = min(max(ring_diff(last, self.last_pcr), 0), 2 * 90000)
            pcr = (dts - lead) % WRAP
        real = None
        if self.last_pcr is not None:
            waited = max(0, round((now - self._last_pcr_at) * 90000))
            real = (self.last_pcr + waited - pcr) % WRAP
        need = (last + frame - dts) % WRAP if last is not None else None
        if real is None:
            shift = need if need is not None else 0
        elif need is None or ring_diff(need, real) <= 0:
            shift = real
        else:
            shift = need
        self.ts_offset = self.pcr_offset = shift
        self._frame_now = frame
        self._pcr_pending = self.last_pcr is not None

    def _place_pcr(self, source: int, now: float) -> None:
        """
        The PCR's shift, at the first PCR of a new source that goes out (which may come some
        packets after its way in): the frames' shift, unless that would take the PCR more
        than a frame past the wall clock; then real time plus a frame.
        """
        self._pcr_pending = False
        assert self.last_pcr is not None
        waited = max(0, round((now - self._last_pcr_at) * 90000))
        real = (self.last_pcr + waited - source) % WRAP
        if ring_diff(self.ts_offset, real) > self._frame_now:
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
                self._place_pcr(source, now)
        base = (source + self.pcr_offset) % WRAP
        if on_pcr_pid:
            self.last_pcr, self._last_pcr_at = base, now
        return base

    def stamp(self, out: int, dts: int) -> int | None:
        """
        The output decode timestamp for a PES of output PID ``out``; None when it is the first
        PES of its stream after a cut and would start before the old stream's last one ended
        (a PES of audio holds several frames): drop it and take the next.
        """
        new = (dts + self.ts_offset) % WRAP
        last = self._last_ts.get(out)
        if out in self._guard:
            if last is not None and ring_diff(new, last) < max(1, self._span.get(out, 1)):
                return None
            self._guard.discard(out)
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
        return new
