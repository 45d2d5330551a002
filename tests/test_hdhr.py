"""
Tests for epgd.hdhr.device: the DeviceID media servers key the tuner by (libhdhomerun's check digit,
kept across restarts) and the discover/lineup/device documents they read (SPEC §10.1).
"""

from __future__ import annotations

import os
import random
import stat
import uuid

from lxml import etree
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, HdhrConfig, LineupConfig, ProviderConfig, ServerConfig
from epgd.hdhr.device import HdhrDevice, tuned_channels
from epgd.hdhr.deviceid import (
    DEVICE_ID_FILE,
    fix_check_digit,
    generate_device_id,
    load_device_id,
    valid_device_id,
)

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


class DeviceIdTests(SynchronousTestCase):
    def test_libhdhomerun_examples(self) -> None:
        """The ids of libhdhomerun's own documentation: 10439EFD passes, 12345678 does not."""
        self.assertTrue(valid_device_id("10439EFD"))
        self.assertTrue(valid_device_id("10439efd"))
        self.assertFalse(valid_device_id("12345678"))

    def test_shapes_and_reserved_ids(self) -> None:
        for bad in ("", "10439EF", "10439EFD0", "1043 9EFD", "1043-EFD", "G0439EFD",
                    "FFFFFFFF", "00000000", "١٠٤٣٩EFD"):
            self.assertFalse(valid_device_id(bad), bad)

    def test_every_single_digit_change_is_caught(self) -> None:
        """What a check digit is for: a typo in any one digit makes the id invalid."""
        good = "10439EFD"
        for position in range(8):
            for digit in "0123456789ABCDEF":
                if digit != good[position]:
                    typo = good[:position] + digit + good[position + 1:]
                    self.assertFalse(valid_device_id(typo), typo)

    def test_fix_check_digit(self) -> None:
        self.assertEqual(fix_check_digit("12345678"), "12345674")
        self.assertTrue(valid_device_id("12345674"))
        self.assertEqual(fix_check_digit("10439EF0"), "10439EFD")
        self.assertIsNone(fix_check_digit("nonsense"))

    def test_generated_ids_are_valid_and_differ(self) -> None:
        rng = random.Random(7)
        made = {generate_device_id(rng.getrandbits) for _ in range(500)}
        self.assertEqual(len(made), 500)
        for device_id in made:
            self.assertRegex(device_id, r"^[0-9A-F]{8}$")
            self.assertTrue(valid_device_id(device_id), device_id)

    def test_generation_never_yields_a_reserved_id(self) -> None:
        draws = iter([0, 0xFFFFFFF, 0x1043_9EF])
        self.assertEqual(generate_device_id(lambda bits: next(draws)), "10439EFD")


class PersistenceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.state = os.path.abspath(self.mktemp())  # not created: load_device_id makes it

    def test_same_id_after_a_restart(self) -> None:
        first = load_device_id(self.state)
        self.assertTrue(valid_device_id(first))
        with open(os.path.join(self.state, DEVICE_ID_FILE)) as f:
            self.assertEqual(f.read(), first + "\n")
        # A new process: a new random source, the same tuner.
        self.assertEqual(load_device_id(self.state, randbits=random.Random(99).getrandbits), first)
        self.assertEqual(HdhrDevice.from_config(make_config(self.state)).device_id, first)
        self.assertEqual([n for n in os.listdir(self.state) if n != DEVICE_ID_FILE], [],
                         "no temporary file left behind")

    def test_configured_id_wins_and_is_not_written(self) -> None:
        self.assertEqual(load_device_id(self.state, "10439efd"), "10439EFD")
        self.assertFalse(os.path.exists(self.state))

    def test_damaged_file_is_replaced(self) -> None:
        os.makedirs(self.state)
        path = os.path.join(self.state, DEVICE_ID_FILE)
        with open(path, "w") as f:
            f.write("12345678\n")
        with capturedLogs() as events:
            made = load_device_id(self.state)
        self.assertTrue(valid_device_id(made))
        self.assertTrue(any("holds no valid device id" in str(e.get("log_format")) for e in events))
        self.assertEqual(load_device_id(self.state), made)

    def test_unwritable_state_dir_still_gives_an_id(self) -> None:
        if os.geteuid() == 0:
            blocked = os.path.join(self.mktemp(), "file")
            os.makedirs(os.path.dirname(blocked))
            open(blocked, "w").close()
            state = os.path.join(blocked, "state")  # a path under a plain file: never writable
        else:
            state = os.path.abspath(self.mktemp())
            os.makedirs(state)
            os.chmod(state, stat.S_IRUSR | stat.S_IXUSR)
            self.addCleanup(os.chmod, state, stat.S_IRWXU)
        with capturedLogs() as events:
            made = load_device_id(state)
        self.assertTrue(valid_device_id(made))
        errors = [e for e in events if e.get("log_level") == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("set hdhr.device_id", errors[0]["log_format"])


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
