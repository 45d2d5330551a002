"""
GET /metrics (epgd.metrics, SPEC §12): the exposition parsed back with prometheus_client's own
parser and checked against what really happened: viewers, bytes they received, provider
connections the fake provider counted, faults by reason, refreshes after POST /refresh.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections import Counter
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.catalog import Catalog, Durations
from epgd.config import Config, LineupConfig, ProviderConfig, ServerConfig, StreamConfig
from epgd.metrics import Metrics
from epgd.net import timers
from epgd.redact import Redactor
from epgd.schedule.model import Channel, Event, Schedule, Source
from epgd.stream.manager import StreamManager
from tests.fakeprovider import PASSWORD, USER
from tests.stackhelpers import LINEUP, Stack, stack_config, write_provider_files
from tests.streamfakes import FakeHTTP, FakeRequest, finish_when_done
from tests.streamhelpers import E2ETestCase
from tests.test_catalog import Feeds, provider_data
from tests.tsutil import stream

BASE = "http://provider.test/live/alice/hunter22/"
T0 = 1_800_000_000.0

#: SPEC §12: every family, its type and its labels
FAMILIES = {
    "epgd_stream_clients": ("gauge", {"channel"}),
    "epgd_stream_bytes_sent": ("counter", {"channel"}),
    "epgd_stream_switches": ("counter", {"channel"}),
    "epgd_provider_connections": ("gauge", {"provider"}),
    "epgd_provider_max_streams": ("gauge", {"provider"}),
    "epgd_upstream_failures": ("counter", {"provider", "reason"}),
    "epgd_clients_dropped": ("counter", {"reason"}),
    "epgd_refresh": ("counter", {"provider", "result"}),
    "epgd_refresh_duration_seconds": ("histogram", {"provider"}),
    "epgd_schedule_events": ("gauge", {"lineup"}),
    "epgd_schedule_unplaced": ("gauge", {"lineup"}),
    "epgd_build_info": ("gauge", {"version"}),
    # beyond SPEC §12: HLS output (§16)
    "epgd_hls_sessions": ("gauge", {"channel"}),
    "epgd_hls_requests": ("counter", {"kind"}),
    # beyond SPEC §12: how long a provider went unread (a live source drops what waits)
    "epgd_provider_read_gap_seconds": ("histogram", {"provider"}),
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, dict[str, Any]]:
    """Every sample by (name, labels), and every family by name, as Prometheus reads them."""
    samples: Samples = {}
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    if key not in samples:
        raise AssertionError(f"no sample {name}{labels}; have: "
                             f"{sorted(k for k in samples if k[0] == name)}")
    return samples[key]


def utc(t: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(t, _dt.UTC)


def event(title: str, start: float, stop: float, *names: str) -> Event:
    sources = tuple(Source("main", n, BASE + n) for n in names)
    return Event(title.lower(), "nhl", title, utc(T0 + start), utc(T0 + stop), sources)


class FakeCatalog:
    """What the collector reads of a Catalog, for the unit tests."""

    def __init__(self, schedule: Schedule) -> None:
        self._schedule = schedule
        self.feeds: dict[str, Any] = {}
        self.refreshes: Counter[tuple[str, str]] = Counter()
        self.refresh_durations = {"main": Durations()}

    def schedule(self) -> Schedule:
        return self._schedule


# -- the collector over a stream manager driven by hand -------------------------------------

class CollectorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)  # exact retry delays
        self.clock = Clock()
        self.clock.advance(T0)
        self.http = FakeHTTP()
        channel = Channel(id="nhl_1", name="NHL 1", number=1, lineup="nhl", group="NHL", events=(
            event("Bruins vs Rangers", 0, 100, "1.ts"), event("Kings vs Ducks", 100, 200, "2.ts")))
        self.schedule = Schedule(utc(T0), (channel,), unplaced=(
            event("Leafs vs Habs", 50, 150, "3.ts"),))
        self.config = Config(
            server=ServerConfig(),
            stream=StreamConfig(check_interval=5, connect_timeout=2, hold_after_end=0, output="passthrough",
                                client_buffer=188 * 200),
            providers=(ProviderConfig("main", BASE + "get.php", max_streams=3),),
            lineups=(LineupConfig(id="nhl", channels=1),),
        )
        self.manager = StreamManager(self.config, self.clock, lambda: self.schedule,
                                     Redactor.for_urls([BASE]), http_factory=lambda p: self.http)
        self.manager.startService()
        self.addCleanup(self.stop)
        self.catalog = FakeCatalog(self.schedule)
        self.metrics = Metrics(self.config, self.catalog, self.manager, self.clock)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.manager.running:
            self.successResultOf(self.manager.stopService())

    def scrape(self) -> Samples:
        body, content_type = self.metrics.render("")
        self.assertEqual(content_type, "text/plain; version=0.0.4; charset=utf-8")
        samples, _ = parse(body.decode("utf-8"))
        return samples

    def watch(self) -> FakeRequest:
        request = FakeRequest()
        result = self.manager.serve(request, "nhl_1")
        finish_when_done(request, result)
        return request

    def test_every_spec_family_with_its_type_and_labels(self) -> None:
        body, _ = self.metrics.render("")
        samples, families = parse(body.decode("utf-8"))
        for name, (kind, labels) in FAMILIES.items():
            self.assertIn(name, families)
            self.assertEqual(families[name].type, kind, name)
            for sample in families[name].samples:
                self.assertEqual(set(sample.labels) - {"le"}, labels, sample)
        # at 0 before anything happened, so rate() and alerts work from the first scrape
        self.assertEqual(value(samples, "epgd_stream_clients", channel="nhl_1"), 0)
        self.assertEqual(value(samples, "epgd_upstream_failures_total", provider="main",
                               reason="not_ts"), 0)
        self.assertEqual(value(samples, "epgd_clients_dropped_total", reason="too_slow"), 0)
        self.assertEqual(value(samples, "epgd_hls_requests_total", kind="segment"), 0)
        self.assertEqual(value(samples, "epgd_hls_sessions", channel="nhl_1"), 0)
        self.assertEqual(value(samples, "epgd_provider_max_streams", provider="main"), 3)
        self.assertEqual(value(samples, "epgd_schedule_events", lineup="nhl"), 2)
        self.assertEqual(value(samples, "epgd_schedule_unplaced", lineup="nhl"), 1)
        from epgd import __version__
        self.assertEqual(value(samples, "epgd_build_info", version=__version__), 1)

    def test_hls_requests_and_sessions(self) -> None:
        self.manager.serve_hls(FakeRequest(), "nhl_1")
        self.manager.serve_hls_segment(FakeRequest(), "nhl_1", "1.ts")
        samples = self.scrape()
        self.assertEqual(value(samples, "epgd_hls_requests_total", kind="playlist"), 1)
        self.assertEqual(value(samples, "epgd_hls_requests_total", kind="missing"), 1)
        self.assertEqual(value(samples, "epgd_hls_sessions", channel="nhl_1"), 1)

    def test_openmetrics_when_the_scraper_asks_for_it(self) -> None:
        body, content_type = self.metrics.render("application/openmetrics-text; version=1.0.0")
        self.assertTrue(content_type.startswith("application/openmetrics-text"), content_type)
        self.assertTrue(body.endswith(b"# EOF\n"))

    def test_bytes_and_switches_stay_counted_after_the_stream_stops(self) -> None:
        first = self.watch()
        self.http.answer(BASE + "1.ts").send(stream(100) + b"G")
        self.clock.advance(0.2)
        samples = self.scrape()
        self.assertEqual(value(samples, "epgd_stream_clients", channel="nhl_1"), 1)
        self.assertEqual(value(samples, "epgd_stream_bytes_sent_total", channel="nhl_1"),
                         len(first.body))
        self.assertEqual(value(samples, "epgd_provider_connections", provider="main"), 1)
        # the boundary: Kings vs Ducks on 2.ts, switched inside the connection
        self.clock.advance(100 - 0.2)
        self.http.answer(BASE + "2.ts").send(stream(100) + b"G")
        self.clock.advance(0.2)
        samples = self.scrape()
        self.assertEqual(value(samples, "epgd_stream_switches_total", channel="nhl_1"), 1)
        sent = len(first.body)
        self.assertEqual(value(samples, "epgd_stream_bytes_sent_total", channel="nhl_1"), sent)
        # stopped by an administrator: the viewer is counted as dropped, the totals stay
        self.assertTrue(self.manager.stop("nhl_1"))
        samples = self.scrape()
        self.assertEqual(value(samples, "epgd_clients_dropped_total", reason="stopped"), 1)
        self.assertEqual(value(samples, "epgd_stream_clients", channel="nhl_1"), 0)
        self.assertEqual(value(samples, "epgd_stream_bytes_sent_total", channel="nhl_1"), sent)
        self.assertEqual(value(samples, "epgd_stream_switches_total", channel="nhl_1"), 1)
        self.assertEqual(value(samples, "epgd_provider_connections", provider="main"), 0)
        # a new stream of the channel counts on from there
        second = self.watch()
        self.http.answer(BASE + "2.ts").send(stream(50) + b"G")
        self.clock.advance(0.2)
        samples = self.scrape()
        self.assertEqual(value(samples, "epgd_stream_bytes_sent_total", channel="nhl_1"),
                         sent + len(second.body))

    def test_a_slow_viewer_is_counted_as_dropped_too_slow(self) -> None:
        request = self.watch()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        self.clock.advance(0.2)
        request.producer.pauseProducing()  # its socket is full and stays full
        for _ in range(4):
            response.send(stream(100))
            self.clock.advance(0.2)
        self.assertTrue(request.aborted)
        samples = self.scrape()
        self.assertEqual(value(samples, "epgd_clients_dropped_total", reason="too_slow"), 1)
        self.assertEqual(value(samples, "epgd_stream_clients", channel="nhl_1"), 0)

    def test_gaps_between_provider_reads_leave_out_backpressure(self) -> None:
        request = self.watch()
        response = self.http.answer(BASE + "1.ts")
        response.send(stream(20) + b"G")
        for gap in (0.015, 0.3, 0.015):
            self.clock.advance(gap)
            response.send(stream(20))
        # every viewer slow: epgd stops reading on purpose; that long wait is no gap
        request.producer.pauseProducing()
        self.assertTrue(response.transport.paused)
        self.clock.advance(5)
        request.producer.resumeProducing()
        response.send(stream(20))
        self.clock.advance(0.04)
        response.send(stream(20))
        samples = self.scrape()
        bucket = lambda le: value(samples, "epgd_provider_read_gap_seconds_bucket",  # noqa: E731
                                  provider="main", le=le)
        self.assertEqual([bucket("0.02"), bucket("0.05"), bucket("0.25"), bucket("0.5"),
                          bucket("+Inf")], [2, 3, 3, 4, 4])
        self.assertAlmostEqual(
            value(samples, "epgd_provider_read_gap_seconds_sum", provider="main"), 0.37, places=4)

    def test_provider_faults_are_counted_by_a_fixed_word(self) -> None:
        self.watch()
        url = BASE + "1.ts"
        self.http.answer(url, code=404)  # http_error; retried in 0.5 s
        self.clock.advance(0.5)
        self.http.answer(url).send(b"<!DOCTYPE html><html><body>expired</body></html>" * 20)
        self.clock.advance(1.0)  # not_ts; retried in 1 s
        response = self.http.answer(url)
        response.send(stream(50))
        response.drop()  # dropped mid-stream: reconnected in 0.5 s
        self.clock.advance(0.5)
        response = self.http.answer(url)
        response.send(stream(50))
        response.end()  # ended by the provider: reconnected in 1 s
        self.clock.advance(1.0)
        self.assertTrue(self.http.waiting(url))
        self.clock.advance(2.0)  # no answer within connect_timeout
        samples = self.scrape()
        counts = {reason: value(samples, "epgd_upstream_failures_total", provider="main",
                                reason=reason)
                  for reason in ("http_error", "not_ts", "dropped", "ended", "timeout",
                                 "connect_error")}
        self.assertEqual(counts, {"http_error": 1, "not_ts": 1, "dropped": 1, "ended": 1,
                                  "timeout": 1, "connect_error": 0})


class RefreshFigureTests(SynchronousTestCase):
    def test_refresh_results_and_durations(self) -> None:
        clock = Clock()
        clock.advance(T0)
        feeds = Feeds()
        config = Config(
            server=ServerConfig(state_dir=os.path.join(self.mktemp(), "state")),
            providers=(ProviderConfig("main", BASE + "get.php", refresh_interval=3600),),
            lineups=(LineupConfig(id="nhl", channels=1),),
        )
        catalog = Catalog(config, clock, Redactor.for_urls([BASE]), feed_factory=feeds)
        catalog.startService()
        self.addCleanup(catalog.stopService)
        manager = StreamManager(config, clock, catalog.schedule, Redactor.for_urls([BASE]))
        metrics = Metrics(config, catalog, manager, clock)
        feed = feeds.made["main"]
        clock.advance(3)  # the first fetch takes 3 s
        feed.answer(provider_data("Bruins vs Rangers"))
        catalog.refresh()
        clock.advance(700)  # a manual refresh that fails after 700 s
        feed.fail("playlist: HTTP 500")
        samples, _ = parse(metrics.render("")[0].decode())
        self.assertEqual(value(samples, "epgd_refresh_total", provider="main", result="ok"), 1)
        self.assertEqual(value(samples, "epgd_refresh_total", provider="main", result="error"), 1)
        bucket = lambda le: value(samples, "epgd_refresh_duration_seconds_bucket",  # noqa: E731
                                  provider="main", le=le)
        self.assertEqual([bucket("2.5"), bucket("5.0"), bucket("600.0"), bucket("1800.0"),
                          bucket("+Inf")], [0, 1, 1, 2, 2])
        self.assertEqual(value(samples, "epgd_refresh_duration_seconds_count", provider="main"), 2)
        self.assertEqual(value(samples, "epgd_refresh_duration_seconds_sum", provider="main"), 703)


# -- the real stack: a Catalog on files, streams from the fake provider, real sockets ----------

class MetricsEndToEndTests(E2ETestCase):
    timeout = 60

    async def stack(self, admin_token: str = "", **settings: Any) -> Stack:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.playlist, guide = write_provider_files(directory, self.provider, self.now())
        config = stack_config(directory, self.playlist, guide, admin_token=admin_token, **settings)
        running = Stack(self.reactor, config, self.provider)
        self.addCleanup(running.stop)
        await running.ready()
        return running

    async def scrape(self, stack: Stack, *headers: str) -> Samples:
        response = await stack.fetch("/metrics", headers=headers)
        self.assertEqual(response.status, 200, response.text())
        self.assertEqual(response.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        text = response.text()
        for secret in ("://", "127.0.0.1", USER, PASSWORD, "***"):
            self.assertNotIn(secret, text)
        samples, _ = parse(text)
        return samples

    async def test_viewers_bytes_and_connections_follow_real_activity(self) -> None:
        self.provider.stream("one", "a", rate=400_000)
        self.provider.stream("two", "b", rate=400_000)
        stack = await self.stack(max_streams=2)
        first = await stack.open("/stream/test_1.ts")
        second = await stack.open("/stream/test_1.ts")
        await first.wait_bytes(60_000, 10)
        await second.wait_bytes(60_000, 10)
        received = first.received + second.received
        samples = await self.scrape(stack)
        self.assertEqual(value(samples, "epgd_stream_clients", channel="test_1"), 2)
        self.assertEqual(value(samples, "epgd_stream_clients", channel="test_2"), 0)
        sent = value(samples, "epgd_stream_bytes_sent_total", channel="test_1")
        self.assertGreaterEqual(sent, received)  # written before they were read
        # one provider connection for both viewers, as the provider itself counts
        self.assertEqual(self.provider.active_total, 1)
        self.assertEqual(value(samples, "epgd_provider_connections", provider="main"), 1)
        self.assertEqual(value(samples, "epgd_provider_max_streams", provider="main"), 2)

        await first.wait_bytes(int(sent) + 100_000, 10)
        third = await stack.open("/stream/test_2.ts")
        await third.wait_bytes(10_000, 10)
        samples = await self.scrape(stack)
        later = value(samples, "epgd_stream_bytes_sent_total", channel="test_1")
        self.assertGreater(later, sent)
        self.assertGreaterEqual(later, first.received + second.received)
        self.assertEqual(self.provider.active_total, 2)
        self.assertEqual(value(samples, "epgd_provider_connections", provider="main"), 2)
        self.assertEqual(value(samples, "epgd_stream_clients", channel="test_2"), 1)

        await second.close()
        stopped = await stack.fetch("/streams/stop/test_1", method="POST")
        self.assertEqual(stopped.status, 200)
        await first.wait_closed(5)
        await self.wait_until(lambda: self.provider.active_total == 1, 5, "test_1's connection to close")
        samples = await self.scrape(stack)
        self.assertEqual(value(samples, "epgd_stream_clients", channel="test_1"), 0)
        self.assertEqual(value(samples, "epgd_clients_dropped_total", reason="stopped"), 1)
        self.assertEqual(value(samples, "epgd_provider_connections", provider="main"), 1)
        self.assertGreaterEqual(value(samples, "epgd_stream_bytes_sent_total", channel="test_1"),
                                first.received + second.received)

    async def test_refresh_counters_move_after_post_refresh(self) -> None:
        stack = await self.stack()
        samples = await self.scrape(stack)
        self.assertEqual(value(samples, "epgd_refresh_total", provider="main", result="ok"), 1)
        self.assertEqual(value(samples, "epgd_refresh_duration_seconds_count", provider="main"), 1)
        schedule = await stack.json("/schedule.json")
        shown = sum(len(c["events"]) for c in schedule["channels"])
        self.assertEqual(value(samples, "epgd_schedule_events", lineup=LINEUP), shown)
        self.assertEqual(shown, 3)
        self.assertEqual(value(samples, "epgd_schedule_unplaced", lineup=LINEUP), 0)

        answer = await stack.fetch("/refresh", method="POST")
        self.assertEqual(answer.status, 202)
        await self.wait_for_sample(stack, "epgd_refresh_total", 2, provider="main", result="ok")
        samples = await self.scrape(stack)
        self.assertEqual(value(samples, "epgd_refresh_duration_seconds_count", provider="main"), 2)
        self.assertEqual(value(samples, "epgd_refresh_total", provider="main", result="error"), 0)

        os.remove(self.playlist)  # the provider's playlist is gone: the next fetch fails
        await stack.fetch("/refresh", method="POST")
        await self.wait_for_sample(stack, "epgd_refresh_total", 1, provider="main", result="error")
        health = await stack.json("/health")
        self.assertEqual(health["status"], "degraded")
        samples = await self.scrape(stack)
        self.assertEqual(value(samples, "epgd_refresh_duration_seconds_count", provider="main"), 3)
        self.assertEqual(value(samples, "epgd_schedule_events", lineup=LINEUP), shown)  # last good data

    async def wait_for_sample(self, stack: Stack, name: str, wanted: float, **labels: str) -> None:
        for _ in range(200):
            if value(await self.scrape(stack), name, **labels) >= wanted:
                return
            await self.sleep(0.05)
        self.fail(f"{name}{labels} never reached {wanted}")

    async def test_faults_of_real_sources_by_reason(self) -> None:
        self.provider.html("one")
        self.provider.error("two", 404)
        stack = await self.stack()
        viewers = [await stack.open("/stream/test_1.ts"), await stack.open("/stream/test_2.ts")]
        for _ in range(200):
            samples = await self.scrape(stack)
            if (value(samples, "epgd_upstream_failures_total", provider="main", reason="not_ts")
                    and value(samples, "epgd_upstream_failures_total", provider="main",
                              reason="http_error")):
                break
            await self.sleep(0.05)
        else:
            self.fail("the HTML page and the 404 were not both counted")
        self.assertEqual(value(samples, "epgd_upstream_failures_total", provider="main",
                               reason="timeout"), 0)
        for viewer in viewers:
            self.assertFalse(viewer.is_closed)  # they wait with keepalive meanwhile

    async def test_admin_token_guards_metrics(self) -> None:
        stack = await self.stack(admin_token="s3cr3t-token")
        refused = await stack.fetch("/metrics")
        self.assertEqual(refused.status, 401)
        self.assertEqual(refused.text(), "admin token required\n")
        wrong = await stack.fetch("/metrics", headers=("Authorization: Bearer nope",))
        self.assertEqual(wrong.status, 401)
        samples = await self.scrape(stack, "Authorization: Bearer s3cr3t-token")
        self.assertEqual(value(samples, "epgd_refresh_total", provider="main", result="ok"), 1)
        by_query = await stack.fetch("/metrics?token=s3cr3t-token")
        self.assertEqual(by_query.status, 200)
        self.assertNotIn("s3cr3t-token", by_query.text())
