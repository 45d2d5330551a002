"""
One splicer per channel: whatever sources a channel cuts between, its clients receive ONE
unbroken program (SPEC §7.1) — the FFmpeg inside Plex, Jellyfin, Emby and Channels DVR keeps
only the streams it probed first and copies timestamps as they come, so a raw splice makes it
lose the picture or break its timeline.

The splicer reads each source (its PAT and PMT, its way in, its own clock jumping) and writes
the output: the layout and our PAT/PMT (``layout.OutputProgram``), a continuity counter per
output PID that runs on across cuts, and one clock (``timeline.Timeline``). It is a pure
function of its input bytes, the wall-clock times it is given and its state: no reactor, no
I/O, no logging (notes are collected for the channel to log once).

This module is the seam a channel holds (``seam.Splicer``): cuts, the search for each
source's way in, re-entry when a source's own clock jumps, and where joiners may start. The
rewriting itself is ``rewrite.Rewriter`` (the current source's mapping and the handlers for
packets off the fast path) driven over each chunk by ``chunk.rewrite`` (the hot path).
"""

from __future__ import annotations

from collections.abc import Callable

from epgd.mpegts.entry import MAX_SOUND_LEAD, Entry, EntryFinder, entry_clock, next_pts
from epgd.mpegts.pes import ring_diff
from epgd.mpegts.splice.chunk import ChunkOutput, rewrite
from epgd.mpegts.splice.layout import OUT_AUDIO, OUT_OTHER, OUT_PCR_ONLY, OUT_PMT, OUT_VIDEO, OutputProgram
from epgd.mpegts.splice.rewrite import Rewriter, Verdict

__all__ = ["OUT_AUDIO", "OUT_OTHER", "OUT_PCR_ONLY", "OUT_PMT", "OUT_VIDEO", "ContinuousSplicer"]


