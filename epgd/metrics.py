"""
``GET /metrics`` (SPEC §12): Prometheus exposition of what the stream manager, its upstream
registry and the catalog already know, read from them when scraped.

Nothing here counts: the owners keep their figures (``StreamManager.dropped``,
``past_bytes``, ``UpstreamRegistry.failures``, ``Catalog.refreshes``...) and one custom
collector turns them into metric families on each scrape, so no figure is kept twice and
nothing drifts. Labels are channel ids, provider names, lineup ids (all validated
configuration names) and fixed reason words: never a URL, never free text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString
from twisted.internet.interfaces import IReactorTime

from epgd import __version__
from epgd.buckets import Buckets
from epgd.config import Config
from epgd.publish.schedule_json import DAY, channel_events
from epgd.stream.readgaps import ReadGaps
from epgd.stream.upstream import FAULTS

if TYPE_CHECKING:
    from epgd.catalog import Catalog
    from epgd.stream.manager import StreamManager

#: the reasons epgd cuts viewers off; shown at 0 before the first, so rate() works at once
DROP_REASONS = ("too_slow", "stopped", "idle", "codec_change", "error")
REFRESH_RESULTS = ("ok", "error")


class EpgdCollector:
    """One scrape: every family of SPEC §12, read from the objects that own the figures."""

    def __init__(self, config: Config, catalog: Catalog, streams: StreamManager,
                 clock: IReactorTime) -> None:
        self.config = config
        self.catalog = catalog
        self.streams = streams
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock.seconds()
        yield from self._streams()
        yield from self._providers()
        yield from self._refreshes()
        yield from self._schedule(now)
        info = GaugeMetricFamily("epgd_build_info", "The running epgd version (always 1).",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info

    def _streams(self) -> Iterable[Metric]:
        streams = self.streams
        status = streams.status()
        schedule = self.catalog.schedule()
        known = [c.id for c in schedule.channels] if schedule is not None else []
        seen = set(known)
        channels = known + sorted(
            c for c in set(status) | set(streams.past_bytes) if c not in seen)
        clients = GaugeMetricFamily(
            "epgd_stream_clients", "Viewers connected to the channel's stream now.",
            labels=["channel"])
        sent = CounterMetricFamily(
            "epgd_stream_bytes_sent", "Bytes written to the channel's viewers.",
            labels=["channel"])
        switches = CounterMetricFamily(
            "epgd_stream_switches", "Source switches inside the channel's viewers' connections.",
            labels=["channel"])
        hls = GaugeMetricFamily(
            "epgd_hls_sessions", "Client addresses that read the channel's HLS output lately (SPEC §16).",
            labels=["channel"])
        for channel in channels:
            live = status.get(channel, {})
            clients.add_metric([channel], live.get("clients", 0))
            hls.add_metric([channel], live.get("hls_sessions", 0))
            sent.add_metric([channel], streams.past_bytes[channel] + live.get("bytes_sent", 0))
            switches.add_metric([channel],
                                streams.past_switches[channel] + live.get("switches", 0))
        dropped = CounterMetricFamily(
            "epgd_clients_dropped",
            "Viewers epgd disconnected: too_slow (fell client_buffer behind), stopped "
            "(by an administrator), idle (their stream delivered nothing for idle_timeout), "
            "codec_change (closed at a switch to other codecs, stream.on_codec_change = close).",
            labels=["reason"])
        for reason in _with_known(DROP_REASONS, streams.dropped):
            dropped.add_metric([reason], streams.dropped[reason])
        requests = CounterMetricFamily(
            "epgd_hls_requests", "HLS output requests answered: playlist, segment, missing (a "
            "segment no longer in the window). Behind an HTTP cache, what reached epgd.",
            labels=["kind"])
        for kind in _with_known(("playlist", "segment", "missing"), streams.hls.requests):
            requests.add_metric([kind], streams.hls.requests[kind])
        return clients, sent, switches, dropped, hls, requests

    def _providers(self) -> Iterable[Metric]:
        connections = self.streams.connections()
        failures = self.streams.registry.failures
        used = GaugeMetricFamily(
            "epgd_provider_connections", "Provider stream connections open now.",
            labels=["provider"])
        limit = GaugeMetricFamily(
            "epgd_provider_max_streams", "The provider's max_streams (0: no limit).",
            labels=["provider"])
        channels = GaugeMetricFamily(
            "epgd_provider_channels", "Channels in the provider's last good playlist.",
            labels=["provider"])
        programmes = GaugeMetricFamily(
            "epgd_provider_programmes", "Programmes in the provider's last good guide.",
            labels=["provider"])
        last = GaugeMetricFamily(
            "epgd_provider_last_refresh_timestamp_seconds",
            "When the provider's data was last fetched successfully (POSIX time).",
            labels=["provider"])
        for provider in self.config.providers:
            name = provider.name
            used.add_metric([name], connections.get(name, 0))
            limit.add_metric([name], provider.max_streams)
            feed = self.catalog.feeds.get(name)
            if feed is None:
                continue
            channels.add_metric([name], feed.channels)
            programmes.add_metric([name], feed.programmes)
            if feed.last_refresh is not None:
                last.add_metric([name], feed.last_refresh.timestamp())
        faults = CounterMetricFamily(
            "epgd_upstream_failures",
            "Provider stream faults: connect_error, timeout (no answer, no first bytes, or "
            "silence), http_error (non-2xx), not_ts (HTML, a playlist, garbage), dropped "
            "(cut mid-stream), ended (closed by the provider mid-event).",
            labels=["provider", "reason"])
        names = [p.name for p in self.config.providers]
        keys = [(n, r) for n in names for r in FAULTS]
        for key in _with_known(keys, failures):
            faults.add_metric(list(key), failures[key])
        gaps = HistogramMetricFamily(
            "epgd_provider_read_gap_seconds",
            "Time between two reads of a provider's MPEG-TS streams while epgd wanted their "
            "bytes (not while every viewer was slow): epgd busy elsewhere, or the provider "
            "sending nothing. A live source drops what is not read in about a second.",
            labels=["provider"])
        read_gaps = self.streams.registry.read_gaps
        for name in _with_known(names, read_gaps):
            _add_histogram(gaps, [name], read_gaps.get(name) or ReadGaps())
        return used, limit, faults, channels, programmes, last, gaps

    def _refreshes(self) -> Iterable[Metric]:
        catalog = self.catalog
        total = CounterMetricFamily(
            "epgd_refresh", "Finished fetches of a provider's playlist and guide, by result.",
            labels=["provider", "result"])
        keys = [(name, result) for name in catalog.feeds for result in REFRESH_RESULTS]
        for key in _with_known(keys, catalog.refreshes):
            total.add_metric(list(key), catalog.refreshes[key])
        duration = HistogramMetricFamily(
            "epgd_refresh_duration_seconds",
            "How long fetching and parsing a provider's playlist and guide took.",
            labels=["provider"])
        for name, durations in catalog.refresh_durations.items():
            _add_histogram(duration, [name], durations)
        return total, duration

    def _schedule(self, now: float) -> Iterable[Metric]:
        """Events as /schedule.json shows them: not over yet, starting within guide.days."""
        schedule = self.catalog.schedule()
        horizon = now + self.config.guide.days * DAY
        hold = self.config.stream.hold_after_end
        placed = dict.fromkeys((lineup.id for lineup in self.config.lineups), 0)
        unplaced = dict(placed)
        if schedule is not None:
            for channel in schedule.channels:
                count = len(channel_events(channel, now, horizon, hold))
                placed[channel.lineup] = placed.get(channel.lineup, 0) + count
            for event in schedule.unplaced:
                if event.live_until > now and event.start.timestamp() <= horizon:
                    unplaced[event.lineup] = unplaced.get(event.lineup, 0) + 1
        events = GaugeMetricFamily(
            "epgd_schedule_events", "Events on the lineup's channels, from now to guide.days.",
            labels=["lineup"])
        left = GaugeMetricFamily(
            "epgd_schedule_unplaced",
            "Events of the lineup that fit on none of its channels (all were taken).",
            labels=["lineup"])
        for lineup, count in placed.items():
            events.add_metric([lineup], count)
        for lineup, count in unplaced.items():
            left.add_metric([lineup], count)
        return events, left


def _add_histogram(family: HistogramMetricFamily, labels: list[str], buckets: Buckets) -> None:
    cumulative, counts = 0, []
    for bound, count in zip((*buckets.bounds, float("inf")), buckets.counts, strict=True):
        cumulative += count
        counts.append((floatToGoString(bound), cumulative))
    family.add_metric(labels, counts, sum_value=buckets.total)


def _with_known(known: Iterable[Any], counted: Iterable[Any]) -> list[Any]:
    """The known label sets (exported at 0 before they happen), then any others counted."""
    keys = list(known)
    seen = set(keys)
    return keys + sorted(k for k in counted if k not in seen)


class Metrics:
    """The registry ``GET /metrics`` renders: epgd's collector and the process's own figures."""

    def __init__(self, config: Config, catalog: Catalog, streams: StreamManager,
                 clock: IReactorTime) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EpgdCollector(config, catalog, streams, clock))
        ProcessCollector(registry=self.registry)  # CPU seconds, memory, open files (Linux)

    def render(self, accept: str) -> tuple[bytes, str]:
        """The exposition the scraper asked for (text 0.0.4 by default) and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
