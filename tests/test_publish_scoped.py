"""Tests for epgd.publish.scoped: an account's outputs are the whole ones cut to its lineups."""

from __future__ import annotations

import json

from lxml import etree
from twisted.trial.unittest import SynchronousTestCase

from epgd.publish.scoped import LineupViews, config_channels, only_lineups
from epgd.schedule.model import Schedule
from tests.accounthelpers import NOW, event, make_config, make_schedule, published, utc


class ScopedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.config = make_config()
        self.whole = published(self.config)
        self.views = LineupViews(self.config, lambda text: text)

    def test_only_lineups(self) -> None:
        schedule = make_schedule()
        schedule = Schedule(generated_at=schedule.generated_at, channels=schedule.channels,
                            unplaced=(event("x", "Nowhere", NOW, NOW + 60, lineup="nba"),))
        cut = only_lineups(schedule, ["nhl"])
        self.assertEqual([c.id for c in cut.channels], ["nhl_1", "nhl_2"])
        self.assertEqual(cut.unplaced, ())
        self.assertEqual(cut.generated_at, utc(NOW))

    def test_a_view_is_rendered_once_per_schedule(self) -> None:
        view = self.views.view(self.whole, frozenset({"nba"}))
        self.assertIs(self.views.view(self.whole, frozenset({"nba"})), view)
        self.assertEqual([c.get("id") for c in etree.fromstring(view.epg_xml).iter("channel")], ["nba_1"])
        self.assertEqual([c["id"] for c in json.loads(view.schedule_json(NOW))["channels"]], ["nba_1"])
        self.assertEqual(view.last_modified, self.whole.last_modified)
        self.assertNotEqual(view.etag, self.whole.etag)
        newer = published(self.config, NOW + 7200)
        self.assertIsNot(self.views.view(newer, frozenset({"nba"})), view)

    def test_config_channels_match_the_schedules(self) -> None:
        self.assertEqual([(c.id, c.name, c.number, c.lineup, c.group, c.logo) for c in config_channels(self.config)],
                         [(c.id, c.name, c.number, c.lineup, c.group, c.logo) for c in make_schedule().channels])
