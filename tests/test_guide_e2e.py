"""
The guide end to end: a provider served by a local Twisted site (credentials in its URLs),
a real Catalog and EpgdApi on a real port, and the three outputs a player fetches.
"""

from __future__ import annotations

import datetime as _dt
import functools
import gzip
import json
import os
from collections.abc import Callable, Coroutine
from typing import Any

import treq
from lxml import etree
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import provider

from epgd.catalog import Catalog
from epgd.config import Config, GuideConfig, LineupConfig, ProviderConfig, ServerConfig
from epgd.redact import Redactor
from epgd.web import EpgdApi

reactor: Any = _reactor
USER, PASSWORD = "joe_user", "s3cretpw"
DTD = os.path.join(os.path.dirname(__file__), "data", "xmltv.dtd")


def xmltv_time(moment: _dt.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S +0000")


class FakeProvider(Resource):
    """An Xtream-style provider: get.php (playlist) and xmltv.php (gzip guide)."""

    isLeaf = True

    def __init__(self, now: float) -> None:
        super().__init__()
        self.down = False
        self.base = ""
        t = _dt.datetime.fromtimestamp(now, _dt.UTC).replace(microsecond=0)
        self.games = [  # (provider channel, title, start, stop)
            ("NHL 07", "Bruins vs Rangers", t - _dt.timedelta(hours=1), t + _dt.timedelta(hours=2)),
            ("NHL 07", "Leafs vs Habs", t + _dt.timedelta(hours=3), t + _dt.timedelta(hours=6)),
            ("NHL 08", "Oilers & Flames", t - _dt.timedelta(minutes=30),
             t + _dt.timedelta(hours=2)),
        ]

    def playlist(self) -> bytes:
        lines = ["#EXTM3U"]
        for number, name, group in ((7, "NHL 07", "NHL"), (8, "NHL 08", "NHL"), (9, "News", "News")):
            lines.append(f'#EXTINF:-1 tvg-id="nhl{number}" tvg-name="{name}" '
                         f'group-title="{group}",{name}')
            lines.append(f"{self.base}/live/{USER}/{PASSWORD}/{number}.ts")
        return ("\r\n".join(lines) + "\r\n").encode()

    def guide(self) -> bytes:
        root = etree.Element("tv")
        for number in (7, 8, 9):
            channel = etree.SubElement(root, "channel", id=f"nhl{number}")
            etree.SubElement(channel, "display-name").text = f"NHL 0{number}"
        for name, title, start, stop in self.games:
            programme = etree.SubElement(root, "programme", start=xmltv_time(start),
                                         stop=xmltv_time(stop), channel="nhl" + name[-1])
            etree.SubElement(programme, "title").text = title
            etree.SubElement(programme, "desc").text = f"{title}, live"
        return gzip.compress(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    def render_GET(self, request: IRequest) -> bytes:
        args = request.args or {}
        if self.down:
            request.setResponseCode(500)
            return b"<html><body>Internal Server Error</body></html>"
        if (args.get(b"username") != [USER.encode()]
                or args.get(b"password") != [PASSWORD.encode()]):
            request.setResponseCode(401)
            return b"bad credentials"
        if request.path == b"/get.php":
            request.setHeader(b"Content-Type", b"audio/x-mpegurl")
            return self.playlist()
        if request.path == b"/xmltv.php":
            request.setHeader(b"Content-Type", b"application/gzip")
            return self.guide()
        request.setResponseCode(404)
        return b"not found"


class FakeStreams:
    def serve(self, request: IRequest, channel_id: str) -> bytes:
        request.setResponseCode(503)
        return b"no streams in this test\n"

    def status(self) -> dict[str, Any]:
        return {}

    def connections(self) -> dict[str, int]:
        return {}

    def stop(self, channel_id: str) -> bool:
        return False


def async_test(f: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Deferred[None]]:
    @functools.wraps(f)
    def wrapper(self: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(f(self))
    return wrapper


class GuideEndToEndTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.log_lines: list[str] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            text = formatEvent(event) or ""
            if "log_failure" in event:
                text += event["log_failure"].getTraceback()
            self.log_lines.append(text)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.provider = FakeProvider(reactor.seconds())
        # The provider's own access log holds the credentials: that is its business, not ours.
        port = reactor.listenTCP(0, Site(self.provider, logPath=os.devnull),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.provider.base = f"http://127.0.0.1:{port.getHost().port}"
        self.playlist_url = (f"{self.provider.base}/get.php?username={USER}"
                             f"&password={PASSWORD}&type=m3u_plus")
        self.config = Config(
            server=ServerConfig(state_dir=os.path.abspath(self.mktemp()),
                                listen=("tcp:0:interface=127.0.0.1",)),
            guide=GuideConfig(days=1),
            providers=(ProviderConfig(
                name="main", playlist=self.playlist_url,
                guide=f"{self.provider.base}/xmltv.php?username={USER}&password={PASSWORD}",
                refresh_interval=3600),),
            lineups=(LineupConfig(id="nhl_ppv", name="NHL PPV", channels=2, match_group="^NHL$"),),
        )
        self.redactor = Redactor.for_urls([self.playlist_url])
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.bodies: list[bytes] = []

    async def start_epgd(self) -> tuple[Catalog, str]:
        catalog = Catalog(self.config, reactor, self.redactor)
        catalog.startService()
        self.addCleanup(lambda: catalog.running and catalog.stopService())
        api = EpgdApi(self.config, catalog, FakeStreams(), reactor)
        port = reactor.listenTCP(0, Site(api.app.resource()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return catalog, f"http://127.0.0.1:{port.getHost().port}"

    async def until(self, what: str, predicate: Callable[[], bool], seconds: float = 20) -> None:
        deadline = reactor.seconds() + seconds
        while not predicate():
            if reactor.seconds() > deadline:
                self.fail(f"timed out waiting for {what}")
            await deferLater(reactor, 0.05, lambda: None)

    async def get(self, url: str, method: str = "GET", **kwargs: Any) -> tuple[Any, bytes]:
        response = await treq.request(method, url, pool=self.pool, **kwargs)
        body = await response.content()
        self.bodies.append(body)
        return response, body

    async def raw_get(self, url: str, headers: dict[bytes, list[bytes]]) -> tuple[Any, bytes]:
        """A GET without treq's transparent gunzip, to see the bytes on the wire."""
        agent = Agent(reactor, pool=self.pool)
        response = await agent.request(b"GET", url.encode(), Headers(headers))
        body: bytes = await readBody(response)
        self.bodies.append(body)
        return response, body

    async def health(self, base: str) -> Any:
        return json.loads((await self.get(base + "/health"))[1])

    @async_test
    async def test_guide_end_to_end(self) -> None:
        catalog, base = await self.start_epgd()
        await self.until("the first fetch", lambda: catalog.health()["status"] == "ok")
        health = await self.health(base)
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["providers"]["main"]["channels"], 3)
        self.assertIsNone(health["providers"]["main"]["error"])

        response, playlist = await self.get(base + "/playlist.m3u")
        self.assertEqual(response.code, 200)
        text = playlist.decode()
        self.assertTrue(text.startswith(f'#EXTM3U x-tvg-url="{base}/epg.xml"'), text[:80])
        self.assertIn(f"{base}/stream/nhl_ppv_1.ts", text)
        self.assertIn(f"{base}/stream/nhl_ppv_2.ts", text)

        response, xml = await self.get(base + "/epg.xml")
        self.assertEqual(response.code, 200)
        dtd = etree.DTD(DTD)
        self.assertTrue(dtd.validate(etree.fromstring(xml)), dtd.error_log.filter_from_errors())
        for title in (b"Bruins vs Rangers", b"Leafs vs Habs", b"Oilers &amp; Flames"):
            self.assertIn(title, xml)
        self.assertIn(b"<desc>Bruins vs Rangers, live</desc>", xml)
        etag = response.headers.getRawHeaders("etag")[0]
        response, zipped = await self.raw_get(base + "/epg.xml", {b"Accept-Encoding": [b"gzip"]})
        self.assertEqual(response.headers.getRawHeaders("content-encoding"), ["gzip"])
        self.assertEqual(gzip.decompress(zipped), xml)
        response, _ = await self.get(base + "/epg.xml", headers={"If-None-Match": etag})
        self.assertEqual(response.code, 304)
        response, gz = await self.get(base + "/epg.xml.gz")
        self.assertEqual(gzip.decompress(gz), xml)

        response, raw = await self.get(base + "/schedule.json")
        body = json.loads(raw)
        lanes = {e["title"]: (c["id"], e["live"]) for c in body["channels"] for e in c["events"]}
        self.assertEqual(lanes, {"Bruins vs Rangers": ("nhl_ppv_1", True),
                                 "Leafs vs Habs": ("nhl_ppv_1", False),
                                 "Oilers & Flames": ("nhl_ppv_2", True)})
        source = body["channels"][0]["events"][0]["sources"][0]
        self.assertEqual(source["url"], f"{self.provider.base}/live/***/***/7.ts")
        generated = body["generated_at"]

        # The provider fails: /health says so, the last good schedule is still served.
        self.provider.down = True
        response, _ = await self.get(base + "/refresh", method="POST")
        self.assertEqual(response.code, 202)
        await self.until("the failed refresh", lambda: catalog.health()["status"] == "degraded")
        health = await self.health(base)
        self.assertEqual(health["status"], "degraded")
        self.assertIn("500", health["providers"]["main"]["error"])
        self.assertEqual(len([line for line in self.log_lines if "refresh failed" in line]), 1,
                         "one log line per failed refresh")
        self.assertTrue(health["providers"]["main"]["loaded"])
        response, raw = await self.get(base + "/schedule.json")
        self.assertEqual(json.loads(raw)["generated_at"], generated)
        self.assertEqual(len(json.loads(raw)["channels"][0]["events"]), 2)
        await catalog.stopService()

        # A restart on the same state_dir with the provider still down serves the schedule.
        catalog2, base2 = await self.start_epgd()
        await self.until("the cached schedule",
                         lambda: catalog2.health()["providers"]["main"]["loaded"])
        response, raw = await self.get(base2 + "/schedule.json")
        titles = sorted(e["title"] for c in json.loads(raw)["channels"] for e in c["events"])
        self.assertEqual(titles, ["Bruins vs Rangers", "Leafs vs Habs", "Oilers & Flames"])
        response, xml2 = await self.get(base2 + "/epg.xml")
        self.assertIn(b"Bruins vs Rangers", xml2)
        await self.until("the failed fetch", lambda: catalog2.health()["status"] == "degraded")
        await catalog2.stopService()

        # Credentials never leave the process (SPEC §9).
        everything = self.bodies + [line.encode() for line in self.log_lines]
        for blob in everything:
            self.assertNotIn(USER.encode(), blob)
            self.assertNotIn(PASSWORD.encode(), blob)
