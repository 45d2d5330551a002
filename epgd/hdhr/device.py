"""
HDHomeRun tuner emulation (SPEC §10.1): the documents Plex, Jellyfin, Emby and Channels DVR
read from a networked HDHomeRun, the DeviceID they key the tuner by, and the channel-number
lookup behind ``/auto/v{number}``.

Everything here comes from the configuration alone (the channel list never depends on what is
on), so the documents are built once and only the base URL varies per request.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from attrs import frozen
from lxml import etree

from epgd.config import Config
from epgd.hdhr.deviceid import load_device_id

MANUFACTURER = "Silicondust"
#: An HDHomeRun FLEX 4K. Never a "TC" model: Jellyfin treats HDTC as a transcoder and adds
#: ``?transcode=`` profiles to stream URLs.
MODEL_NUMBER = "HDHR5-4US"
FIRMWARE_NAME = "hdhomerun5_atsc"
FIRMWARE_VERSION = "20231214"
DEVICE_TYPE = "urn:schemas-upnp-org:device:MediaServer:1"
LINEUP_STATUS: dict[str, Any] = {
    "ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"],
}
# UUIDs of our devices live under one namespace of their own, derived from our name.
_UDN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "hdhr.epgd.invalid")


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
