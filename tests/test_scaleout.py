"""
Past one machine (SPEC §17), with the files in contrib/ as shipped: only their listen and
upstream lines are rewritten (to free ports on 127.0.0.1) before nginx and HAProxy run them.

* nginx with ``contrib/nginx-cache.conf`` in front of epgd: 20 HLS viewers cost epgd one
  request per segment and about one playlist request a second.
* HAProxy with ``contrib/haproxy.cfg`` over two epgd nodes: a channel's viewers (MPEG-TS and
  HLS alike) land on one node, holding one provider connection; the rest goes round-robin;
  a node that fails its health check hands over its own channels only.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from tests.programs import require
from tests.streamhelpers import E2ETestCase, Epgd, HTTPReader, config, event, schedule
from tests.test_splice_e2e import looped

CONTRIB = Path(__file__).parent.parent / "contrib"
SEGMENT = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(text: str, listen: tuple[str, str], servers: list[tuple[str, str]]) -> str:
    """The shipped file with its marked lines rewritten, each (pattern, replacement); nothing else."""
    pattern, replacement = listen
    text, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, f"{pattern!r} matched {count} lines"
    for pattern, replacement in servers:
        text, count = re.subn(pattern, replacement, text, flags=re.M)
        assert count >= 1, f"{pattern!r} matched no line"
    return text


class ScaleOutTestCase(E2ETestCase):
    timeout = 120

    def count_requests(self, epgd: Epgd) -> Counter[str]:
        """Every request path epgd answers, counted."""
        seen: Counter[str] = Counter()
        site = epgd.port.factory  # type: ignore[attr-defined]
        resource_for = site.getResourceFor

        def counting(request: Any) -> Any:
            seen[request.path.decode("latin-1")] += 1
            return resource_for(request)

        site.getResourceFor = counting
        return seen

    def program(self, argv: list[str], workdir: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(workdir, "output.log"), "wb")  # noqa: SIM115 - closed in cleanup
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=workdir)

        def stop() -> None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()

        self.addCleanup(stop)
        return process

    async def listening(self, port: int, process: subprocess.Popen[bytes], workdir: str) -> None:
        for _ in range(100):
            if process.poll() is not None:
                self.fail(f"{process.args[0]} exited: " + Path(workdir, "output.log").read_text()[-2000:])
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            await self.sleep(0.05)
        self.fail(f"nothing listens on {port}")

    def workdir(self) -> str:
        path = tempfile.mkdtemp(prefix="epgd-scaleout-")
        os.chmod(path, 0o755)  # nginx's workers run as "nobody" when the tests run as root
        self.addCleanup(shutil.rmtree, path, True)
        return path

    async def get(self, port: int, path: str, timeout: float = 30) -> HTTPReader:
        request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        reader = HTTPReader(self.reactor, request, keep=16 << 20)
        await connectProtocol(TCP4ClientEndpoint(self.reactor, "127.0.0.1", port), reader)
        await reader.wait_closed(timeout)
        return reader

    def channels(self, count: int) -> dict[str, list[Any]]:
        """``count`` channels test_1.., each live on a source of its own."""
        data, rate = looped("red", 120)
        now = self.now()
        return {f"test_{n}": [event(f"Game {n}", now - 60, now + 600,
                                    self.provider.stream(f"s{n}", data, rate=rate))]
                for n in range(1, count + 1)}


class NginxCacheTests(ScaleOutTestCase):
    async def test_twenty_hls_viewers_cost_epgd_one_request_per_segment(self) -> None:
        nginx = require("nginx", "contrib/nginx-cache.conf is tested as shipped")
        epgd = self.epgd(self.channels(1), output="continuous", hls_segment=SEGMENT, hls_window=6)
        asked = self.count_requests(epgd)
        workdir = self.workdir()
        port = free_port()
        conf = render((CONTRIB / "nginx-cache.conf").read_text(),
                      (r"^(\s*)listen 8090;", rf"\1listen 127.0.0.1:{port};"),
                      [(r"^(\s*)server 127\.0\.0\.1:8080;", rf"\1server 127.0.0.1:{epgd.port.getHost().port};")])
        Path(workdir, "nginx.conf").write_text(conf)
        process = self.program([nginx, "-e", "stderr", "-p", workdir, "-c", os.path.join(workdir, "nginx.conf"),
                                "-g", "daemon off;"], workdir)
        await self.listening(port, process, workdir)

        fetched: Counter[str] = Counter()
        failures: list[str] = []

        async def viewer() -> None:
            """A player: the playlist every half segment, each new segment once."""
            have: set[str] = set()
            start = self.now()
            while self.now() - start < 8:
                playlist = await self.get(port, "/stream/test_1.m3u8")
                if playlist.status != 200:
                    failures.append(f"playlist {playlist.status}")
                    return
                uris = [line for line in playlist.text().splitlines() if line and not line.startswith("#")]
                for uri in uris[-3:] if not have else uris:
                    if uri in have:
                        continue
                    segment = await self.get(port, f"/stream/{uri}")
                    if segment.status != 200 or segment.body[:1] != b"\x47":
                        failures.append(f"{uri}: {segment.status}")
                    have.add(uri)
                    fetched[uri] += 1
                await self.sleep(SEGMENT / 2)

        from twisted.internet.defer import gatherResults

        started = self.now()
        await gatherResults([self.viewer_deferred(viewer) for _ in range(20)])
        elapsed = self.now() - started
        self.assertEqual(failures, [])
        segments = {path: n for path, n in asked.items() if path.startswith("/stream/test_1/")}
        self.assertGreaterEqual(len(segments), 6)
        self.assertEqual(set(segments.values()), {1}, segments)  # one request per segment
        self.assertEqual(set(segments), {f"/stream/{uri}" for uri in fetched})
        self.assertGreaterEqual(sum(fetched.values()), 20 * len(segments) * 0.8)  # the viewers got them all
        playlists = asked["/stream/test_1.m3u8"]
        self.assertLessEqual(playlists, elapsed + 3, f"{playlists} playlist requests in {elapsed:.1f} s")
        self.assertEqual(sum(asked.values()), playlists + len(segments))  # nothing else reached epgd

    def viewer_deferred(self, viewer: Any) -> Any:
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(viewer())


class HaproxyTests(ScaleOutTestCase):
    async def stop_node(self, node: Epgd) -> None:
        if node.manager.running:
            await node.stop()

    async def test_a_channels_viewers_share_one_node(self) -> None:
        haproxy = require("haproxy", "contrib/haproxy.cfg is tested as shipped")
        channels = self.channels(8)
        settings = {"output": "continuous", "hls_segment": SEGMENT, "hls_window": 6}
        cfg = config(self.provider, channels=8, **settings)
        nodes = [Epgd(self.reactor, cfg, schedule(channels, self.now())) for _ in range(2)]
        for node in nodes:
            self.addCleanup(self.stop_node, node)
        asked = [self.count_requests(node) for node in nodes]
        workdir = self.workdir()
        port = free_port()
        node_ports = [node.port.getHost().port for node in nodes]
        conf = render((CONTRIB / "haproxy.cfg").read_text(),
                      (r"^(\s*)bind :8080\b", rf"\1bind 127.0.0.1:{port}"),
                      [(r"^(\s*)server node1 127\.0\.0\.1:8081\b", rf"\1server node1 127.0.0.1:{node_ports[0]}"),
                       (r"^(\s*)server node2 127\.0\.0\.1:8082\b", rf"\1server node2 127.0.0.1:{node_ports[1]}")])
        Path(workdir, "haproxy.cfg").write_text(conf)
        process = self.program([haproxy, "-db", "-f", os.path.join(workdir, "haproxy.cfg")], workdir)
        await self.listening(port, process, workdir)
        await self.wait_until(lambda: all(a["/health"] for a in asked), 10, "health checks on both nodes")

        viewers = []
        for cid in channels:
            for _ in range(3):  # three MPEG-TS viewers of each channel
                reader = HTTPReader(self.reactor, f"GET /stream/{cid}.ts HTTP/1.0\r\n\r\n".encode(), keep=1 << 16)
                await connectProtocol(TCP4ClientEndpoint(self.reactor, "127.0.0.1", port), reader)
                viewers.append(reader)
        for reader in viewers:
            await reader.wait_bytes(5000, 15)
        for cid in channels:  # and one HLS viewer, playlist and a segment
            playlist = await self.get(port, f"/stream/{cid}.m3u8")
            self.assertEqual(playlist.status, 200, playlist.text())
            uri = [line for line in playlist.text().splitlines() if line and not line.startswith("#")][-1]
            self.assertEqual((await self.get(port, f"/stream/{uri}")).status, 200)
            # the node its TS viewers are on has them all, HLS included; the other has nothing
            figures = [node.manager.status().get(cid, {}) for node in nodes]
            self.assertEqual(sorted((f.get("clients", 0), f.get("hls_sessions", 0)) for f in figures),
                             [(0, 0), (3, 1)], figures)

        where = {cid: [i for i, node in enumerate(nodes) if cid in node.manager.channels] for cid in channels}
        self.assertTrue(all(len(found) == 1 for found in where.values()), where)  # one node per channel
        self.assertEqual({found[0] for found in where.values()}, {0, 1}, where)  # both nodes carry some
        self.assertEqual(self.provider.peak_total, len(channels))  # one provider connection per channel

        for _ in range(10):  # the rest round-robin
            self.assertEqual((await self.get(port, "/streams/status")).status, 200)
        self.assertEqual([a["/streams/status"] for a in asked], [5, 5])

        for reader in viewers:
            await reader.close()
        # node 1 goes down: its channels move to node 2, node 2's stay where they are
        await self.stop_node(nodes[0])
        for cid in channels:
            self.assertEqual((await self.get(port, f"/stream/{cid}.m3u8")).status, 200)
        for cid, found in where.items():
            self.assertIn(cid, nodes[1].manager.channels, f"{cid} (on node {found[0] + 1} before)")
