"""
Tests for epgd.schedule.events: which provider channels a lineup takes, events from guide
programmes, from channel names (real names from tests/data/names/) and from [[event]] tables.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from zoneinfo import ZoneInfo

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import EventConfig, LineupConfig
from epgd.schedule.events import (
    REFRESH_MARGIN,
    GuideIndex,
    NameMatch,
    NameTimeError,
    Window,
    guide_events,
    lineup_takes,
    live_stop,
    manual_event,
    parse_name,
    title_passes,
)
from epgd.sources.models import Guide, GuideChannel, Programme, ProviderChannel

UTC = dt.UTC
NEW_YORK = ZoneInfo("America/New_York")
NAMES = os.path.join(os.path.dirname(__file__), "data", "names")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
       tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return at(year, month, day, hour, minute).timestamp()


def chan(name: str, provider: str = "main", group: str = "", tvg_id: str = "",
         url: str = "") -> ProviderChannel:
    return ProviderChannel(provider=provider, name=name, url=url or f"http://p/{name}.ts",
                           tvg_id=tvg_id, group=group)


def hand_written_names() -> list[str]:
    """The names in event_channel_names.txt, without the raw-playlist '#EXTINF:-1,' prefix."""
    names = []
    with open(os.path.join(NAMES, "event_channel_names.txt"), encoding="utf-8") as f:
        for line in f:
            match = re.search(r"\|>(.*?)<\|", line)
            if match:
                names.append(match.group(1).removeprefix("#EXTINF:-1,"))
    return names


class LineupTakesTests(SynchronousTestCase):
    def test_empty_patterns_take_everything(self) -> None:
        self.assertTrue(lineup_takes(LineupConfig(id="all"), chan("Anything", group="X")))

    def test_group_and_name_must_both_match_case_insensitively(self) -> None:
        lineup = LineupConfig(id="nhl", match_group="^events", match_name=r"^nhl \d+")
        self.assertTrue(lineup_takes(lineup, chan("NHL 07: Bruins", group="EVENTS (Mirrors)")))
        self.assertFalse(lineup_takes(lineup, chan("NHL 07: Bruins", group="Sports")))
        self.assertFalse(lineup_takes(lineup, chan("NBA 07: Bulls", group="Events")))

    def test_name_is_searched_not_matched_from_the_start(self) -> None:
        lineup = LineupConfig(id="ppv", match_name="PPV")
        self.assertTrue(lineup_takes(lineup, chan("US | PPV 04")))

    def test_providers_limit_the_lineup(self) -> None:
        lineup = LineupConfig(id="x", providers=("backup",))
        self.assertFalse(lineup_takes(lineup, chan("NHL 01", provider="main")))
        self.assertTrue(lineup_takes(lineup, chan("NHL 01", provider="backup")))

    def test_broken_pattern_matches_nothing_instead_of_crashing(self) -> None:
        with capturedLogs() as events:
            taken = lineup_takes(LineupConfig(id="x", match_name="(unclosed"),
                                 chan("(unclosed"))
        self.assertFalse(taken)
        # lru_cache: reported when first compiled, not on every channel
        self.assertLessEqual(len(events), 1)

    def test_title_filters(self) -> None:
        lineup = LineupConfig(id="x", match_title="vs", exclude_title="no event|off ?air")
        self.assertTrue(title_passes(lineup, "Bruins VS Rangers"))
        self.assertFalse(title_passes(lineup, "Bruins vs NO EVENT"))
        self.assertFalse(title_passes(lineup, "Offair"))


class GuideEventTests(SynchronousTestCase):
    now = ts(2026, 11, 24, 12, 0)
    window = Window(now=now, days=7, hold_after_end=3600)

    def guide(self) -> Guide:
        return Guide(
            channels=(GuideChannel("nhl07.us", ("NHL 07", "NHL Seven")),
                      GuideChannel("other", ("Other",))),
            programmes=(
                Programme("nhl07.us", at(2026, 11, 24, 19), at(2026, 11, 24, 22),
                          "Bruins vs Rangers", sub_title="Rivalry night", desc="Game 21",
                          categories=("Sports", "Hockey"), icon="http://i/b.png",
                          episode_nums=(("onscreen", "G21"),)),
                Programme("nhl07.us", at(2026, 11, 24, 22), None, "NO EVENT"),
                Programme("nhl07.us", at(2026, 11, 25, 1), None, "Kings vs Ducks"),
                Programme("nhl07.us", at(2026, 11, 24, 8), at(2026, 11, 24, 10), "Old game"),
                Programme("nhl07.us", at(2026, 12, 5, 19), at(2026, 12, 5, 22), "Too far"),
                Programme("other", at(2026, 11, 24, 19), at(2026, 11, 24, 22), "Other show"),
            ))

    def test_linked_by_tvg_id_with_details_carried_over(self) -> None:
        lineup = LineupConfig(id="nhl", exclude_title="no event", default_duration=7200)
        channel = chan("whatever", tvg_id="nhl07.us", url="http://p/live/u/p/7.ts")
        found = guide_events(lineup, channel, (0, 3), GuideIndex(self.guide()), self.window)
        self.assertEqual([c.title for c in found], ["Bruins vs Rangers", "Kings vs Ducks"])
        game = found[0]
        self.assertEqual((game.start, game.stop), (at(2026, 11, 24, 19), at(2026, 11, 24, 22)))
        self.assertEqual((game.sub_title, game.desc, game.icon),
                         ("Rivalry night", "Game 21", "http://i/b.png"))
        self.assertEqual(game.categories, ("Sports", "Hockey"))
        self.assertEqual(game.episode_nums, (("onscreen", "G21"),))
        self.assertEqual((game.source.provider, game.source.channel, game.source.url),
                         ("main", "whatever", "http://p/live/u/p/7.ts"))
        self.assertEqual(game.rank, (0, 3))
        # no stop: start + default_duration
        self.assertEqual(found[1].stop, at(2026, 11, 25, 3))

    def test_linked_by_display_name_when_tvg_id_is_unknown(self) -> None:
        index = GuideIndex(self.guide())
        self.assertEqual(index.link(chan("nhl  seven", tvg_id="not-in-guide")), "nhl07.us")
        self.assertEqual(index.link(chan("NHL 08")), None)
        self.assertEqual(index.link(chan("Other", tvg_id=" nhl07.us ")), "nhl07.us")

    def test_tvg_id_links_in_any_case(self) -> None:
        """The feed keeps guide channels whose id matches in any case; they must be used too."""
        index = GuideIndex(self.guide())
        self.assertEqual(index.link(chan("whatever", tvg_id="NHL07.US")), "nhl07.us")
        exact = Guide(channels=(GuideChannel("a.us"), GuideChannel("A.us")), programmes=())
        self.assertEqual(GuideIndex(exact).link(chan("x", tvg_id="A.us")), "A.us")

    def test_window_drops_ended_and_far_future_programmes(self) -> None:
        found = guide_events(LineupConfig(id="x"), chan("NHL 07"), (0, 0),
                             GuideIndex(self.guide()), self.window)
        titles = {c.title for c in found}
        self.assertNotIn("Old game", titles)  # ended 10:00, hold 1 h, now 12:00
        self.assertNotIn("Too far", titles)  # beyond guide.days
        held = Window(now=ts(2026, 11, 24, 10, 30), days=7, hold_after_end=3600)
        found = guide_events(LineupConfig(id="x"), chan("NHL 07"), (0, 0),
                             GuideIndex(self.guide()), held)
        self.assertIn("Old game", {c.title for c in found})

    def test_placeholder_programme_with_stop_equal_to_start_gets_default_duration(self) -> None:
        guide = Guide(channels=(), programmes=(
            Programme("c", at(2026, 11, 24, 19), at(2026, 11, 24, 19), "Fight"),))
        found = guide_events(LineupConfig(id="x", default_duration=3600), chan("c", tvg_id="c"),
                             (0, 0), GuideIndex(guide), self.window)
        self.assertEqual(found[0].stop, at(2026, 11, 24, 20))


NHL_PATTERN = r"^(?:NHL|NBA) \d+: (?P<title>.+?) @ (?P<time>\d{1,2}:\d{2} ?[AP]M)"


class ParseNameTests(SynchronousTestCase):
    # 10:00 in New York, 15:00 UTC
    now = ts(2025, 12, 12, 15, 0)

    def parse(self, pattern: str, name: str, zone: dt.tzinfo = NEW_YORK, now: float | None = None,
              formats: tuple[str, ...] = ("%I:%M %p", "%I:%M%p", "%H:%M")) -> NameMatch | None:
        lineup = LineupConfig(id="x", name_pattern=pattern, name_time_formats=formats)
        return parse_name(lineup, name, zone, self.now if now is None else now)

    def start(self, pattern: str, name: str, zone: dt.tzinfo = NEW_YORK, now: float | None = None,
              formats: tuple[str, ...] = ("%I:%M %p", "%I:%M%p", "%H:%M")) -> dt.datetime:
        match = self.parse(pattern, name, zone, now, formats)
        assert match is not None and match.start is not None, match
        return match.start

    def test_12h_time_with_zone_suffix_outside_the_group(self) -> None:
        match = self.parse(NHL_PATTERN, "NHL 01: Bruins VS Leafs @ 8:00PM ET")
        assert match is not None
        self.assertEqual(match.title, "Bruins VS Leafs")
        # 8 PM Eastern (EST in December) = 01:00 UTC next day
        self.assertEqual(match.start, at(2025, 12, 13, 1, 0))

    def test_same_name_in_utc(self) -> None:
        start = self.start(NHL_PATTERN, "NHL 01: Bruins VS Leafs @ 8:00PM ET", zone=UTC)
        self.assertEqual(start, at(2025, 12, 12, 20, 0))

    def test_edt_in_summer_follows_the_zone(self) -> None:
        start = self.start(r": (?P<title>.+?) @ (?P<time>\d+:\d+ [AP]M) E[SD]?T",
                           "USA NBA 01: Thunder vs Spurs @ 08:00 PM EDT",
                           now=ts(2025, 6, 1, 15))
        self.assertEqual(start, at(2025, 6, 2, 0, 0))  # EDT is UTC-4

    def test_24h_time(self) -> None:
        start = self.start(r'^EVENTS \d+: "(?P<title>.+) (?P<time>\d{2}:\d{2})"',
                           'EVENTS 02: "Brave CF 95: Tenerife, Spain 20:00"', zone=UTC)
        self.assertEqual(start, at(2025, 12, 12, 20, 0))

    def test_time_without_date_is_the_occurrence_nearest_now_across_midnight(self) -> None:
        pattern = r"^(?P<title>.+) @ (?P<time>.+)$"
        # 23:30 UTC: "00:15" means in 45 minutes, tomorrow
        late = ts(2025, 12, 12, 23, 30)
        self.assertEqual(self.start(pattern, "Game @ 00:15", zone=UTC, now=late),
                         at(2025, 12, 13, 0, 15))
        # 00:30 UTC: "23:45" was 45 minutes ago, yesterday (a game already on)
        early = ts(2025, 12, 13, 0, 30)
        self.assertEqual(self.start(pattern, "Game @ 23:45", zone=UTC, now=early),
                         at(2025, 12, 12, 23, 45))
        self.assertEqual(self.start(pattern, "Game @ 11:00", zone=UTC, now=early),
                         at(2025, 12, 13, 11, 0))

    def test_date_groups(self) -> None:
        time = r"(?P<time>\d{1,2}:\d{2} ?[AP]M)"
        cases = [
            (rf"^\w+ \d+: (?P<title>.+?) @ (?P<date>\w{{3}} \d{{1,2}}) {time}",
             "NCAAB 01: Army vs UMBC @ Dec 12 06:00 PM ET", at(2025, 12, 12, 23, 0)),
            (rf"^PPV \d+: (?P<title>.+?) \((?P<date>\d{{1,2}}\.\d{{1,2}}) {time} ET\)",
             "PPV 07: Ramirez v Smith (11.16 5:30PM ET)", at(2025, 11, 16, 22, 30)),
            (rf"^(?P<title>.+?) - {time} EST - \((?P<date>[\d/]+)\)$",
             "ACB : Leyma Basquet Coruña vs UCAM Murcia - 12:00 PM EST - (01/19/2025)",
             at(2025, 1, 19, 17, 0)),
            (r"^\d+ - (?P<date>\d+/\d+) (?P<time>\d+[ap]m) (?P<title>.+)$",
             "07 - 8/14 7pm Broncos at Falcons", at(2025, 8, 14, 23, 0)),
            (r"^Channel Number \d+ : (?P<title>.+) \((?P<date>[\d-]+) (?P<time>[\d:]+)\)$",
             "Channel Number 1 : Women's Swimming Press Conference (2025-08-11 11:30:00)",
             at(2025, 8, 11, 15, 30)),
        ]
        formats = ("%I:%M %p", "%I:%M%p", "%I%p", "%H:%M:%S")
        for pattern, name, expected in cases:
            self.assertEqual(self.start(pattern, name, formats=formats), expected, name)

    def test_date_without_year_takes_the_nearest_year(self) -> None:
        pattern = r"(?P<title>.+) (?P<date>\d+/\d+) (?P<time>\d+:\d+)"
        new_year = ts(2025, 12, 31, 20)
        self.assertEqual(self.start(pattern, "Game 01/01 18:00", zone=UTC, now=new_year),
                         at(2026, 1, 1, 18))
        self.assertEqual(self.start(pattern, "Game 02/29 18:00", zone=UTC, now=new_year),
                         at(2024, 2, 29, 18))

    def test_no_time_group_means_live_from_first_seen(self) -> None:
        match = self.parse(r"^ESPN\+ \d+ (?P<title>.+)$", "ESPN+ 110 Youngstown State vs. Akron")
        assert match is not None
        self.assertEqual(match.title, "Youngstown State vs. Akron")
        self.assertIsNone(match.start)
        optional = r"^NHL \d+: (?P<title>.+?)(?: @ (?P<time>\d+:\d+ [AP]M))?$"
        self.assertEqual(self.parse(optional, "NHL 03: Kings vs Ducks"),
                         NameMatch(title="Kings vs Ducks", start=None))

    def test_empty_slots_and_non_matching_names_are_no_event(self) -> None:
        pattern = r"^(?:NHL|MLB) \d+:\s*(?P<title>.*?)(?: @ (?P<time>\d+:\d+ ?[AP]M).*)?$"
        for name in ("NHL 07:", "MLB 01:", "NHL 07:   ", "PPV EVENT 04", "60 Minutes"):
            self.assertIsNone(self.parse(pattern, name), name)

    def test_unreadable_time_is_an_error_not_an_event(self) -> None:
        with self.assertRaises(NameTimeError):
            self.parse(r"(?P<title>.+) @ (?P<time>.+)", "Game @ 25:99")
        with self.assertRaises(NameTimeError):
            self.parse(r"(?P<title>.+) (?P<date>\S+) (?P<time>\d+:\d+)", "Game 13/45 18:00")

    def test_no_pattern_parses_nothing(self) -> None:
        self.assertIsNone(self.parse("", "NHL 01: A vs B @ 7:00 PM"))


class RealNamesTests(SynchronousTestCase):
    """Patterns a user would write, over the real names in tests/data/names/."""

    now = ts(2025, 12, 12, 15, 0)

    def run_pattern(self, pattern: str, names: list[str],
                    formats: tuple[str, ...] = ("%I:%M %p", "%I:%M%p")) -> dict[str, NameMatch]:
        lineup = LineupConfig(id="x", name_pattern=pattern, name_time_formats=formats)
        found = {}
        for name in names:
            match = parse_name(lineup, name, NEW_YORK, self.now)
            if match is not None:
                found[name] = match
        return found

    def test_league_slot_names(self) -> None:
        found = self.run_pattern(
            r"^(?:USA )?(?:NHL|NBA|NCAAB|NFL Game Pass) \d+: (?P<title>.+?) @ "
            r"(?:(?P<date>[A-Z][a-z]{2} \d{1,2}) )?(?P<time>\d{1,2}:\d{2} ?[AP]M)",
            hand_written_names())
        self.assertEqual(len(found), 11)
        falcons = found["NFL Game Pass 02: Falcons @ Buccaneers (Prime Vision with Next Gen "
                        "Stats) @ 08:15 PM ET"]
        # "@" inside the title is kept; the last "@ time" is the time
        self.assertEqual(falcons.title,
                         "Falcons @ Buccaneers (Prime Vision with Next Gen Stats)")
        self.assertEqual(falcons.start, at(2025, 12, 13, 1, 15))
        blues = found["NHL 01: Chicago Blackhawks  vs  St. Louis Blues @ 08:00 PM ET"]
        self.assertEqual(blues.title,
                         "Chicago Blackhawks vs St. Louis Blues")
        army = found["NCAAB 01: Army vs UMBC @ Dec 12 06:00 PM ET"]
        self.assertEqual(army.start, at(2025, 12, 12, 23, 0))
        for name in ("NHL 07:", "PPV EVENT 04", "ESPN Plus 017", "60 Minutes", "[NHL-13]"):
            self.assertNotIn(name, found)

    def test_bracket_slots_with_hour_only_times(self) -> None:
        found = self.run_pattern(r"^\[(?:PPV|NHL|PP)-\d+\] (?P<title>.+?)(?: -)? "
                                 r"(?P<time>\d{1,2}(?::?\d{2})?PM) ET$",
                                 hand_written_names(), formats=("%I%p", "%I%M%p", "%I:%M%p"))
        self.assertEqual(
            {m.title: m.start for m in found.values()},
            {"ALVAREZ VS SEALS UNDERCARDS": at(2025, 12, 13, 0),
             "UFC 246 MCGREGOR VS. COWBOY 30FPS": at(2025, 12, 12, 23, 15),
             "RAGE IN THE CAGE OKC 71": at(2025, 12, 13, 2),
             "SABRES @ PREDATORS": at(2025, 12, 13, 1),
             "CAPITALS @ ISLANDERS": at(2025, 12, 12, 18)})

    def test_placeholder_titles_are_excluded_by_exclude_title(self) -> None:
        lineup = LineupConfig(id="x", name_pattern=r'^LIVE EVENT \d+: "(?P<title>.+)"$',
                              exclude_title="^no event$")
        matches = [parse_name(lineup, n, UTC, self.now) for n in hand_written_names()]
        titles = [m.title for m in matches if m is not None]
        self.assertEqual(titles, ["12PM UFC Vegas 107 On The Line", "NO EVENT"])
        self.assertEqual([t for t in titles if title_passes(lineup, t)],
                         ["12PM UFC Vegas 107 On The Line"])

    def test_every_daddylive_event_name_parses(self) -> None:
        with open(os.path.join(NAMES, "daddylive-events.txt"), encoding="utf-8") as f:
            names = [line.rstrip("\n") for line in f if line.strip()]
        pattern = (r"^(?:\d{1,2}:\d{2} [AP]M - )?(?P<title>.+?) - (?P<time>\d{1,2}:\d{2} [AP]M) "
                   r"E[SD]?T - \((?P<date>\d{2}/\d{2}/\d{4})\)$")
        found = self.run_pattern(pattern, names)
        self.assertEqual(set(names) - set(found), {"Last updated at 08:34 PM EST"})
        sunday = found["Spain - La Liga : Getafe vs Barcelona - 03:00 PM EST - (01/19/2025)"]
        self.assertEqual(sunday.title, "Spain - La Liga : Getafe vs Barcelona")
        self.assertEqual(sunday.start, at(2025, 1, 19, 20, 0))
        for match in found.values():
            start = match.start
            assert start is not None
            self.assertTrue(at(2025, 1, 17) <= start < at(2025, 1, 21), match)

    def test_daddylive_playlist_form_with_leading_time(self) -> None:
        found = self.run_pattern(
            r"^(?:\d{1,2}:\d{2} [AP]M - )?(?P<title>.+?) - (?P<time>\d{1,2}:\d{2} [AP]M) "
            r"E[SD]?T - \((?P<date>\d{2}/\d{2}/\d{4})\)$", hand_written_names())
        jets = found["1:01 PM - New York Jets vs. Buffalo Bills - 01:01 PM EST - (12/29/2024)"]
        self.assertEqual(jets.title, "New York Jets vs. Buffalo Bills")
        self.assertEqual(jets.start, at(2024, 12, 29, 18, 1))


class LiveStopTests(SynchronousTestCase):
    def test_default_duration_or_past_the_next_refresh_whichever_is_later(self) -> None:
        lineup = LineupConfig(id="x", default_duration=3 * 3600)
        # first seen now, refreshed hourly: default_duration decides
        self.assertEqual(live_stop(lineup, 1000.0, 1000.0, 3600), 1000.0 + 3 * 3600)
        # still shown 5 h later: live until after the next refresh can tell
        self.assertEqual(live_stop(lineup, 1000.0, 1000.0 + 5 * 3600, 3600),
                         1000.0 + 6 * 3600 + REFRESH_MARGIN)
        # a provider refreshed every 6 h keeps it live past default_duration from the start
        self.assertGreater(live_stop(lineup, 1000.0, 1000.0, 21600), 1000.0 + 21600)


class ManualEventTests(SynchronousTestCase):
    lineup = LineupConfig(id="nhl", default_duration=3 * 3600)
    playlists = {"main": (chan("NHL 06"), chan("NHL 07", url="http://p/live/u/p/7.ts"))}

    def test_url_event_has_no_provider_and_ranks_first(self) -> None:
        event = EventConfig(lineup="nhl", title="Bruins  vs Rangers",
                            start=at(2026, 11, 24, 19, tz=dt.timezone(dt.timedelta(hours=-5))),
                            url="http://x/1.ts")
        found = manual_event(self.lineup, event, 0, self.playlists, {"main": 0})
        assert found is not None
        self.assertEqual((found.source.provider, found.source.channel, found.source.url),
                         ("", "", "http://x/1.ts"))
        self.assertEqual(found.title, "Bruins vs Rangers")
        self.assertEqual(found.start, at(2026, 11, 25, 0))
        self.assertEqual(found.stop, at(2026, 11, 25, 3))  # default_duration
        self.assertLess(found.rank, (0, 0))

    def test_provider_channel_resolves_to_its_url(self) -> None:
        event = EventConfig(lineup="nhl", title="Game", start=at(2026, 11, 24, 19),
                            stop=at(2026, 11, 24, 21), provider="main", channel="nhl 07")
        found = manual_event(self.lineup, event, 0, self.playlists, {"main": 0})
        assert found is not None
        self.assertEqual((found.source.provider, found.source.channel, found.source.url),
                         ("main", "NHL 07", "http://p/live/u/p/7.ts"))
        self.assertEqual(found.stop, at(2026, 11, 24, 21))

    def test_unknown_channel_is_skipped_with_a_warning(self) -> None:
        event = EventConfig(lineup="nhl", title="Game", start=at(2026, 11, 24, 19),
                            provider="main", channel="NHL 99")
        with capturedLogs() as logged:
            self.assertIsNone(manual_event(self.lineup, event, 0, self.playlists, {"main": 0}))
        self.assertEqual(len(logged), 1)
        self.assertIn("NHL 99", logged[0]["log_format"].format(**logged[0]))
