"""
Tests for epgd.schedule.model: what a stream asks the schedule — live, next, playing with
hold_after_end, and the next moment any of that may change — with padding.
"""

from __future__ import annotations

import datetime as dt

from twisted.trial.unittest import SynchronousTestCase

from epgd.schedule.model import Channel, Event, Schedule, Source

T0 = 1_800_000_000.0  # a round POSIX time


def event(key: str, start: float, stop: float, pre: float = 0.0, post: float = 0.0) -> Event:
    return Event(key=key, lineup="nhl", title=key,
                 start=dt.datetime.fromtimestamp(T0 + start, dt.UTC),
                 stop=dt.datetime.fromtimestamp(T0 + stop, dt.UTC),
                 sources=(Source("main", key, f"http://p/{key}.ts"),),
                 pre_padding=pre, post_padding=post)


def schedule(*events: Event) -> Schedule:
    channel = Channel(id="nhl_1", name="NHL 1", number=1, lineup="nhl", group="NHL",
                      events=events)
    return Schedule(generated_at=dt.datetime.fromtimestamp(T0, dt.UTC),
                    channels=(channel, Channel(id="nhl_2", name="NHL 2", number=2,
                                               lineup="nhl", group="NHL")))


def key(found: Event | None) -> str | None:
    return found.key if found is not None else None


class LiveNextTests(SynchronousTestCase):
    # a: 100-200 padded to 90-230; b: 230-300 (may start the second a's padding ends)
    s = schedule(event("a", 100, 200, pre=10, post=30), event("b", 240, 300, pre=10, post=0))

    def test_live_honours_padding_half_open(self) -> None:
        live = [(t, key(self.s.live("nhl_1", T0 + t))) for t in (89, 90, 199, 229, 230, 299, 300)]
        self.assertEqual(live, [(89, None), (90, "a"), (199, "a"), (229, "a"), (230, "b"),
                                (299, "b"), (300, None)])

    def test_next_is_the_first_event_going_live_after_t(self) -> None:
        self.assertEqual(key(self.s.next("nhl_1", T0)), "a")
        self.assertEqual(key(self.s.next("nhl_1", T0 + 90)), "b")
        self.assertIsNone(self.s.next("nhl_1", T0 + 230))

    def test_empty_and_unknown_channels(self) -> None:
        self.assertIsNone(self.s.live("nhl_2", T0 + 100))
        self.assertIsNone(self.s.next("nhl_2", T0))
        self.assertIsNone(self.s.live("nope", T0 + 100))
        self.assertIsNone(self.s.playing("nope", T0 + 100, 3600))
        self.assertIsNone(self.s.next_boundary("nope", T0))
        self.assertIsNone(self.s.next_boundary("nhl_2", T0, 3600))

    def test_events_given_out_of_order_are_sorted(self) -> None:
        s = schedule(event("late", 500, 600), event("early", 100, 200))
        self.assertEqual([e.key for e in s.channels[0].events], ["early", "late"])
        self.assertEqual(key(s.live("nhl_1", T0 + 150)), "early")

    def test_channel_lookup_and_all_events(self) -> None:
        self.assertEqual(self.s.channel("nhl_2").number, 2)  # type: ignore[union-attr]
        self.assertEqual([e.key for e in self.s.all_events()], ["a", "b"])


class PlayingTests(SynchronousTestCase):
    s = schedule(event("a", 100, 200), event("b", 1000, 1100))

    def test_ended_event_is_held_until_hold_after_end(self) -> None:
        self.assertEqual(key(self.s.playing("nhl_1", T0 + 150, 300)), "a")
        self.assertEqual(key(self.s.playing("nhl_1", T0 + 499, 300)), "a")
        self.assertIsNone(self.s.playing("nhl_1", T0 + 500, 300))
        self.assertIsNone(self.s.playing("nhl_1", T0 + 201, 0))

    def test_next_event_going_live_ends_the_hold(self) -> None:
        self.assertEqual(key(self.s.playing("nhl_1", T0 + 999, 3600)), "a")
        self.assertEqual(key(self.s.playing("nhl_1", T0 + 1000, 3600)), "b")

    def test_nothing_before_the_first_event(self) -> None:
        self.assertIsNone(self.s.playing("nhl_1", T0 + 50, 3600))


class NextBoundaryTests(SynchronousTestCase):
    s = schedule(event("a", 100, 200, pre=10, post=20), event("b", 1000, 1100))

    def test_boundaries_are_padded_starts_and_ends(self) -> None:
        self.assertEqual(self.s.next_boundary("nhl_1", T0), T0 + 90)
        self.assertEqual(self.s.next_boundary("nhl_1", T0 + 90), T0 + 220)
        self.assertEqual(self.s.next_boundary("nhl_1", T0 + 220), T0 + 1000)
        self.assertEqual(self.s.next_boundary("nhl_1", T0 + 1000), T0 + 1100)
        self.assertIsNone(self.s.next_boundary("nhl_1", T0 + 1100))

    def test_hold_running_out_is_a_boundary(self) -> None:
        self.assertEqual(self.s.next_boundary("nhl_1", T0 + 220, 300), T0 + 520)
        self.assertEqual(self.s.next_boundary("nhl_1", T0 + 1100, 300), T0 + 1400)
        self.assertIsNone(self.s.next_boundary("nhl_1", T0 + 1400, 300))

    def test_playing_only_changes_at_boundaries(self) -> None:
        """Between two consecutive boundaries, what is playing stays the same."""
        hold = 300.0
        t = T0
        seen = []
        while True:
            boundary = self.s.next_boundary("nhl_1", t, hold)
            if boundary is None:
                break
            now_playing = key(self.s.playing("nhl_1", t, hold))
            for probe in (t, (t + boundary) / 2, boundary - 0.001):
                self.assertEqual(key(self.s.playing("nhl_1", probe, hold)), now_playing)
            seen.append(now_playing)
            t = boundary
        self.assertEqual(seen, [None, "a", "a", None, "b", "b"])
