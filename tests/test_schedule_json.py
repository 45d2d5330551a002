"""Tests for epgd.publish.schedule_json (SPEC §6.3) and the cached rendering in Published."""

from __future__ import annotations

import datetime as _dt
import gzip
import json
from typing import Any
from unittest import mock

from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, GuideConfig, StreamConfig
from epgd.publish import outputs
from epgd.publish.outputs import Published
from epgd.publish.schedule_json import render_schedule_json
from epgd.redact import Redactor
from epgd.schedule.model import Channel, Event, Schedule, Source

UTC = _dt.UTC
BASE = _dt.datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
MASK = Redactor.for_urls(["http://provider.example/get.php?username=joe&password=s3cret"])


def at(hours: float) -> _dt.datetime:
    return BASE + _dt.timedelta(hours=hours)


def t(hours: float) -> float:
    return at(hours).timestamp()


def event(title: str, start: float, stop: float, lineup: str = "nhl_ppv", **kw: Any) -> Event:
    return Event(key=title, lineup=lineup, title=title, start=at(start), stop=at(stop),
                 sources=(Source("main", "NHL 07",
                                 "http://provider.example/live/joe/s3cret/1234.ts"),
                          Source("backup", "NHL 7", "http://b.example/x.ts?token=abcdef")),
                 **kw)


def sched(events: tuple[Event, ...], unplaced: tuple[Event, ...] = ()) -> Schedule:
    return Schedule(BASE, (
        Channel(id="nhl_ppv_1", name="NHL PPV 1", number=1, lineup="nhl_ppv",
                group="NHL PPV", events=events),
        Channel(id="nhl_ppv_2", name="NHL PPV 2", number=2, lineup="nhl_ppv",
                group="NHL PPV"),
    ), unplaced)


def render(schedule: Schedule, now: float, days: float = 7, hold: float = 3600) -> Any:
    return json.loads(render_schedule_json(schedule, now, days, hold, MASK.mask))


class ScheduleJsonTests(SynchronousTestCase):
    def test_spec_shape(self) -> None:
        """Keys, their order, UTC 'Z' times and masked URLs as SPEC §6.3 shows."""
        body = render(sched((event("Bruins vs Rangers", 18, 21),)), t(0))
        self.assertEqual(list(body), ["generated_at", "channels", "unplaced"])
        self.assertEqual(body["generated_at"], "2026-11-24T01:00:00Z")
        first = body["channels"][0]
        self.assertEqual(list(first), ["id", "name", "number", "lineup", "events"])
        self.assertEqual(first["id"], "nhl_ppv_1")
        self.assertEqual(first["number"], 1)
        self.assertEqual(first["events"], [{
            "title": "Bruins vs Rangers", "start": "2026-11-24T19:00:00Z",
            "stop": "2026-11-24T22:00:00Z", "live": False,
            "sources": [
                {"provider": "main", "channel": "NHL 07",
                 "url": "http://provider.example/live/***/***/1234.ts"},
                {"provider": "backup", "channel": "NHL 7", "url": "http://b.example/x.ts?token=***"},
            ]}])
        self.assertEqual(body["channels"][1]["events"], [])
        self.assertEqual(body["unplaced"], [])

    def test_live_follows_padded_interval(self) -> None:
        padded = event("Game", 2, 4, pre_padding=600, post_padding=900)
        schedule = sched((padded,))
        live = [render(schedule, t(h))["channels"][0]["events"][0]["live"]
                for h in (1.8, 1.84, 3.99, 4.24, 4.26)]
        self.assertEqual(live, [False, True, True, True, False])

    def test_window_keeps_held_event_and_stops_at_guide_days(self) -> None:
        schedule = sched((event("Over", 1, 2), event("Held", 3, 4), event("Tomorrow", 26, 28),
                          event("Next week", 24 * 8, 24 * 8 + 2)))
        titles = [e["title"] for e in render(schedule, t(4.5), days=7)["channels"][0]["events"]]
        self.assertEqual(titles, ["Held", "Tomorrow"])
        later = [e["title"] for e in
                 render(schedule, t(5.5), days=7)["channels"][0]["events"]]
        self.assertEqual(later, ["Tomorrow"])

    def test_unplaced_are_event_objects_with_lineup(self) -> None:
        schedule = sched((), unplaced=(event("Spare", 3, 5), event("Gone", -5, -3)))
        unplaced = render(schedule, t(0))["unplaced"]
        self.assertEqual(len(unplaced), 1)
        self.assertEqual(list(unplaced[0]),
                         ["title", "start", "stop", "live", "sources", "lineup"])
        self.assertEqual(unplaced[0]["lineup"], "nhl_ppv")

    def test_credentials_never_appear(self) -> None:
        raw = render_schedule_json(sched((event("G", 1, 2),), (event("U", 1, 2),)),
                                   t(1.5), 7, 3600, MASK.mask)
        self.assertNotIn(b"joe", raw)
        self.assertNotIn(b"s3cret", raw)
        self.assertNotIn(b"abcdef", raw)


