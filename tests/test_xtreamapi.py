"""
Tests for epgd.xtreamapi through the web API (``treq.testing.StubTreq``, no sockets): every
Xtream Codes endpoint of SPEC §15, every field with its JSON type, per-account scoping, the
stream paths, and the 404 without accounts.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from attrs import evolve
from lxml import etree
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, StreamConfig, UserConfig
from epgd.web import EpgdApi
from tests.accounthelpers import (
    NOW,
    OUTSIDE,
    SECRETS,
    Catalog,
    Streams,
    client,
    make_config,
    published,
)

HOST = "http://epgd.example:8080"
ALICE_Q = "username=alice&password=Wonder-land9"
BOB_Q = "username=bob&password=xyzzy-42"


class XtreamTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.use(make_config())

    def use(self, config: Config, host: str = OUTSIDE) -> None:
        self.config = config
        self.streams = Streams()
        self.api = EpgdApi(config, Catalog(published(config)), self.streams, self.clock)
        self.treq = client(self.api.app.resource(), host)

    def get(self, path: str, method: str = "GET", **kwargs: Any) -> tuple[Any, bytes]:
        response = self.successResultOf(self.treq.request(method, HOST + path, **kwargs))
        return response, self.successResultOf(response.content())

    def stream(self, path: str, method: str = "GET") -> Any:
        """A stream's response (its headers): the body stays open until ``self.streams.end()``."""
        return self.successResultOf(self.treq.request(method, HOST + path, unbuffered=True))

    def json(self, path: str, code: int = 200) -> Any:
        response, body = self.get(path)
        self.assertEqual(response.code, code, body)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        for secret in SECRETS[2:]:  # the provider's: never in any answer
            self.assertNotIn(secret.encode(), body)
        return json.loads(body)

    def api_json(self, query: str, code: int = 200) -> Any:
        return self.json(f"/player_api.php?{query}", code)


class WithoutAccountsTests(XtreamTestCase):
    def test_every_xtream_endpoint_is_404(self) -> None:
        self.use(make_config(users=()))
        for path in ("/player_api.php?username=a&password=b", "/get.php?username=a&password=b",
                     "/xmltv.php?username=a&password=b", "/live/a/b/101.ts", "/a/b/101", "/player_api.php"):
            response, body = self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(body, b"not found: the Xtream Codes API needs viewer accounts "
                                   b"([[user]] in the configuration)\n")
        self.assertEqual(self.streams.served, [])


class AccountTests(XtreamTestCase):
    def test_account_answer_field_by_field(self) -> None:
        self.clock.advance(90)
        body = self.api_json(ALICE_Q)
        self.assertEqual(body["user_info"], {
            "username": "alice", "password": "Wonder-land9", "message": "", "auth": 1, "status": "Active",
            "exp_date": "4102444800", "is_trial": "0", "active_cons": "0", "created_at": str(int(NOW)),
            "max_connections": "2", "allowed_output_formats": ["ts", "m3u8"],
        })
        self.assertEqual(body["server_info"], {
            "url": "epgd.example", "port": "8080", "https_port": "", "server_protocol": "http", "rtmp_port": "",
            "timezone": "UTC", "timestamp_now": int(NOW) + 90, "time_now": "2025-11-24 16:01:30", "process": True,
        })

    def test_get_account_info_and_unknown_actions_give_the_account(self) -> None:
        plain = self.api_json(ALICE_Q)
        for action in ("get_account_info", "get_vod_info", "whatever"):
            self.assertEqual(self.api_json(f"{ALICE_Q}&action={action}"), plain)

    def test_no_limit_is_zero(self) -> None:
        self.use(make_config(users=(UserConfig(name="carol", password="c-pass", max_connections=0),)))
        self.assertEqual(self.api_json("username=carol&password=c-pass")["user_info"]["max_connections"], "0")

    def test_server_info_from_base_url(self) -> None:
        self.use(make_config(base_url="http://nordvpn:9981"))
        info = self.api_json(ALICE_Q)["server_info"]
        self.assertEqual((info["url"], info["port"], info["server_protocol"]), ("nordvpn", "9981", "http"))
        self.use(make_config(base_url="https://tv.example.org"))
        info = self.api_json(ALICE_Q)["server_info"]
        self.assertEqual((info["url"], info["port"], info["server_protocol"]), ("tv.example.org", "443", "https"))

    def test_wrong_or_missing_credentials(self) -> None:
        for query in ("username=alice&password=nope", "username=mallory&password=Wonder-land9", "",
                      "username=alice", "action=get_live_streams"):
            response, body = self.get(f"/player_api.php?{query}")
            self.assertEqual(response.code, 401, query)
            self.assertEqual(json.loads(body), {"user_info": {"auth": 0}})
            self.assertNotIn(b"Wonder-land9", body)

    def test_login_from_an_open_network_too(self) -> None:
        """The API is per account: even the LAN logs in (its answers carry the account's URLs)."""
        self.use(make_config(), host="192.168.1.20")
        response, _ = self.get("/player_api.php")
        self.assertEqual(response.code, 401)
        self.assertEqual(self.api_json(ALICE_Q)["user_info"]["auth"], 1)

    def test_a_posted_form_logs_in(self) -> None:
        response, body = self.get("/player_api.php", method="POST", data={"username": "bob", "password": "xyzzy-42",
                                                                          "action": "get_live_categories"})
        self.assertEqual(response.code, 200)
        self.assertEqual(len(json.loads(body)), 2)

    def test_failed_logins_close_the_address(self) -> None:
        for _ in range(10):
            self.get("/player_api.php?username=alice&password=guess")
        response, body = self.get(f"/player_api.php?{ALICE_Q}")
        self.assertEqual(response.code, 429)
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["60"])
        self.assertEqual(body, b"too many failed logins from this address: try again in 60 s\n")

    def test_active_cons_counts_the_accounts_streams(self) -> None:
        self.stream("/live/alice/Wonder-land9/101.ts")
        self.stream("/live/alice/Wonder-land9/101.ts")  # the same channel from the same address: once
        self.assertEqual(self.api_json(ALICE_Q)["user_info"]["active_cons"], "1")
        self.streams.end()
        self.treq.flush()
        self.assertEqual(self.api_json(ALICE_Q)["user_info"]["active_cons"], "0")


