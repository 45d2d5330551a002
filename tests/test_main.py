"""
Tests for ``python -m epgd``: ``check`` prints what a configuration describes or one error
line; ``build`` writes the three outputs once.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from epgd.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "epgd.example.toml")


def run_epgd(*argv: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "epgd", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


class CheckTests(SynchronousTestCase):
    def check(self, path: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["check", "--config", path], out, err)
        return code, out.getvalue(), err.getvalue()

    def test_summary(self) -> None:
        code, out, err = self.check(EXAMPLE)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(f"{EXAMPLE}: OK", out)
        self.assertIn("nhl_ppv (NHL PPV): 4 channels from main", out)
        for number in range(1, 5):
            self.assertRegex(out, rf"\n\s+{number}\s+nhl_ppv_{number}\s+NHL PPV {number}\n")
        self.assertIn("Bruins vs Rangers", out)
        self.assertIn("username=***&password=***", out)
        self.assertIn("/live/***/***/1234.ts", out)

    def test_lists_users_never_their_passwords(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[server]\nopen_networks = ["192.168.0.0/16"]\n'
                    '[[provider]]\nname = "p"\nplaylist = "p.m3u"\n[[lineup]]\nid = "a"\n[[lineup]]\nid = "b"\n'
                    '[[user]]\nname = "alice"\npassword = "Wonder-land9"\nlineups = ["b"]\n'
                    '[[user]]\nname = "bob"\npassword = "xyzzy-42"\nmax_connections = 0\n')
        code, out, _ = self.check(path)
        self.assertEqual(code, 0)
        self.assertIn("users (no login needed from 192.168.0.0/16):\n"
                      "  alice: b; 2 connections at most\n"
                      "  bob: every lineup; no connection limit\n", out)
        self.assertNotIn("Wonder-land9", out)
        self.assertNotIn("xyzzy-42", out)
        code, out, _ = self.check(EXAMPLE)
        self.assertIn("  alice: nhl_ppv; 2 connections at most\n", out)
        self.assertNotIn("change-me", out)

    def test_masks_credentials(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[[provider]]\nname = "p"\nplaylist = "http://h/get.php?username=alice&password=s3cret"\n'
                    'guide = "http://h/xmltv/alice/s3cret.xml"\n[[lineup]]\nid = "a"\nfirst_number = 101\n')
        code, out, _ = self.check(path)
        self.assertEqual(code, 0)
        self.assertNotIn("alice", out)
        self.assertNotIn("s3cret", out)
        self.assertRegex(out, r"\n\s+101\s+a_1\s+a 1\n")

    def test_numbers_run_on_across_lineups(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[[provider]]\nname = "p"\nplaylist = "p.m3u"\n[[lineup]]\nid = "a"\n[[lineup]]\nid = "b"\n')
        code, out, _ = self.check(path)
        self.assertEqual(code, 0)
        self.assertRegex(out, r"\n\s+4\s+a_4\s+a 4\n\s+b \(b\)")
        self.assertRegex(out, r"\n\s+5\s+b_1\s+b 1\n")
        self.assertIn('hdhr: tuner "epgd", 8 tuners, device id generated once, kept in state_dir, '
                      "discovery off", out)

    def test_shared_numbers_are_an_error(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[[provider]]\nname = "p"\nplaylist = "p.m3u"\n[[lineup]]\nid = "a"\n'
                    '[[lineup]]\nid = "b"\nfirst_number = 2\n')
        code, out, err = self.check(path)
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, f'{path}: lineup[1].first_number: channel numbers 2-5 of lineup "b" '
                              f'overlap 1-4 of lineup "a"\n')

    def test_error_is_one_line(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[[provider]]\nname = "p"\nplaylist = "p.m3u"\n[[lineup]]\nid = "a"\nchannels = "four"\n')
        code, out, err = self.check(path)
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, f'{path}: lineup[0].channels: must be an integer from 1 to 999, got "four"\n')

    def test_real_process(self) -> None:
        done = run_epgd("check", "--config", "/nonexistent.toml")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stderr, "/nonexistent.toml: cannot read the file: No such file or directory\n")
        help_text = run_epgd("--help").stdout
        self.assertIn("check", help_text)
        self.assertIn("build", help_text)


class BuildTests(SynchronousTestCase):
    """``python -m epgd build`` end to end on local files (no network)."""

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        start = _dt.datetime.now(_dt.UTC).replace(minute=0, second=0, microsecond=0) + _dt.timedelta(hours=2)
        stamp = start.strftime("%Y%m%d%H%M%S +0000")
        stop = (start + _dt.timedelta(hours=3)).strftime("%Y%m%d%H%M%S +0000")
        with open(os.path.join(self.base, "list.m3u"), "w") as f:
            f.write('#EXTM3U\n#EXTINF:-1 tvg-id="nhl07" group-title="NHL",NHL 07\n'
                    "http://provider.example/live/alice/s3cret/7.ts\n")
        with open(os.path.join(self.base, "guide.xml"), "w") as f:
            f.write(f'<?xml version="1.0"?>\n<tv><channel id="nhl07"><display-name>NHL 07</display-name></channel>'
                    f'<programme start="{stamp}" stop="{stop}" channel="nhl07"><title>Bruins vs Rangers</title>'
                    f"</programme></tv>\n")
        self.config = os.path.join(self.base, "epgd.toml")
        with open(self.config, "w") as f:
            f.write(f'[server]\nstate_dir = "{self.base}/state"\nbase_url = "http://tv.example"\n'
                    f'[[provider]]\nname = "main"\nplaylist = "{self.base}/list.m3u"\nguide = "{self.base}/guide.xml"\n'
                    '[[lineup]]\nid = "nhl_ppv"\nname = "NHL PPV"\nchannels = 2\nmatch_group = "nhl"\n')

    def test_writes_outputs(self) -> None:
        out_dir = os.path.join(self.base, "out")
        done = run_epgd("build", "--config", self.config, "--out", out_dir, cwd=self.base)
        self.assertEqual(done.returncode, 0, done.stderr)
        for name in ("playlist.m3u", "epg.xml", "schedule.json"):
            self.assertIn(os.path.join(out_dir, name), done.stdout)
        with open(os.path.join(out_dir, "playlist.m3u")) as f:
            self.assertIn("http://tv.example/stream/nhl_ppv_2.ts", f.read())
        with open(os.path.join(out_dir, "schedule.json")) as f:
            schedule = json.load(f)
        titles = [e["title"] for c in schedule["channels"] for e in c["events"]]
        self.assertIn("Bruins vs Rangers", titles)
        self.assertNotIn("s3cret", json.dumps(schedule))

    def test_failure_is_one_line(self) -> None:
        os.unlink(os.path.join(self.base, "list.m3u"))
        done = run_epgd("build", "--config", self.config, "--out", os.path.join(self.base, "out"), cwd=self.base)
        self.assertEqual(done.returncode, 1)
        errors = [line for line in done.stderr.splitlines() if not line.startswith("warn")]
        self.assertEqual(len(errors), 1, done.stderr)
        self.assertIn("build failed", errors[0])
        self.assertNotIn("Traceback", done.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.base, "out", "playlist.m3u")))