class PublishedTests(SynchronousTestCase):
    config = Config(guide=GuideConfig(days=2), stream=StreamConfig(hold_after_end=600))

    def test_schedule_json_rerendered_only_across_boundaries(self) -> None:
        published = Published(sched((event("Game", 2, 4),)), self.config, MASK.mask)
        real = outputs.render_schedule_json
        with mock.patch.object(outputs, "render_schedule_json",
                               side_effect=real) as spy:
            early = [published.schedule_json(t(h)) for h in (0, 0.5, 1.9)]
            live = [published.schedule_json(t(h)) for h in (2, 3, 3.9)]
            after = published.schedule_json(t(4.05))
            gone = published.schedule_json(t(4.2))
        self.assertEqual(spy.call_count, 4)
        self.assertEqual(len(set(early)), 1)
        self.assertEqual(len(set(live)), 1)
        self.assertFalse(json.loads(early[0])["channels"][0]["events"][0]["live"])
        self.assertTrue(json.loads(live[0])["channels"][0]["events"][0]["live"])
        self.assertEqual(json.loads(after)["channels"][0]["events"][0]["title"], "Game")
        self.assertEqual(json.loads(gone)["channels"][0]["events"], [])

    def test_guide_rendered_once_with_etag_and_gzip(self) -> None:
        published = Published(sched((event("Game", 2, 4),)), self.config, MASK.mask)
        self.assertIn(b"<title>Game</title>", published.epg_xml)
        self.assertEqual(gzip.decompress(published.epg_gz), published.epg_xml)
        self.assertTrue(published.etag.startswith('"') and published.etag.endswith('"'))
        self.assertEqual(published.last_modified, "Tue, 24 Nov 2026 01:00:00 GMT")
        other = Published(sched((event("Other", 2, 4),)), self.config, MASK.mask)
        self.assertNotEqual(other.etag, published.etag)
        again = Published(sched((event("Game", 2, 4),)), self.config, MASK.mask)
        self.assertEqual(again.etag, published.etag)
        self.assertEqual(again.epg_gz, published.epg_gz)

    def test_republish_moves_the_guide_window(self) -> None:
        schedule = sched((event("Game", 2, 4),))
        first = Published(schedule, self.config, MASK.mask)
        later = Published(schedule, self.config, MASK.mask, rendered_at=t(30))
        self.assertIn(b"<title>Game</title>", first.epg_xml)
        self.assertNotIn(b"<title>Game</title>", later.epg_xml)
        self.assertNotEqual(first.etag, later.etag)

    def test_playlist_cached_per_base_url_and_bounded(self) -> None:
        published = Published(sched(()), self.config, MASK.mask)
        with mock.patch.object(outputs, "render_playlist",
                               side_effect=outputs.render_playlist) as spy:
            a = published.playlist("http://a:1")
            self.assertIs(published.playlist("http://a:1"), a)
            b = published.playlist("http://b:2")
            for i in range(outputs.MAX_PLAYLISTS + 5):
                published.playlist(f"http://h{i}")
        self.assertIn(b"http://a:1/stream/nhl_ppv_1.ts", a)
        self.assertIn(b"http://b:2/stream/nhl_ppv_2.ts", b)
        self.assertEqual(spy.call_count, 2 + outputs.MAX_PLAYLISTS + 5)
        self.assertLessEqual(len(published._playlists), outputs.MAX_PLAYLISTS)
