"""
The real HDHomeRun client decides (SPEC §10): Silicondust's libhdhomerun judges our device ids,
and its ``hdhomerun_config discover`` finds a running ``twistd epgd`` by UDP discovery.

``hdhomerun_config`` only asks on UDP port 65001, so that test runs epgd and the tool in a
private network namespace (``unshare -n``, root only) holding nothing but its own loopback:
the fixed port can clash with nothing and no datagram leaves it. Without root, ``unshare`` or
the Debian packages ``hdhomerun-config``/``libhdhomerun4`` (.ci/run installs them) these skip.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import shutil
import subprocess
import sys
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from epgd.hdhr.deviceid import DEVICE_ID_FILE, generate_device_id, valid_device_id

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
# Inside the namespace: loopback up, epgd started, then the real tool asks until it finds it
# (bounded: 100 tries of ~0.4 s), then epgd stopped with SIGTERM.
NETNS_SCRIPT = r"""
ip link set lo up
"$PY" -c "$TWISTD" -n --pidfile= epgd --config "$CFG" >"$LOG" 2>&1 &
pid=$!
for i in $(seq 1 100); do
    if out=$(hdhomerun_config discover 127.0.0.1 2>&1); then
        echo "$out"
        break
    fi
done
kill -TERM "$pid"
wait "$pid"
echo "epgd exit status $?"
"""


def libhdhomerun() -> ctypes.CDLL:
    name = ctypes.util.find_library("hdhomerun")
    for candidate in filter(None, (name, "libhdhomerun.so.4", "libhdhomerun.so")):
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        lib.hdhomerun_discover_validate_device_id.argtypes = [ctypes.c_uint32]
        lib.hdhomerun_discover_validate_device_id.restype = ctypes.c_bool
        return lib
    raise SkipTest("libhdhomerun is not installed (Debian: libhdhomerun4)")


class CheckDigitTests(SynchronousTestCase):
    def test_we_agree_with_libhdhomerun(self) -> None:
        lib = libhdhomerun()
        rng = random.Random(2026)
        values = [rng.getrandbits(32) for _ in range(20000)] + [0x10439EFD, 0x12345678]
        for value in values:
            if value in (0, 0xFFFFFFFF):  # reserved: libhdhomerun's checksum passes them
                continue
            self.assertEqual(valid_device_id(f"{value:08X}"),
                             lib.hdhomerun_discover_validate_device_id(value), f"{value:08X}")
        self.assertTrue(lib.hdhomerun_discover_validate_device_id(0x10439EFD))
        self.assertFalse(lib.hdhomerun_discover_validate_device_id(0x12345678))

    def test_generated_ids_pass_libhdhomerun(self) -> None:
        lib = libhdhomerun()
        rng = random.Random(11)
        for _ in range(2000):
            device_id = generate_device_id(rng.getrandbits)
            self.assertTrue(lib.hdhomerun_discover_validate_device_id(int(device_id, 16)), device_id)


class HdhomerunConfigTests(SynchronousTestCase):
    def test_hdhomerun_config_discover_finds_epgd(self) -> None:
        for tool in ("hdhomerun_config", "unshare", "ip"):
            if shutil.which(tool) is None:
                raise SkipTest(f"{tool} is not installed")
        if os.geteuid() != 0:
            raise SkipTest("a private network namespace (unshare -n) needs root")
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        config = os.path.join(base, "epgd.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f'[server]\nlisten = "tcp:8080:interface=127.0.0.1"\nstate_dir = "{base}/state"\n'
                    '[hdhr]\ndiscovery = true\n'
                    f'[[provider]]\nname = "main"\nplaylist = "{base}/missing.m3u"\n'
                    '[[lineup]]\nid = "nhl_ppv"\n')
        log = os.path.join(base, "epgd.log")
        env = dict(os.environ, PY=sys.executable, TWISTD=TWISTD, CFG=config, LOG=log,
                   PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        done = subprocess.run(["unshare", "-n", "sh", "-c", NETNS_SCRIPT], env=env, cwd=base,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        with open(log, encoding="utf-8", errors="replace") as f:
            epgd_log = f.read()
        if done.returncode != 0 and "Operation not permitted" in done.stderr:
            raise SkipTest(f"no network namespace here: {done.stderr.strip()}")
        with open(os.path.join(base, "state", DEVICE_ID_FILE)) as f:
            device_id = f.read().strip()
        self.assertIn(f"hdhomerun device {device_id} found at 127.0.0.1", done.stdout,
                      done.stdout + done.stderr + epgd_log)
        self.assertIn("[HDHR] answering HDHomeRun discovery on UDP port 65001", epgd_log)
        # twistd ends on SIGTERM by re-raising it (status 143) after a clean shutdown.
        self.assertRegex(done.stdout, r"epgd exit status (0|143)\n", epgd_log)
        self.assertIn("Server Shut Down.", epgd_log)
