"""
An independent reader of MPEG-TS output for the splicer tests: what a strict demuxer would
complain about (continuity, PCR and timestamp steps, PMTs), written without the splicer's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WRAP = 1 << 33


def ring(a: int, b: int) -> int:
    d = (a - b) % WRAP
    return d - WRAP if d > 1 << 32 else d


def _stamp(b: bytes) -> int:
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


@dataclass
class Report:
    packets: int = 0
    pids: set[int] = field(default_factory=set)
    cc_errors: list[tuple[int, int, int, int]] = field(default_factory=list)  # (index, pid, was, got)
    pcrs: list[tuple[int, int]] = field(default_factory=list)  # (packet index, PCR base)
    pcr_pids: set[int] = field(default_factory=set)  # the PIDs PCRs came on
    pmt_pcr_pids: set[int] = field(default_factory=set)  # the PCR_PIDs the PMTs named
    stamps: dict[int, list[tuple[int, int, int | None]]] = field(default_factory=dict)  # pid -> (index, pts, dts)
    pmt_pids: set[int] = field(default_factory=set)
    pmts: list[tuple[int, int, list[tuple[int, int]]]] = field(default_factory=list)  # (index, version, [(type, pid)])
    programs: set[int] = field(default_factory=set)
    heads: dict[int, list[bytes]] = field(default_factory=dict)  # pid -> each PES's first ES bytes
    #: PES cut short or run long (index of the packet that showed it, pid, PES_packet_length's
    #: bytes, bytes that came): what a player reports as "PES packet size mismatch"; a
    #: continuation with no PES begun shows as expected 0
    pes_mismatches: list[tuple[int, int, int, int]] = field(default_factory=list)
    damaged: int = 0

    def decode_stamps(self, pid: int) -> list[int]:
        return [dts if dts is not None else pts for _, pts, dts in self.stamps.get(pid, [])]


def read(data: bytes) -> Report:
    report = Report()
    last_cc: dict[int, int] = {}
    last_packet: dict[int, bytes] = {}
    pmt_pid = -1
    open_pes: dict[int, list[int]] = {}  # pid -> [PES_packet_length bytes due, bytes come] (bounded PES only)
    assert len(data) % 188 == 0, "not whole packets"
    for index in range(len(data) // 188):
        pkt = data[index * 188:(index + 1) * 188]
        assert pkt[0] == 0x47, f"packet {index}: no sync byte"
        report.packets += 1
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        report.pids.add(pid)
        control = (pkt[3] >> 4) & 3
        cc = pkt[3] & 0x0F
        if pkt[1] & 0x80:
            report.damaged += 1
            continue  # transport_error_indicator: its header cannot be trusted
        duplicate = False
        if pid != 0x1FFF:
            if pid in last_cc:
                expected = (last_cc[pid] + 1) & 0x0F if control & 1 else last_cc[pid]
                duplicate = bool(control & 1 and cc == last_cc[pid] and pkt == last_packet.get(pid))
                discontinuity = control & 2 and pkt[4] and pkt[5] & 0x80
                if cc != expected and not duplicate and not discontinuity:
                    report.cc_errors.append((index, pid, last_cc[pid], cc))
            last_cc[pid] = cc
            last_packet[pid] = pkt
        start = 4
        if control & 2:
            if pkt[4] and pkt[5] & 0x10 and pkt[4] >= 7:
                base = (pkt[6] << 25) | (pkt[7] << 17) | (pkt[8] << 9) | (pkt[9] << 1) | (pkt[10] >> 7)
                report.pcrs.append((index, base))
                report.pcr_pids.add(pid)
            start += 1 + pkt[4]
        if control & 1 and start < 188 and not duplicate and pid not in (0, pmt_pid):
            _count_pes(report, open_pes, index, pid, pkt, start)
        if not control & 1 or start >= 188 or not pkt[1] & 0x40:
            continue
        payload = pkt[start:]
        if pid == 0:
            section = payload[1 + payload[0]:]
            for at in range(8, 3 + (((section[1] & 0x0F) << 8) | section[2]) - 4, 4):
                number = (section[at] << 8) | section[at + 1]
                if number:
                    report.programs.add(number)
                    pmt_pid = ((section[at + 2] & 0x1F) << 8) | section[at + 3]
                    report.pmt_pids.add(pmt_pid)
            continue
        if pid == pmt_pid:
            section = payload[1 + payload[0]:]
            length = ((section[1] & 0x0F) << 8) | section[2]
            version = (section[5] >> 1) & 0x1F
            report.pmt_pcr_pids.add(((section[8] & 0x1F) << 8) | section[9])
            at = 12 + (((section[10] & 0x0F) << 8) | section[11])
            streams = []
            while at + 5 <= 3 + length - 4:
                streams.append((section[at], ((section[at + 1] & 0x1F) << 8) | section[at + 2]))
                at += 5 + (((section[at + 3] & 0x0F) << 8) | section[at + 4])
            if not report.pmts or report.pmts[-1][1:] != (version, streams):
                report.pmts.append((index, version, streams))
            continue
        if payload[:3] == b"\x00\x00\x01" and len(payload) >= 19 and payload[7] & 0x80 and not pkt[3] & 0xC0:
            pts = _stamp(payload[9:14])
            dts = _stamp(payload[14:19]) if payload[7] & 0x40 else None
            report.stamps.setdefault(pid, []).append((index, pts, dts))
            report.heads.setdefault(pid, []).append(payload[9 + payload[8]:])
    return report


def _count_pes(report: Report, open_pes: dict[int, list[int]], index: int, pid: int, pkt: bytes,
               start: int) -> None:
    """Follow each bounded PES's length on ``pid``: record one that ends short or runs long."""
    payload = pkt[start:]
    if pkt[1] & 0x40:
        due = open_pes.pop(pid, None)
        if due is not None and due[1] != due[0]:
            report.pes_mismatches.append((index, pid, due[0], due[1]))
        if payload[:3] == b"\x00\x00\x01" and len(payload) >= 6:
            length = (payload[4] << 8) | payload[5]
            if length:
                open_pes[pid] = [length + 6, len(payload)]
        return
    due = open_pes.get(pid)
    if due is None:
        return  # an unbounded PES (video), or a section
    due[1] += len(payload)
    if due[1] > due[0]:
        report.pes_mismatches.append((index, pid, due[0], due[1]))
        del open_pes[pid]


