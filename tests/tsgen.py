"""
Synthetic provider streams for the splicer tests: real MPEG-TS structure (PAT, PMT with a
CRC, PES with PTS/DTS, PCR in adaptation fields, random-access points) with every knob a
real provider turns — PIDs, service id, clock, PCR on its own PID, several audio tracks,
subtitles and SCTE-35, split PES headers, scrambled, damaged, adaptation-only and duplicate
packets, no video at all, a PMT that changes half-way.

Each video PES carries the source's ``marker`` byte right after its NAL start, so a test can
tell from the output which source a frame came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from epgd.mpegts.psi import packetize, pat_section, pmt_section

WRAP = 1 << 33
H264, MPEG2, AAC, MP2, AC3, DVBSUB, SCTE35 = 0x1B, 0x02, 0x0F, 0x03, 0x81, 0x06, 0x86
SUBTITLING = bytes([0x59, 8]) + b"eng\x10\x00\x01\x00\x01"


def stamp(prefix: int, value: int) -> bytes:
    value %= WRAP
    return bytes([
        (prefix << 4) | ((value >> 29) & 0x0E) | 1,
        (value >> 22) & 0xFF,
        ((value >> 14) & 0xFE) | 1,
        (value >> 7) & 0xFF,
        ((value << 1) & 0xFE) | 1,
    ])


def pcr_field(base: int) -> bytes:
    base %= WRAP
    return bytes([(base >> 25) & 0xFF, (base >> 17) & 0xFF, (base >> 9) & 0xFF,
                  (base >> 1) & 0xFF, ((base & 1) << 7) | 0x7E, 0x00])


@dataclass
class Source:
    """One provider stream's layout and clock."""

    marker: int = 1
    service: int = 1
    tsid: int = 1
    pmt: int = 0x100
    video: int | None = 0x101
    video_type: int = H264
    audio: tuple[int, ...] = (0x102,)
    audio_type: int = AAC
    subtitles: int | None = None
    scte35: int | None = None
    pcr: int | None = None  # its own PCR PID; None: on the video (else the first audio)
    clock: int = 900_000  # DTS of the first frame
    lead: int = 45_000  # how far the frames run ahead of the PCR
    frame: int = 3600  # 25 fps
    gop: int = 5  # a random-access point every this many frames
    psi_every: int = 5  # PAT + PMT before every this many frames
    video_packets: int = 3  # packets per video frame
    split_header: bool = False  # the video PES header spread over two packets
    scramble_every: int = 0  # every n-th video frame scrambled (0: never)
    damage_every: int = 0  # every n-th frame followed by a transport_error packet
    duplicate_every: int = 0  # every n-th audio packet sent twice
    adaptation_only_every: int = 0  # every n-th frame an adaptation-only video packet
    pmt_change_at: int | None = None  # from this frame on, a second audio track
    audio_shift: int = 0  # ticks each audio PES's time is off its frame's decode time (muxers differ)
    b_frames: bool = False  # frames sent as P B B (each P shown after the two B-frames that follow
    #                        it): a random-access frame's next two are leading pictures
    audio_split: bool = False  # each audio PES spans two packets, the second sent after the
    #                            next frame's first video packet (as muxers interleave)
    sps_every_frame: bool = False  # an SPS before every picture, P-pictures too (some encoders)
    counters: dict[int, int] = field(default_factory=dict)

    @property
    def pcr_pid(self) -> int:
        if self.pcr is not None:
            return self.pcr
        return self.video if self.video is not None else self.audio[0]

    def streams(self, frame: int) -> list[tuple[int, int, bytes]]:
        out = []
        if self.video is not None:
            out.append((self.video_type, self.video, b""))
        audio = list(self.audio)
        if self.pmt_change_at is not None and frame >= self.pmt_change_at:
            audio.append(max(audio + [self.video or 0]) + 0x10)
        out += [(self.audio_type, pid, b"") for pid in audio]
        if self.subtitles is not None:
            out.append((DVBSUB, self.subtitles, SUBTITLING))
        if self.scte35 is not None:
            out.append((SCTE35, self.scte35, b"\x05\x04CUEI"))
        return out

    def _cc(self, pid: int, payload: bool = True) -> int:
        counter = self.counters.get(pid, -1)
        if payload:
            counter = (counter + 1) & 0x0F
        self.counters[pid] = counter & 0x0F
        return counter & 0x0F

    def _psi(self, frame: int) -> bytes:
        version = 1 if self.pmt_change_at is not None and frame >= self.pmt_change_at else 0
        out = b""
        for pid, section in ((0, pat_section(self.tsid, self.service, self.pmt, 0)),
                             (self.pmt, pmt_section(self.service, self.pcr_pid, b"",
                                                    self.streams(frame), version))):
            first = self._cc(pid)
            packets = packetize(pid, section, first)
            self.counters[pid] = (first + len(packets) - 1) & 0x0F
            out += b"".join(bytes(p) for p in packets)
        return out

    def packets(self, pid: int, payload: bytes, pcr: int | None = None, rai: bool = False,
                scrambled: bool = False, header_split: int = 0) -> bytes:
        """A PES (or section) ``payload`` as packets of ``pid``; PCR/RAI in the first."""
        out = b""
        first = True
        while first or payload:
            fields = b""
            if first and (pcr is not None or rai):
                fields = bytes([(0x10 if pcr is not None else 0) | (0x40 if rai else 0)])
                fields += pcr_field(pcr) if pcr is not None else b""
            room = 184 - (1 + len(fields) if fields else 0)
            if first and header_split:
                room = min(room, header_split)
            chunk, payload = payload[:room], payload[room:]
            stuffing = 184 - len(chunk)  # adaptation field bytes, its length byte included
            if stuffing == 0:
                af = b""
            elif stuffing == 1:
                af = b"\x00"
            else:
                body = fields or b"\x00"
                af = bytes([stuffing - 1]) + body + b"\xff" * (stuffing - 1 - len(body))
            b3 = (0xC0 if scrambled else 0) | (0x20 if af else 0) | 0x10 | self._cc(pid)
            out += bytes([0x47, (0x40 if first else 0) | pid >> 8, pid & 0xFF, b3]) + af + chunk
            first = False
        return out

    def frame_bytes(self, n: int) -> bytes:
        """Frame ``n``: PSI when due, the video PES, the audio PES (and the extras)."""
        out = b""
        if n % self.psi_every == 0:
            out += self._psi(n)
        dts = self.clock + n * self.frame
        pcr = dts - self.lead
        rap = n % self.gop == 0
        pcr_here: int | None = pcr if self.pcr is None else None
        if self.pcr is not None:
            out += self._pcr_only(pcr)
        tails = b"".join(self._audio(n - 1, pid, index, self._audio_pcr(n - 1, index))[1]
                         for index, pid in enumerate(self.audio_pids(n - 1))) if self.audio_split else b""
        if self.video is not None:
            es = b"\x00\x00\x00\x01\x09\xf0"
            sps = b"\x00\x00\x00\x01\x67\x42" + bytes([self.marker])
            # a P slice header: first_mb_in_slice 0, slice_type 5 (Exp-Golomb 1 00110)
            es += (sps + b"\x00\x00\x01\x65" if rap else sps + b"\x00\x00\x01\x41\x9a"
                   if self.sps_every_frame else b"\x00\x00\x01\x41" + bytes([self.marker]))
            if self.video_type == MPEG2:
                es = (b"\x00\x00\x01\xb3" if rap else b"\x00\x00\x01\x00\x00\x10") + bytes([self.marker])
            es += bytes([self.marker]) * (self.video_packets * 184 - 60)
            pes = b"\x00\x00\x01\xe0\x00\x00\x80\xc0\x0a" + stamp(3, self.pts(n)) + stamp(1, dts) + es
            scrambled = bool(self.scramble_every) and n % self.scramble_every == 1
            video = self.packets(self.video, pes, pcr=pcr_here, rai=rap, scrambled=scrambled,
                                 header_split=10 if self.split_header else 0)
            out += video[:188] + tails + video[188:]  # the last audio PES ends after this frame began
            tails = b""
            pcr_here = None
            if self.adaptation_only_every and n % self.adaptation_only_every == 0:
                cc = self.counters[self.video]
                out += bytes([0x47, self.video >> 8, self.video & 0xFF, 0x20 | cc, 183, 0]) + b"\xff" * 182
        out += tails
        for index, pid in enumerate(self.audio_pids(n)):
            if self.audio_split:
                out += self._audio(n, pid, index, self._audio_pcr(n, index))[0]
                continue
            pes = (b"\x00\x00\x01\xc0\x00\x00\x80\x80\x05" + stamp(2, dts + 900 * index + self.audio_shift)
                   + bytes([self.marker, index]) * 60)
            chunk = self.packets(pid, pes, pcr=pcr_here if index == 0 else None)
            if self.duplicate_every and n % self.duplicate_every == 0:
                chunk += chunk[-188:]
            out += chunk
        if self.subtitles is not None and n % 10 == 3:
            pes = b"\x00\x00\x01\xbd\x00\x00\x80\x80\x05" + stamp(2, dts) + b"\x20\x00subtitle"
            out += self.packets(self.subtitles, pes)
        if self.scte35 is not None and n % 20 == 7:
            out += self.packets(self.scte35, b"\x00\xfc\x30\x11\x00\x00\x00\x00\x00\x00\xff\xff\xf0\x00cue")
        if self.damage_every and n % self.damage_every == 2 and self.video is not None:
            out += bytes([0x47, 0x80 | self.video >> 8, self.video & 0xFF, 0x10]) + b"\x00" * 184
        return out

    def pts(self, n: int) -> int:
        """Frame ``n``'s presentation time: a frame after its decode time, or reordered (B-frames)."""
        shown = n if not self.b_frames else n + 2 if n % 3 == 0 else n - 1
        return self.clock + (shown + 1) * self.frame

    def _audio_pcr(self, n: int, index: int) -> int | None:
        """The PCR frame ``n``'s first audio PES carries: when there is no video and no PCR PID."""
        if index or self.video is not None or self.pcr is not None:
            return None
        return self.clock + n * self.frame - self.lead

    def _audio(self, n: int, pid: int, index: int, pcr: int | None = None) -> tuple[bytes, bytes]:
        """
        Frame ``n``'s audio PES on ``pid`` as two packets, for ``audio_split``: the first now
        (its counter taken), the second for the next frame to send (its counter taken then).
        """
        dts = self.clock + n * self.frame
        length = 3 + 5 + 240
        pes = (b"\x00\x00\x01\xc0" + length.to_bytes(2, "big") + b"\x80\x80\x05"
               + stamp(2, dts + 900 * index + self.audio_shift) + bytes([self.marker, index]) * 120)
        counter = self.counters.get(pid, -1)
        packets = self.packets(pid, pes, pcr=pcr)
        first, second = bytearray(packets[:188]), bytearray(packets[188:376])
        first[3] = (first[3] & 0xF0) | ((counter + 1) & 0x0F)
        second[3] = (second[3] & 0xF0) | ((counter + 1) & 0x0F)  # the one it is sent with
        self.counters[pid] = (counter + 1) & 0x0F
        return bytes(first), bytes(second)

    def audio_pids(self, n: int) -> list[int]:
        return [pid for t, pid, _ in self.streams(n) if t == self.audio_type]

    def _pcr_only(self, pcr: int) -> bytes:
        assert self.pcr is not None
        cc = self.counters.get(self.pcr, 0)
        return bytes([0x47, self.pcr >> 8, self.pcr & 0xFF, 0x20 | cc, 183, 0x10]) + pcr_field(pcr) + b"\xff" * 176

    def frames(self, start: int, count: int) -> bytes:
        return b"".join(self.frame_bytes(n) for n in range(start, start + count))
