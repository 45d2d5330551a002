"""
Tests for epgd.hdhr.deviceid: the DeviceID media servers key the tuner by (libhdhomerun's check
digit), generated once and kept in state_dir across restarts.
"""

from __future__ import annotations

import os
import random
import stat

from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.hdhr.device import HdhrDevice
from epgd.hdhr.deviceid import (
    DEVICE_ID_FILE,
    fix_check_digit,
    generate_device_id,
    load_device_id,
    valid_device_id,
)
from tests.hdhr.test_device import make_config


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
