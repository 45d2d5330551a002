"""Tests for epgd.catalog: the refresh loop, swapping schedules, /health data and `build`."""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from epgd.catalog import Catalog
from epgd.config import (
    Config,
    EventConfig,
    GuideConfig,
    LineupConfig,
    ProviderConfig,
    ServerConfig,
)
from epgd.redact import Redactor
from epgd.schedule.model import Schedule
from epgd.sources import SourceError
from epgd.sources.models import Guide, GuideChannel, Playlist, Programme, ProviderChannel, ProviderData

UTC = _dt.UTC
T0 = _dt.datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
USER, PASSWORD = "joe_user", "s3cretpw"
PLAYLIST_URL = f"http://provider.example/get.php?username={USER}&password={PASSWORD}&type=m3u_plus"
INTERVAL = 600.0


def provider_data(*titles: str, hours: float = 18) -> ProviderData:
    """NHL 07 carries ``titles`` back to back from T0 + ``hours``; a news channel too."""
    channels = (
        ProviderChannel("main", "NHL 07", f"http://provider.example/live/{USER}/{PASSWORD}/7.ts",
                        tvg_id="nhl07", group="NHL"),
        ProviderChannel("main", "News", f"http://provider.example/live/{USER}/{PASSWORD}/9.ts",
                        tvg_id="news", group="News"),
    )
    start = T0 + _dt.timedelta(hours=hours)
    programmes = tuple(
        Programme("nhl07", start + _dt.timedelta(hours=3 * i),
                  start + _dt.timedelta(hours=3 * i + 3), title)
        for i, title in enumerate(titles)
    )
    guide = Guide((GuideChannel("nhl07", ("NHL 07",)),), programmes)
    return ProviderData("main", Playlist(channels), guide)


def two_games(*games: tuple[str, float]) -> ProviderData:
    """Each game on its own provider channel, starting ``hours`` after T0, 3 hours long."""
    channels, guide_channels, programmes = [], [], []
    for i, (title, hours) in enumerate(games):
        channels.append(ProviderChannel("main", title, f"http://provider.example/{i}.ts",
                                        tvg_id=title, group="NHL"))
        guide_channels.append(GuideChannel(title, (title,)))
        start = T0 + _dt.timedelta(hours=hours)
        programmes.append(Programme(title, start, start + _dt.timedelta(hours=3), title))
    return ProviderData("main", Playlist(tuple(channels)),
                        Guide(tuple(guide_channels), tuple(programmes)))


class FakeFeed:
    """A ProviderFeed whose fetches the test answers by hand."""

    def __init__(self, reactor: Any, provider: ProviderConfig, **kwargs: Any) -> None:
        self.provider = provider
        self.kwargs = kwargs
        self.loaded = False
        self.last_refresh: _dt.datetime | None = None
        self.error: str | None = None
        self.channels = 0
        self.programmes = 0
        self.programmes_skipped = 0
        self.data: ProviderData | None = None
        self.cached: ProviderData | None = None
        self.pending: list[Deferred[ProviderData]] = []
        self.refreshes = 0
        self.closed = False
        self.clock = reactor

    def _take(self, data: ProviderData) -> None:
        self.data, self.loaded = data, True
        self.channels = len(data.playlist.channels) if data.playlist else 0
        self.programmes = len(data.guide.programmes) if data.guide else 0

    def load_cached(self) -> Deferred[ProviderData | None]:
        if self.cached is not None:
            self._take(self.cached)
        return succeed(self.cached)

    def refresh(self) -> Deferred[ProviderData]:
        self.refreshes += 1
        d: Deferred[ProviderData] = Deferred()
        self.pending.append(d)
        return d

    def answer(self, data: ProviderData) -> None:
        self._take(data)
        self.error = None
        self.last_refresh = _dt.datetime.fromtimestamp(self.clock.seconds(), UTC)
        self.pending.pop(0).callback(data)

    def fail(self, message: str) -> None:
        self.error = message
        self.pending.pop(0).errback(SourceError(message))

    def close(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)


class Feeds:
    def __init__(self, cached: ProviderData | None = None) -> None:
        self.made: dict[str, FakeFeed] = {}
        self.cached = cached

    def __call__(self, reactor: Any, provider: ProviderConfig, **kwargs: Any) -> FakeFeed:
        feed = FakeFeed(reactor, provider, **kwargs)
        feed.cached = self.cached
        self.made[provider.name] = feed
        return feed


