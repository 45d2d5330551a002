"""
HDHomeRun UDP discovery (SPEC §10.2): answer libhdhomerun's discovery request with a unicast
reply to the sender, so media servers that broadcast for tuners find epgd on the LAN.

A frame (libhdhomerun ``hdhomerun_pkt.c``) is a big-endian u16 packet type, a u16 payload
length, the payload as TLVs (a u8 tag, a length of one byte, or two when the first has its
high bit set, the value), and a CRC-32 of all that, little-endian. The parsing is a pure
function of the datagram; the protocol only decides whether and where to answer.
"""

from __future__ import annotations

import socket
import struct
import sys
import zlib
from collections.abc import Callable
from typing import Any

from twisted.application.internet import UDPServer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

TYPE_DISCOVER_REQ = 0x0002
TYPE_DISCOVER_RPY = 0x0003
TAG_DEVICE_TYPE = 0x01
TAG_DEVICE_ID = 0x02
TAG_TUNER_COUNT = 0x10
TAG_LINEUP_URL = 0x27
TAG_BASE_URL = 0x2A
TAG_MULTI_TYPE = 0x2D
DEVICE_TYPE_TUNER = 0x00000001
WILDCARD = 0xFFFFFFFF
#: the longest TLV value a two-byte length can say
MAX_VALUE = 0x7FFF

TLV = tuple[int, bytes]


def crc(data: bytes) -> bytes:
    """The frame's CRC-32 (the common one, as zlib computes it), little-endian."""
    return struct.pack("<I", zlib.crc32(data))


def frame(packet_type: int, tlvs: list[TLV]) -> bytes:
    """A sealed frame: header, TLVs, CRC."""
    payload = bytearray()
    for tag, value in tlvs:
        if len(value) > MAX_VALUE:
            raise ValueError(f"TLV {tag:#x} is {len(value)} bytes, at most {MAX_VALUE} fit")
        length = len(value)
        payload.append(tag)
        payload += bytes([length]) if length < 0x80 else bytes([(length & 0x7F) | 0x80, length >> 7])
        payload += value
    body = struct.pack(">HH", packet_type, len(payload)) + bytes(payload)
    return body + crc(body)


def parse(datagram: bytes) -> tuple[int, list[TLV]] | None:
    """The packet type and TLVs of a whole, intact frame; None for anything else."""
    if len(datagram) < 8:
        return None
    packet_type, length = struct.unpack_from(">HH", datagram)
    end = 4 + length
    if len(datagram) != end + 4 or crc(datagram[:end]) != datagram[end:]:
        return None
    tlvs: list[TLV] = []
    pos = 4
    while pos < end:
        if pos + 2 > end:
            return None
        tag, size = datagram[pos], datagram[pos + 1]
        pos += 2
        if size & 0x80:
            if pos >= end:
                return None
            size = (size & 0x7F) | (datagram[pos] << 7)
            pos += 1
        if pos + size > end:
            return None
        tlvs.append((tag, datagram[pos:pos + size]))
        pos += size
    return packet_type, tlvs


def _u32s(value: bytes) -> list[int] | None:
    if not value or len(value) % 4:
        return None
    return [int.from_bytes(value[i:i + 4], "big") for i in range(0, len(value), 4)]


def wants_us(datagram: bytes, device_id: int) -> bool:
    """
    Whether ``datagram`` is a discovery request a tuner with ``device_id`` answers: its device
    type (or one of several) is tuner or wildcard, its device id, if given, is wildcard or ours.
    """
    parsed = parse(datagram)
    if parsed is None or parsed[0] != TYPE_DISCOVER_REQ:
        return False
    types: list[int] = []
    wanted_id = WILDCARD
    for tag, value in parsed[1]:
        if tag in (TAG_DEVICE_TYPE, TAG_MULTI_TYPE):
            found = _u32s(value)
            if found is None or (tag == TAG_DEVICE_TYPE and len(found) != 1):
                return False
            types += found
        elif tag == TAG_DEVICE_ID:
            ids = _u32s(value)
            if ids is None or len(ids) != 1:
                return False
            wanted_id = ids[0]
    return bool(set(types) & {DEVICE_TYPE_TUNER, WILDCARD}) and wanted_id in (WILDCARD, device_id)


