"""
Tests for epgd.schedule.packing: merging duplicates, event identity across rebuilds, sticky
packing into lanes (unit rules and hypothesis properties), and the persisted PackingState.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from epgd.schedule.events import Candidate
from epgd.schedule.model import Event, Source
from epgd.schedule.packing import (
    MATCH_WINDOW,
    PackingState,
    Record,
    assign_keys,
    make_event,
    merge,
    pack,
)

T0 = 1_800_000_000.0
HOUR = 3600.0
LANES = ["l_1", "l_2", "l_3", "l_4"]


def moment(offset: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 + offset, dt.UTC)


def cand(title: str, start: float, stop: float | None = None, rank: tuple[int, int] = (0, 0),
         url: str = "", **details: object) -> Candidate:
    return Candidate(lineup="l", title=title, start=moment(start),
                     stop=moment(stop if stop is not None else start + 3 * HOUR),
                     source=Source("p", title, url or f"http://p/{rank[0]}/{rank[1]}.ts"),
                     rank=rank, **details)  # type: ignore[arg-type]


def ev(key: str, start: float, stop: float, pre: float = 0.0, post: float = 0.0) -> Event:
    return Event(key=key, lineup="l", title=key, start=moment(start), stop=moment(stop),
                 sources=(Source("p", key, f"http://p/{key}.ts"),),
                 pre_padding=pre, post_padding=post)


def where(lanes: dict[str, list[Event]]) -> dict[str, str]:
    return {e.key: cid for cid, events in lanes.items() for e in events}


class MergeTests(SynchronousTestCase):
    def test_same_title_within_15_minutes_is_one_event_with_sources_in_provider_order(self) -> None:
        groups = merge([
            cand("Bruins vs Rangers", 600, rank=(1, 0), url="http://b/1.ts"),
            cand("bruins  VS rangers ", 0, rank=(0, 5), url="http://a/5.ts"),
            cand("Bruins vs Rangers", 900, rank=(0, 2), url="http://a/2.ts"),
        ])
        self.assertEqual(len(groups), 1)
        event = make_event("k", groups[0], 0, 0)
        self.assertEqual([s.url for s in event.sources],
                         ["http://a/2.ts", "http://a/5.ts", "http://b/1.ts"])
        # times and title from the first source
        self.assertEqual(event.start, moment(900))
        self.assertEqual(event.title, "Bruins vs Rangers")

    def test_more_than_15_minutes_apart_or_other_titles_stay_apart(self) -> None:
        groups = merge([cand("Game", 0), cand("Game", 15 * 60 + 1, rank=(0, 1)),
                        cand("Other", 0, rank=(0, 2))])
        self.assertEqual(len(groups), 3)

    def test_details_from_the_first_that_has_them_and_duplicate_urls_once(self) -> None:
        groups = merge([cand("Fight", 0, rank=(-1, 0), url="http://m/1.ts"),
                        cand("Fight", 60, rank=(0, 1), url="http://m/1.ts", desc="Main card",
                             categories=("Sports",)),
                        cand("Fight", 60, rank=(0, 2), url="http://p/2.ts", desc="ignored")])
        event = make_event("k", groups[0], 0, 0)
        self.assertEqual(event.desc, "Main card")
        self.assertEqual(event.categories, ("Sports",))
        self.assertEqual([s.url for s in event.sources], ["http://m/1.ts", "http://p/2.ts"])


class KeyTests(SynchronousTestCase):
    def test_new_key_names_lineup_start_and_title(self) -> None:
        keys = assign_keys("l", merge([cand("Bruins  vs Rangers", 0)]), {})
        self.assertEqual(keys, [f"l:{int(T0)}:bruins vs rangers"])

    def test_key_survives_a_time_change_and_new_sources(self) -> None:
        old = {"l:1:game": Record("l", "game", T0, T0 + 3 * HOUR, "l_2")}
        moved = merge([cand("GAME", HOUR, rank=(3, 9), url="http://new/1.ts")])
        self.assertEqual(assign_keys("l", moved, old), ["l:1:game"])

    def test_too_far_moved_other_lineup_or_other_title_is_a_new_event(self) -> None:
        old = {"l:1:game": Record("l", "game", T0, T0 + 3 * HOUR, "l_2"),
               "m:1:other": Record("m", "other", T0, T0 + 3 * HOUR, "m_1")}
        keys = assign_keys("l", merge([cand("Game", MATCH_WINDOW + 1), cand("Other", 0)]), old)
        self.assertNotIn("l:1:game", keys)
        self.assertNotIn("m:1:other", keys)

    def test_two_airings_of_one_title_keep_distinct_keys(self) -> None:
        old = {"l:a:show": Record("l", "show", T0, T0 + HOUR, "l_1"),
               "l:b:show": Record("l", "show", T0 + 2 * HOUR, T0 + 3 * HOUR, "l_2")}
        groups = merge([cand("Show", 2 * HOUR + 60, rank=(0, 1)), cand("Show", 60)])
        keys = dict(zip((g[0].start for g in groups), assign_keys("l", groups, old), strict=True))
        self.assertEqual(keys, {moment(60): "l:a:show", moment(2 * HOUR + 60): "l:b:show"})

    def test_minted_key_never_reuses_a_remembered_one(self) -> None:
        base = f"l:{int(T0)}:show"
        old = {base: Record("l", "gone", T0, T0 + HOUR, "l_3")}
        self.assertEqual(assign_keys("l", merge([cand("Show", 0)]), old), [base + "#2"])


class PackTests(SynchronousTestCase):
    def test_greedy_lowest_free_channel_half_open(self) -> None:
        lanes, unplaced = pack(LANES[:2], [ev("c", 0, 100), ev("a", 0, 100), ev("b", 100, 200),
                                           ev("d", 50, 150)], {}, T0 - 1000)
        self.assertEqual(where(lanes), {"a": "l_1", "b": "l_1", "c": "l_2"})
        self.assertEqual([e.key for e in unplaced], ["d"])

    def test_padding_counts_for_overlap(self) -> None:
        lanes, _ = pack(LANES[:2], [ev("a", 0, 100, post=10), ev("b", 100, 200)], {}, T0)
        self.assertEqual(where(lanes), {"a": "l_1", "b": "l_2"})
        lanes, _ = pack(LANES[:2], [ev("a", 0, 100, post=10), ev("b", 110, 200, pre=0)], {}, T0)
        self.assertEqual(where(lanes), {"a": "l_1", "b": "l_1"})

    def test_event_keeps_its_channel_even_when_a_lower_one_is_free(self) -> None:
        lanes, _ = pack(LANES, [ev("new", 0, 100), ev("old", 0, 100)], {"old": "l_3"}, T0)
        self.assertEqual(where(lanes), {"new": "l_1", "old": "l_3"})

    def test_conflict_the_live_one_stays(self) -> None:
        # both were on l_1; b's times changed and now overlap a, which is live
        previous = {"a": "l_1", "b": "l_1"}
        events = [ev("b", 0, 200), ev("a", 100, 300)]
        lanes, _ = pack(LANES[:2], events, previous, T0 + 250)
        self.assertEqual(where(lanes), {"a": "l_1", "b": "l_2"})

    def test_conflict_nobody_live_the_earlier_one_stays(self) -> None:
        previous = {"a": "l_2", "b": "l_2"}
        lanes, _ = pack(LANES[:2], [ev("a", 100, 300), ev("b", 0, 200)], previous, T0 - 1)
        self.assertEqual(where(lanes), {"b": "l_2", "a": "l_1"})

    def test_assignment_to_a_channel_no_longer_in_the_lineup_is_ignored(self) -> None:
        lanes, _ = pack(LANES[:2], [ev("a", 0, 100)], {"a": "l_9"}, T0)
        self.assertEqual(where(lanes), {"a": "l_1"})


# --- properties -------------------------------------------------------------------------

@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[str], list[Event], dict[str, str], float]:
    lanes = LANES[: draw(st.integers(1, 4))]
    count = draw(st.integers(0, 14))
    events = []
    for i in range(count):
        start = draw(st.integers(0, 48)) * 900.0
        length = draw(st.integers(1, 16)) * 900.0
        pre, post = draw(st.sampled_from([(0.0, 0.0), (600.0, 0.0), (0.0, 1800.0)]))
        events.append(ev(f"e{i}", start, start + length, pre, post))
    previous = {}
    for event in events:
        lane = draw(st.sampled_from([None, "l_9", *lanes]))
        if lane is not None:
            previous[event.key] = lane
    now = T0 + draw(st.integers(-4, 52)) * 900.0 + 1
    return lanes, events, previous, now


def overlaps(a: Event, b: Event) -> bool:
    return a.live_from < b.live_until and b.live_from < a.live_until


class PackPropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(scenarios())
    def test_invariants(self, scenario: tuple[list[str], list[Event], dict[str, str], float]) -> None:
        lanes, events, previous, now = scenario
        placed, unplaced = pack(lanes, events, previous, now)
        on = where(placed)
        # every event placed or unplaced, exactly once
        keys = [e.key for lane in placed.values() for e in lane] + [e.key for e in unplaced]
        self.assertEqual(sorted(keys), sorted(e.key for e in events))
        # no overlaps on a channel, lanes sorted by start
        for lane in placed.values():
            self.assertEqual(lane, sorted(lane, key=lambda e: e.live_from))
            for a, b in zip(lane, lane[1:], strict=False):
                self.assertLessEqual(a.live_until, b.live_from)
        # an unplaced event really fits nowhere
        for event in unplaced:
            for lane in placed.values():
                self.assertTrue(any(overlaps(event, other) for other in lane))
        for event in events:
            old = previous.get(event.key)
            if old is None or old not in lanes:
                continue
            rivals = [o for o in events if o is not event and previous.get(o.key) == old]
            # sticky: no rival for its old channel -> it keeps it
            if not any(overlaps(event, o) for o in rivals):
                self.assertEqual(on.get(event.key), old, event)
            # a live event never moves unless another live event claims the same channel
            if event.is_live(now) and not any(o.is_live(now) for o in rivals):
                self.assertEqual(on.get(event.key), old, event)

    @settings(max_examples=200, deadline=None)
    @given(scenarios(), st.randoms(use_true_random=False))
    def test_same_input_same_output_whatever_the_order(
            self, scenario: tuple[list[str], list[Event], dict[str, str], float],
            rnd: random.Random) -> None:
        lanes, events, previous, now = scenario
        shuffled = list(events)
        rnd.shuffle(shuffled)
        self.assertEqual(pack(lanes, events, previous, now), pack(lanes, shuffled, previous, now))

    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_stickiness_across_random_refreshes(self, data: st.DataObject) -> None:
        """Refreshes add, remove and move events that are not live; live ones never move."""
        lanes = LANES[: data.draw(st.integers(1, 4))]
        now = T0
        events: dict[str, Event] = {}
        previous: dict[str, str] = {}
        serial = 0
        for _ in range(data.draw(st.integers(1, 6))):
            for key in data.draw(st.lists(st.sampled_from(sorted(events)), unique=True)
                                 if events else st.just([])):
                event = events[key]
                if event.is_live(now):
                    continue
                if data.draw(st.booleans()):
                    del events[key]
                else:
                    shift = data.draw(st.integers(-8, 8)) * 900.0
                    moved = ev(key, event.start.timestamp() - T0 + shift,
                               event.stop.timestamp() - T0 + shift)
                    if not moved.is_live(now):
                        events[key] = moved
            for _ in range(data.draw(st.integers(0, 5))):
                start = now - T0 + data.draw(st.integers(-8, 40)) * 900.0
                events[f"n{serial}"] = ev(f"n{serial}", start,
                                          start + data.draw(st.integers(1, 16)) * 900.0)
                serial += 1
            placed, _ = pack(lanes, list(events.values()), previous, now)
            on = where(placed)
            for key, lane in previous.items():
                if key in events and events[key].is_live(now):
                    self.assertEqual(on.get(key), lane, f"live event {key} moved")
            previous = on
            now += data.draw(st.integers(0, 8)) * 900.0


class StateTests(SynchronousTestCase):
    def state(self) -> PackingState:
        return PackingState(records={"l:1:game": Record("l", "game", T0, T0 + HOUR, "l_2")},
                            first_seen={("main", "PPV 01: Fight"): T0 - 60},
                            logged_unplaced={"l:2:other"})

    def test_save_and_load_round_trip(self) -> None:
        path = os.path.join(self.mktemp())
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.state().save(path)
        self.assertEqual(PackingState.load(path), self.state())
        self.assertEqual(PackingState.load(path).assignments(), {"l:1:game": "l_2"})

    def test_save_replaces_atomically_and_leaves_no_temp_files(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "packing.json")
        PackingState.empty().save(path)
        self.state().save(path)
        self.assertEqual(os.listdir(directory), ["packing.json"])
        self.assertEqual(PackingState.load(path), self.state())

    def test_missing_file_is_an_empty_state_quietly(self) -> None:
        with capturedLogs() as logged:
            self.assertEqual(PackingState.load(self.mktemp()), PackingState.empty())
        self.assertEqual(logged, [])

    def test_corrupt_file_is_an_empty_state_with_one_warning(self) -> None:
        for content in ("{not json", json.dumps({"version": 1, "records": {"k": [1]}}), "[]",
                        json.dumps({"version": 99})):
            path = self.mktemp()
            with open(path, "w") as f:
                f.write(content)
            with capturedLogs() as logged:
                self.assertEqual(PackingState.load(path), PackingState.empty())
            self.assertEqual(len(logged), 1, content)
            self.assertIn(path, logged[0]["log_format"].format(**logged[0]))

    def test_state_is_immutable(self) -> None:
        state = self.state()
        with self.assertRaises(TypeError):
            state.records["x"] = Record("l", "x", 0, 0, "")  # type: ignore[index]
