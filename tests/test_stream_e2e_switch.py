"""
End to end: switching at an event boundary inside one client connection, provider connection
limits, and fail-over to an event's next source (SPEC §7).
"""

from __future__ import annotations

import time

from tests.streamhelpers import (
    A_PIDS,
    B_PIDS,
    NULL_PID,
    PAT_PID,
    E2ETestCase,
    Epgd,
    HTTPReader,
    event,
    pids,
)


def switch_point(client: HTTPReader) -> int:
    """Index (in packets) of the first packet of clip b; fails if a's packets follow it."""
    seen = pids(client.body)
    first_b = next(i for i, pid in enumerate(seen) if pid in B_PIDS)
    late_a = [i for i, pid in enumerate(seen[first_b:]) if pid in A_PIDS]
    if late_a:
        raise AssertionError(f"clip a's packets after the switch at packet {first_b}: {late_a[:5]}")
    return first_b


def has_b(client: HTTPReader) -> bool:
    seen = pids(client.body[: len(client.body) - len(client.body) % 188])
    return any(pid in B_PIDS for pid in seen)


class SwitchTests(E2ETestCase):
    """The schedule moves the channel from clip a to clip b two seconds from now."""

    def two_events(self, first: float = 2.0) -> tuple[dict, float]:
        url_a = self.provider.stream("a", "a", rate=200_000)
        url_b = self.provider.stream("b", "b", rate=200_000)
        now = self.now()
        boundary = now + first
        return {"test_1": [event("Game A", now - 60, boundary, url_a),
                           event("Game B", boundary, now + 600, url_b)]}, boundary

    async def assert_clean_switch(self, client: HTTPReader, boundary: float) -> None:
        await client.wait_for(lambda: has_b(client), 8, "clip b's packets after the boundary")
        lateness = self.now() - boundary
        await client.wait_bytes(client.received + 50_000)
        self.assertFalse(client.is_closed, "the client connection closed at the switch")
        first_b = switch_point(client)
        seen = pids(client.body)
        last_a = max(i for i, pid in enumerate(seen[:first_b]) if pid in A_PIDS)
        after_cut = [pid for pid in seen[last_a + 1:] if pid != NULL_PID]
        self.assertEqual(after_cut[0], PAT_PID, "the new source does not start at a PAT")
        self.assertLess(lateness, 1.5, "the switch came late after the event boundary")

    async def test_switch_at_the_boundary_inside_one_connection(self) -> None:
        channels, boundary = self.two_events()
        epgd = self.epgd(channels, check_interval=30)  # the boundary timer alone must do it
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(50_000)
        self.assertFalse(has_b(client))
        await self.assert_clean_switch(client, boundary)
        self.assert_logged("[PROXY] test_1 switching from a.ts to b.ts")
        status = (await epgd.status())["test_1"]
        self.assertEqual(status["switches"], 1)
        self.assertEqual(status["event"], "Game B")
        self.assertEqual(status["clients"], 1)
        await self.wait_until(lambda: self.provider.active["a"] == 0, 3,
                              "the old provider connection to close")
        self.assertEqual(self.provider.active["b"], 1)

    async def test_switch_with_max_streams_1_is_break_before_make(self) -> None:
        channels, boundary = self.two_events()
        epgd = self.epgd(channels, max_streams=1)
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(50_000)
        await self.assert_clean_switch(client, boundary)
        self.assertEqual(self.provider.peak_total, 1, "two provider connections at once")
        self.assertEqual((await epgd.status())["test_1"]["switches"], 1)

    def two_channels_one_connection(self) -> Epgd:
        """Channels test_1 (clip a) and test_2 (clip b), both live, on a one-connection plan."""
        url_a = self.provider.stream("a", "a")
        url_b = self.provider.stream("b", "b")
        now = self.now()
        return self.epgd({"test_1": [event("Game A", now - 60, now + 600, url_a)],
                          "test_2": [event("Game B", now - 60, now + 600, url_b)]},
                         max_streams=1)

    async def test_provider_limit_is_503_naming_provider_and_limit(self) -> None:
        epgd = self.two_channels_one_connection()
        watching = await epgd.open("/stream/test_1.ts")
        await watching.wait_bytes(20_000)
        refused = await epgd.fetch("/stream/test_2.ts")
        self.assertEqual(refused.status, 503)
        self.assertIn("main", refused.text())
        self.assertRegex(refused.text(), r"\b1\b")
        self.assertEqual(refused.text().count("\n"), 1, refused.text())
        self.assertEqual(self.provider.requests["b"], 0)
        self.assertFalse(watching.is_closed)
        self.assert_no_credentials(refused.text())

    async def test_a_stream_without_clients_makes_room_at_the_limit(self) -> None:
        epgd = self.two_channels_one_connection()
        left = await epgd.open("/stream/test_1.ts")
        await left.wait_bytes(20_000)
        await left.close()
        client = await epgd.open("/stream/test_2.ts")
        await client.wait_for(lambda: has_b(client), 5, "clip b")
        self.assertEqual(client.status, 200)
        self.assertEqual(set(await epgd.status()), {"test_2"})
        self.assertEqual(self.provider.peak_total, 1)


class FailoverTests(E2ETestCase):
    """A source that fails at connect hands over to the event's next source at once."""

    timeout = 20

    async def fail_over_from(self, bad_url: str, bad_name: str, **settings: object) -> HTTPReader:
        good = self.provider.stream("a", "a")
        now = self.now()
        epgd = self.epgd({"test_1": [event("Game", now - 60, now + 600, bad_url, good)]},
                         **settings)
        started = time.monotonic()
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_for(lambda: any(p in A_PIDS for p in pids(
            client.body[: len(client.body) - len(client.body) % 188])), 8, "the second source")
        self.assertEqual(client.status, 200)
        self.assertEqual(self.provider.requests[bad_name], 1)
        self.assertLess(time.monotonic() - started, 6)
        await client.wait_bytes(client.received + 20_000)
        self.assertFalse(client.is_closed)
        return client

    def assert_failure_logged(self, name: str, *what: str) -> None:
        lines = [line for line in self.log_lines() if f"{name}.ts" in line]
        self.assertTrue(lines, f"no log line names the failed source {name}.ts")
        text = " ".join(lines).lower()
        self.assertTrue(any(w.lower() in text for w in what),
                        f"the failure of {name}.ts is not logged with {what}: {lines}")

    async def test_failover_from_404(self) -> None:
        await self.fail_over_from(self.provider.error("gone", 404), "gone")
        self.assert_failure_logged("gone", "404")

    async def test_failover_from_500(self) -> None:
        await self.fail_over_from(self.provider.error("broken", 500), "broken")
        self.assert_failure_logged("broken", "500")

    async def test_failover_from_html_with_status_200(self) -> None:
        await self.fail_over_from(self.provider.html("page"), "page")
        self.assert_failure_logged("page", "html")

    async def test_failover_from_an_hls_playlist_whose_segments_are_missing(self) -> None:
        # a .ts URL answering a playlist is followed as HLS (SPEC §11); its segments are 404s
        await self.fail_over_from(self.provider.hls("playlist"), "playlist")
        self.assert_failure_logged("playlist", "no segment could be fetched")

    async def test_failover_from_a_source_that_never_sends(self) -> None:
        self.provider.stream("silent", "a", first_byte_delay=60)
        client = await self.fail_over_from(self.provider.url("silent"), "silent",
                                           connect_timeout=1.0)
        await self.wait_until(lambda: self.provider.active["silent"] == 0, 3,
                              "the silent provider connection to be closed")
        self.assertTrue(client.received)