def reply(device_id: int, tuner_count: int, base_url: str) -> bytes:
    """Our discovery reply: device type, device id, tuner count, BaseURL and LineupURL."""
    return frame(TYPE_DISCOVER_RPY, [
        (TAG_DEVICE_TYPE, DEVICE_TYPE_TUNER.to_bytes(4, "big")),
        (TAG_DEVICE_ID, device_id.to_bytes(4, "big")),
        (TAG_TUNER_COUNT, bytes([min(tuner_count, 255)])),  # a u8 on the wire
        (TAG_BASE_URL, base_url.encode("utf-8")),
        (TAG_LINEUP_URL, f"{base_url}/lineup.json".encode()),
    ])


def local_address_for(host: str) -> str:
    """
    The address of ours that ``host`` reaches us at (the interface the kernel routes to it
    from): connecting a UDP socket picks it without sending anything.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, 9))
        return str(probe.getsockname()[0])


class DiscoveryProtocol(DatagramProtocol):
    """
    Answers discovery requests with one datagram to the address they came from, and nothing
    else: requests for other devices or types, other packet types and garbage get no answer.
    ``base_url(sender_host)`` is the HTTP address to announce to that sender, or None when
    there is none yet (no HTTP listener up): then there is no answer either.
    """

    log = Logger()

    def __init__(self, device_id: str, tuner_count: int,
                 base_url: Callable[[str], str | None]) -> None:
        self.device_id = int(device_id, 16)
        self.tuner_count = tuner_count
        self.base_url = base_url
        self.answered = 0
        self.ignored = 0

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        try:
            if not wants_us(datagram, self.device_id):
                self.ignored += 1
                return
            url = self.base_url(addr[0])
            if url is None or self.transport is None:
                self.ignored += 1
                return
            self.transport.write(reply(self.device_id, self.tuner_count, url), addr)
            self.answered += 1
        except Exception:
            # One bad datagram (or an unroutable sender) must not stop discovery.
            self.log.failure("[HDHR] discovery request from {host} failed", host=addr[0])


def announced_base_url(configured: str, http_port: Callable[[], int | None]) -> Callable[[str], str | None]:
    """
    What to announce to a sender: ``server.base_url`` when set, else ``http://`` + the address
    of ours that sender reaches + the port of the first TCP listener (None while none is up).
    """
    if configured:
        fixed = configured.rstrip("/")
        return lambda host: fixed

    def for_sender(host: str) -> str | None:
        port = http_port()
        if port is None:
            return None
        address = local_address_for(host)
        return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"

    return for_sender


class DiscoveryListener(UDPServer):
    """The UDP listener on ``hdhr.discovery_port``, all interfaces (requests are broadcast)."""

    def __init__(self, protocol: DiscoveryProtocol, port: int, reactor: Any = None,
                 interface: str = "") -> None:
        kwargs: dict[str, Any] = {"interface": interface}
        if reactor is not None:
            kwargs["reactor"] = reactor
        super().__init__(port, protocol, **kwargs)
        self.protocol = protocol
        self.port_number = port

    def privilegedStartService(self) -> None:
        # Failing to bind stops the start with one line, as an HTTP listener does.
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            print(f"epgd: hdhr.discovery: cannot listen on UDP port {self.port_number}: {e.socketError}",
                  file=sys.stderr)
            raise SystemExit(1) from None

    def startService(self) -> None:
        super().startService()
        transport = self.protocol.transport
        port = getattr(transport.getHost(), "port", self.port_number) if transport else self.port_number
        self.protocol.log.info("[HDHR] answering HDHomeRun discovery on UDP port {port}", port=port)
