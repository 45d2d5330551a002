"""
End to end over real 127.0.0.1 sockets: a media server given only ``http://HOST:PORT`` finds
every combined channel with its number and name and plays one (SPEC §10), replaying what
Jellyfin's HdHomerunHost does; ``/auto/v{n}`` shares the provider connection of
``/stream/{id}.ts``; and the whole process (``tap.build_service``) answers UDP discovery with
its real HTTP address and keeps its DeviceID across a restart.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import treq
from attrs import evolve
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.web.client import HTTPConnectionPool

from epgd import tap
from epgd.config import LineupConfig, parse_config
from epgd.hdhr.deviceid import valid_device_id
from epgd.hdhr.discovery import parse
from tests.streamhelpers import (
    A_PIDS,
    PAT_PID,
    E2ETestCase,
    Epgd,
    config,
    event,
    first_media_pid,
    pids,
    schedule,
)

CAPTURED = bytes.fromhex("0002000c0104ffffffff0204ffffffff73cc7d8f")


class MediaServerTests(E2ETestCase):
    def setUp(self) -> None:
        super().setUp()
        self.pool = HTTPConnectionPool(self.reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    def start(self) -> Epgd:
        """epgd with one lineup numbered from 101, the event live on its first two channels."""
        cfg = config(self.provider)
        cfg = evolve(cfg, server=evolve(cfg.server, state_dir=os.path.abspath(self.mktemp())),
                     lineups=(LineupConfig(id="test", name="Test", channels=3, first_number=101),))
        url = self.provider.stream("a", "a")
        now = self.now()
        live = [event("Bruins vs Rangers", now - 60, now + 600, url)]
        current = schedule({"test_1": live, "test_2": live, "test_3": []}, now)
        running = Epgd(self.reactor, cfg, current)
        self.addCleanup(running.stop)
        return running

    async def get_json(self, url: str) -> Any:
        response = await treq.get(url, pool=self.pool)
        self.assertEqual(response.code, 200, url)
        return json.loads(await response.content())

    async def test_jellyfin_flow(self) -> None:
        epgd = self.start()
        address = f"127.0.0.1:{epgd.port.getHost().port}"
        # What the user types: the address alone. Jellyfin puts http:// in front.
        model = await self.get_json(f"http://{address}/discover.json")
        self.assertTrue(valid_device_id(model["DeviceID"]))
        self.assertNotIn("hdtc", model["ModelNumber"].lower(), "no ?transcode= profiles")
        self.assertEqual(model["TunerCount"], 3)
        lineup = await self.get_json(model["LineupURL"] or model["BaseURL"] + "/lineup.json")
        channels = {"hdhr_" + c["GuideNumber"]: c for c in lineup if not c.get("DRM")}
        self.assertEqual(list(channels), ["hdhr_101", "hdhr_102", "hdhr_103"])
        self.assertEqual([c["GuideName"] for c in channels.values()], ["Test 1", "Test 2", "Test 3"])
        # Jellyfin tunes by splitting its channel id on "_" and using the channel's URL.
        chosen = channels["hdhr_101"]
        self.assertEqual("hdhr_101".split("_")[1], chosen["GuideNumber"])
        self.assertFalse(chosen["URL"].lower().startswith("hdhomerun"), "not a legacy tuner")
        parts = urlsplit(chosen["URL"])
        self.assertEqual(parts.netloc, address)
        client = await epgd.open(parts.path)
        await client.wait_bytes(100_000)
        self.assertEqual(client.status, 200)
        self.assertEqual(client.headers.get("content-type"), "video/mp2t")
        self.assertEqual(first_media_pid(client.body), PAT_PID)
        self.assertLessEqual(A_PIDS, set(pids(client.body)))

    async def test_auto_and_stream_share_one_provider_connection(self) -> None:
        epgd = self.start()
        tuner = await epgd.open("/auto/v101?transcode=native")
        player = await epgd.open("/stream/test_1.ts")
        other = await epgd.open("/auto/v102")
        for client in (tuner, player, other):
            await client.wait_bytes(100_000)
            self.assertEqual(first_media_pid(client.body), PAT_PID)
        self.assertEqual(self.provider.requests["a"], 1)
        self.assertEqual(self.provider.peak_total, 1)
        status = await epgd.status()
        self.assertEqual({k: v["clients"] for k, v in status.items()}, {"test_1": 2, "test_2": 1})

    async def test_auto_answers_as_stream_does(self) -> None:
        epgd = self.start()
        idle = await epgd.fetch("/auto/v103")
        same = await epgd.fetch("/stream/test_3.ts")
        self.assertEqual((idle.status, idle.text()), (same.status, same.text()))
        self.assertEqual(idle.status, 503)
        unknown = await epgd.fetch("/auto/v104")
        self.assertEqual(unknown.status, 404)
        self.assertEqual(unknown.text(), "unknown channel number '104': see /lineup.json\n")


class Replies(DatagramProtocol):
    def __init__(self) -> None:
        self.got: Deferred[bytes] = Deferred()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if not self.got.called:
            self.got.callback(datagram)


class ProcessTests(E2ETestCase):
    """The service tree of ``twistd epgd`` with discovery on, on loopback."""

    def setUp(self) -> None:
        super().setUp()
        self.pool = HTTPConnectionPool(self.reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)

    async def run_once(self) -> tuple[str, dict[str, Any]]:
        """Start the process's services, ask by UDP and by HTTP, stop; (reply BaseURL, discover.json)."""
        cfg = parse_config({
            "server": {"listen": "tcp:0:interface=127.0.0.1", "state_dir": f"{self.base}/state"},
            "hdhr": {"discovery": True, "discovery_port": 0},
            "provider": [{"name": "main", "playlist": f"{self.base}/missing.m3u"}],
            "lineup": [{"id": "nhl_ppv", "channels": 2, "first_number": 7}],
        }, "e2e.toml")
        service = tap.build_service(cfg, self.reactor)
        discovery = service.getServiceNamed("hdhr-discovery")
        discovery.kwargs["interface"] = "127.0.0.1"  # tests never listen beyond loopback
        service.privilegedStartService()
        service.startService()
        try:
            listener = service.getServiceNamed("listen-0")
            await self.wait_until(lambda: listener.port is not None, 5, "the HTTP listener")
            http_port = listener.port.getHost().port
            udp_port = discovery.protocol.transport.getHost().port
            asker = Replies()
            sock = self.reactor.listenUDP(0, asker, interface="127.0.0.1")
            try:
                sock.write(CAPTURED, ("127.0.0.1", udp_port))
                answer = await asker.got.addTimeout(5, self.reactor)
            finally:
                await sock.stopListening()
            parsed = parse(answer)
            assert parsed is not None
            tags = dict(parsed[1])
            base_url = tags[0x2A].decode()
            self.assertEqual(base_url, f"http://127.0.0.1:{http_port}")
            self.assertEqual(tags[0x27].decode(), base_url + "/lineup.json")
            self.assertEqual(tags[0x10], b"\x02")
            response = await treq.get(base_url + "/discover.json", pool=self.pool)
            model = json.loads(await response.content())
            self.assertEqual(tags[0x02].hex().upper(), model["DeviceID"])
            lineup = json.loads(await (await treq.get(model["LineupURL"], pool=self.pool)).content())
            self.assertEqual([c["GuideNumber"] for c in lineup], ["7", "8"])
            return base_url, model
        finally:
            await service.stopService()
            await self.pool.closeCachedConnections()

    async def test_discovery_and_a_stable_device_id(self) -> None:
        _, first = await self.run_once()
        self.assert_logged("[HDHR] new HDHomeRun device id " + first["DeviceID"])
        _, again = await self.run_once()
        self.assertEqual(again["DeviceID"], first["DeviceID"])
        self.assertEqual(again["DeviceAuth"], first["DeviceAuth"])
