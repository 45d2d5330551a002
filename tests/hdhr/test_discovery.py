"""
Tests for epgd.hdhr.discovery (SPEC §10.2): libhdhomerun's discovery frames parsed and
answered byte for byte, everything else ignored, replies only to the sender. Real datagrams go
to 127.0.0.1 on free ports only, never to a broadcast address.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from epgd.hdhr.discovery import (
    DiscoveryListener,
    DiscoveryProtocol,
    announced_base_url,
    frame,
    local_address_for,
    parse,
    reply,
    wants_us,
)

#: what `hdhomerun_config discover` (and Jellyfin) send: wildcard type, wildcard id
CAPTURED = bytes.fromhex("0002000c0104ffffffff0204ffffffff73cc7d8f")
OURS = 0x10439EFD
BASE = "http://192.168.1.20:8080"


def libhdhomerun_crc(data: bytes) -> int:
    """hdhomerun_pkt_calc_crc, step for step: an implementation independent of the module's."""
    crc = 0xFFFFFFFF
    for byte in data:
        x = (crc & 0xFF) ^ byte
        crc >>= 8
        for bit, value in enumerate((0x77073096, 0xEE0E612C, 0x076DC419, 0x0EDB8832,
                                     0x1DB71064, 0x3B6E20C8, 0x76DC4190, 0xEDB88320)):
            if x & (1 << bit):
                crc ^= value
    return crc ^ 0xFFFFFFFF


def sealed(packet_type: int, payload: bytes) -> bytes:
    head = struct.pack(">HH", packet_type, len(payload)) + payload
    return head + struct.pack("<I", libhdhomerun_crc(head))


def request(device_type: int = 0xFFFFFFFF, device_id: int | None = 0xFFFFFFFF) -> bytes:
    payload = b"\x01\x04" + device_type.to_bytes(4, "big")
    if device_id is not None:
        payload += b"\x02\x04" + device_id.to_bytes(4, "big")
    return sealed(0x0002, payload)


def expected_reply(tuners: int, base: str) -> bytes:
    """The reply SPEC §10.2 describes, spelled out tag by tag."""
    lineup = (base + "/lineup.json").encode()
    payload = (b"\x01\x04\x00\x00\x00\x01"          # device type: tuner
               + b"\x02\x04\x10\x43\x9e\xfd"        # device id
               + b"\x10\x01" + bytes([tuners])      # tuner count
               + b"\x2a" + bytes([len(base)]) + base.encode()  # BaseURL
               + b"\x27" + bytes([len(lineup)]) + lineup)      # LineupURL
    return sealed(0x0003, payload)


