"""What a channel decides before it tells its machine anything (epgd.stream.channel.policy)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, StreamConfig
from epgd.redact import Redactor
from epgd.schedule.model import Source
from epgd.stream.channel.policy import (
    STALL_SECONDS,
    breaks_before_make,
    keeps_playing,
    next_source,
    slate_due,
)
from epgd.stream.registry import UpstreamRegistry
from tests.streamfakes import BASE, FakeHTTP, event


class BreakBeforeMakeTests(SynchronousTestCase):
    def registry(self, limit: int) -> UpstreamRegistry:
        config = Config(stream=StreamConfig(), providers=(ProviderConfig("main", BASE, max_streams=limit),
                                                          ProviderConfig("other", BASE, max_streams=1)))
        http = FakeHTTP()
        return UpstreamRegistry(config, Clock(), Redactor(), http_factory=lambda provider: http)

    def test_a_one_connection_plan_closes_the_old_first(self) -> None:
        registry = self.registry(limit=1)
        old = registry.acquire(Source("main", "1", BASE + "1.ts"))
        self.assertTrue(breaks_before_make(registry, old, Source("main", "2", BASE + "2.ts")))

    def test_room_left_means_make_before_break(self) -> None:
        registry = self.registry(limit=2)
        old = registry.acquire(Source("main", "1", BASE + "1.ts"))
        self.assertFalse(breaks_before_make(registry, old, Source("main", "2", BASE + "2.ts")))

    def test_never_closes_what_another_channel_shares_or_another_provider_holds(self) -> None:
        registry = self.registry(limit=1)
        shared = registry.acquire(Source("main", "1", BASE + "1.ts"))
        registry.acquire(Source("main", "1", BASE + "1.ts"))  # a second channel plays it too
        self.assertFalse(breaks_before_make(registry, shared, Source("main", "2", BASE + "2.ts")))
        other = registry.acquire(Source("other", "9", BASE + "9.ts"))
        self.assertFalse(breaks_before_make(registry, other, Source("main", "2", BASE + "2.ts")))

    def test_an_open_source_needs_no_slot(self) -> None:
        registry = self.registry(limit=1)
        old = registry.acquire(Source("main", "1", BASE + "1.ts"))
        self.assertFalse(breaks_before_make(registry, old, Source("main", "1", BASE + "1.ts")))
        self.assertFalse(breaks_before_make(registry, None, Source("main", "2", BASE + "2.ts")))


class ScheduleTests(SynchronousTestCase):
    def test_the_same_event_with_its_source_alive_keeps_playing(self) -> None:
        game = event("game", 0, 100, "1.ts", "1b.ts")
        self.assertTrue(keeps_playing(game, game, BASE + "1b.ts", alive=True))
        self.assertFalse(keeps_playing(game, game, BASE + "1b.ts", alive=False))
        self.assertFalse(keeps_playing(game, game, BASE + "gone.ts", alive=True))
        self.assertFalse(keeps_playing(game, event("next", 0, 100, "1.ts"), BASE + "1.ts", alive=True))
        self.assertFalse(keeps_playing(game, None, None, alive=False))

    def test_failover_walks_the_sources_in_order(self) -> None:
        game = event("game", 0, 100, "a.ts", "b.ts", "c.ts")
        self.assertEqual([next_source(game, i) for i in range(3)], [1, 2, None])


class SlateTests(SynchronousTestCase):
    """When viewers get the slate (SPEC §14)."""

    def test_a_refused_source_brings_it_at_once(self) -> None:
        self.assertTrue(slate_due(100.0, None, 100.0, 10.0, refused=True))

    def test_the_first_picture_is_waited_for_connect_timeout(self) -> None:
        self.assertFalse(slate_due(109.9, None, 100.0, 10.0, refused=False))
        self.assertTrue(slate_due(110.0, None, 100.0, 10.0, refused=False))

    def test_after_media_a_3_s_gap_brings_it(self) -> None:
        self.assertEqual(STALL_SECONDS, 3.0)
        self.assertFalse(slate_due(202.9, 200.0, 100.0, 10.0, refused=False))
        self.assertTrue(slate_due(203.0, 200.0, 100.0, 10.0, refused=False))
        self.assertTrue(slate_due(100.0 + 0.25 * 13, 100.25, 100.0, 10.0, refused=False))  # float steps
