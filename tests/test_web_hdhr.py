"""
Tests for the HDHomeRun routes of epgd.web (SPEC §4, §10.1) through treq's in-memory agent:
every field, type and status code a media server reads, and ``/auto/v{number}`` handing the
request to the stream manager exactly as ``/stream/{id}.ts`` does.
"""

from __future__ import annotations

import json
import os
from typing import Any

from lxml import etree
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest

from epgd.config import Config, HdhrConfig, LineupConfig, ProviderConfig, ServerConfig
from epgd.hdhr.device import HdhrDevice
from epgd.hdhr.deviceid import DEVICE_ID_FILE, valid_device_id
from epgd.web import EpgdApi
from tests.test_web import FakeCatalog, FakePublished

HOST = "http://192.168.1.20:8080"
UPNP = "{urn:schemas-upnp-org:device-1-0}"


class RecordingStreams:
    """A StreamManager stand-in that remembers what it was asked to serve, and how."""

    def __init__(self) -> None:
        self.served: list[tuple[str, bytes, dict[bytes, list[bytes]]]] = []

    def serve(self, request: IRequest, channel_id: str) -> bytes:
        self.served.append((channel_id, request.method, dict(request.args or {})))
        request.setHeader(b"Content-Type", b"video/mp2t")
        return b"" if request.method == b"HEAD" else b"\x47\x40\x00\x10" + b"\xff" * 184

    def status(self) -> dict[str, Any]:
        return {}

    def stop(self, channel_id: str) -> bool:
        return False


def make_config(state_dir: str = "./state", enabled: bool = True, base_url: str = "") -> Config:
    return Config(
        server=ServerConfig(state_dir=state_dir, base_url=base_url),
        hdhr=HdhrConfig(enabled=enabled, friendly_name="epgd sports"),
        providers=(ProviderConfig(name="main", playlist="p.m3u"),),
        lineups=(LineupConfig(id="nhl_ppv", name="NHL PPV", channels=4, first_number=101),
                 LineupConfig(id="nba", name="NBA", channels=2, first_number=201)),
    )


class HdhrRouteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.streams = RecordingStreams()
        self.use(make_config())

    def use(self, config: Config, lazy: bool = False) -> None:
        """An API on ``config``; ``lazy``: it makes its own device (state_dir), as by default."""
        device = None if lazy else HdhrDevice(config, "10439EFD")
        api = EpgdApi(config, FakeCatalog(FakePublished()), self.streams, Clock(), hdhr=device)
        self.stub = StubTreq(api.app.resource())

    def request(self, method: str, path: str, base: str = HOST) -> tuple[Any, bytes]:
        d = self.stub.request(method, base + path)
        self.stub.flush()
        response = self.successResultOf(d)
        body = self.successResultOf(self.stub.content(response))
        return response, body

    def get_json(self, path: str) -> Any:
        response, body = self.request("GET", path)
        self.assertEqual(response.code, 200, body)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        return json.loads(body)

    def test_discover(self) -> None:
        body = self.get_json("/discover.json")
        self.assertEqual(body, {
            "FriendlyName": "epgd sports", "Manufacturer": "Silicondust", "ModelNumber": "HDHR5-4US",
            "FirmwareName": "hdhomerun5_atsc", "FirmwareVersion": body["FirmwareVersion"],
            "DeviceID": "10439EFD", "DeviceAuth": body["DeviceAuth"],
            "BaseURL": HOST, "LineupURL": HOST + "/lineup.json", "TunerCount": 6,
        })
        self.assertIsInstance(body["FirmwareVersion"], str)
        self.assertIsInstance(body["DeviceAuth"], str)
        self.assertIs(type(body["TunerCount"]), int)  # Plex needs an integer, not "6"

    def test_base_url_follows_host_or_config(self) -> None:
        _, body = self.request("GET", "/discover.json", base="http://tv.lan:9000")
        self.assertEqual(json.loads(body)["LineupURL"], "http://tv.lan:9000/lineup.json")
        self.use(make_config(base_url="http://nordvpn:8080/"))
        self.assertEqual(self.get_json("/discover.json")["BaseURL"], "http://nordvpn:8080")
        self.assertEqual(self.get_json("/lineup.json")[0]["URL"], "http://nordvpn:8080/auto/v101")

    def test_lineup_json(self) -> None:
        lineup = self.get_json("/lineup.json")
        self.assertEqual([e["GuideNumber"] for e in lineup], ["101", "102", "103", "104", "201", "202"])
        for entry in lineup:
            self.assertEqual(set(entry), {"GuideNumber", "GuideName", "URL", "HD"})
            self.assertIsInstance(entry["GuideNumber"], str)
            self.assertEqual(entry["URL"], f"{HOST}/auto/v{entry['GuideNumber']}")
            self.assertEqual(entry["HD"], 1)
        self.assertEqual(lineup[4]["GuideName"], "NBA 1")

    def test_lineup_xml(self) -> None:
        response, body = self.request("GET", "/lineup.xml")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/xml"])
        root = etree.fromstring(body)
        self.assertEqual(root.tag, "Lineup")
        first = root.find("Program")
        self.assertEqual({c.tag: c.text for c in first},
                         {"GuideNumber": "101", "GuideName": "NHL PPV 1",
                          "URL": HOST + "/auto/v101", "HD": "1"})
        self.assertEqual(len(root.findall("Program")), 6)

    def test_lineup_status(self) -> None:
        self.assertEqual(self.get_json("/lineup_status.json"),
                         {"ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"]})

    def test_lineup_post_get_and_post(self) -> None:
        """Plex's channel scan: a 405 here would be 'device not found'."""
        for method in ("POST", "GET"):
            response, body = self.request(method, "/lineup.post?scan=start&source=Cable")
            self.assertEqual((response.code, json.loads(body)), (200, {}), method)
        response, body = self.request("POST", "/lineup.post")
        self.assertEqual((response.code, json.loads(body)), (200, {}))

    def test_device_xml_and_capability(self) -> None:
        for path in ("/device.xml", "/capability"):
            response, body = self.request("GET", path)
            self.assertEqual(response.code, 200, path)
            self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith("text/xml"))
            root = etree.fromstring(body)
            self.assertEqual(root.findtext(UPNP + "URLBase"), HOST)
            self.assertEqual(root.findtext(f"{UPNP}device/{UPNP}deviceType"),
                             "urn:schemas-upnp-org:device:MediaServer:1")
            self.assertEqual(root.findtext(f"{UPNP}device/{UPNP}serialNumber"), "10439EFD")
            self.assertEqual(root.findtext(f"{UPNP}device/{UPNP}friendlyName"), "epgd sports")
            self.assertTrue(root.findtext(f"{UPNP}device/{UPNP}UDN").startswith("uuid:"))

    def test_auto_is_the_stream_of_that_number(self) -> None:
        response, body = self.request("GET", "/auto/v102")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["video/mp2t"])
        self.assertEqual(body[:1], b"\x47")
        response, _ = self.request("GET", "/auto/v202?transcode=mobile&duration=3600")
        self.assertEqual(response.code, 200)
        response, body = self.request("HEAD", "/auto/v101")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual([(c, m) for c, m, _ in self.streams.served],
                         [("nhl_ppv_2", b"GET"), ("nba_2", b"GET"), ("nhl_ppv_1", b"HEAD")])

    def test_auto_unknown_number_is_404_one_line(self) -> None:
        for path in ("/auto/v105", "/auto/v1", "/auto/vabc", "/auto/v101.1", "/auto/101"):
            response, body = self.request("GET", path)
            self.assertEqual(response.code, 404, path)
            self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith("text/plain"))
            text = body.decode()
            self.assertTrue(text.endswith("\n") and "\n" not in text[:-1], text)
        self.assertEqual(self.streams.served, [])
        _, body = self.request("GET", "/auto/v105")
        self.assertEqual(body, b"unknown channel number '105': see /lineup.json\n")

    def test_disabled_means_404_everywhere(self) -> None:
        self.use(make_config(enabled=False))
        for method, path in (("GET", "/discover.json"), ("GET", "/lineup.json"), ("GET", "/lineup.xml"),
                             ("GET", "/lineup_status.json"), ("POST", "/lineup.post"),
                             ("GET", "/lineup.post"), ("GET", "/device.xml"), ("GET", "/capability"),
                             ("GET", "/auto/v101")):
            response, body = self.request(method, path)
            self.assertEqual(response.code, 404, path)
            self.assertIn(b"hdhr.enabled", body)
        self.assertEqual(self.streams.served, [])
        # The rest of the API is unaffected.
        response, _ = self.request("GET", "/playlist.m3u")
        self.assertEqual(response.code, 200)

    def test_device_made_from_state_dir_when_not_given(self) -> None:
        state = os.path.abspath(self.mktemp())
        self.use(make_config(state_dir=state), lazy=True)
        api_id = self.get_json("/discover.json")["DeviceID"]
        self.assertTrue(valid_device_id(api_id))
        with open(os.path.join(state, DEVICE_ID_FILE)) as f:
            self.assertEqual(f.read().strip(), api_id)
        self.use(make_config(state_dir=state), lazy=True)  # a restart
        self.assertEqual(self.get_json("/discover.json")["DeviceID"], api_id)
