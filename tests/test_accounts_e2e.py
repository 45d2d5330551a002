"""
Viewer accounts end to end (SPEC §15): a real epgd (Catalog on provider files, StreamManager,
EpgdApi behind the real ``EpgdSite`` with its masked access log) on 127.0.0.1, driven by the
real ``pyxtream`` client library, the way Linux IPTV players built on it log in, list
categories and streams, read a channel's EPG and open its stream URL.

``open_networks = []``: 127.0.0.1 is then outside every open network, so every request here
needs a login, as on a VPS. pyxtream is blocking (``requests``): it runs in a thread while
the reactor serves it. It is pointed at ``http://127.0.0.1:PORT`` (the server URL a user types
into an app) and given a temporary cache directory; nothing reaches past loopback.
"""

from __future__ import annotations

import base64
import os
import subprocess
from typing import Any

from attrs import evolve
from twisted.internet.threads import deferToThread

from epgd.catalog import Catalog
from epgd.config import Config, UserConfig
from epgd.httpguard import EpgdSite
from epgd.redact import Redactor
from epgd.stream.manager import StreamManager
from epgd.web import EpgdApi
from tests.stackhelpers import LINEUP, LIVE_TITLE, stack_config, write_provider_files
from tests.streamhelpers import E2ETestCase, HTTPReader, pids

ALICE = UserConfig(name="alice", password="Wonder-land9", max_connections=1, lineups=(LINEUP,))


def xtream_session(base: str, cache: str, password: str = ALICE.password) -> dict[str, Any]:
    """What an app built on pyxtream does, in a thread: login, lists, EPG, one stream."""
    import requests
    from pyxtream import XTream

    client = XTream("epgd", ALICE.name, password, base, cache_path=cache, reload_time_sec=-1)
    seen: dict[str, Any] = {"authenticated": client.state["authenticated"]}
    if not seen["authenticated"]:
        return seen
    seen["auth_data"] = client.auth_data
    seen["loaded"] = client.load_iptv()
    seen["categories"] = sorted({c.group_title for c in client.channels})
    seen["groups"] = [(g.group_id, g.name) for g in client.groups if g.group_id != 9999]
    seen["channels"] = [(c.id, c.name, c.epg_channel_id, c.url) for c in client.channels]
    first = client.channels[0]
    seen["epg"] = client.liveEpgByStream(first.id)
    seen["table"] = client.allLiveEpgByStream(first.id)
    with requests.get(first.url, stream=True, timeout=(5, 15), headers=client.connection_headers) as response:
        seen["stream_status"] = response.status_code
        seen["stream_type"] = response.headers.get("content-type")
        data = b""
        while len(data) < 188 * 400:
            chunk = response.raw.read(188 * 100)
            if not chunk:
                break
            data += chunk
        seen["stream"] = data
    return seen


