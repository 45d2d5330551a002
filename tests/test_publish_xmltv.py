"""Tests for epgd.publish.xmltv: the guide players and DVRs load (SPEC §6.2)."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import tempfile

from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from epgd.publish.xmltv import render_xmltv
from epgd.schedule.model import Channel, Event, Schedule, Source
from tests.programs import require

UTC = _dt.UTC
DTD_PATH = os.path.join(os.path.dirname(__file__), "data", "xmltv.dtd")
NOW = _dt.datetime(2026, 11, 24, 1, 20, tzinfo=UTC)  # guide grid starts at 01:00


def at(hours: float) -> _dt.datetime:
    """A time ``hours`` after 01:00 UTC on 2026-11-24."""
    return _dt.datetime(2026, 11, 24, 1, 0, tzinfo=UTC) + _dt.timedelta(hours=hours)


def event(title: str, start: float, stop: float, **details: object) -> Event:
    return Event(key=title, lineup="nhl", title=title, start=at(start), stop=at(stop),
                 sources=(Source("main", "NHL 07", "http://p/live/u/p/7.ts"),),
                 **details)  # type: ignore[arg-type]


def schedule(*lanes: tuple[Event, ...], logo: str = "") -> Schedule:
    channels = tuple(
        Channel(id=f"nhl_{i}", name=f"NHL {i}", number=i, lineup="nhl", group="NHL",
                logo=logo, events=events)
        for i, events in enumerate(lanes, start=1)
    )
    return Schedule(NOW, channels)


def programmes(xml: bytes, channel: str) -> list[tuple[str, str, str]]:
    root = etree.fromstring(xml)
    return [(p.get("start"), p.get("stop"), p.findtext("title"))
            for p in root.iter("programme") if p.get("channel") == channel]


class XmltvTests(SynchronousTestCase):
    def render(self, sched: Schedule, **kwargs: object) -> bytes:
        return render_xmltv(sched, NOW.timestamp(), **kwargs)  # type: ignore[arg-type]

    def full(self) -> Schedule:
        rich = event(
            "Bruins vs Rangers", 18, 21, sub_title="Game 12 & more <live>",
            desc="Ça commence\x07 à 19h — “quoted”", categories=("Sports", "Hockey"),
            icon="http://img/x.png?a=1&b=2", episode_nums=(("xmltv_ns", "1.11.0/1"),
                                                          ("onscreen", "S01E12")),
        )
        return schedule((rich, event("Late game", 22, 25)), (), logo="http://logo/nhl.png")

    def test_valid_against_the_dtd(self) -> None:
        xml = self.render(self.full())
        dtd = etree.DTD(DTD_PATH)
        self.assertTrue(dtd.validate(etree.fromstring(xml)), dtd.error_log.filter_from_errors())

    def test_valid_for_xmllint(self) -> None:
        require("xmllint", "it judges the guide against the XMLTV DTD")
        with tempfile.NamedTemporaryFile(suffix=".xml", delete=False) as handle:
            handle.write(self.render(self.full()))
        self.addCleanup(os.unlink, handle.name)
        result = subprocess.run(["xmllint", "--noout", "--dtdvalid", DTD_PATH, handle.name],
                                capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace"))

    def test_channels_and_programme_details(self) -> None:
        root = etree.fromstring(self.render(self.full()))
        self.assertEqual(root.tag, "tv")
        self.assertEqual(root.get("generator-info-name"), "epgd")
        channels = root.findall("channel")
        self.assertEqual([c.get("id") for c in channels], ["nhl_1", "nhl_2"])
        self.assertEqual(channels[0].findtext("display-name"), "NHL 1")
        self.assertEqual(channels[0].find("icon").get("src"), "http://logo/nhl.png")
        game = [p for p in root.iter("programme") if p.findtext("title") == "Bruins vs Rangers"]
        self.assertEqual(len(game), 1)
        self.assertEqual(game[0].get("start"), "20261124190000 +0000")
        self.assertEqual(game[0].get("stop"), "20261124220000 +0000")
        self.assertEqual([c.tag for c in game[0]],
                         ["title", "sub-title", "desc", "category", "category", "icon",
                          "episode-num", "episode-num", "new"])
        self.assertEqual(game[0].findtext("sub-title"), "Game 12 & more <live>")
        self.assertEqual(game[0].findtext("desc"), "Ça commence à 19h — “quoted”")
        self.assertEqual(game[0].find("episode-num").get("system"), "xmltv_ns")

    def test_no_icon_without_logo(self) -> None:
        root = etree.fromstring(self.render(schedule(())))
        self.assertIsNone(root.find("channel/icon"))

    def test_fillers_cover_every_gap_and_name_the_next_event(self) -> None:
        sched = schedule((event("Early", 2, 4), event("Main", 6, 9)))
        rows = programmes(self.render(sched, days=1), "nhl_1")
        # Contiguous from the 01:00 grid start to the hour after now + 1 day, no overlaps.
        self.assertEqual(rows[0][0], "20261124010000 +0000")
        self.assertEqual(rows[-1][1], "20261125020000 +0000")
        for before, after in zip(rows, rows[1:], strict=False):
            self.assertEqual(before[1], after[0])
        titles = [r[2] for i, r in enumerate(rows) if i == 0 or rows[i - 1][2] != r[2]]
        self.assertEqual(titles[:4], ["Next: Early at 03:00", "Early",
                                      "Next: Main at 07:00", "Main"])
        self.assertEqual(titles[4:], ["No events scheduled"])
        # Fillers are cut at 6-hour marks: no week-long rows in guide grids.
        self.assertIn(("20261124100000 +0000", "20261124120000 +0000", "No events scheduled"),
                      rows)

    def test_filler_times_in_guide_timezone(self) -> None:
        sched = schedule((event("Game", 23, 26),))
        rows = programmes(self.render(sched, timezone="America/New_York"), "nhl_1")
        self.assertEqual(rows[0][2], "Next: Game at 19:00")

    def test_empty_channel_says_nothing_is_scheduled(self) -> None:
        rows = programmes(self.render(schedule((), ()), days=2), "nhl_2")
        self.assertTrue(rows)
        self.assertEqual({r[2] for r in rows}, {"No events scheduled"})

    def test_no_fillers_when_disabled(self) -> None:
        sched = schedule((event("Early", 2, 4),), ())
        root = etree.fromstring(self.render(sched, filler=False))
        self.assertEqual([p.findtext("title") for p in root.iter("programme")], ["Early"])

    def test_window_runs_from_now_to_guide_days(self) -> None:
        sched = schedule((event("Over", -5, -1), event("Running", -1, 2),
                          event("Soon", 30, 33), event("Too far", 24 * 3, 24 * 3 + 3)))
        root = etree.fromstring(self.render(sched, days=2, filler=False))
        rows = [(p.findtext("title"), p.get("start")) for p in root.iter("programme")]
        self.assertEqual(rows, [("Running", "20261124000000 +0000"),
                                ("Soon", "20261125070000 +0000")])

    def test_same_schedule_same_bytes(self) -> None:
        self.assertEqual(self.render(self.full()), self.render(self.full()))

    def test_same_bytes_all_hour_long(self) -> None:
        """Guide readers poll with If-None-Match: a re-render in the same hour changes nothing."""
        sched = self.full()
        hour = NOW.timestamp() // 3600 * 3600
        first = render_xmltv(sched, hour)
        self.assertEqual(render_xmltv(sched, hour + 3599), first)
        self.assertNotEqual(render_xmltv(sched, hour + 3600), first)


class MediaServerTests(SynchronousTestCase):
    """SPEC §6.2's additions for Plex, Jellyfin, Emby and Channels DVR."""

    def render(self, sched: Schedule) -> etree._Element:
        return etree.fromstring(render_xmltv(sched, NOW.timestamp(), days=1))

    def game(self, root: etree._Element, title: str) -> etree._Element:
        (found,) = [p for p in root.iter("programme") if p.findtext("title") == title]
        return found

    def test_channel_number_is_a_second_display_name(self) -> None:
        channels = self.render(schedule((), ())).findall("channel")
        self.assertEqual([[d.text for d in c.findall("display-name")] for c in channels],
                         [["NHL 1", "1"], ["NHL 2", "2"]])

    def test_event_is_sports_new_and_dated(self) -> None:
        root = self.render(schedule((event("Bruins vs Rangers", 18, 21, categories=("Hockey",)),)))
        game = self.game(root, "Bruins vs Rangers")
        self.assertEqual([c.text for c in game.findall("category")], ["Hockey", "Sports"])
        self.assertIsNotNone(game.find("new"))
        (number,) = game.findall("episode-num")
        self.assertEqual((number.get("system"), number.text), ("original-air-date", "2026-11-24 19:00:00"))

    def test_sports_not_repeated(self) -> None:
        root = self.render(schedule((event("Game", 18, 21, categories=("sports", "Hockey", "Hockey")),)))
        self.assertEqual([c.text for c in self.game(root, "Game").findall("category")], ["sports", "Hockey"])

    def test_provider_episode_numbers_replace_the_air_date(self) -> None:
        root = self.render(schedule((event("Game", 18, 21, episode_nums=(("onscreen", "E12"),)),)))
        numbers = self.game(root, "Game").findall("episode-num")
        self.assertEqual([(n.get("system"), n.text) for n in numbers], [("onscreen", "E12")])

    def test_fillers_carry_none_of_it(self) -> None:
        root = self.render(schedule((event("Game", 18, 21),)))
        fillers = [p for p in root.iter("programme") if p.findtext("title") != "Game"]
        self.assertTrue(fillers)
        for filler in fillers:
            self.assertEqual([c.tag for c in filler], ["title"], filler.findtext("title"))

    def test_additions_are_dtd_valid(self) -> None:
        sched = schedule((event("A", 2, 4), event("B", 5, 6, categories=("Sports",),
                                                   episode_nums=(("xmltv_ns", "0.1."),))), ())
        dtd = etree.DTD(DTD_PATH)
        root = self.render(sched)
        self.assertTrue(dtd.validate(root), dtd.error_log.filter_from_errors())
