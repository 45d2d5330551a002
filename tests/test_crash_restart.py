"""
A real epgd process killed with SIGKILL while it writes its state (a guide download under
way in state_dir), then started again with the provider down: it serves the last schedule
at once and leaves no temporary file behind.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests import test_tap


def guide(now: dt.datetime) -> bytes:
    def stamp(t: dt.datetime) -> str:
        return t.strftime("%Y%m%d%H%M%S +0000")

    start = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=2)
    stop = start + dt.timedelta(hours=3)
    return ('<?xml version="1.0"?><tv><channel id="nhl07"><display-name>NHL 07</display-name>'
            f'</channel><programme channel="nhl07" start="{stamp(start)}" stop="{stamp(stop)}">'
            "<title>Bruins vs Rangers</title></programme>"
            + "<!-- padding -->" * 4000 + "</tv>").encode()


PLAYLIST = (b'#EXTM3U\n#EXTINF:-1 tvg-id="nhl07" group-title="NHL",NHL 07\n'
            b"http://127.0.0.1:9/live/u/p/7.ts\n")


class _Provider(http.server.BaseHTTPRequestHandler):
    """The provider: answers at once, or (``stall`` set) sends half the guide and waits."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server: Any = self.server
        body = PLAYLIST if self.path.startswith("/get.php") else server.guide
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.stall.is_set() and body is not PLAYLIST:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            server.release.wait(30)
            return
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class CrashRestartTests(SynchronousTestCase):
    workdir = test_tap.ProcessTests.workdir
    finish = test_tap.ProcessTests.finish
    wait_for_port = test_tap.ProcessTests.wait_for_port

    def setUp(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
        self.server.daemon_threads = True
        self.server.guide = guide(dt.datetime.now(dt.UTC))  # type: ignore[attr-defined]
        self.server.stall = threading.Event()  # type: ignore[attr-defined]
        self.server.release = threading.Event()  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.addCleanup(self.stop_provider)
        self.processes: list[Any] = []
        self.addCleanup(self.kill_all)

    def stop_provider(self) -> None:
        if self.thread.is_alive():
            self.server.release.set()  # type: ignore[attr-defined]
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.communicate()

    def start(self, cwd: str, config: str, log: str) -> tuple[Any, int]:
        if os.path.exists(log):
            os.remove(log)
        process = test_tap.run_twistd(cwd, "-n", "--pidfile=", "--logfile", log, "epgd", "--config", config)
        self.processes.append(process)
        return process, self.wait_for_port(process, log)

    def get(self, port: int, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    def wait_for(self, port: int, test: Any, what: str) -> Any:
        for _ in range(300):
            body = self.get(port, "/schedule.json")
            if test(body, self.get(port, "/health")):
                return body
            time.sleep(0.1)
        self.fail(f"never saw {what}")

    def titles(self, schedule: dict[str, Any]) -> list[str]:
        return [e["title"] for c in schedule["channels"] for e in c["events"]]

    def temps(self, state: str) -> list[str]:
        return sorted(os.path.relpath(os.path.join(base, name), state)
                      for base, _, names in os.walk(state) for name in names
                      if name.startswith(".") and name.endswith((".part", ".tmp")))

    def test_sigkill_mid_write_then_restart_with_provider_down(self) -> None:
        cwd = self.workdir()
        state = os.path.join(cwd, "state")
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        config = os.path.join(cwd, "epgd.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f'[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\nstate_dir = "{state}"\n'
                    f'[[provider]]\nname = "main"\nplaylist = "{base}/get.php"\n'
                    f'guide = "{base}/xmltv.php"\n'
                    '[[lineup]]\nid = "nhl_ppv"\nchannels = 2\nmatch_group = "NHL"\n')
        log = os.path.join(cwd, "epgd.log")
        process, port = self.start(cwd, config, log)
        first = self.wait_for(port, lambda s, h: h["status"] == "ok" and self.titles(s),
                              "the first schedule")
        self.assertEqual(self.titles(first), ["Bruins vs Rangers"])

        # A refresh whose guide download stalls half-way: kill -9 while it is being written.
        self.server.stall.set()  # type: ignore[attr-defined]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/refresh", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        for _ in range(300):
            if any(t.endswith(".part") for t in self.temps(state)):
                break
            time.sleep(0.05)
        self.assertTrue(self.temps(state), "the download was under way")
        # as a kill during the lane-state write leaves it (that write takes microseconds)
        with open(os.path.join(state, ".packing-k1ll3d.tmp"), "w") as f:
            f.write('{"version": 1, "lanes"')
        process.send_signal(signal.SIGKILL)
        process.communicate()
        self.assertEqual(process.returncode, -signal.SIGKILL)
        self.stop_provider()

        process, port = self.start(cwd, config, log)
        again = self.wait_for(
            port, lambda s, h: self.titles(s) and h["providers"]["main"]["error"], "the last schedule")
        self.assertEqual(self.titles(again), ["Bruins vs Rangers"])
        self.assertEqual(self.get(port, "/health")["status"], "degraded")
        self.assertEqual(self.temps(state), [])
        process.send_signal(signal.SIGTERM)
        self.finish(process)