class PyXtreamTests(E2ETestCase):
    timeout = 90

    async def start(self, **stream: Any) -> str:
        if not stream:
            self.provider.stream("one", "a", rate=400_000)
            self.provider.stream("two", "b", rate=400_000)
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        playlist, guide = write_provider_files(directory, self.provider, self.now())
        base = stack_config(directory, playlist, guide, **{"output": "passthrough", **stream})
        config: Config = evolve(base, server=evolve(base.server, open_networks=()), users=(ALICE,))
        redactor = Redactor.for_urls([playlist, self.provider.playlist_url()],
                                     [(u.name, u.password) for u in config.users])
        catalog = Catalog(config, self.reactor, redactor)
        streams = StreamManager(config, self.reactor, schedule=catalog.schedule, redactor=redactor,
                                has_data=catalog.has_data)
        catalog.on_schedule(streams.schedule_changed)
        api = EpgdApi(config, catalog, streams, self.reactor, redactor=redactor)
        catalog.startService()
        streams.startService()
        port = self.reactor.listenTCP(0, EpgdSite(api.app.resource(), redactor), interface="127.0.0.1")

        async def stop() -> None:
            await port.stopListening()
            await streams.stopService()
            await catalog.stopService()
            await self.sleep(0.05)

        self.addCleanup(stop)
        self.port = port.getHost().port
        await self.wait_until(lambda: catalog.published() is not None and catalog.has_data(), 15,
                              "the provider files to load")
        return f"http://127.0.0.1:{self.port}"

    async def fetch(self, path: str) -> HTTPReader:
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        reader = HTTPReader(self.reactor, f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await connectProtocol(TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port), reader)
        await reader.wait_closed(10)
        return reader

    async def test_pyxtream_logs_in_lists_reads_the_guide_and_streams(self) -> None:
        base = await self.start()
        cache = os.path.abspath(self.mktemp())
        os.makedirs(cache)
        seen = await deferToThread(xtream_session, base, cache)

        self.assertTrue(seen["authenticated"])
        self.assertEqual(seen["auth_data"]["user_info"]["exp_date"], "4102444800")
        self.assertEqual(seen["auth_data"]["server_info"]["port"], str(self.port))
        self.assertTrue(seen["loaded"])
        self.assertEqual(seen["groups"], [(1, "Test Sports")])
        self.assertEqual(seen["channels"], [
            (1, "Test Sports 1", "test_1", f"{base}/live/alice/Wonder-land9/1.ts"),
            (2, "Test Sports 2", "test_2", f"{base}/live/alice/Wonder-land9/2.ts"),
        ])
        [live, following] = seen["epg"]["epg_listings"][:2]
        self.assertEqual(base64.b64decode(live["title"]).decode(), LIVE_TITLE)
        self.assertEqual(live["channel_id"], "test_1")
        self.assertEqual(base64.b64decode(following["title"]).decode(), "Leafs vs Habs")
        self.assertEqual([item["now_playing"] for item in seen["table"]["epg_listings"]], [1, 0])

        self.assertEqual((seen["stream_status"], seen["stream_type"]), (200, "video/mp2t"))
        data = seen["stream"]
        self.assertGreaterEqual(len(data), 188 * 100)
        self.assertEqual(data[0], 0x47)
        self.assertIn(0, pids(data))  # a PAT: a real MPEG-TS stream, from the provider's clip

        # the password never reached the log; the access log names the account
        lines = self.log_lines()
        self.assertTrue([line for line in lines
                         if "GET /player_api.php?username=alice&password=*** " in line], lines[-20:])
        self.assertFalse([line for line in lines if "Wonder-land9" in line])

    async def test_ffmpeg_plays_an_accounts_hls_url_from_outside(self) -> None:
        """
        SPEC §15/§16 on a VPS: /live/U/P/1.m3u8 plays in a real HLS client that knows nothing
        of logins; every segment request logs in by its path, and the log masks the password.
        """
        from tests.mediaservers import run_for, tool
        from tests.test_splice_e2e import looped

        ffmpeg, ffprobe = tool("ffmpeg"), tool("ffprobe")
        for name, colour in (("one", "red"), ("two", "green")):
            data, rate = looped(colour, 120)
            self.provider.stream(name, data, rate=rate)
        base = await self.start(output="continuous", hls_segment=1.0)
        recording = os.path.abspath(self.mktemp())
        log, _ = await deferToThread(run_for, [
            ffmpeg, "-hide_banner", "-i", f"{base}/live/alice/Wonder-land9/1.m3u8", "-map", "0",
            "-c", "copy", "-f", "mpegts", recording], 8.0)
        self.assertNotIn("401", log)
        probe = await deferToThread(subprocess.run, [
            ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", recording],
            capture_output=True, text=True, timeout=60)
        self.assertGreater(float(probe.stdout.strip() or 0), 3.0, log[-2000:])
        lines = self.log_lines()
        self.assertTrue([line for line in lines if "GET /live/alice/***/1/" in line and '" 200 ' in line],
                        lines[-20:])
        self.assertFalse([line for line in lines if "Wonder-land9" in line])

    async def test_wrong_password_and_no_login(self) -> None:
        base = await self.start()
        cache = os.path.abspath(self.mktemp())
        os.makedirs(cache)
        seen = await deferToThread(xtream_session, base, cache, "not-it")
        self.assertFalse(seen["authenticated"])
        for path in ("/playlist.m3u", "/stream/test_1.ts", "/live/alice/not-it/1.ts"):
            response = await self.fetch(path)
            self.assertEqual(response.status, 401, path)
            self.assertEqual(response.headers["www-authenticate"], 'Basic realm="epgd"')
        lines = self.log_lines()
        self.assertTrue([line for line in lines if '"GET /live/alice/***/1.ts HTTP/1.0" 401' in line], lines)
        self.assertFalse([line for line in lines if "not-it" in line])
