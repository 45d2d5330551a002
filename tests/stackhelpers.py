"""
The whole epgd web stack for the metrics and status-page tests: a real Catalog (provider data
from a playlist and a guide on disk), a real StreamManager, EpgdApi on a 127.0.0.1 port, and
the stream sources served by the `FakeProvider` (credentials in their URLs).

Lineup ``test`` has two channels. ``Bruins vs Rangers`` is live on ``test_1`` (it started
30 minutes ago, on a whole minute, so a page shows its start exactly), ``Leafs vs Habs``
follows it; ``Oilers vs Flames`` is live on ``test_2``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any

from lxml import etree
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.web.server import Site

from epgd.catalog import Catalog
from epgd.config import Config, GuideConfig, LineupConfig, ProviderConfig, ServerConfig, StreamConfig
from epgd.redact import Redactor
from epgd.stream.manager import StreamManager
from epgd.web import EpgdApi
from tests.fakeprovider import FakeProvider
from tests.streamhelpers import HTTPReader

LINEUP = "test"
LIVE_TITLE = "Bruins vs Rangers"
NEXT_TITLE = "Leafs vs Habs"
OTHER_TITLE = "Oilers vs Flames"


def xmltv_time(moment: _dt.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S +0000")


def write_provider_files(directory: str, provider: FakeProvider, now: float,
                         streams: tuple[str, str] = ("one", "two"),
                         live_title: str = LIVE_TITLE) -> tuple[str, str]:
    """A playlist of two arenas (streams on the fake provider) and a guide of three games."""
    start = _dt.datetime.fromtimestamp(now, _dt.UTC).replace(second=0, microsecond=0)
    start -= _dt.timedelta(minutes=30)
    games = [
        ("arena1", live_title, start, start + _dt.timedelta(hours=2)),
        ("arena1", NEXT_TITLE, start + _dt.timedelta(hours=2, minutes=30),
         start + _dt.timedelta(hours=5)),
        ("arena2", OTHER_TITLE, start, start + _dt.timedelta(hours=3)),
    ]
    lines = ["#EXTM3U"]
    for number, name in ((1, streams[0]), (2, streams[1])):
        lines.append(f'#EXTINF:-1 tvg-id="arena{number}" tvg-name="Arena {number}" '
                     f'group-title="Sports",Arena {number}')
        lines.append(provider.url(name))
    playlist = os.path.join(directory, "playlist.m3u")
    with open(playlist, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    root = etree.Element("tv")
    for number in (1, 2):
        channel = etree.SubElement(root, "channel", id=f"arena{number}")
        etree.SubElement(channel, "display-name").text = f"Arena {number}"
    for channel_id, title, begin, end in games:
        programme = etree.SubElement(root, "programme", start=xmltv_time(begin),
                                     stop=xmltv_time(end), channel=channel_id)
        etree.SubElement(programme, "title").text = title
    guide = os.path.join(directory, "guide.xml")
    with open(guide, "wb") as f:
        f.write(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return playlist, guide


def stack_config(directory: str, playlist: str, guide: str, admin_token: str = "",
                 max_streams: int = 0, **stream: Any) -> Config:
    settings: dict[str, Any] = {
        "check_interval": 0.5, "idle_timeout": 30.0, "connect_timeout": 2.0,
        "client_buffer": 1024 * 1024, "hold_after_end": 0.0, "reconnect_attempts": 1,
    }
    settings.update(stream)
    return Config(
        server=ServerConfig(listen=(), admin_token=admin_token,
                            state_dir=os.path.join(directory, "state")),
        stream=StreamConfig(**settings),
        guide=GuideConfig(days=1),
        providers=(ProviderConfig(name="main", playlist=playlist, guide=guide,
                                  max_streams=max_streams),),
        lineups=(LineupConfig(id=LINEUP, name="Test Sports", channels=2),),
        path="stack.toml",
    )


class Stack:
    """epgd's Catalog, StreamManager and API on a real port; ``stop()`` it in cleanup."""

    def __init__(self, reactor: Any, config: Config, provider: FakeProvider) -> None:
        self.reactor = reactor
        self.config = config
        self.redactor = Redactor.for_urls([provider.playlist_url()])
        self.catalog = Catalog(config, reactor, self.redactor)
        self.streams = StreamManager(config, reactor, schedule=self.catalog.schedule,
                                     redactor=self.redactor, has_data=self.catalog.has_data)
        self.catalog.on_schedule(self.streams.schedule_changed)
        self.api = EpgdApi(config, self.catalog, self.streams, reactor)
        site = Site(self.api.app.resource())
        site.noisy = False
        self.catalog.startService()
        self.streams.startService()
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.clients: list[HTTPReader] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}"

    async def open(self, path: str, method: str = "GET", headers: tuple[str, ...] = ()) -> HTTPReader:
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        extra = "".join(f"{h}\r\n" for h in headers)
        request = f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()
        client = HTTPReader(self.reactor, request)
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port.getHost().port)
        await connectProtocol(endpoint, client)
        self.clients.append(client)
        return client

    async def fetch(self, path: str, method: str = "GET", headers: tuple[str, ...] = ()) -> HTTPReader:
        client = await self.open(path, method, headers)
        await client.wait_closed(10)
        return client

    async def json(self, path: str) -> Any:
        response = await self.fetch(path)
        return json.loads(response.text())

    async def ready(self, timeout: float = 15.0) -> None:
        """Until /health says ok (the files are fetched and the schedule with them served)."""
        waited = 0.0
        while (await self.json("/health"))["status"] != "ok":
            if waited > timeout:
                raise AssertionError("epgd did not load the provider files in time")
            await deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        result = self.streams.stopService()
        if isinstance(result, Deferred):
            await result
        await self.catalog.stopService()
        await self.port.stopListening()
        await deferLater(self.reactor, 0.05, lambda: None)
