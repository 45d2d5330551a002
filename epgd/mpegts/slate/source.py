"""
The slate as a live MPEG-TS source: one program as a provider would send it, on its own clock,
produced on demand for any source time, so a reactor timer calling ``packets_until`` every
40-100 ms gets a live stream (SPEC §14).

Layout: PAT, PMT on 0x1000 (program 1), H.264 on 0x100 (stream type 0x1B, PCR PID), AAC-ADTS
on 0x101 (0x0F): the §7.1 output layout, so the splicer maps it onto itself.

Timing, in 90 kHz ticks of source time (source time 0 = the first packet's due time):

* Video frame ``k`` is due at ``k * 3600`` (25 fps); its PTS is ``clock + due + DELAY``
  (no reordering, so no DTS: it equals the PTS). Audio frame ``j`` (1024 samples at 48 kHz,
  exactly 1920 ticks) is due at ``first_frame * 3600 + j * 1920``, PTS likewise — both from
  integer frame counters, so audio and video never drift apart. The PCR (on the first packet
  of every video PES) is ``clock + due``: PCR every 40 ms.
* An IDR is sent at a steady rate (``IDR_RATE``, at most ``MAX_SPREAD``) up to its due time,
  not in one burst: a 1080p key frame is ~0.3-0.6 MB, 60-120 Mbit/s if sent within one frame
  time, which no T-STD buffer (H.222.0 2.4.2) and no thin link takes. Its packets carry a PCR
  every ~30 ms and on the last. P frames that fall inside that window go just before it (a PES
  cannot be interleaved with another on its PID). PAT and PMT go before each IDR and at
  least every 0.4 s (ETSI TR 101 290 wants them within 0.5 s).
* IDRs come every ``key_interval`` seconds (at most 5, SPEC §14), when the text changes, and
  on ``request_idr`` (a joiner), each as soon as its sending window can start but at least a
  second after the one before (so requests cannot raise the rate much, and no two IDRs are
  ever adjacent, which H.264 7.4.3 would answer with different idr_pic_ids).
* The average rate stays under §14's 2 Mbit/s by construction: an IDR whose text would cost
  more than ``idr_budget`` drops its last lines (``fit``); three lines of text use a quarter of it.

Cost: everything is a cached template (``mux.Template``); sending a frame copies it and patches
the continuity counter, PTS and PCR. Rendering (Pillow + the IDR) happens only in ``set_text``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from attrs import evolve, frozen

from epgd.mpegts.packet import PACKET_SIZE
from epgd.mpegts.psi import pat_section, pmt_section
from epgd.mpegts.slate import aac, h264
from epgd.mpegts.slate.mux import Template, packetize, pes_header, section_template
from epgd.mpegts.slate.picture import Picture, parse_size, render

TICKS = 90_000
FRAME_TICKS = TICKS // h264.FPS  # 3600
AUDIO_TICKS = aac.SAMPLES_PER_FRAME * TICKS // aac.SAMPLE_RATE  # 1920, exactly
WRAP = 1 << 33

PMT_PID = 0x1000
VIDEO_PID = 0x100
AUDIO_PID = 0x101
PROGRAM = 1
TSID = 1
STREAM_H264 = 0x1B
STREAM_AAC_ADTS = 0x0F

#: PTS - PCR when a frame's last byte is due: how long a decoder holds a frame before showing it
DELAY = 18_000  # 0.2 s
#: the rate an IDR is sent at, and the longest it may take (a joiner's wait for a requested
#: IDR is at most MAX_SPREAD + DELAY + a frame: 0.64 s, inside §14's 1 s)
IDR_RATE = 10_000_000
MAX_SPREAD = 36_000  # 0.4 s
#: longest PCR gap inside an IDR's sending window (TR 101 290 allows 40 ms)
PCR_GAP = 2_700  # 30 ms
#: PAT and PMT at least this often (ETSI TR 101 290 wants 0.5 s), and before each IDR
PSI_TICKS = 36_000  # 0.4 s
DEFAULT_KEY_INTERVAL = 5.0
#: SPEC §14's ceiling on a slate's average rate
MAX_RATE = 2_000_000
#: a requested IDR (a joiner, new text) comes at least this many frames after the one before,
#: so requests cannot push the rate past MAX_RATE; a joiner gets the latest IDR from the
#: channel's join buffer meanwhile
MIN_IDR_GAP = h264.FPS


@frozen
class KeyFrame:
    """A rendered slate: its picture, its IDR as TS packets, and how to send them."""

    text: tuple[str, ...]  # the lines asked for (``picture.lines`` are those drawn)
    picture: Picture
    template: Template  # the IDR's PES in packets, random_access_indicator on the first
    spread: int  # ticks over which its packets are sent, ending at the frame's due time
    idr_bytes: int  # the access unit's size (AUD, SPS, PPS, IDR)
    pcm_blocks: int
    blocks: int
    level: int | None  # the SPS's level_idc; None: too big for any level

    def dues(self, end: int) -> list[int]:
        """When each packet is due, evenly over ``spread`` ticks up to ``end``."""
        n = self.template.count
        if n == 1:
            return [end]
        start = end - self.spread
        return [start + i * self.spread // (n - 1) for i in range(n)]


def key_frame(picture: Picture) -> KeyFrame:
    """Encode ``picture`` as an IDR and lay it out in TS packets with the PCRs its sending window needs."""
    idr = h264.idr_access_unit(picture)
    pes = pes_header(0xE0, len(idr.access_unit)) + idr.access_unit
    count = -(-len(pes) // 184)
    spread = min(-(-count * PACKET_SIZE * 8 * TICKS // IDR_RATE), MAX_SPREAD)
    per_packet = spread / max(count - 1, 1)
    pcr_every = max(1, int(PCR_GAP // per_packet)) if per_packet else 1
    template = packetize(VIDEO_PID, pes, pcr_every=pcr_every, random_access=True)
    return KeyFrame(picture.lines, picture, template, spread, len(idr.access_unit), idr.pcm_blocks, idr.blocks,
                    idr.level)


def idr_budget(key_interval: float) -> int:
    """
    The most bytes of TS packets an IDR may take for the stream to average MAX_RATE with one
    IDR every ``key_interval`` s: the rate's bytes less what the rest of that time costs (a
    packet per P frame and per audio frame, two PSI packets every PSI_TICKS).
    """
    frames = round(key_interval * h264.FPS)
    others = (frames - 1) + -(-frames * FRAME_TICKS // AUDIO_TICKS) + 2 * -(-frames * FRAME_TICKS // PSI_TICKS)
    return int(MAX_RATE * key_interval / 8) - others * PACKET_SIZE


def fit(lines: Sequence[str], size: str, budget: int) -> KeyFrame:
    """
    The slate showing ``lines``, its last lines left out while its IDR's packets would pass
    ``budget`` bytes or the IDR would be too big for any H.264 level (half the raw picture,
    ``h264.level_for``). Three lines of text take a quarter of the budget or less, four long
    ones two thirds at 1080p; this only stops pathological text from breaking §14's rate.
    """
    asked = tuple(lines)
    shown = list(asked)
    while True:
        key = key_frame(render(shown, size))
        if (len(key.template.data) <= budget and key.level is not None) or len(shown) <= 1:
            return evolve(key, text=asked)
        shown.pop()


def prepare(size: str, lines: Sequence[str], key_interval: float = DEFAULT_KEY_INTERVAL) -> KeyFrame:
    """
    All the work of a new slate picture (Pillow, the IDR, its packets: 10-60 ms by size), as a
    pure function: the caller may run it off the reactor thread (in one worker thread — the
    cached fonts are shared) and hand the result to ``SlateSource.show``.
    """
    return fit(lines, size, idr_budget(max(2, round(key_interval * h264.FPS)) / h264.FPS))


class SlateSource:
    """
    One channel's slate as MPEG-TS. ``packets_until(t)`` returns every packet due up to source
    time ``t`` seconds (whole 188-byte packets, in order, continuity counters running); call
    it with a growing ``t``. ``set_text`` changes the picture from the next IDR on.

    ``clock`` is the 90 kHz value of source time 0 in PCR and PTS (modulo 2^33).
    """

    def __init__(self, size: str, lines: Sequence[str], key_interval: float = DEFAULT_KEY_INTERVAL,
                 clock: int = 0, key: KeyFrame | None = None) -> None:
        """``key``: the picture already made by ``prepare(size, lines, key_interval)``, if it was."""
        if not 0 < key_interval <= 5.0:
            raise ValueError("key_interval must be in (0, 5] seconds (SPEC §14)")
        width, height = parse_size(size)
        self.size = size
        self.key_interval = key_interval
        self.geometry = h264.Geometry(width, height)
        self.key_frames = max(2, round(key_interval * h264.FPS))
        self.clock = clock % WRAP
        self.key = key if key is not None and key.text == tuple(lines) else prepare(size, lines, key_interval)
        self._check(self.key)
        self.renders = 1
        # P frames: one template per frame_num (16), each a single packet with a PCR
        self._p_frames = [
            packetize(VIDEO_PID, pes_header(0xE0, len(au)) + au, pcr_every=1)
            for au in (h264.p_access_unit(self.geometry, n) for n in range(h264.MAX_FRAME_NUM))]
        audio_pes = pes_header(0xC0, len(aac.SILENT_FRAME)) + aac.SILENT_FRAME
        self._audio = packetize(AUDIO_PID, audio_pes)
        pmt = pmt_section(PROGRAM, VIDEO_PID, b"", [(STREAM_H264, VIDEO_PID, b""),
                                                    (STREAM_AAC_ADTS, AUDIO_PID, b"")], 0)
        self._psi = (section_template(0, pat_section(TSID, PROGRAM, PMT_PID, 0)),
                     section_template(PMT_PID, pmt))
        self._counters = {0: 0, PMT_PID: 0, VIDEO_PID: 0, AUDIO_PID: 0}
        self._now = 0  # ticks: the latest t given to packets_until
        first = -(-self.key.spread // FRAME_TICKS)  # the first frame: its IDR is sent from time 0
        self.first_frame = first
        self._next_frame = first  # the next video frame whose packets are not made yet
        self._next_idr = first
        self._last_idr = first - MIN_IDR_GAP
        self._last_due = 0
        self._last_psi = 0  # due tick of the latest PAT and PMT
        self._video = self._video_packets()
        self._audio_gen = self._audio_packets()
        self._pending_video: tuple[int, bytes] | None = None
        self._pending_audio: tuple[int, bytes] | None = None
        self.idrs = 0  # IDRs begun so far

    # -- what the lead calls ---------------------------------------------------------

    @property
    def lines(self) -> tuple[str, ...]:
        """The text as last given (``shown`` is what is drawn: folded, wrapped, shortened)."""
        return self.key.text

    @property
    def shown(self) -> tuple[str, ...]:
        """The lines the picture shows, as /streams/status may quote them."""
        return self.key.picture.lines

    def set_text(self, lines: Sequence[str]) -> bool:
        """
        Show ``lines`` from the next IDR on, which comes as soon as it can be sent (at least a
        second after the last). Renders (``prepare``: 10-60 ms, see bench/slate_encode.py) only
        when the text changed; returns whether it did.
        """
        if tuple(lines) == self.key.text:
            return False
        return self.show(prepare(self.size, lines, self.key_interval))

    def show(self, key: KeyFrame) -> bool:
        """Install a picture made by ``prepare`` (off the reactor thread, say); False when it shows the same text."""
        self._check(key)
        if key.text == self.key.text:
            return False
        self.key = key
        self.renders += 1
        self.request_idr()
        return True

    def _check(self, key: KeyFrame) -> None:
        if (key.picture.width, key.picture.height) != (self.geometry.width, self.geometry.height):
            raise ValueError(f"a {key.picture.width}x{key.picture.height} picture for a {self.size} slate")

    def request_idr(self) -> float:
        """
        Send an IDR (PAT, PMT, key frame) as soon as possible — for a joiner that needs a
        picture now. Returns the source time (seconds) by which it will have been sent.
        """
        # The earliest frame whose sending window starts now or later, after every frame
        # already made, and not too soon after the last IDR.
        by_time = -(-(self._now + self.key.spread) // FRAME_TICKS)
        frame = max(self._next_frame, self._last_idr + MIN_IDR_GAP, by_time)
        self._next_idr = min(self._next_idr, frame)
        return self._next_idr * FRAME_TICKS / TICKS

    def packets_until(self, t: float) -> bytes:
        """Every packet due up to source time ``t`` seconds not returned before, in order."""
        limit = int(t * TICKS)
        self._now = max(self._now, limit)
        out: list[bytes] = []
        video, audio = self._pending_video, self._pending_audio
        while True:
            if video is None:
                video = next(self._video)
            if audio is None:
                audio = next(self._audio_gen)
            if video[0] <= audio[0]:  # video first on a tie: the stream starts with PAT, PMT, IDR
                if video[0] > limit:
                    break
                out.append(video[1])
                video = None
            else:
                if audio[0] > limit:
                    break
                out.append(audio[1])
                audio = None
        self._pending_video, self._pending_audio = video, audio
        return b"".join(out)

    # -- the packet schedules ----------------------------------------------------------

    def _count(self, pid: int, packets: int) -> int:
        """The continuity counter for the next ``packets`` packets of ``pid`` (all carry payload)."""
        counter = self._counters[pid]
        self._counters[pid] = (counter + packets) & 0x0F
        return counter

    def _psi_packets(self) -> list[bytes]:
        return [bytes(t.stamp(self._count(pid, 1))) for t, pid in zip(self._psi, (0, PMT_PID), strict=True)]

    def _video_packets(self) -> Iterator[tuple[int, bytes]]:
        """(due tick, packet) of the video PID and the PSI before its IDRs, forever, in order."""
        while True:
            frame = self._next_frame
            self._next_frame += 1
            due = frame * FRAME_TICKS
            pts = (self.clock + due + DELAY) % WRAP
            if frame >= self._next_idr:
                key = self.key
                dues = [max(d, self._last_due) for d in key.dues(due)]
                self._last_due = dues[-1]
                self._last_idr = frame
                self._next_idr = frame + self.key_frames
                self.idrs += 1
                self._last_psi = dues[0]
                for packet in self._psi_packets():
                    yield dues[0], packet
                template = key.template
                buf = template.stamp(self._count(VIDEO_PID, template.count), pts,
                                     [(self.clock + dues[i]) % WRAP for i in template.pcr])
                view = memoryview(buf)
                for i, packet_due in enumerate(dues):
                    yield packet_due, view[i * PACKET_SIZE:(i + 1) * PACKET_SIZE].tobytes()
                continue
            # a P frame: at its time, or just before the next IDR's sending window
            window = self._next_idr * FRAME_TICKS - self.key.spread
            due = max(min(due, window), self._last_due)
            self._last_due = due
            if due + FRAME_TICKS - self._last_psi > PSI_TICKS:  # waiting a frame more would be too late
                self._last_psi = due
                for packet in self._psi_packets():
                    yield due, packet
            template = self._p_frames[(frame - self._last_idr) % h264.MAX_FRAME_NUM]
            frame_packet = template.stamp(self._count(VIDEO_PID, 1), pts, [(self.clock + due) % WRAP])
            yield due, bytes(frame_packet)

    def _audio_packets(self) -> Iterator[tuple[int, bytes]]:
        """(due tick, packet) of the audio PID, forever: one ADTS frame per PES, at its time."""
        start = self.first_frame * FRAME_TICKS
        index = 0
        template = self._audio
        while True:
            due = start + index * AUDIO_TICKS
            index += 1
            yield due, bytes(template.stamp(self._count(AUDIO_PID, 1), (self.clock + due + DELAY) % WRAP))
