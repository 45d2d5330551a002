"""
Tests for epgd.hdhr.device: the discover/lineup/device documents media servers read (SPEC §10.1).
The DeviceID they key the tuner by is tests/hdhr/test_deviceid.py's.
"""

from __future__ import annotations

import uuid

from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, HdhrConfig, LineupConfig, ProviderConfig, ServerConfig
from epgd.hdhr.device import HdhrDevice, tuned_channels

BASE = "http://192.168.1.20:8080"
UPNP = "{urn:schemas-upnp-org:device-1-0}"


def make_config(state_dir: str = "./state", tuner_count: int = 0, name: str = "epgd") -> Config:
    return Config(
        server=ServerConfig(state_dir=state_dir),
        hdhr=HdhrConfig(tuner_count=tuner_count, friendly_name=name),
        providers=(ProviderConfig(name="main", playlist="p.m3u"),),
        # Listed out of number order on purpose: the lineup is in channel-number order.
        lineups=(LineupConfig(id="nba", name="NBA", channels=2, first_number=201),
                 LineupConfig(id="nhl_ppv", name="NHL PPV", channels=3, first_number=101)),
    )


class DocumentTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.device = HdhrDevice(make_config(), "10439EFD")

    def test_discover(self) -> None:
        body = self.device.discover(BASE)
        self.assertEqual(set(body), {"FriendlyName", "Manufacturer", "ModelNumber", "FirmwareName",
                                     "FirmwareVersion", "DeviceID", "DeviceAuth", "BaseURL",
                                     "LineupURL", "TunerCount"})
        self.assertEqual(body["Manufacturer"], "Silicondust")
        self.assertEqual((body["ModelNumber"], body["FirmwareName"]), ("HDHR5-4US", "hdhomerun5_atsc"))
        self.assertNotIn("TC", body["ModelNumber"].upper())
        self.assertEqual(body["DeviceID"], "10439EFD")
        self.assertEqual((body["BaseURL"], body["LineupURL"]), (BASE, BASE + "/lineup.json"))
        self.assertIs(type(body["TunerCount"]), int)
        self.assertEqual(body["TunerCount"], 5, "one tuner per combined channel")
        self.assertTrue(body["DeviceAuth"])
        self.assertEqual(body["DeviceAuth"], HdhrDevice(make_config(), "10439EFD").device_auth)

    def test_configured_tuner_count_and_name(self) -> None:
        body = HdhrDevice(make_config(tuner_count=2, name="Sports"), "10439EFD").discover(BASE)
        self.assertEqual((body["TunerCount"], body["FriendlyName"]), (2, "Sports"))

    def test_lineup_in_number_order(self) -> None:
        lineup = self.device.lineup(BASE)
        self.assertEqual([e["GuideNumber"] for e in lineup], ["101", "102", "103", "201", "202"])
        self.assertEqual(lineup[0], {"GuideNumber": "101", "GuideName": "NHL PPV 1",
                                     "URL": BASE + "/auto/v101", "HD": 1})
        self.assertEqual(lineup[3]["GuideName"], "NBA 1")
        self.assertEqual([t.channel_id for t in tuned_channels(make_config())],
                         ["nhl_ppv_1", "nhl_ppv_2", "nhl_ppv_3", "nba_1", "nba_2"])

    def test_lineup_xml_carries_the_same(self) -> None:
        root = etree.fromstring(self.device.lineup_xml(BASE))
        self.assertEqual(root.tag, "Lineup")
        programs = [{child.tag: child.text for child in p} for p in root.findall("Program")]
        as_json = [{k: str(v) for k, v in e.items()} for e in self.device.lineup(BASE)]
        self.assertEqual(programs, as_json)

    def test_channel_for_number(self) -> None:
        self.assertEqual(self.device.channel_for("101"), "nhl_ppv_1")
        self.assertEqual(self.device.channel_for("202"), "nba_2")
        for unknown in ("100", "104", "", "1.0", "-101", "v101", "１０１", "9" * 40):
            self.assertIsNone(self.device.channel_for(unknown), unknown)

    def test_device_xml(self) -> None:
        root = etree.fromstring(self.device.device_xml(BASE))
        self.assertEqual(root.tag, UPNP + "root")
        self.assertEqual(root.findtext(UPNP + "URLBase"), BASE)
        self.assertEqual(root.findtext(f"{UPNP}specVersion/{UPNP}major"), "1")
        device = root.find(UPNP + "device")
        fields = {child.tag.removeprefix(UPNP): child.text for child in device}
        self.assertEqual(fields["deviceType"], "urn:schemas-upnp-org:device:MediaServer:1")
        self.assertEqual(fields["friendlyName"], "epgd")
        self.assertEqual(fields["manufacturer"], "Silicondust")
        self.assertEqual((fields["modelName"], fields["modelNumber"]), ("HDHR5-4US", "HDHR5-4US"))
        self.assertEqual(fields["serialNumber"], "10439EFD")
        self.assertTrue(fields["UDN"].startswith("uuid:"))
        uuid.UUID(fields["UDN"][5:])  # a real UUID
        # Derived from the DeviceID: the same tuner every start, another tuner another UDN.
        self.assertEqual(HdhrDevice(make_config(), "10439EFD").udn, fields["UDN"])
        self.assertNotEqual(HdhrDevice(make_config(), "12345674").udn, fields["UDN"])
