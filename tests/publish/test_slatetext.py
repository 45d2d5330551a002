"""
What a slate says (epgd.publish.slatetext): the heading, "Up next" with its start in the
guide's zone and the time left, each reason nothing plays, and when the words next change.
"""

from __future__ import annotations

import datetime as _dt
from zoneinfo import ZoneInfo

from twisted.trial.unittest import SynchronousTestCase

from epgd.publish import slatetext
from epgd.schedule.model import Channel, Event, Source

NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
# Tuesday 2026-11-24 17:40:00 in New York (22:40 UTC)
NOW = _dt.datetime(2026, 11, 24, 17, 40, tzinfo=NEW_YORK).timestamp()


def channel(*starts: float) -> Channel:
    events = tuple(
        Event(f"e{i}", "nhl", f"Game {i}" if i else "Bruins vs Rangers",
              _dt.datetime.fromtimestamp(t, _dt.UTC), _dt.datetime.fromtimestamp(t + 3 * 3600, _dt.UTC),
              (Source("main", "NHL 07", "http://provider.example/live/U/P/1234.ts"),))
        for i, t in enumerate(starts))
    return Channel("nhl_ppv_1", "NHL PPV 1", 101, "nhl", "NHL", events=events)


def at(day: int, hour: int, minute: int = 0, zone: ZoneInfo = NEW_YORK) -> float:
    return _dt.datetime(2026, 11, day, hour, minute, tzinfo=zone).timestamp()


class UpNextTests(SynchronousTestCase):
    def test_today_with_hours_and_minutes_left(self) -> None:
        said = slatetext.up_next(channel(at(24, 19)), NOW, NEW_YORK)
        self.assertEqual(said.lines, ("101  NHL PPV 1", "Up next: Bruins vs Rangers", "Today 19:00 · in 1 h 20 min"))
        self.assertEqual(said.text, "101  NHL PPV 1\nUp next: Bruins vs Rangers\nToday 19:00 · in 1 h 20 min")

    def test_start_is_in_the_guide_zone(self) -> None:
        start = at(24, 19)
        self.assertIn("Today 19:00", slatetext.up_next(channel(start), NOW, NEW_YORK).text)
        # the same moment in UTC is past midnight: Wednesday 00:00 there
        self.assertIn("Wed 00:00", slatetext.up_next(channel(start), NOW, UTC).text)

    def test_a_later_day_is_its_weekday(self) -> None:
        said = slatetext.up_next(channel(at(26, 19, 30)), NOW, NEW_YORK)
        self.assertEqual(said.lines[2], "Thu 19:30 · in 2 d 1 h")
        tomorrow = slatetext.up_next(channel(at(25, 1)), NOW, NEW_YORK)
        self.assertEqual(tomorrow.lines[2], "Wed 01:00 · in 7 h 20 min")

    def test_minutes_only_under_an_hour(self) -> None:
        said = slatetext.up_next(channel(at(24, 17, 45)), NOW, NEW_YORK)
        self.assertEqual(said.lines[2], "Today 17:45 · in 5 min")

    def test_countdown_wording(self) -> None:
        cases = {1: "in 1 min", 59: "in 1 min", 60: "in 1 min", 61: "in 2 min", 300: "in 5 min",
                 3599: "in 1 h", 3600: "in 1 h", 4800: "in 1 h 20 min", 4770: "in 1 h 20 min",
                 2 * 3600 + 60: "in 2 h 1 min", 86400: "in 1 d", 86400 + 3 * 3600 + 59: "in 1 d 3 h"}
        for seconds, words in cases.items():
            self.assertEqual(slatetext.countdown(seconds), words, seconds)

    def test_next_event_only(self) -> None:
        """An event live now is not "up next"; the one after it is (the slate shows between)."""
        said = slatetext.up_next(channel(at(24, 12), at(24, 19), at(25, 19)), NOW, NEW_YORK)
        self.assertEqual(said.lines[1], "Up next: Game 1")

    def test_no_events_scheduled(self) -> None:
        said = slatetext.up_next(channel(), NOW, NEW_YORK)
        self.assertEqual(said, slatetext.SlateText(("101  NHL PPV 1", "No events scheduled"), None))
        self.assertEqual(slatetext.up_next(channel(at(24, 12)), NOW, NEW_YORK).lines[1], "No events scheduled")

    def test_words_change_once_a_minute_at_most(self) -> None:
        """The text is re-made when the rounded-up minutes drop, never in between."""
        start = at(24, 19)
        now = NOW + 30  # 1 h 19 min 30 s left: "in 1 h 20 min" until 17:41:00
        said = slatetext.up_next(channel(start), now, NEW_YORK)
        self.assertEqual(said.lines[2], "Today 19:00 · in 1 h 20 min")
        self.assertEqual(said.changes_at, NOW + 60)
        after = slatetext.up_next(channel(start), said.changes_at, NEW_YORK)  # type: ignore[arg-type]
        self.assertEqual(after.lines[2], "Today 19:00 · in 1 h 19 min")
        self.assertEqual(after.changes_at, NOW + 120)
        just_before = slatetext.up_next(channel(start), said.changes_at - 0.001, NEW_YORK)  # type: ignore[operator]
        self.assertEqual(just_before.lines, said.lines)

    def test_midnight_turns_a_weekday_into_today(self) -> None:
        start = at(25, 2)
        late = at(24, 23, 59) + 30.5
        said = slatetext.up_next(channel(start), late, NEW_YORK)
        self.assertEqual(said.lines[2], "Wed 02:00 · in 2 h 1 min")
        self.assertEqual(said.changes_at, at(25, 0))
        self.assertEqual(slatetext.up_next(channel(start), at(25, 0), NEW_YORK).lines[2], "Today 02:00 · in 2 h")

    def test_weekday_names_do_not_follow_the_locale(self) -> None:
        names = [slatetext.starts(at(24 + d, 12), NOW, NEW_YORK).split()[0] for d in range(1, 7)]
        self.assertEqual(names, ["Wed", "Thu", "Fri", "Sat", "Sun", "Mon"])


class ReasonTests(SynchronousTestCase):
    def test_each_reason(self) -> None:
        c = channel(at(24, 19))
        self.assertEqual(slatetext.saying(c, slatetext.provider_full("main", 2)).lines,
                         ("101  NHL PPV 1", "main: all 2 connections in use"))
        self.assertEqual(slatetext.saying(c, slatetext.user_full("alice", 1)).lines,
                         ("101  NHL PPV 1", "alice: all 1 connections in use"))
        self.assertEqual(slatetext.saying(c, slatetext.reconnecting("main")).lines,
                         ("101  NHL PPV 1", "Reconnecting to main…"))
        self.assertIsNone(slatetext.saying(c, "x").changes_at)

    def test_no_url_or_credential(self) -> None:
        c = channel(at(24, 19))
        for said in (slatetext.up_next(c, NOW, NEW_YORK), slatetext.saying(c, slatetext.reconnecting("main"))):
            for secret in ("http", "1234.ts", "/U/P/"):
                self.assertNotIn(secret, said.text)