class FrameTests(SynchronousTestCase):
    def test_captured_request(self) -> None:
        self.assertEqual(libhdhomerun_crc(CAPTURED[:-4]), 0x8F7DCC73)
        self.assertEqual(request(), CAPTURED)
        self.assertEqual(parse(CAPTURED), (2, [(1, b"\xff" * 4), (2, b"\xff" * 4)]))
        self.assertTrue(wants_us(CAPTURED, OURS))

    def test_frame_is_libhdhomerun_framing(self) -> None:
        self.assertEqual(frame(2, [(1, b"\xff" * 4), (2, b"\xff" * 4)]), CAPTURED)
        self.assertEqual(frame(3, [(0x2A, b"x" * 200)]),
                         sealed(3, b"\x2a" + bytes([200 & 0x7F | 0x80, 200 >> 7]) + b"x" * 200))

    def test_reply_byte_for_byte(self) -> None:
        self.assertEqual(reply(OURS, 6, BASE), expected_reply(6, BASE))
        self.assertEqual(reply(OURS, 999, BASE), expected_reply(255, BASE), "a u8 on the wire")

    def test_long_url_uses_two_length_bytes(self) -> None:
        base = "http://" + "a" * 150 + ":8080"
        answer = reply(OURS, 2, base)
        parsed = parse(answer)
        assert parsed is not None
        self.assertEqual(dict(parsed[1])[0x2A], base.encode())
        self.assertEqual(dict(parsed[1])[0x27], (base + "/lineup.json").encode())

    def test_who_is_answered(self) -> None:
        self.assertTrue(wants_us(request(0x00000001, 0xFFFFFFFF), OURS))
        self.assertTrue(wants_us(request(0x00000001, OURS), OURS))
        self.assertTrue(wants_us(request(0xFFFFFFFF, None), OURS), "no id tag: any device")
        multi = sealed(2, b"\x2d\x08\x00\x00\x00\x01\x00\x00\x00\x05")  # tuner + storage
        self.assertTrue(wants_us(multi, OURS))

    def test_who_is_not(self) -> None:
        for what, datagram in (
            ("another device's id", request(0xFFFFFFFF, 0x12345674)),
            ("a storage device", request(0x00000005)),
            ("storage only, multi-type", sealed(2, b"\x2d\x04\x00\x00\x00\x05")),
            ("no device type", sealed(2, b"\x02\x04\xff\xff\xff\xff")),
            ("a reply, not a request", sealed(3, CAPTURED[4:-4])),
            ("a get/set request", sealed(4, CAPTURED[4:-4])),
            ("a bad CRC", CAPTURED[:-1] + b"\x00"),
            ("a short id", sealed(2, b"\x01\x04\xff\xff\xff\xff\x02\x02\xff\xff")),
            ("a TLV past the end", sealed(2, b"\x01\x09\xff\xff\xff\xff")),
            ("a truncated frame", CAPTURED[:12]),
            ("a trailing byte", CAPTURED + b"\x00"),
            ("nothing", b""),
            ("text", b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n"),
        ):
            self.assertFalse(wants_us(datagram, OURS), what)

    @given(st.binary(max_size=64))
    def test_garbage_never_raises(self, datagram: bytes) -> None:
        parse(datagram)
        wants_us(datagram, OURS)

    @given(st.binary(min_size=1, max_size=40))
    def test_any_flipped_payload_fails_the_crc(self, noise: bytes) -> None:
        body = bytearray(CAPTURED)
        for i, b in enumerate(noise):
            body[i % (len(body) - 4)] ^= b
        if bytes(body) != CAPTURED:
            self.assertFalse(wants_us(bytes(body), OURS))


class FakeUDP:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


class ProtocolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.transport = FakeUDP()
        self.asked: list[str] = []
        self.base: str | None = BASE
        self.protocol = DiscoveryProtocol("10439EFD", 6, self.base_url)
        self.protocol.transport = self.transport  # type: ignore[assignment]

    def base_url(self, host: str) -> str | None:
        self.asked.append(host)
        return self.base

    def test_answers_the_sender_only(self) -> None:
        self.protocol.datagramReceived(CAPTURED, ("192.168.1.50", 40123))
        self.assertEqual(self.transport.sent, [(expected_reply(6, BASE), ("192.168.1.50", 40123))])
        self.assertEqual(self.asked, ["192.168.1.50"])

    def test_ignores_the_rest(self) -> None:
        for datagram in (request(0xFFFFFFFF, 0x12345674), b"\x00" * 20, CAPTURED[:-1]):
            self.protocol.datagramReceived(datagram, ("192.168.1.50", 40123))
        self.assertEqual((self.transport.sent, self.protocol.ignored), ([], 3))

    def test_no_http_address_yet_no_answer(self) -> None:
        self.base = None
        self.protocol.datagramReceived(CAPTURED, ("192.168.1.50", 40123))
        self.assertEqual(self.transport.sent, [])

    def test_a_failure_is_logged_and_discovery_goes_on(self) -> None:
        def broken(host: str) -> str:
            raise OSError("network unreachable")

        self.protocol.base_url = broken
        self.protocol.datagramReceived(CAPTURED, ("10.9.9.9", 1))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.protocol.base_url = self.base_url
        self.protocol.datagramReceived(CAPTURED, ("192.168.1.50", 40123))
        self.assertEqual(len(self.transport.sent), 1)


class BaseUrlTests(SynchronousTestCase):
    def test_configured_base_url_wins(self) -> None:
        announce = announced_base_url("http://nordvpn:8080/", lambda: None)
        self.assertEqual(announce("192.168.1.50"), "http://nordvpn:8080")

    def test_address_the_sender_reaches_and_http_port(self) -> None:
        ports: list[int | None] = [None]
        announce = announced_base_url("", lambda: ports[0])
        self.assertIsNone(announce("127.0.0.1"))
        ports[0] = 8080
        self.assertEqual(announce("127.0.0.1"), "http://127.0.0.1:8080")
        self.assertEqual(local_address_for("127.0.0.1"), "127.0.0.1")


class Collector(DatagramProtocol):
    """A client socket that keeps every datagram it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []
        self.waiting: Deferred[None] | None = None

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.append((datagram, addr))
        if self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            waiting.callback(None)

    def next_datagram(self, timeout: float = 5.0) -> Deferred[None]:
        self.waiting = Deferred()
        return self.waiting.addTimeout(timeout, reactor)


class SocketTests(TestCase):
    """Real datagrams on 127.0.0.1, free ports."""

    timeout = 20

    def setUp(self) -> None:
        self.listener = DiscoveryListener(
            DiscoveryProtocol("10439EFD", 4, announced_base_url("", lambda: 8080)),
            0, reactor, interface="127.0.0.1")
        self.listener.privilegedStartService()
        self.listener.startService()
        self.addCleanup(self.listener.stopService)
        transport = self.listener.protocol.transport
        assert transport is not None
        self.server = ("127.0.0.1", transport.getHost().port)
        self.client = Collector()
        port = reactor.listenUDP(0, self.client, interface="127.0.0.1")
        self.addCleanup(port.stopListening)

    async def test_only_the_valid_request_is_answered(self) -> None:
        assert self.client.transport is not None
        for datagram in (b"garbage", request(0xFFFFFFFF, 0x12345674), request(0x00000005),
                         CAPTURED[:-1] + b"\x00", CAPTURED):
            self.client.transport.write(datagram, self.server)
        await self.client.next_datagram()
        # Loopback keeps order: an answer to any earlier datagram would have come first.
        self.assertEqual(self.client.received, [(expected_reply(4, "http://127.0.0.1:8080"), self.server)])
        self.assertEqual(self.listener.protocol.ignored, 4)
        # And nothing more turns up afterwards.
        await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(len(self.client.received), 1)

    def test_busy_port_is_one_line(self) -> None:
        import io
        import sys

        err = io.StringIO()
        self.patch(sys, "stderr", err)
        busy = DiscoveryListener(DiscoveryProtocol("10439EFD", 4, lambda host: None),
                                 self.server[1], reactor, interface="127.0.0.1")
        with self.assertRaises(SystemExit):
            busy.privilegedStartService()
        (line,) = err.getvalue().splitlines()
        self.assertTrue(line.startswith(f"epgd: hdhr.discovery: cannot listen on UDP port {self.server[1]}: "),
                        line)