def video_marks(report: Report, pid: int = 0x100) -> list[tuple[int, bool]]:
    """
    (source marker, random access?) of each video PES on ``pid`` (the output's video PID), read
    from its first ES bytes as tests/tsgen.py writes them.
    """
    out = []
    for head in report.heads.get(pid, []):
        if head.startswith(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67"):
            out.append((head[12], head[13:17] == b"\x00\x00\x01\x65"))  # an IDR, or an SPS before a P slice
        elif head.startswith(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x41"):
            out.append((head[10], False))
        elif head[:4] == b"\x00\x00\x01\xb3":
            out.append((head[4], True))
        elif head[:4] == b"\x00\x00\x01\x00":
            out.append((head[6], False))
    return out


def cut_points(report: Report, pid: int = 0x100, jump: int = 45000) -> list[int]:
    """Indexes into decode_stamps(pid) where the step differs from the usual by more than ``jump``."""
    stamps = report.decode_stamps(pid)
    return [k for k in range(1, len(stamps)) if abs(ring(stamps[k], stamps[k - 1])) > jump]


def pes_units(data: bytes, pid: int) -> list[bytearray]:
    """Each PES of ``pid`` in ``data`` whole (header and payload), as a demuxer joins its packets."""
    found: list[bytearray] = []
    for p in range(0, len(data) - 187, 188):
        if ((data[p + 1] & 0x1F) << 8 | data[p + 2]) != pid or not data[p + 3] & 0x10:
            continue
        start = 4 + (1 + data[p + 4] if data[p + 3] & 0x20 else 0)
        if data[p + 1] & 0x40:
            found.append(bytearray(data[p + start:p + 188]))
        elif found:
            found[-1] += data[p + start:p + 188]
    return found
