"""PES in TS packet templates: any length packs and unpacks whole, PCRs where asked, counters and stamps patched."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.mpegts.pes import read_pcr_base, read_stamp
from epgd.mpegts.psi import pat_section
from epgd.mpegts.slate.mux import packetize, pes_header, section_template
from tests.mpegts.slate.test_source import packets, payload


class PacketizeTests(SynchronousTestCase):
    @given(st.integers(min_value=1, max_value=4000), st.integers(min_value=0, max_value=9), st.booleans())
    def test_any_length_round_trips(self, length: int, pcr_every: int, random_access: bool) -> None:
        pes = bytes((k * 7 + 3) & 0xFF for k in range(length))
        template = packetize(0x100, pes, pcr_every=pcr_every, random_access=random_access)
        chunks = packets(template.data)
        self.assertEqual(len(template.data) % 188, 0)
        self.assertEqual(b"".join(payload(p) for p in chunks), pes)
        self.assertEqual([bool(p[1] & 0x40) for p in chunks], [True] + [False] * (len(chunks) - 1))
        self.assertEqual([p[3] & 0x0F for p in chunks], [k & 0x0F for k in range(len(chunks))])
        for packet in chunks:
            if packet[3] & 0x20:
                self.assertLessEqual(packet[4], 183)
        with_pcr = [k for k, p in enumerate(chunks) if p[3] & 0x20 and p[4] and p[5] & 0x10]
        self.assertEqual(list(template.pcr), with_pcr)
        if pcr_every:
            self.assertEqual(with_pcr[0], 0)
            self.assertEqual(with_pcr[-1], len(chunks) - 1)  # the last packet too
            self.assertLessEqual(max(b - a for a, b in zip([0, *with_pcr], with_pcr, strict=False)), pcr_every)
        else:
            self.assertEqual(with_pcr, [])
        self.assertEqual(bool(chunks[0][3] & 0x20 and chunks[0][4] and chunks[0][5] & 0x40), random_access)

    def test_stamp_patches_counter_pts_and_pcr(self) -> None:
        au = b"\x00\x00\x00\x01\x09\x10" + b"\x42" * 500
        template = packetize(0x100, pes_header(0xE0, len(au)) + au, pcr_every=2)
        buf = template.stamp(13, pts=(1 << 33) + 12345, pcrs=[100 * k for k in range(len(template.pcr))])
        chunks = packets(bytes(buf))
        self.assertEqual([p[3] & 0x0F for p in chunks], [(13 + k) & 0x0F for k in range(len(chunks))])
        self.assertEqual(read_stamp(buf, range(template.pts, template.pts + 5)), 12345)
        self.assertEqual([read_pcr_base(buf, k * 188 + 6) for k in template.pcr],
                         [100 * k for k in range(len(template.pcr))])
        self.assertEqual(payload(chunks[0])[14:], au[:len(payload(chunks[0])) - 14])

    def test_pes_header(self) -> None:
        """PTS only, data aligned; PES_packet_length 0 past 16 bits (unbounded video)."""
        header = pes_header(0xC0, 14)
        self.assertEqual(header[:9], bytes([0, 0, 1, 0xC0, 0, 22, 0x84, 0x80, 5]))
        self.assertEqual(pes_header(0xE0, 70000)[4:6], b"\x00\x00")

    def test_section_in_one_packet(self) -> None:
        template = section_template(0, pat_section(1, 1, 0x1000, 0))
        self.assertEqual(template.data[:5], b"\x47\x40\x00\x10\x00")
        self.assertEqual(len(template.data), 188)
        self.assertRaises(ValueError, section_template, 0, b"\x00" * 200)
