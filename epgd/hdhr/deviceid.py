"""
The HDHomeRun DeviceID (SPEC §10.1): libhdhomerun's check digit, a fresh id, and the id kept
in ``state_dir`` across restarts. No HTTP and no configuration types: ``epgd.config`` checks a
configured id with ``valid_device_id`` and ``fix_check_digit`` from here.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable

from twisted.logger import Logger

from epgd.atomicfile import write_atomically

#: the file in ``server.state_dir`` that keeps a generated DeviceID across restarts
DEVICE_ID_FILE = "hdhr_device_id"

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
