"""
Tests for epgd.publish.xtream: the Xtream Codes documents as pure functions (the HTTP side,
with every field, is tests/test_xtreamapi.py).
"""

from __future__ import annotations

import base64
import json

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import UserConfig
from epgd.publish import xtream
from epgd.schedule.model import Channel
from tests.accounthelpers import ALICE, NOW, event, make_config, make_schedule


class PlaylistTests(SynchronousTestCase):
    def test_attributes_stay_on_one_line_and_unquoted(self) -> None:
        channel = Channel(id="nhl_1", name='NHL "PPV"\n1', number=101, lineup="nhl", group="A\rB")
        body = xtream.user_playlist([channel], "http://h:8080/", ALICE).decode()
        lines = body.splitlines()
        self.assertEqual(len(lines), 3)
        self.assertEqual(lines[1], "#EXTINF:-1 tvg-id=\"nhl_1\" tvg-name=\"NHL 'PPV' 1\" tvg-chno=\"101\" "
                                   "group-title=\"A B\",NHL \"PPV\" 1")
        self.assertEqual(lines[2], "http://h:8080/live/alice/Wonder-land9/101.ts")

    def test_names_are_url_quoted(self) -> None:
        user = UserConfig(name="al.ice", password="p@ss:w!rd+1")
        self.assertEqual(xtream.stream_path(user, 7, "m3u8"), "/live/al.ice/p%40ss%3Aw%21rd%2B1/7.m3u8")

    def test_other_lineups_are_left_out(self) -> None:
        body = xtream.user_playlist(make_schedule().channels, "http://h", ALICE)
        self.assertNotIn(b"nba_1", body)
        self.assertEqual(body.count(b"#EXTINF"), 2)


class EpgTests(SynchronousTestCase):
    def test_padding_keeps_an_event_live(self) -> None:
        padded = evolve(event("late", "Overtime", NOW - 7200, NOW - 60), post_padding=300)
        channel = Channel(id="c_1", name="C 1", number=1, lineup="c", group="C", events=(padded,))
        [item] = xtream.short_epg(channel, NOW)["epg_listings"]
        self.assertEqual(base64.b64decode(item["title"]), b"Overtime")
        self.assertEqual(xtream.data_table(channel, NOW, (NOW - 3600, NOW + 3600))["epg_listings"][0]["now_playing"], 1)
        self.assertEqual(xtream.short_epg(channel, NOW + 300)["epg_listings"], [])

    def test_window_bounds_the_data_table(self) -> None:
        channel = make_schedule().channels[0]
        listings = xtream.data_table(channel, NOW, (NOW, NOW + 4 * 3600))["epg_listings"]
        self.assertEqual(len(listings), 2)  # the live game and Game 1 (starts at +2 h); Game 2 at +4 h is out

    def test_documents_are_json(self) -> None:
        config = make_config()
        channels = make_schedule().channels
        for document in (xtream.categories(config, ALICE), xtream.live_streams(config, channels, ALICE, None, NOW),
                         xtream.short_epg(channels[0], NOW), xtream.account(ALICE, 0, "h", "80", "http", NOW, NOW)):
            self.assertEqual(json.loads(json.dumps(document)), document)
