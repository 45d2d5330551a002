"""
Tests for epgd.tap: the ``twistd epgd`` options, the service tree on real loopback sockets,
and the real ``twistd`` process (start, /health, SIGTERM; a bad configuration in one line).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

from epgd import tap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def write_config(
    test: SynchronousTestCase, listen: str = "tcp:0:interface=127.0.0.1", channels: str = "2", extra: str = ""
) -> str:
    """A valid configuration whose provider has no data (its playlist file does not exist)."""
    base = os.path.abspath(test.mktemp())
    os.makedirs(base)
    path = os.path.join(base, "epgd.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            f'[server]\nlisten = ["{listen}"]\nstate_dir = "{base}/state"\n'
            f'[[provider]]\nname = "main"\nplaylist = "{base}/missing.m3u"\n'
            f'[[lineup]]\nid = "nhl_ppv"\nchannels = {channels}\n{extra}'
        )
    return path


def parse(*argv: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)

    def fails(self, *argv: str) -> str:
        with self.assertRaises(SystemExit) as caught:
            parse(*argv)
        self.assertEqual(caught.exception.code, 1)
        lines = self.stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    def test_config_and_repeated_listen(self) -> None:
        path = write_config(self)
        options = parse("--config", path, "--listen", "tcp:9090", "--listen", "tcp6:9091")
        self.assertEqual(options["listen"], ["tcp:9090", "tcp6:9091"])
        self.assertEqual(options["loaded"].path, path)
        self.assertEqual(options["loaded"].lineups[0].id, "nhl_ppv")
        self.assertFalse(options["demo"])

    def test_short_config_option(self) -> None:
        path = write_config(self)
        self.assertEqual(parse("-c", path)["loaded"].path, path)

    def test_demo_needs_no_config(self) -> None:
        options = parse("--demo")
        self.assertTrue(options["demo"])
        self.assertIsNone(options["loaded"])

    def test_bad_config_is_one_line(self) -> None:
        path = write_config(self, extra="first_number = -1\n")
        self.assertEqual(
            self.fails("--config", path),
            f"{path}: lineup[0].first_number: must be an integer of at least 0, got -1",
        )

    def test_missing_config_file(self) -> None:
        self.assertEqual(self.fails("--config", "nope.toml"), "nope.toml: cannot read the file: No such file or directory")

    def test_bad_listen(self) -> None:
        line = self.fails("--demo", "--listen", "tcp:eighty")
        self.assertTrue(line.startswith("epgd: --listen: not a Twisted endpoint string ("), line)
        self.assertTrue(line.endswith('got "tcp:eighty"'), line)

    def test_no_config_anywhere(self) -> None:
        here = os.getcwd()
        empty = os.path.abspath(self.mktemp())
        os.makedirs(empty)
        os.chdir(empty)
        self.addCleanup(os.chdir, here)
        self.assertIn("--config FILE", self.fails())

    def test_default_config_file(self) -> None:
        path = write_config(self)
        here = os.getcwd()
        os.chdir(os.path.dirname(path))
        self.addCleanup(os.chdir, here)
        self.assertEqual(parse()["loaded"].path, "epgd.toml")

    def test_help_documents_options(self) -> None:
        text = str(tap.Options())
        for option in ("--config=", "--demo", "--listen=", "Repeatable"):
            self.assertIn(option, text)


class ServiceTests(TestCase):
    """The service tree on a real loopback socket."""

    def setUp(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    def start(self, *argv: str) -> tuple[Any, int]:
        service = tap.makeService(parse(*argv))
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        port = service.getServiceNamed("listen-0").port  # a TCP port is bound at once
        return service, port.getHost().port

    @inlineCallbacks
    def test_health_while_starting(self) -> Any:
        service, port = self.start("--config", write_config(self))
        self.assertEqual([s.name for s in service], ["catalog", "streams", "listen-0"])
        response = yield treq.get(f"http://127.0.0.1:{port}/health", pool=self.pool)
        body = yield response.json()
        self.assertEqual(response.code, 503, body)
        self.assertEqual(body["status"], "starting")
        self.assertIn("main", body["providers"])
        # The channel list never depends on provider data (SPEC §6.1).
        response = yield treq.get(f"http://127.0.0.1:{port}/playlist.m3u", pool=self.pool)
        text = yield response.text()
        self.assertEqual(response.code, 200)
        self.assertIn(f"http://127.0.0.1:{port}/stream/nhl_ppv_2.ts", text)

    @inlineCallbacks
    def test_listen_replaces_config_and_stop_closes(self) -> Any:
        path = write_config(self, listen="tcp:1:interface=127.0.0.1")
        service, port = self.start("--config", path, "--listen", "tcp:0:interface=127.0.0.1")
        self.assertNotEqual(port, 1)
        response = yield treq.get(f"http://127.0.0.1:{port}/health", pool=self.pool)
        yield response.content()
        yield service.stopService()
        with self.assertRaises(ConnectionRefusedError):
            yield treq.get(f"http://127.0.0.1:{port}/health", pool=self.pool)

    def test_viewer_passwords_are_masked_in_every_log_line(self) -> None:
        """The one masking observer knows the accounts (SPEC §15): their passwords never reach a log."""
        from epgd import logmask
        from epgd.config import load_config

        path = write_config(self, extra='[[user]]\nname = "alice"\npassword = "Wonder-land9"\n')
        tap.build_service(load_config(path), reactor)
        assert logmask._installed is not None
        event: dict[str, Any] = {"log_format": "{line}",
                                 "line": "GET /alice/Wonder-land9/1 then ?username=alice&password=Wonder-land9"}
        logmask._installed(event)
        self.assertEqual(event["line"], "GET /alice/***/1 then ?username=alice&password=***")

    def test_access_log_masks_token(self) -> None:
        from epgd.redact import Redactor

        class Request:
            uri = b"/refresh?token=hunter2"
            method = b"POST"
            clientproto = b"HTTP/1.1"
            code = 202
            sentLength = 0

            def getClientAddress(self) -> Any:
                return None

            def getHeader(self, name: bytes) -> None:
                return None

        line = tap.masked_log_formatter(Redactor())("[24/Nov/2026:01:00:00 +0000]", Request())
        self.assertIn("/refresh?token=***", line)
        self.assertNotIn("hunter2", line)


class ListenerTests(TestCase):
    """One ``server.listen`` endpoint on a real loopback socket, without a twistd process."""

    def refusal(self) -> Any:
        """Call ``failed`` the way ``EpgdService.start_failed`` does: with a line, then raising."""
        lines: list[str] = []

        def failed(line: str) -> Any:
            lines.append(line)
            raise tap.StartFailed(line)
        return lines, failed

    def test_a_busy_port_is_one_line_at_once(self) -> None:
        """The start stops with the line users see; Twisted alone would log it and run on."""
        import socket

        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        description = f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1"
        lines, failed = self.refusal()
        listener = tap.Listener(reactor, description, Factory(), failed)
        with self.assertRaises(tap.StartFailed):
            listener.privilegedStartService()
        self.assertEqual(lines, [f'epgd: cannot listen on "{description}": [Errno 98] Address already in use'])
        self.assertIsNone(listener.port)

    @inlineCallbacks
    def test_the_port_is_known_once_listening_and_forgotten_on_stop(self) -> Any:
        lines, failed = self.refusal()
        listener = tap.Listener(reactor, "tcp:0:interface=127.0.0.1", Factory(), failed)
        listener.startService()
        self.assertIsNotNone(listener.port)  # a TCP port is bound at once
        port = listener.port.getHost().port
        self.assertNotEqual(port, 0)
        yield listener.stopService()
        self.assertIsNone(listener.port)
        self.assertEqual(lines, [])
        with self.assertRaises(ConnectionRefusedError):
            yield treq.get(f"http://127.0.0.1:{port}/", persistent=False)

    def test_a_later_failure_is_logged_and_the_service_runs_on(self) -> None:
        """Only what fails at once stops the start (later, twistd is running: it is logged)."""
        from twisted.internet.error import CannotListenError

        later: Deferred[Any] = Deferred()

        class Slow:
            def listen(self, factory: Any) -> Deferred[Any]:
                return later

        self.patch(tap.endpoints, "serverFromString", lambda reactor, description: Slow())
        lines, failed = self.refusal()
        listener = tap.Listener(reactor, "tcp:0", Factory(), failed)
        listener.privilegedStartService()
        later.errback(CannotListenError("127.0.0.1", 1, OSError("gone")))
        self.assertEqual(len(self.flushLoggedErrors(CannotListenError)), 1)
        self.assertEqual(lines, [])
        self.assertIsNone(listener.port)


def run_twistd(cwd: str, *argv: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, environment.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", TWISTD, *argv], cwd=cwd, env=environment, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )


class ProcessTests(SynchronousTestCase):
    """The real twistd process, as a user runs it."""

    def workdir(self) -> str:
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        return path

    def finish(self, process: subprocess.Popen[str]) -> tuple[str, str]:
        try:
            return process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise

    def test_help_lists_plugin_and_options(self) -> None:
        out, _ = self.finish(run_twistd(self.workdir(), "--help"))
        self.assertRegex(out, r"\n\s+epgd\s+IPTV")
        out, _ = self.finish(run_twistd(self.workdir(), "epgd", "--help"))
        for option in ("--config=", "--demo", "--listen="):
            self.assertIn(option, out)

    def assertOneLineFailure(self, process: subprocess.Popen[str], expected: str) -> None:
        out, err = self.finish(process)
        self.assertNotEqual(process.returncode, 0)
        self.assertEqual(err.splitlines(), [expected])
        self.assertNotIn("Usage", out + err)
        self.assertNotIn("Traceback", out + err)

    def test_config_error_is_one_line(self) -> None:
        path = write_config(self, channels='"four"')
        self.assertOneLineFailure(
            run_twistd(self.workdir(), "-n", "--pidfile=", "epgd", "--config", path),
            f'{path}: lineup[0].channels: must be an integer from 1 to 999, got "four"',
        )

    def test_busy_port_is_one_line(self) -> None:
        import socket

        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        listen = f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1"
        process = run_twistd(self.workdir(), "-n", "--pidfile=", "epgd", "--config",
                             write_config(self), "--listen", listen)
        out, err = self.finish(process)
        self.assertNotEqual(process.returncode, 0)
        # twistd logs by now, so the line arrives through its log on stdout
        self.assertIn(f'epgd: cannot listen on "{listen}": [Errno 98] Address already in use',
                      out + err)
        self.assertNotIn("Traceback", out + err)

    def test_tac_config_error_is_one_line(self) -> None:
        self.assertOneLineFailure(
            run_twistd(self.workdir(), "-ny", os.path.join(ROOT, "epgd.tac"), "--pidfile=",
                       env={"EPGD_CONFIG": "/nonexistent/epgd.toml"}),
            "/nonexistent/epgd.toml: cannot read the file: No such file or directory",
        )

    def test_tac_empty_env_means_default_file(self) -> None:
        self.assertOneLineFailure(
            run_twistd(self.workdir(), "-ny", os.path.join(ROOT, "epgd.tac"), "--pidfile=", env={"EPGD_CONFIG": ""}),
            "epgd.toml: cannot read the file: No such file or directory",
        )

    def serve_and_stop(self, process: subprocess.Popen[str], log: str) -> str:
        """
        Wait for the listener, check /health answers 503 starting, SIGTERM, clean exit.
        twistd ends by re-raising the signal it stopped on, so the status is "killed by SIGTERM"
        (systemd counts that as a clean stop); the log shows the orderly shutdown.
        """
        try:
            port = self.wait_for_port(process, log)
            with self.assertRaises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10)
            self.assertEqual(caught.exception.code, 503)
            self.assertEqual(json.loads(caught.exception.read())["status"], "starting")
            process.send_signal(signal.SIGTERM)
            out, err = self.finish(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        self.assertIn(process.returncode, (0, -signal.SIGTERM), err)
        with open(log, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("Received SIGTERM, shutting down", text)
        self.assertIn("Main loop terminated", text)
        self.assertIn("Server Shut Down", text)
        self.assertNotIn("Traceback", text)
        return text

    def wait_for_port(self, process: subprocess.Popen[str], log: str) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.fail(f"twistd exited early: {process.communicate()}")
            if os.path.exists(log):
                with open(log, encoding="utf-8") as f:
                    found = re.search(r"Site starting on (\d+)", f.read())
                if found:
                    return int(found.group(1))
            time.sleep(0.05)
        self.fail("twistd did not start listening within 20 s")

    def test_twistd_starts_answers_and_stops_on_sigterm(self) -> None:
        cwd = self.workdir()
        log = os.path.join(cwd, "epgd.log")
        process = run_twistd(cwd, "-n", "--pidfile=", "--logfile", log, "epgd",
                             "--config", write_config(self, listen="tcp:1"),
                             "--listen", "tcp:0:interface=127.0.0.1")
        self.serve_and_stop(process, log)

    def test_tac_starts_and_stops(self) -> None:
        cwd = self.workdir()
        log = os.path.join(cwd, "epgd.log")
        process = run_twistd(cwd, "-ny", os.path.join(ROOT, "epgd.tac"), "--pidfile=", "--logfile", log,
                             env={"EPGD_CONFIG": write_config(self)})
        self.serve_and_stop(process, log)



LEAKY_TAC = '''
import gc
import os

from twisted.application import service
from twisted.internet import defer, reactor
from twisted.logger import Logger
from twisted.python.failure import Failure

from epgd.config import load_config
from epgd.tap import build_service

application = service.Application("epgd")
build_service(load_config(os.environ["EPGD_CONFIG"]), reactor).setServiceParent(application)


def leak():
    """Paths that no call site masks: a failure's traceback, a lost Deferred, a print."""
    error = RuntimeError("GET http://127.0.0.1:1/get.php?username=alice7&password=hunter2x")
    Logger(namespace="leak").failure("boom", Failure(error))
    lost = defer.fail(ValueError("the password is hunter2x"))
    del lost
    gc.collect()
    print("printed hunter2x for alice7")
    Logger(namespace="leak").info("done leaking")


