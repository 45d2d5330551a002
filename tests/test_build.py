"""
Tests for epgd.schedule.build: the whole build from configuration and provider data, and
what a user sees across refreshes and restarts — channels that stay put, name events that
stay live, unplaced events logged once.
"""

from __future__ import annotations

import datetime as dt
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import (
    Config,
    EventConfig,
    GuideConfig,
    LineupConfig,
    ProviderConfig,
    StreamConfig,
)
from epgd.schedule.build import build_schedule
from epgd.schedule.model import Schedule
from epgd.schedule.packing import KEEP_GONE, PackingState
from epgd.sources.models import (
    Guide,
    GuideChannel,
    Playlist,
    Programme,
    ProviderChannel,
    ProviderData,
)

HOUR = 3600
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC).timestamp()


def at(hours: float) -> dt.datetime:
    """NOW + hours, as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(NOW + hours * HOUR, dt.UTC)


def chan(provider: str, name: str, tvg_id: str = "", group: str = "Events") -> ProviderChannel:
    return ProviderChannel(provider=provider, name=name, tvg_id=tvg_id, group=group,
                           url=f"http://{provider}.example/live/user/pass/{abs(hash(name)) % 999}.ts")


def prog(channel: str, start: float, stop: float | None, title: str, **kw: object) -> Programme:
    return Programme(channel=channel, start=at(start), stop=at(stop) if stop is not None else None,
                     title=title, **kw)  # type: ignore[arg-type]


def data(provider: str, channels: list[ProviderChannel],
         programmes: list[Programme] | None = None) -> ProviderData:
    guide = None
    if programmes is not None:
        ids = sorted({p.channel for p in programmes})
        guide = Guide(channels=tuple(GuideChannel(i, (i,)) for i in ids),
                      programmes=tuple(programmes))
    return ProviderData(provider=provider, playlist=Playlist(tuple(channels)), guide=guide)


def config(*lineups: LineupConfig, events: tuple[EventConfig, ...] = (),
           timezone: str = "UTC", hold: float = 3600) -> Config:
    return Config(providers=(ProviderConfig("main", "http://main.example/pl.m3u"),
                             ProviderConfig("backup", "http://backup.example/pl.m3u")),
                  lineups=lineups, events=events, guide=GuideConfig(days=2, timezone=timezone),
                  stream=StreamConfig(hold_after_end=hold))


def lanes(schedule: Schedule) -> dict[str, str]:
    """Event title -> channel id."""
    return {e.title: c.id for c in schedule.channels for e in c.events}


NHL = LineupConfig(id="nhl", name="NHL PPV", channels=2, first_number=101,
                   logo="http://logo/nhl.png", match_name="^NHL", exclude_title="no event")


class ShapeTests(SynchronousTestCase):
    def test_every_channel_of_every_lineup_in_config_order_even_empty(self) -> None:
        other = LineupConfig(id="ppv", channels=3, group="Fights")
        schedule, _ = build_schedule(config(NHL, other), {}, PackingState.empty(), NOW)
        self.assertEqual([(c.id, c.name, c.number, c.lineup, c.group, c.logo)
                          for c in schedule.channels],
                         [("nhl_1", "NHL PPV 1", 101, "nhl", "NHL PPV", "http://logo/nhl.png"),
                          ("nhl_2", "NHL PPV 2", 102, "nhl", "NHL PPV", "http://logo/nhl.png"),
                          ("ppv_1", "ppv 1", 1, "ppv", "Fights", ""),
                          ("ppv_2", "ppv 2", 2, "ppv", "Fights", ""),
                          ("ppv_3", "ppv 3", 3, "ppv", "Fights", "")])
        self.assertEqual(schedule.generated_at, at(0))
        self.assertEqual(schedule.generated_at.utcoffset(), dt.timedelta(0))
        self.assertEqual(schedule.unplaced, ())


class SourcesTests(SynchronousTestCase):
    def provider_data(self) -> dict[str, ProviderData]:
        return {
            "main": data("main", [chan("main", "NHL 07", tvg_id="nhl7"),
                                  chan("main", "NBA 01", tvg_id="nba1")],
                         [prog("nhl7", 7, 10, "Bruins vs Rangers", desc="Original Six"),
                          prog("nhl7", 10, 13, "NO EVENT"),
                          prog("nba1", 7, 10, "Bulls vs Hornets")]),
            "backup": data("backup", [chan("backup", "NHL 3", tvg_id="x"),
                                      chan("backup", "NHL 4: Bruins vs Rangers @ 19:05")],
                           [prog("x", 7, 10, "bruins VS rangers"), prog("x", 20, 23, "Kings")]),
        }

    def test_guide_and_name_events_merge_across_providers_in_provider_order(self) -> None:
        lineup = LineupConfig(id="nhl", channels=2, match_name="^NHL", exclude_title="no event",
                              name_pattern=r"^NHL \d+: (?P<title>.+) @ (?P<time>\d+:\d+)")
        schedule, _ = build_schedule(config(lineup), self.provider_data(), PackingState.empty(),
                                     NOW)
        events = schedule.all_events()
        self.assertEqual([e.title for e in events], ["Bruins vs Rangers", "Kings"])
        game = events[0]
        self.assertEqual([(s.provider, s.channel) for s in game.sources],
                         [("main", "NHL 07"), ("backup", "NHL 3"),
                          ("backup", "NHL 4: Bruins vs Rangers @ 19:05")])
        self.assertEqual((game.start, game.stop, game.desc), (at(7), at(10), "Original Six"))

    def test_manual_events_by_url_and_by_provider_channel(self) -> None:
        events = (
            EventConfig(lineup="nhl", title="Bruins vs Rangers", start=at(7.1),
                        url="http://manual.example/1.ts"),
            EventConfig(lineup="nhl", title="Outdoor Classic", start=at(30), stop=at(33),
                        provider="main", channel="NHL 07"),
            EventConfig(lineup="nhl", title="Lost", start=at(30), provider="main",
                        channel="NHL 99"),
        )
        with capturedLogs() as logged:
            schedule, _ = build_schedule(config(NHL, events=events), self.provider_data(),
                                         PackingState.empty(), NOW)
        by_title = {e.title: e for e in schedule.all_events()}
        self.assertEqual(sorted(by_title), ["Bruins vs Rangers", "Kings", "Outdoor Classic"])
        self.assertEqual([s.url for s in by_title["Bruins vs Rangers"].sources][0],
                         "http://manual.example/1.ts")
        self.assertEqual(by_title["Bruins vs Rangers"].sources[0].provider, "")
        # the guide's details fill in what the manual table does not say
        self.assertEqual(by_title["Bruins vs Rangers"].desc, "Original Six")
        self.assertEqual(by_title["Outdoor Classic"].sources[0].channel, "NHL 07")
        self.assertTrue(any("NHL 99" in e["log_format"].format(**e) for e in logged))

    def test_provider_without_data_or_unknown_timezone_does_not_break_the_build(self) -> None:
        lineup = LineupConfig(id="nhl", name_pattern=r"^NHL \d+: (?P<title>.+) @ (?P<time>.+)$")
        only_backup = {"backup": self.provider_data()["backup"]}
        with capturedLogs() as logged:
            schedule, _ = build_schedule(config(lineup, timezone="Mars/Olympus"), only_backup,
                                         PackingState.empty(), NOW)
        self.assertEqual(sorted(t.casefold() for t in lanes(schedule)),
                         ["bruins vs rangers", "kings"])
        self.assertTrue(any("Mars/Olympus" in e["log_format"].format(**e) for e in logged))

    def test_unreadable_name_times_are_skipped_with_one_line(self) -> None:
        lineup = LineupConfig(id="nhl", name_pattern=r"^NHL \d+: (?P<title>.+) @ (?P<time>.+)$")
        playlist = {"main": data("main", [chan("main", f"NHL {i}: Game {i} @ soon")
                                          for i in range(5)])}
        with capturedLogs() as logged:
            schedule, _ = build_schedule(config(lineup), playlist, PackingState.empty(), NOW)
        self.assertEqual(schedule.all_events(), [])
        self.assertEqual(len(logged), 1)
        self.assertIn("5 channel names", logged[0]["log_format"].format(**logged[0]))


class WindowTests(SynchronousTestCase):
    def test_ended_events_drop_after_post_padding_and_hold(self) -> None:
        lineup = LineupConfig(id="nhl", channels=4, post_padding=HOUR / 2)
        provider = {"main": data("main", [chan("main", "C", tvg_id="c")], [
            prog("c", -5, -3, "Long gone"),  # live until -2.5, held until -1.5
            prog("c", -4, -1.4, "Held"),  # live until -0.9, held until +0.1
            prog("c", 47, 50, "Within two days"),
            prog("c", 49, 52, "Beyond two days"),
        ])}
        schedule, _ = build_schedule(config(lineup), provider, PackingState.empty(), NOW)
        self.assertEqual(sorted(lanes(schedule)), ["Held", "Within two days"])
        self.assertEqual(schedule.playing("nhl_1", NOW, 3600).title, "Held")  # type: ignore


class StickyTests(SynchronousTestCase):
    def game_data(self, *programmes: Programme) -> dict[str, ProviderData]:
        return {"main": data("main", [chan("main", "NHL 07", tvg_id="nhl7")], list(programmes))}

    def test_new_earlier_event_does_not_push_a_placed_one(self) -> None:
        first, state = build_schedule(config(NHL), self.game_data(prog("nhl7", 1, 4, "Kings")),
                                      PackingState.empty(), NOW)
        self.assertEqual(lanes(first), {"Kings": "nhl_1"})
        second, _ = build_schedule(
            config(NHL),
            self.game_data(prog("nhl7", 0, 3, "Bruins"), prog("nhl7", 1, 4, "Kings")),
            state, NOW + 60)
        self.assertEqual(lanes(second), {"Kings": "nhl_1", "Bruins": "nhl_2"})

    def test_live_event_with_changed_times_keeps_its_channel_across_restart(
            self) -> None:
        state_path = os.path.join(self.mktemp())
        refreshes = [
            [prog("nhl7", -1, 2, "Bruins"), prog("nhl7", -1, 2, "Kings")],
            # Kings moved 30 min and would now come first; Bruins is gone, Ducks new
            [prog("nhl7", -0.25, 1, "Ducks"), prog("nhl7", -0.5, 2.5, "Kings")],
        ]
        placed = None
        for i, programmes in enumerate(refreshes):
            schedule, state = build_schedule(config(NHL), self.game_data(*programmes),
                                             PackingState.load(state_path), NOW + i * 60)
            state.save(state_path)
            if placed is None:
                placed = lanes(schedule)["Kings"]
            self.assertEqual(lanes(schedule)["Kings"], placed)
        self.assertEqual(placed, "nhl_2")

    def test_unplaced_is_listed_and_logged_once(self) -> None:
        one = LineupConfig(id="one", channels=1)
        provider = self.game_data(prog("nhl7", 1, 4, "A"), prog("nhl7", 2, 5, "B"))
        state = PackingState.empty()
        counts = []
        for i in range(3):
            with capturedLogs() as logged:
                schedule, state = build_schedule(config(one), provider, state, NOW + i * 60)
            self.assertEqual([(e.title, e.lineup) for e in schedule.unplaced], [("B", "one")])
            counts.append(sum("unplaced" in e["log_format"] for e in logged))
        self.assertEqual(counts, [1, 0, 0])

    def test_many_unplaced_give_a_few_lines_and_a_count(self) -> None:
        """Hundreds of unplaced events must not flood the log: ten named, the rest counted."""
        one = LineupConfig(id="one", channels=1)
        provider = self.game_data(*(prog("nhl7", 1 + h / 60, 4, f"Game {h}") for h in range(40)))
        with capturedLogs() as logged:
            schedule, _ = build_schedule(config(one), provider, PackingState.empty(), NOW)
        self.assertEqual(len(schedule.unplaced), 39)
        lines = [e["log_format"].format(**e) for e in logged]
        self.assertEqual(len(lines), 11, lines)
        self.assertIn("29 more events found no free channel among its 1", lines[-1])

    def test_same_input_same_output(self) -> None:
        provider = self.game_data(*(prog("nhl7", h, h + 2.5, f"G{h % 5}") for h in range(20)))
        first = build_schedule(config(NHL), provider, PackingState.empty(), NOW)
        second = build_schedule(config(NHL), provider, PackingState.empty(), NOW)
        self.assertEqual(first, second)
        self.assertEqual(first[1].to_json(), second[1].to_json())

    def test_records_of_long_gone_events_are_pruned(self) -> None:
        _, state = build_schedule(config(NHL), self.game_data(prog("nhl7", 1, 4, "Kings")),
                                  PackingState.empty(), NOW)
        later = NOW + 4 * HOUR + KEEP_GONE + 1
        _, kept = build_schedule(config(NHL), self.game_data(), state, NOW + 5 * HOUR)
        _, pruned = build_schedule(config(NHL), self.game_data(), state, later)
        self.assertEqual(len(kept.records), 1)
        self.assertEqual(len(pruned.records), 0)


class NameEventsWithoutTimeTests(SynchronousTestCase):
    lineup = LineupConfig(id="ppv", channels=2, default_duration=3 * HOUR,
                          name_pattern=r"^PPV \d+: (?P<title>.+)$")

    def playlist(self, *names: str) -> dict[str, ProviderData]:
        return {"main": data("main", [chan("main", n) for n in names])}

    def test_live_from_first_seen_across_refreshes_and_restarts(self) -> None:
        path = self.mktemp()
        starts = []
        for hours in (0, 2, 5, 9):
            schedule, state = build_schedule(config(self.lineup),
                                             self.playlist("PPV 01: UFC 309", "PPV 02:"),
                                             PackingState.load(path), NOW + hours * HOUR)
            state.save(path)
            (event,) = schedule.all_events()
            starts.append(event.start)
            # still shown -> still live, nine hours after a three-hour default
            self.assertTrue(event.is_live(NOW + hours * HOUR))
            self.assertEqual(schedule.live("ppv_1", NOW + hours * HOUR), event)
        self.assertEqual(set(starts), {at(0)})

    def test_gone_from_the_playlist_ends_it_and_a_return_is_a_new_event(self) -> None:
        state = PackingState.empty()
        shown = self.playlist("PPV 01: UFC 309")
        _, state = build_schedule(config(self.lineup), shown, state, NOW)
        schedule, state = build_schedule(config(self.lineup), self.playlist(), state, NOW + HOUR)
        self.assertEqual(schedule.all_events(), [])
        self.assertEqual(dict(state.first_seen), {})
        schedule, state = build_schedule(config(self.lineup), shown, state, NOW + 2 * HOUR)
        self.assertEqual(schedule.all_events()[0].start, at(2))

    def test_first_seen_is_kept_while_its_provider_has_no_data(self) -> None:
        _, state = build_schedule(config(self.lineup), self.playlist("PPV 01: UFC 309"),
                                  PackingState.empty(), NOW)
        _, state = build_schedule(config(self.lineup), {}, state, NOW + HOUR)
        schedule, _ = build_schedule(config(self.lineup), self.playlist("PPV 01: UFC 309"),
                                     state, NOW + 2 * HOUR)
        self.assertEqual(schedule.all_events()[0].start, at(0))


class BuildPropertyTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 12), st.integers(0, 9)),
                    max_size=25),
           st.lists(st.integers(0, 24), max_size=6))
    def test_refresh_that_removes_others_never_moves_a_placed_event(
            self, games: list[tuple[int, int, int]], removed: list[int]) -> None:
        """Dropping some events on refresh leaves every remaining placed event where it was."""
        def programmes(skip: set[int]) -> list[Programme]:
            return [prog("nhl7", start / 4, (start + length) / 4, f"Game {title}-{i}")
                    for i, (start, length, title) in enumerate(games) if i not in skip]
        provider = {"main": data("main", [chan("main", "NHL 07", tvg_id="nhl7")],
                                 programmes(set()))}
        first, state = build_schedule(config(NHL), provider, PackingState.empty(), NOW)
        provider = {"main": data("main", [chan("main", "NHL 07", tvg_id="nhl7")],
                                 programmes(set(removed)))}
        second, _ = build_schedule(config(NHL), provider, state, NOW + 60)
        before, after = lanes(first), lanes(second)
        for title, channel in after.items():
            if title in before:
                self.assertEqual(channel, before[title], title)
        placed = len(after) + len(second.unplaced)
        self.assertEqual(placed, len(games) - len(set(removed) & set(range(len(games)))))
