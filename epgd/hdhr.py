"""
HDHomeRun tuner emulation (SPEC §10.1): the documents Plex, Jellyfin, Emby and Channels DVR
read from a networked HDHomeRun, the DeviceID they key the tuner by, and the channel-number
lookup behind ``/auto/v{number}``.

Everything here comes from the configuration alone (the channel list never depends on what is
on), so the documents are built once and only the base URL varies per request.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from attrs import frozen
from lxml import etree
from twisted.logger import Logger

from epgd.atomicfile import write_atomically
from epgd.config import Config

MANUFACTURER = "Silicondust"
#: An HDHomeRun FLEX 4K. Never a "TC" model: Jellyfin treats HDTC as a transcoder and adds
#: ``?transcode=`` profiles to stream URLs.
MODEL_NUMBER = "HDHR5-4US"
FIRMWARE_NAME = "hdhomerun5_atsc"
FIRMWARE_VERSION = "20231214"
DEVICE_TYPE = "urn:schemas-upnp-org:device:MediaServer:1"
#: the file in ``server.state_dir`` that keeps a generated DeviceID across restarts
DEVICE_ID_FILE = "hdhr_device_id"
LINEUP_STATUS: dict[str, Any] = {
    "ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"],
}
# UUIDs of our devices live under one namespace of their own, derived from our name.
_UDN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "hdhr.epgd.invalid")
# libhdhomerun's check-digit table (hdhomerun_discover_validate_device_id): the nibbles in
# odd positions from the left go through it, the others are XORed in as they are.
_CHECK_TABLE = (0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB, 0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0)
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
#: 0 is "no device", FFFFFFFF the wildcard every discovery request matches
_RESERVED = (0x00000000, 0xFFFFFFFF)

log = Logger()


def _checksum(value: int) -> int:
    """XOR of the eight nibbles, every other one through the table; 0 for a valid id."""
    total = 0
    for shift in range(28, -4, -4):
        nibble = (value >> shift) & 0xF
        total ^= _CHECK_TABLE[nibble] if (shift // 4) % 2 else nibble
    return total


def valid_device_id(text: str) -> bool:
    """Whether ``text`` is 8 hex digits that libhdhomerun accepts as a device id."""
    if not _HEX8.fullmatch(text):
        return False
    value = int(text, 16)
    return value not in _RESERVED and _checksum(value) == 0


def fix_check_digit(text: str) -> str | None:
    """``text`` (8 hex digits) with the last digit that makes it valid, or None if none does."""
    if not _HEX8.fullmatch(text):
        return None
    value = int(text, 16)
    # The last nibble is XORed in as it is: the right one is the checksum of the rest.
    fixed = f"{(value & ~0xF) | _checksum(value & ~0xF):08X}"
    return fixed if valid_device_id(fixed) else None


def generate_device_id(randbits: Callable[[int], int] = secrets.randbits) -> str:
    """A fresh valid id: 28 random bits and their check digit."""
    while True:
        candidate = fix_check_digit(f"{randbits(28) << 4:08X}")
        if candidate is not None:
            return candidate


def load_device_id(
    state_dir: str, configured: str = "", randbits: Callable[[int], int] = secrets.randbits,
) -> str:
    """
    The DeviceID to announce: ``hdhr.device_id`` when set, else the one kept in ``state_dir``,
    else a new one, written there (atomically) so the next start announces the same tuner.
    Plex keys a tuner by its id: an id that changed would be a second device.
    """
    if configured:
        return configured.upper()
    path = os.path.join(state_dir, DEVICE_ID_FILE)
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            kept = f.read(64).strip().upper()
    except FileNotFoundError:
        kept = None
    except OSError as e:
        kept = None
        log.warn("[HDHR] cannot read {path}: {error}; making a new device id", path=path,
                 error=e.strerror or e)
    if kept is not None:
        if valid_device_id(kept):
            return kept
        log.warn("[HDHR] {path} holds no valid device id; making a new one", path=path)
    made = generate_device_id(randbits)
    try:
        os.makedirs(state_dir, exist_ok=True)
        # Not a secret, and readable by the user twistd switches to (--uid) after makeService.
        write_atomically(path, (made + "\n").encode("ascii"), mode=0o644)
        log.info("[HDHR] new HDHomeRun device id {device_id}, kept in {path}", device_id=made, path=path)
    except OSError as e:
        log.error("[HDHR] cannot keep the device id in {path}: {error}; media servers will see "
                  "a new tuner after a restart (set hdhr.device_id)", path=path, error=e.strerror or e)
    return made


@frozen
class Tuned:
    """One combined channel as a tuner channel: GuideNumber and GuideName."""

    number: int
    channel_id: str
    name: str


def tuned_channels(config: Config) -> list[Tuned]:
    """Every combined channel of every lineup, in channel-number order."""
    found = [
        Tuned(lineup.channel_number(index), channel_id, lineup.channel_name(index))
        for lineup in config.lineups
        for index, channel_id in enumerate(lineup.channel_ids(), start=1)
    ]
    return sorted(found, key=lambda t: t.number)


class HdhrDevice:
    """The emulated tuner of one epgd process: its id, its channels and its documents."""

    def __init__(self, config: Config, device_id: str) -> None:
        self.config = config
        self.device_id = device_id
        self.channels = tuned_channels(config)
        self._by_number = {t.number: t for t in self.channels}
        self.tuner_count = config.hdhr.tuner_count or len(self.channels)
        # Real devices answer a per-device secret; ours only has to be stable and opaque.
        self.device_auth = hashlib.sha256(f"epgd-hdhr-{device_id}".encode()).hexdigest()[:24]
        self.udn = f"uuid:{uuid.uuid5(_UDN_NAMESPACE, device_id)}"

    @classmethod
    def from_config(cls, config: Config) -> HdhrDevice:
        return cls(config, load_device_id(config.server.state_dir, config.hdhr.device_id))

    def channel_for(self, number: str) -> str | None:
        """The channel id behind GuideNumber ``number`` (digits only), or None."""
        if not number.isascii() or not number.isdigit() or len(number) > 9:
            return None
        tuned = self._by_number.get(int(number))
        return tuned.channel_id if tuned else None

    def discover(self, base_url: str) -> dict[str, Any]:
        return {
            "FriendlyName": self.config.hdhr.friendly_name,
            "Manufacturer": MANUFACTURER,
            "ModelNumber": MODEL_NUMBER,
            "FirmwareName": FIRMWARE_NAME,
            "FirmwareVersion": FIRMWARE_VERSION,
            "DeviceID": self.device_id,
            "DeviceAuth": self.device_auth,
            "BaseURL": base_url,
            "LineupURL": f"{base_url}/lineup.json",
            "TunerCount": self.tuner_count,
        }

    def lineup(self, base_url: str) -> list[dict[str, Any]]:
        return [
            {"GuideNumber": str(t.number), "GuideName": t.name,
             "URL": f"{base_url}/auto/v{t.number}", "HD": 1}
            for t in self.channels
        ]

    def lineup_xml(self, base_url: str) -> bytes:
        root = etree.Element("Lineup")
        for entry in self.lineup(base_url):
            program = etree.SubElement(root, "Program")
            for key, value in entry.items():
                etree.SubElement(program, key).text = str(value)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def device_xml(self, base_url: str) -> bytes:
        """The UPnP root device description Plex reads at /device.xml and /capability."""
        root = etree.Element("root", nsmap={None: "urn:schemas-upnp-org:device-1-0"})
        ns = "{urn:schemas-upnp-org:device-1-0}"
        spec = etree.SubElement(root, ns + "specVersion")
        etree.SubElement(spec, ns + "major").text = "1"
        etree.SubElement(spec, ns + "minor").text = "0"
        etree.SubElement(root, ns + "URLBase").text = base_url
        device = etree.SubElement(root, ns + "device")
        for tag, text in (
            ("deviceType", DEVICE_TYPE),
            ("friendlyName", self.config.hdhr.friendly_name),
            ("manufacturer", MANUFACTURER),
            ("modelName", MODEL_NUMBER),
            ("modelNumber", MODEL_NUMBER),
            ("serialNumber", self.device_id),
            ("UDN", self.udn),
        ):
            etree.SubElement(device, ns + tag).text = text
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