class ContinuousSplicer:
    """
    The output program of one channel. ``cut()`` (or ``enter()`` with an entry found on the
    side) whenever the next bytes come from another source or the same one anew; ``feed()``
    the current source's aligned packets. ``entry`` is where, in the last output, a joining
    client may start (a PAT + PMT right before a random-access point), or -1.
    """

    def __init__(self, on_codecs: Callable[[str, str], None] | None = None, pid_per_codec: bool = False) -> None:
        """``pid_per_codec``: a codec change puts the new codec on a PID of its own (see layout)."""
        self.entry = -1
        self.first_entry = -1  # ... and where the first one is, for viewers waiting for one
        self.notes: list[str] = []  # things worth one log line, for the channel to drain
        self._noted: set[str] = set()
        self.closed = False
        self._out = OutputProgram(on_codecs, pid_per_codec)
        self._rewriter = Rewriter(self._out, self._note)
        self._finder: EntryFinder | None = EntryFinder()  # looking for the current source's way in
        self._held = b""  # a packet whose PES header the next chunk completes, and what follows
        #: while closing: the upcoming source's entry frame PTS and sound PID, its sound's start unread
        self._foresee: tuple[int, int] | None = None
        self._resync_rest = b""  # input still to read after the source's clock jumped

    @property
    def codecs(self) -> str:
        """The output's streams as its PMT declares them: ``h264+aac``."""
        return self._out.codecs

    @property
    def on_codecs(self) -> Callable[[str, str], None] | None:
        return self._out.on_codecs

    @on_codecs.setter
    def on_codecs(self, callback: Callable[[str, str], None] | None) -> None:
        self._out.on_codecs = callback

    # -- cuts ------------------------------------------------------------------------

    def close(self, upcoming: Entry | None = None) -> None:
        """
        A switch is ready: the current source ends at its next frame boundary, so its last
        frame reaches the decoder whole, and once each of its audio streams has sent the
        rest of its PES under way, so no audio frame is cut; its sound runs on to where the
        ``upcoming`` source's begins, when known (a gap of less than a PES at the cut).
        ``closed`` turns true once it has (at once when nothing is flowing); what the source
        sends after that is dropped.
        """
        self._foresee = None
        rw = self._rewriter
        if self._finder is not None or rw.program is None:
            rw.closing = self.closed = True
            return
        program = upcoming.program if upcoming is not None else None
        video = program is not None and program.video is not None and program.anchor is program.video
        first = entry_clock(upcoming) if upcoming is not None and video else None
        shown = rw.timeline.foresee(first[1], first[2], OUT_VIDEO, first[0]) if first is not None else None
        if rw.close(upcoming.sound_lead if upcoming is not None else None, shown):
            self.closed = True
        elif upcoming and program and first and program.sound_pid >= 0 \
                and next_pts(upcoming.data, 0, program.sound_pid) is None:
            self._foresee = (first[0], program.sound_pid)  # its sound's start is still to come

    def foresee(self, data: bytes) -> None:
        """
        More of the upcoming source, while the current one closes: once its first audio PES
        after the entry shows, the current sound ends where that one begins (not where it was
        foreseen from the steps before the entry, or guessed).
        """
        foresee = self._foresee
        if foresee is None or self.closed:
            return
        shown, pid = foresee
        after = next_pts(data, 0, pid)
        if after is not None:
            self._foresee = None
            lead = ring_diff(after, shown)
            if abs(lead) <= MAX_SOUND_LEAD:
                self._rewriter.sound_lead = lead

    def cut(self) -> None:
        """The next bytes come from another source (or this one anew): find its entry."""
        self._finder = EntryFinder()
        self._held = b""
        self._rewriter.closing = self.closed = False

    def enter(self, entry: Entry, now: float) -> bytes:
        """Start the source whose entry point was found on the side (make-before-break)."""
        self._finder = None
        self._held = b""
        self._rewriter.closing = self.closed = False
        self.entry = self.first_entry = -1
        out, first, last = self._start(entry, now)
        rest, first2, last2 = self._resume(now)
        self._entries(len(out), first, last, first2, last2)
        return out + rest

    def finder(self) -> EntryFinder:
        """What a channel uses to look for a new source's entry while the old one flows."""
        return EntryFinder()

    @property
    def entering(self) -> bool:
        return self._finder is not None

    def stuck(self, now: float) -> str | None:
        """Why the current source has no way in after the whole wait (SPEC §7.1's bounds), or None."""
        finder = self._finder
        return finder.given_up(now) if finder is not None else None

    # -- data ------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> bytes:
        """The output for ``data`` (whole packets of the current source); may be empty."""
        self.entry = self.first_entry = -1
        if self.closed:
            return b""
        self._resync_rest = data
        out, first, last = self._resume(now)
        self._entries(0, first, last, -1, -1)
        return out

    def _entries(self, base: int, first: int, last: int, first2: int, last2: int) -> None:
        """Where joiners may start in output made of two parts (the second at ``base``)."""
        self.first_entry = first if first >= 0 else (base + first2 if first2 >= 0 else -1)
        self.entry = base + last2 if last2 >= 0 else last

    def _resume(self, now: float) -> tuple[bytes, int, int]:
        """
        Read what is waiting (``_resync_rest``): through the entry finder while one looks for
        the way in, else through the hot path; a jump in the source's own clock makes the hot
        path stop and hand the rest back to a finder. (output, first entry, last entry)
        """
        pieces: list[bytes] = []
        length = 0
        first = last = -1
        for _ in range(64):  # each turn consumes input; a source cannot make this spin
            data, self._resync_rest = self._resync_rest, b""
            if not data:
                break
            finder = self._finder
            if finder is not None:
                found, relaxed = finder.wait(data, now)
                if relaxed:
                    self._note(relaxed)
                if found is None:
                    break
                self._finder = None
                out, f, e = self._start(found, now)
            else:
                if self._held:
                    data, self._held = self._held + data, b""
                chunk = self._rewrite(data, now)
                out, f, e = chunk.data, chunk.first_entry, chunk.entry
            if f >= 0 and first < 0:
                first = length + f
            if e >= 0:
                last = length + e
            pieces.append(out)
            length += len(out)
        return b"".join(pieces), first, last

    def _start(self, entry: Entry, now: float) -> tuple[bytes, int, int]:
        """A source starts at its entry point, with our PAT + PMT and its key frame."""
        self._rewriter.begin(entry)
        chunk = self._rewrite(entry.data, now)
        return chunk.data, 0, max(chunk.entry, 0)

    def _rewrite(self, data: bytes, now: float) -> ChunkOutput:
        """One chunk through the hot path, and what its end means for the next one."""
        chunk = rewrite(self._rewriter, data, now)
        stopped = chunk.stopped
        if stopped is None:
            return chunk
        if stopped is Verdict.HOLD:
            self._held = chunk.rest
        elif stopped is Verdict.STOP:
            self.closed = True
        elif stopped is Verdict.RESYNC:
            self._resync(chunk.rest)
        return chunk

    def _resync(self, rest: bytes) -> None:
        """
        The source's own clock jumped: re-enter it at its next key frame, as at a cut, so the
        output's timeline runs on instead of jumping with it.
        """
        self._note("the source's clock jumped: re-entered it at its next key frame")
        self._resync_rest = rest
        rw = self._rewriter
        self._finder = EntryFinder(program=rw.program, pmt_pid=rw.tables.pmt_pid, tsid=rw.tables.tsid)

    def _note(self, text: str) -> None:
        if text not in self._noted:
            self._noted.add(text)
            self.notes.append(text)