def make_config(state_dir: str, **kwargs: Any) -> Config:
    return Config(
        server=ServerConfig(state_dir=state_dir, listen=("tcp:8181:interface=127.0.0.1",)),
        guide=GuideConfig(days=2),
        providers=(ProviderConfig(name="main", playlist=PLAYLIST_URL,
                                  refresh_interval=INTERVAL),),
        lineups=(LineupConfig(id="nhl_ppv", name="NHL PPV", channels=2, match_group="^NHL$"),),
        **kwargs,
    )


class CatalogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0.timestamp())
        self.state_dir = os.path.join(self.mktemp(), "state")
        self.redactor = Redactor.for_urls([PLAYLIST_URL])

    def start(self, cached: ProviderData | None = None, run: Any = None,
              **config: Any) -> tuple[Catalog, FakeFeed]:
        feeds = Feeds(cached)
        catalog = Catalog(make_config(self.state_dir, **config), self.clock, self.redactor,
                          feed_factory=feeds, run_in_thread=run)
        self.schedules: list[Schedule] = []
        catalog.on_schedule(self.schedules.append)
        catalog.startService()
        self.addCleanup(lambda: catalog.running and catalog.stopService())
        return catalog, feeds.made["main"]

    def titles(self, catalog: Catalog) -> list[str]:
        schedule = catalog.schedule()
        assert schedule is not None
        return [e.title for c in schedule.channels for e in c.events]

    def test_cached_data_served_at_once_then_fetched(self) -> None:
        """A restart with the provider down serves the last schedule before any fetch."""
        catalog, feed = self.start(cached=provider_data("Bruins vs Rangers"))
        self.assertEqual(self.titles(catalog), ["Bruins vs Rangers"])
        self.assertEqual(len(self.schedules), 1)
        published = catalog.published()
        assert published is not None
        self.assertIn(b"Bruins vs Rangers", published.epg_xml)
        self.assertIn(b"/stream/nhl_ppv_2.ts", published.playlist("http://h"))
        self.assertTrue(os.path.isdir(self.state_dir))
        self.assertEqual(feed.refreshes, 1, "the first fetch starts right after the cache")
        self.assertEqual(catalog.health()["status"], "ok")

    def test_temp_files_of_a_killed_run_are_removed_at_start(self) -> None:
        os.makedirs(self.state_dir)
        names = [".packing-abc123.tmp", ".hdhr-x.tmp", "assignments.json", "notes.tmp"]
        for name in names:
            with open(os.path.join(self.state_dir, name), "w") as f:
                f.write("{")
        self.start()
        self.assertEqual(sorted(os.listdir(self.state_dir)), ["assignments.json", "notes.tmp"])

    def test_starting_until_data_then_ok(self) -> None:
        catalog, feed = self.start()
        published = catalog.published()
        assert published is not None, "the channel list is there while the first fetch runs"
        self.assertIn(b"/stream/nhl_ppv_2.ts", published.playlist("http://h"))
        self.assertEqual(self.titles(catalog), [])
        self.assertEqual(catalog.health(), {"status": "starting", "providers": {"main": {
            "loaded": False, "last_refresh": None, "error": None, "channels": 0,
            "programmes": 0, "programmes_skipped": 0}}})
        self.clock.advance(5)
        feed.answer(provider_data("Game 1", "Game 2"))
        self.assertEqual(self.titles(catalog), ["Game 1", "Game 2"])
        self.assertEqual(catalog.health()["providers"]["main"], {
            "loaded": True, "last_refresh": "2026-11-24T01:00:05Z", "error": None,
            "channels": 2, "programmes": 2, "programmes_skipped": 0})
        self.assertEqual(catalog.health()["status"], "ok")
        feed.programmes_skipped, feed.error = 3, "guide is 3 malformed programmes skipped"
        health = catalog.health()
        self.assertEqual(health["status"], "degraded")
        self.assertEqual(health["providers"]["main"]["programmes_skipped"], 3)

    def test_starting_until_the_schedule_with_the_data_is_served(self) -> None:
        """A client that waits for "ok" must find the provider's events on the streams."""
        builds: list[tuple[Deferred[Any], Any, tuple[Any, ...]]] = []

        def held(f: Any, *args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            builds.append((d, f, args))
            return d

        def finish_builds() -> None:
            while builds:
                d, f, args = builds.pop(0)
                d.callback(f(*args))

        catalog, feed = self.start(run=held)
        finish_builds()
        feed.answer(provider_data("Game 1"))
        self.assertEqual(catalog.health()["status"], "starting", "built, not yet served")
        self.assertFalse(catalog.health()["providers"]["main"]["loaded"])
        finish_builds()
        self.assertEqual(self.titles(catalog), ["Game 1"])
        self.assertEqual(catalog.health()["status"], "ok")
        self.assertTrue(catalog.health()["providers"]["main"]["loaded"])

    def test_refresh_loop_swaps_schedule_and_survives_failures(self) -> None:
        catalog, feed = self.start()
        feed.answer(provider_data("Game 1"))
        first = catalog.published()
        self.clock.advance(INTERVAL)
        self.assertEqual(feed.refreshes, 2)
        feed.fail(f"cannot fetch {PLAYLIST_URL}: connection refused")
        self.assertIs(catalog.published(), first, "the last good schedule stays")
        health = catalog.health()
        self.assertEqual(health["status"], "degraded")
        self.assertIn("connection refused", health["providers"]["main"]["error"])
        self.assertTrue(health["providers"]["main"]["loaded"])
        self.clock.advance(INTERVAL)
        self.assertEqual(feed.refreshes, 3, "the loop keeps going after a failure")
        self.clock.advance(60)
        feed.answer(provider_data("Game 1", "Game 2"))
        second = catalog.published()
        assert first is not None and second is not None
        self.assertIsNot(second, first)
        self.assertGreater(second.schedule.generated_at, first.schedule.generated_at)
        self.assertEqual(self.titles(catalog), ["Game 1", "Game 2"])
        self.assertEqual(catalog.health()["status"], "ok")
        # The empty start-up schedule, then one per successful refresh.
        self.assertEqual([len(s.channels[0].events) for s in self.schedules], [0, 1, 2])

    def test_assignments_saved_and_sticky_across_restart(self) -> None:
        """A game keeps its lane when an earlier overlapping one appears, even after a restart."""
        catalog, feed = self.start()
        feed.answer(two_games(("Game B", 1),))
        self.assertTrue(os.path.exists(os.path.join(self.state_dir, "assignments.json")))
        self.assertEqual(self.lanes(catalog), {"Game B": "nhl_ppv_1"})
        self.successResultOf(catalog.stopService())
        again, _ = self.start(cached=two_games(("Game A", 0), ("Game B", 1)))
        self.assertEqual(self.lanes(again), {"Game A": "nhl_ppv_2", "Game B": "nhl_ppv_1"})

    def lanes(self, catalog: Catalog) -> dict[str, str]:
        schedule = catalog.schedule()
        assert schedule is not None
        return {e.title: c.id for c in schedule.channels for e in c.events}

    def test_builds_run_off_the_reactor_one_at_a_time(self) -> None:
        """A build over a huge guide takes seconds: it runs in a thread, never two at once."""
        jobs: list[tuple[Deferred[Any], Any, tuple[Any, ...]]] = []

        def later(f: Any, *args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            jobs.append((d, f, args))
            return d

        def finish() -> None:
            d, f, args = jobs.pop(0)
            d.callback(f(*args))

        catalog, feed = self.start(run=later)
        self.assertIsNotNone(catalog.published(), "the channel list is published at once")
        self.assertEqual(self.titles(catalog), [])
        self.assertEqual(self.schedules, [], "the bare channel list is no new schedule")
        finish()  # the start-up build, before any data
        feed.answer(provider_data("Game 1"))
        self.assertEqual(self.titles(catalog), [])
        self.assertEqual(len(jobs), 1)
        catalog.refresh()
        feed.answer(provider_data("Game 1", "Game 2"))
        catalog.refresh()
        feed.answer(provider_data("Game 1", "Game 2", "Game 3"))
        self.assertEqual(len(jobs), 1, "later builds wait for the running one")
        finish()
        self.assertEqual(self.titles(catalog), ["Game 1"])
        self.assertEqual(len(jobs), 1, "the waiting builds run as one, with the newest data")
        finish()
        self.assertEqual(self.titles(catalog), ["Game 1", "Game 2", "Game 3"])
        self.assertEqual(jobs, [])
        self.assertEqual(len(self.schedules), 3)
        # A build still running at stop does not call the (stopped) listeners.
        catalog.refresh()
        feed.answer(provider_data("Game 4"))
        self.successResultOf(catalog.stopService())
        finish()
        self.assertEqual(len(self.schedules), 3)
        self.assertEqual(jobs, [])

    def test_unchanged_guide_keeps_etag_and_last_modified(self) -> None:
        """A refresh that changes nothing must not make every guide reader download again."""
        catalog, feed = self.start()
        feed.answer(provider_data("Game 1"))
        first = catalog.published()
        self.clock.advance(INTERVAL)
        feed.answer(provider_data("Game 1"))
        second = catalog.published()
        assert first is not None and second is not None
        self.assertIsNot(second, first)
        self.assertEqual((second.etag, second.last_modified), (first.etag, first.last_modified))
        self.clock.advance(INTERVAL)
        feed.answer(provider_data("Game 1", "Game 2"))
        third = catalog.published()
        assert third is not None
        self.assertNotEqual(third.etag, first.etag)
        self.assertNotEqual(third.last_modified, first.last_modified)

    def test_manual_refresh_joins_fetch_in_flight(self) -> None:
        catalog, feed = self.start()
        done = catalog.refresh()
        self.assertEqual(feed.refreshes, 1, "no second fetch while one is running")
        self.assertNoResult(done)
        feed.answer(provider_data("G"))
        self.assertIsNone(self.successResultOf(done))
        again = catalog.refresh()
        self.assertEqual(feed.refreshes, 2)
        feed.fail("boom")
        self.assertIsNone(self.successResultOf(again), "a failed fetch is not an error here")

    def test_unexpected_feed_error_logged_once_and_shown(self) -> None:
        catalog, feed = self.start()
        with capturedLogs() as events:
            feed.pending.pop(0).errback(RuntimeError(f"bug near {PLAYLIST_URL}"))
        lines = [formatEvent(e) for e in events if e["log_level"] >= LogLevel.warn]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("RuntimeError: bug near", lines[0])
        self.assertNotIn(PASSWORD, lines[0])
        error = catalog.health()["providers"]["main"]["error"]
        self.assertTrue(error.startswith("RuntimeError: bug near http://provider.example/"))
        self.assertNotIn(PASSWORD, error)
        self.clock.advance(INTERVAL)
        self.assertEqual(feed.refreshes, 2)

    def test_manual_events_without_provider_data(self) -> None:
        manual = EventConfig(lineup="nhl_ppv", title="Manual Fight", start=T0 + _dt.timedelta(hours=1),
                             url="http://other.example/fight.ts")
        catalog, feed = self.start(events=(manual,))
        self.assertEqual(self.titles(catalog), ["Manual Fight"])
        self.assertEqual(catalog.health()["status"], "starting")

    def test_playlist_published_after_first_round_fails(self) -> None:
        """With no cache and the provider down, the channel list is still there."""
        catalog, feed = self.start()
        feed.fail("provider down")
        published = catalog.published()
        assert published is not None
        self.assertEqual(published.playlist("http://h").count(b"#EXTINF"), 2)
        self.assertEqual(catalog.health()["providers"]["main"]["error"], "provider down")

    def test_republish_moves_guide_window_without_new_schedule(self) -> None:
        catalog, feed = self.start()
        feed.answer(provider_data("Game"))
        first = catalog.published()
        assert first is not None
        self.clock.advance(3600)
        second = catalog.published()
        assert second is not None
        self.assertIsNot(second, first)
        self.assertIs(second.schedule, first.schedule)
        self.assertNotEqual(second.etag, first.etag)
        self.assertEqual(len(self.schedules), 2, "start-up and the fetch; no new one since")

    def test_stop_cancels_loops_and_closes_feeds(self) -> None:
        catalog, feed = self.start()
        self.successResultOf(catalog.stopService())
        self.assertTrue(feed.closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_feed_gets_settings_and_lineup_filter(self) -> None:
        catalog, feed = self.start()
        self.assertEqual(feed.kwargs["state_dir"], self.state_dir)
        self.assertEqual(feed.kwargs["inactivity"], 10.0)  # stream.connect_timeout
        self.assertIsNone(feed.kwargs["run_in_thread"])
        wanted = feed.kwargs["wanted_channel"]
        nhl, news = provider_data().playlist.channels  # type: ignore[union-attr]
        self.assertTrue(wanted(nhl))
        self.assertFalse(wanted(news))

    def test_credentials_never_in_outputs_health_or_logs(self) -> None:
        with capturedLogs() as events:
            catalog, feed = self.start()
            feed.answer(provider_data("Game", hours=0))
            self.clock.advance(INTERVAL)
            feed.fail(f"HTTP 500 from {PLAYLIST_URL} (user {USER}, password {PASSWORD})")
            catalog.stopService()
        published = catalog.published()
        assert published is not None
        texts = [published.playlist("http://h"), published.epg_xml,
                 published.schedule_json(self.clock.seconds()),
                 json.dumps(catalog.health()).encode()]
        texts += [formatEvent(e).encode() for e in events]
        texts += [e["log_failure"].getTraceback().encode() for e in events if "log_failure" in e]
        self.assertIn(b"/live/***/***/7.ts", texts[2])
        for text in texts:
            self.assertNotIn(USER.encode(), text)
            self.assertNotIn(PASSWORD.encode(), text)