reactor.callWhenRunning(leak)
'''


class HardenedProcessTests(SynchronousTestCase):
    """Start failures in the background, and the one masking log observer, in real twistd."""

    workdir = ProcessTests.workdir
    finish = ProcessTests.finish

    def test_busy_port_daemonized_is_one_line_and_leaves_no_pidfile(self) -> None:
        import socket

        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        listen = f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1"
        cwd = self.workdir()
        pidfile = os.path.join(cwd, "twistd.pid")
        log = os.path.join(cwd, "epgd.log")
        process = run_twistd(cwd, f"--pidfile={pidfile}", "--logfile", log, "epgd", "--config",
                             write_config(self), "--listen", listen)
        out, err = self.finish(process)
        line = f'epgd: cannot listen on "{listen}": [Errno 98] Address already in use'
        self.assertNotEqual(process.returncode, 0)
        self.assertEqual(err.splitlines()[0], line, err)
        self.assertNotIn("b''", err)
        for _ in range(100):  # the daemon removes it as it exits, maybe after twistd's parent
            if not os.path.exists(pidfile):
                break
            time.sleep(0.05)
        self.assertFalse(os.path.exists(pidfile), "the pidfile is left behind")
        with open(log, encoding="utf-8") as f:
            self.assertIn(line, f.read())

    def test_every_log_line_is_masked(self) -> None:
        cwd = self.workdir()
        config = os.path.join(cwd, "epgd.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f'[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\nstate_dir = "{cwd}/state"\n'
                    '[[provider]]\nname = "main"\n'
                    'playlist = "http://127.0.0.1:1/get.php?username=alice7&password=hunter2x"\n'
                    '[[lineup]]\nid = "nhl_ppv"\n')
        tac = os.path.join(cwd, "leaky.tac")
        with open(tac, "w", encoding="utf-8") as f:
            f.write(LEAKY_TAC)
        log = os.path.join(cwd, "epgd.log")
        process = run_twistd(cwd, "-ny", tac, "--pidfile=", "--logfile", log,
                             env={"EPGD_CONFIG": config})
        try:
            text = ""
            for _ in range(400):
                if process.poll() is not None:
                    self.fail(f"twistd exited early: {process.communicate()}")
                if os.path.exists(log):
                    with open(log, encoding="utf-8") as f:
                        text = f.read()
                    if "done leaking" in text:
                        break
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            self.finish(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        with open(log, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("done leaking", text)
        for expected in ("boom", "RuntimeError", "Unhandled error in Deferred", "ValueError",
                         "printed *** for ***"):
            self.assertIn(expected, text)
        self.assertNotIn("hunter2x", text)
        self.assertNotIn("alice7", text)