class ListTests(XtreamTestCase):
    def test_categories_one_per_lineup_the_account_sees(self) -> None:
        self.assertEqual(self.api_json(f"{ALICE_Q}&action=get_live_categories"),
                         [{"category_id": "1", "category_name": "NHL PPV", "parent_id": 0}])
        self.assertEqual(self.api_json(f"{BOB_Q}&action=get_live_categories"),
                         [{"category_id": "1", "category_name": "NHL PPV", "parent_id": 0},
                          {"category_id": "2", "category_name": "NBA", "parent_id": 0}])

    def test_live_streams_field_by_field(self) -> None:
        streams = self.api_json(f"{BOB_Q}&action=get_live_streams")
        self.assertEqual([s["num"] for s in streams], [101, 102, 103])
        self.assertEqual(streams[0], {
            "num": 101, "name": "NHL PPV 1", "stream_type": "live", "stream_id": 101,
            "stream_icon": "http://logos.example/nhl.png", "epg_channel_id": "nhl_1", "added": str(int(NOW)),
            "is_adult": 0, "category_id": "1", "category_ids": [1], "custom_sid": "", "tv_archive": 0,
            "direct_source": "", "tv_archive_duration": 0,
        })
        self.assertEqual((streams[2]["stream_icon"], streams[2]["category_id"], streams[2]["category_ids"]),
                         ("", "2", [2]))

    def test_live_streams_scoped_and_by_category(self) -> None:
        self.assertEqual([s["stream_id"] for s in self.api_json(f"{ALICE_Q}&action=get_live_streams")], [101, 102])
        self.assertEqual([s["stream_id"] for s in self.api_json(f"{BOB_Q}&action=get_live_streams&category_id=2")],
                         [103])
        self.assertEqual(self.api_json(f"{ALICE_Q}&action=get_live_streams&category_id=2"), [])
        self.assertEqual(self.api_json(f"{ALICE_Q}&action=get_live_streams&category_id=x"), [])

    def test_epg_channel_ids_are_the_guides_channel_ids(self) -> None:
        """A mismatch shifts or empties the apps' guide."""
        _, guide = self.get(f"/xmltv.php?{BOB_Q}")
        ids = [c.get("id") for c in etree.fromstring(guide).iter("channel")]
        streams = self.api_json(f"{BOB_Q}&action=get_live_streams")
        self.assertEqual([s["epg_channel_id"] for s in streams], ids)

    def test_lists_before_the_first_schedule(self) -> None:
        self.api = EpgdApi(self.config, Catalog(None), self.streams, self.clock)
        self.treq = client(self.api.app.resource())
        streams = self.api_json(f"{BOB_Q}&action=get_live_streams")
        self.assertEqual([s["stream_id"] for s in streams], [101, 102, 103])
        self.assertEqual(self.api_json(f"{BOB_Q}&action=get_short_epg&stream_id=101"), {"epg_listings": []})

    def test_vod_and_series_are_empty(self) -> None:
        for action in ("get_vod_categories", "get_vod_streams", "get_series_categories", "get_series"):
            self.assertEqual(self.api_json(f"{BOB_Q}&action={action}"), [])


