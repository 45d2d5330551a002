"""
Tests for epgd.web with viewer accounts (SPEC §15), through ``StubTreq`` from a chosen TCP
peer: who must log in for each viewer endpoint (IPv4 and IPv6, inside and outside
``open_networks``), what each account sees, the status and admin endpoints, the connection
limit, and that no answer carries a password it should not.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from attrs import evolve
from lxml import etree
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, StreamConfig
from epgd.web import EpgdApi
from tests.accounthelpers import NOW, OUTSIDE, SECRETS, Catalog, Streams, client, make_config, published

HOST = "http://epgd.example:8080"
VIEWER_PATHS = ("/playlist.m3u", "/epg.xml", "/epg.xml.gz", "/schedule.json", "/stream/nhl_1.ts", "/auto/v101",
                "/discover.json", "/lineup.json", "/lineup.xml", "/lineup_status.json", "/lineup.post",
                "/device.xml", "/capability")


def basic(name: str, password: str) -> dict[str, list[str]]:
    return {"Authorization": ["Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()]}


ALICE = basic("alice", "Wonder-land9")
BOB = basic("bob", "xyzzy-42")


class WebAccountsTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.use(make_config())

    def use(self, config: Config, host: str = OUTSIDE) -> None:
        self.streams = Streams()
        self.api = EpgdApi(config, Catalog(published(config)), self.streams, self.clock)
        self.resource = self.api.app.resource()
        self.treq = client(self.resource, host)

    def get(self, path: str, headers: dict[str, list[str]] | None = None, method: str = "GET",
            host: str | None = None) -> tuple[Any, bytes]:
        treq = client(self.resource, host) if host else self.treq
        response = self.successResultOf(treq.request(method, HOST + path, headers=headers, unbuffered=True))
        if path.startswith(("/stream/", "/auto/")) and response.code == 200:
            return response, b""  # a live stream: its body stays open
        body = self.successResultOf(response.content())
        for secret in SECRETS[1:]:  # bob's and the provider's: in no answer any test here reads
            self.assertNotIn(secret.encode(), body, path)
        return response, body


class WhoLogsInTests(WebAccountsTestCase):
    def test_outside_every_viewer_endpoint_needs_a_login(self) -> None:
        for host in (OUTSIDE, "2001:db8::7"):
            for path in VIEWER_PATHS:
                response, body = self.get(path, host=host, method="POST" if path == "/lineup.post" else "GET")
                self.assertEqual(response.code, 401, (host, path))
                self.assertEqual(response.headers.getRawHeaders("www-authenticate"), ['Basic realm="epgd"'])
                self.assertTrue(body.startswith(b"login required") and body.count(b"\n") == 1, body)
        self.assertEqual(self.streams.served, [])

    def test_inside_open_networks_nothing_changes(self) -> None:
        """Plex on the LAN adds the HDHomeRun tuner and tunes without a login."""
        for host in ("127.0.0.1", "192.168.1.20", "::1", "fd00::20"):
            for path in VIEWER_PATHS:
                response, _ = self.get(path, host=host)
                self.assertEqual(response.code, 200, (host, path))
            _, playlist = self.get("/playlist.m3u", host=host)
            self.assertIn(f"{HOST}/stream/nba_1.ts".encode(), playlist)
            self.assertIn(f'x-tvg-url="{HOST}/epg.xml"'.encode(), playlist)
        _, lineup = self.get("/lineup.json", host="192.168.1.20")
        self.assertEqual([e["GuideNumber"] for e in json.loads(lineup)], ["101", "102", "103"])

    def test_without_accounts_nothing_changes_from_anywhere(self) -> None:
        self.use(make_config(users=()))
        for path in VIEWER_PATHS + ("/", "/streams/status", "/health"):
            self.assertEqual(self.get(path)[0].code, 200, path)

    def test_every_login_form(self) -> None:
        for path, headers in (("/playlist.m3u", ALICE), ("/playlist.m3u?username=alice&password=Wonder-land9", None)):
            response, body = self.get(path, headers)
            self.assertEqual(response.code, 200)
            self.assertIn(b"/live/alice/Wonder-land9/101.ts", body)

    def test_wrong_login_from_inside_is_refused_too(self) -> None:
        response, _ = self.get("/playlist.m3u", basic("alice", "nope"), host="192.168.1.20")
        self.assertEqual(response.code, 401)

    def test_ten_failures_then_429_whatever_is_sent(self) -> None:
        for _ in range(10):
            self.assertEqual(self.get("/epg.xml", basic("alice", "guess"))[0].code, 401)
        for path, headers in (("/epg.xml", ALICE), ("/playlist.m3u", None), ("/stream/nhl_1.ts", ALICE),
                              ("/player_api.php?username=alice&password=Wonder-land9", None)):
            response, body = self.get(path, headers)
            self.assertEqual(response.code, 429, path)
            self.assertEqual(response.headers.getRawHeaders("retry-after"), ["60"])
        self.clock.advance(60)
        self.assertEqual(self.get("/epg.xml", ALICE)[0].code, 200)


class WhatAUserSeesTests(WebAccountsTestCase):
    def test_playlist_of_an_account(self) -> None:
        response, body = self.get("/playlist.m3u", ALICE)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["audio/x-mpegurl"])
        lines = body.decode().splitlines()
        guide = f"{HOST}/xmltv.php?username=alice&password=Wonder-land9"
        self.assertEqual(lines[0], f'#EXTM3U x-tvg-url="{guide}" url-tvg="{guide}"')
        self.assertEqual([line for line in lines if not line.startswith("#")],
                         [f"{HOST}/live/alice/Wonder-land9/101.ts", f"{HOST}/live/alice/Wonder-land9/102.ts"])

    def test_guide_and_schedule_of_an_account(self) -> None:
        _, guide = self.get("/epg.xml", ALICE)
        root = etree.fromstring(guide)
        self.assertEqual([c.get("id") for c in root.iter("channel")], ["nhl_1", "nhl_2"])
        self.assertNotIn(b"Lakers", guide)
        response, gz = self.get("/epg.xml.gz", ALICE)
        self.assertEqual(gzip.decompress(gz), guide)
        _, schedule = self.get("/schedule.json", ALICE)
        self.assertEqual([c["id"] for c in json.loads(schedule)["channels"]], ["nhl_1", "nhl_2"])
        _, everything = self.get("/schedule.json", BOB)
        self.assertEqual([c["id"] for c in json.loads(everything)["channels"]], ["nhl_1", "nhl_2", "nba_1"])

    def test_another_lineups_channel_is_404(self) -> None:
        for path in ("/stream/nba_1.ts", "/auto/v103"):
            response, body = self.get(path, ALICE)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(body.count(b"\n"), 1)
        self.assertEqual(self.get("/stream/nhl_1.ts", ALICE)[0].code, 200)
        self.assertEqual(self.get("/auto/v102", ALICE)[0].code, 200)
        self.assertEqual(self.streams.served, ["nhl_1", "nhl_2"])

    def test_hdhomerun_documents_of_an_account(self) -> None:
        _, lineup = self.get("/lineup.json", ALICE)
        self.assertEqual([e["GuideNumber"] for e in json.loads(lineup)], ["101", "102"])
        _, discover = self.get("/discover.json", ALICE)
        _, lan = self.get("/discover.json", host="192.168.1.20")
        self.assertEqual(json.loads(discover)["DeviceID"], json.loads(lan)["DeviceID"])

    def test_the_connection_limit(self) -> None:
        self.use(evolve(make_config(), stream=StreamConfig(slate=False)))  # SPEC §15: 503
        self.assertEqual(self.get("/stream/nhl_1.ts", BOB)[0].code, 200)
        self.assertEqual(self.get("/auto/v101", BOB)[0].code, 200)  # same address, same channel: once
        response, body = self.get("/stream/nba_1.ts", BOB)
        self.assertEqual((response.code, body), (503, b"user bob already watches 1 channel: max_connections is 1\n"))
        self.assertEqual(self.get("/stream/nhl_1.ts", BOB, host="198.51.100.9")[0].code, 503)
        self.streams.end()
        self.treq.flush()
        self.assertEqual(self.get("/stream/nba_1.ts", BOB)[0].code, 200)


    def test_the_connection_limit_with_the_slate(self) -> None:
        """SPEC §14/§15: one more channel gets the slate saying so, and stays connected."""
        self.assertEqual(self.get("/stream/nhl_1.ts", BOB)[0].code, 200)
        response, _ = self.get("/stream/nba_1.ts", BOB)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.streams.served, ["nhl_1", "nba_1: slate 'bob: all 1 connections in use'"])


class OperatorTests(WebAccountsTestCase):
    def test_status_endpoints_need_the_token_from_outside(self) -> None:
        self.use(make_config(token="tok3n-admin"))
        for path in ("/", "/streams/status", "/health"):
            response, body = self.get(path)
            self.assertEqual((response.code, body), (401, b"admin token required\n"), path)
            self.assertEqual(self.get(path, {"Authorization": ["Bearer tok3n-admin"]})[0].code, 200)
            self.assertEqual(self.get(path + "?token=tok3n-admin")[0].code, 200)
            self.assertEqual(self.get(path, host="192.168.1.20")[0].code, 200)
            self.assertEqual(self.get(path, ALICE)[0].code, 401)  # an account is no operator

    def test_without_a_token_they_stay_open(self) -> None:
        for path in ("/", "/streams/status", "/health"):
            self.assertEqual(self.get(path)[0].code, 200, path)

    def test_the_token_opens_the_viewer_endpoints_for_the_status_page(self) -> None:
        self.use(make_config(token="tok3n-admin"))
        response, body = self.get("/schedule.json", {"Authorization": ["Bearer tok3n-admin"]})
        self.assertEqual(response.code, 200)
        self.assertEqual(len(json.loads(body)["channels"]), 3)

    def test_admin_endpoints_from_outside(self) -> None:
        response, body = self.get("/refresh", method="POST")
        self.assertEqual(response.code, 401)
        self.assertIn(b"server.admin_token", body)
        self.assertEqual(self.get("/refresh", method="POST", host="192.168.1.20")[0].code, 202)
        self.use(make_config(token="tok3n-admin"))
        self.assertEqual(self.get("/refresh?token=tok3n-admin", method="POST")[0].code, 202)
        self.assertEqual(self.get("/metrics", host="192.168.1.20")[0].code, 401)