class EpgTests(XtreamTestCase):
    def listings(self, query: str) -> list[dict[str, Any]]:
        body = self.api_json(query)
        self.assertEqual(list(body), ["epg_listings"])
        listings: list[dict[str, Any]] = body["epg_listings"]
        return listings

    def test_short_epg_field_by_field(self) -> None:
        listings = self.listings(f"{BOB_Q}&action=get_short_epg&stream_id=101")
        self.assertEqual(len(listings), 4)  # the live event and the next three
        live = listings[0]
        self.assertEqual(set(live), {"id", "epg_id", "title", "lang", "start", "end", "description", "channel_id",
                                     "start_timestamp", "stop_timestamp", "stream_id"})
        self.assertEqual(base64.b64decode(live["title"]).decode("utf-8"), "Bruins vs Rangers")
        self.assertEqual(base64.b64decode(live["description"]).decode("utf-8"), "Ünïcödé — live from Boston")
        self.assertEqual((live["start"], live["end"]), ("2025-11-24 15:30:00", "2025-11-24 17:30:00"))
        self.assertEqual((live["start_timestamp"], live["stop_timestamp"]),
                         (str(int(NOW) - 1800), str(int(NOW) + 5400)))
        self.assertEqual((live["channel_id"], live["epg_id"], live["stream_id"], live["lang"]),
                         ("nhl_1", "nhl_1", "101", ""))
        self.assertRegex(live["id"], r"^\d+$")
        self.assertEqual(len({item["id"] for item in listings}), 4)
        self.assertEqual([base64.b64decode(item["title"]).decode() for item in listings[1:]],
                         ["Game 1", "Game 2", "Game 3"])
        for item in listings:
            self.assertRegex(item["start"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
            self.assertIsInstance(item["start_timestamp"], str)

    def test_short_epg_limit(self) -> None:
        self.assertEqual(len(self.listings(f"{BOB_Q}&action=get_short_epg&stream_id=101&limit=2")), 2)
        self.assertEqual(len(self.listings(f"{BOB_Q}&action=get_short_epg&stream_id=101&limit=50")), 6)
        self.assertEqual(len(self.listings(f"{BOB_Q}&action=get_short_epg&stream_id=101&limit=x")), 4)

    def test_an_event_that_is_over_is_not_listed(self) -> None:
        self.clock.advance(2 * 3600)  # the first game is over, "Game 1" is on
        listings = self.listings(f"{BOB_Q}&action=get_short_epg&stream_id=101")
        self.assertEqual(base64.b64decode(listings[0]["title"]).decode(), "Game 1")

    def test_scoped_unknown_or_empty_channels(self) -> None:
        for query in (f"{ALICE_Q}&action=get_short_epg&stream_id=103", f"{BOB_Q}&action=get_short_epg&stream_id=999",
                      f"{BOB_Q}&action=get_short_epg", f"{BOB_Q}&action=get_short_epg&stream_id=102",
                      f"{ALICE_Q}&action=get_simple_data_table&stream_id=103"):
            self.assertEqual(self.listings(query), [], query)
        self.assertEqual(len(self.listings(f"{BOB_Q}&action=get_short_epg&stream_id=103")), 1)

    def test_simple_data_table_has_every_event_of_the_guide_window(self) -> None:
        listings = self.listings(f"{BOB_Q}&action=get_simple_data_table&stream_id=101")
        self.assertEqual(len(listings), 6)  # guide.days = 1: all six are within the day
        self.assertEqual([item["now_playing"] for item in listings], [1, 0, 0, 0, 0, 0])
        self.assertEqual({item["has_archive"] for item in listings}, {0})
        short = self.listings(f"{BOB_Q}&action=get_short_epg&stream_id=101&limit=6")
        self.assertEqual([{k: v for k, v in item.items() if k not in ("now_playing", "has_archive")}
                          for item in listings], short)


class PlaylistAndGuideTests(XtreamTestCase):
    def test_get_php_is_the_accounts_m3u_with_urls_that_log_in(self) -> None:
        response, body = self.get(f"/get.php?{ALICE_Q}&type=m3u_plus")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["audio/x-mpegurl"])
        lines = body.decode().splitlines()
        guide = f"{HOST}/xmltv.php?{ALICE_Q}"
        self.assertEqual(lines[0], f'#EXTM3U x-tvg-url="{guide}" url-tvg="{guide}"')
        self.assertEqual(lines[1], '#EXTINF:-1 tvg-id="nhl_1" tvg-name="NHL PPV 1" tvg-chno="101" '
                                   'tvg-logo="http://logos.example/nhl.png" group-title="NHL PPV",NHL PPV 1')
        self.assertEqual(lines[2], f"{HOST}/live/alice/Wonder-land9/101.ts")
        self.assertEqual(lines[4], f"{HOST}/live/alice/Wonder-land9/102.ts")
        self.assertEqual(len(lines), 5)  # NBA is not alice's

    def test_get_php_hls_output(self) -> None:
        for output in ("m3u8", "hls"):
            _, body = self.get(f"/get.php?{BOB_Q}&type=m3u_plus&output={output}")
            urls = [line for line in body.decode().splitlines() if not line.startswith("#")]
            self.assertEqual(urls, [f"{HOST}/live/bob/xyzzy-42/{n}.m3u8" for n in (101, 102, 103)])
        _, body = self.get(f"/get.php?{BOB_Q}&output=ts")
        self.assertIn(f"{HOST}/live/bob/xyzzy-42/103.ts".encode(), body)

    def test_get_php_refusals(self) -> None:
        response, body = self.get("/get.php?username=alice&password=nope")
        self.assertEqual((response.code, body), (401, b"login required: wrong user name or password\n"))
        self.assertEqual(response.headers.getRawHeaders("www-authenticate"), ['Basic realm="epgd"'])

    def test_xmltv_php_is_the_accounts_guide(self) -> None:
        response, body = self.get(f"/xmltv.php?{ALICE_Q}")
        self.assertEqual(response.code, 200)
        root = etree.fromstring(body)
        self.assertEqual([c.get("id") for c in root.iter("channel")], ["nhl_1", "nhl_2"])
        self.assertEqual({p.get("channel") for p in root.iter("programme")}, {"nhl_1", "nhl_2"})
        _, body = self.get(f"/xmltv.php?{BOB_Q}")
        self.assertEqual([c.get("id") for c in etree.fromstring(body).iter("channel")], ["nhl_1", "nhl_2", "nba_1"])
        response, _ = self.get("/xmltv.php?username=bob&password=x")
        self.assertEqual(response.code, 401)


class StreamPathTests(XtreamTestCase):
    def test_live_path_and_short_path(self) -> None:
        for path in ("/live/alice/Wonder-land9/101.ts", "/alice/Wonder-land9/102", "/alice/Wonder-land9/101.ts"):
            response = self.stream(path)
            self.assertEqual(response.code, 200, path)
            self.assertEqual(response.headers.getRawHeaders("content-type"), ["video/mp2t"])
        self.assertEqual(self.streams.served, ["nhl_1", "nhl_2", "nhl_1"])
        body = response.content()
        self.streams.end()
        self.treq.flush()
        self.assertEqual(self.successResultOf(body), b"\x47" + b"\xff" * 187)

    def test_head(self) -> None:
        response, _ = self.get("/live/bob/xyzzy-42/103.ts", method="HEAD")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.api_json(BOB_Q)["user_info"]["active_cons"], "0")

    def test_refusals(self) -> None:
        cases = [
            ("/live/alice/Wonder-land9/103.ts", 404, "unknown channel number '103': see get_live_streams"),
            ("/live/alice/Wonder-land9/999.ts", 404, "unknown channel number '999': see get_live_streams"),
            ("/live/alice/Wonder-land9/abc.ts", 404, "not found: see /playlist.m3u, /epg.xml, /schedule.json, "
                                                     "/health"),
            ("/live/alice/Wonder-land9/101.mkv", 404, "no .mkv streams here: use .ts or .m3u8"),
            ("/live/alice/nope/101.ts", 401, "login required: wrong user name or password"),
            ("/alice/nope/101", 401, "login required: wrong user name or password"),
        ]
        for path, code, line in cases:
            response, body = self.get(path)
            self.assertEqual((response.code, body.decode()), (code, line + "\n"), path)
        self.assertEqual(self.streams.served, [])

    def test_other_three_part_paths_are_no_failed_logins(self) -> None:
        """A scanner's /wp-admin/js/x.php is not a login: it never closes the address."""
        for _ in range(12):
            response, body = self.get("/wp-admin/js/x.php")
            self.assertEqual(response.code, 404)
        self.assertEqual(self.stream("/live/alice/Wonder-land9/101.ts").code, 200)

    def test_hls_playlist_and_its_segments_log_in_by_their_path(self) -> None:
        """SPEC §15/§16: /live/U/P/101.m3u8; its segments at /live/U/P/101/{sequence}.ts."""
        response, body = self.get("/live/alice/Wonder-land9/101.m3u8")
        self.assertEqual((response.code, body), (200, b"#EXTM3U\n#EXTINF:4.000,\n101/7.ts\n"))
        response, body = self.get("/live/alice/Wonder-land9/101/7.ts")  # where a player resolves 101/7.ts
        self.assertEqual((response.code, body), (200, b"\x47" + b"\xff" * 187))
        self.assertEqual(self.streams.served, ["nhl_1.m3u8", "nhl_1/7.ts"])
        for path, code in (("/live/alice/nope/101/7.ts", 401), ("/live/alice/Wonder-land9/103/7.ts", 404),
                           ("/live/alice/Wonder-land9/abc/7.ts", 404)):
            self.assertEqual(self.get(path)[0].code, code, path)
        self.assertEqual(len(self.streams.served), 2)

    def test_an_account_reading_stream_m3u8_gets_segments_that_log_in(self) -> None:
        """A player sends no Basic header or query with its segment requests: their URIs log in."""
        response, body = self.get(f"/stream/nhl_1.m3u8?{ALICE_Q}")
        self.assertEqual((response.code, body),
                         (200, b"#EXTM3U\n#EXTINF:4.000,\n../live/alice/Wonder-land9/101/7.ts\n"))
        self.assertEqual(self.get("/stream/nhl_1.m3u8")[0].code, 401)
        self.assertEqual(self.get("/stream/nhl_1/7.ts")[0].code, 401)

    def test_an_hls_session_counts_for_three_segments(self) -> None:
        """SPEC §15: max_connections counts HLS sessions: a playlist or segment asked for lately."""
        self.use(evolve(make_config(), stream=StreamConfig(slate=False)))
        self.assertEqual(self.get("/live/bob/xyzzy-42/101.m3u8")[0].code, 200)
        self.assertEqual(self.api_json(BOB_Q)["user_info"]["active_cons"], "1")
        self.assertEqual(self.get("/live/bob/xyzzy-42/101/7.ts")[0].code, 200)  # its own session: free
        response, body = self.get("/live/bob/xyzzy-42/103.m3u8")
        self.assertEqual((response.code, body), (503, b"user bob already watches 1 channel: max_connections is 1\n"))
        self.assertEqual(self.get("/live/bob/xyzzy-42/103.ts")[0].code, 503)
        self.clock.advance(3 * 4.0 - 1)
        self.assertEqual(self.get("/live/bob/xyzzy-42/103.ts")[0].code, 503)
        self.clock.advance(1.5)  # no request for 3 x hls_segment: the session is over
        self.assertEqual(self.api_json(BOB_Q)["user_info"]["active_cons"], "0")
        self.assertEqual(self.get("/live/bob/xyzzy-42/103.m3u8")[0].code, 200)

    def test_connection_limit(self) -> None:
        self.use(evolve(make_config(), stream=StreamConfig(slate=False)))  # SPEC §15: 503
        self.assertEqual(self.stream("/live/bob/xyzzy-42/101.ts").code, 200)
        self.assertEqual(self.stream("/bob/xyzzy-42/101").code, 200)  # same address, same channel
        response, body = self.get("/live/bob/xyzzy-42/103.ts")
        self.assertEqual((response.code, body), (503, b"user bob already watches 1 channel: max_connections is 1\n"))
        self.streams.end()
        self.treq.flush()
        self.assertEqual(self.stream("/live/bob/xyzzy-42/103.ts").code, 200)

    def test_connection_limit_with_the_slate(self) -> None:
        """SPEC §14/§15: the .ts stream of one more channel is the slate saying so."""
        self.assertEqual(self.stream("/live/bob/xyzzy-42/101.ts").code, 200)
        self.assertEqual(self.get("/live/bob/xyzzy-42/103.ts")[0].code, 200)
        self.assertEqual(self.streams.served[-1], "nba_1: slate 'bob: all 1 connections in use'")

    def test_no_answer_carries_another_accounts_password(self) -> None:
        for path in ("/live/alice/Wonder-land9/103.ts", f"/get.php?{ALICE_Q}", f"/xmltv.php?{ALICE_Q}",
                     f"/player_api.php?{ALICE_Q}&action=get_live_streams"):
            _, body = self.get(path)
            self.assertNotIn(b"xyzzy-42", body)
            self.assertIsNone(re.search(rb"hunter22|joe", body))
