"""
End to end over real 127.0.0.1 sockets: what a player sees of ``/stream/{id}.ts`` and what an
operator sees of ``/streams/status`` and ``/streams/stop`` (SPEC §4, §7, §8, §9), with epgd in
front of a fake provider. Switching, fail-over and faults are in the sibling modules.
"""

from __future__ import annotations

import json
import re
import time

from epgd.config import DEFAULT_USER_AGENT
from tests.streamhelpers import (
    A_PIDS,
    NULL_PID,
    PAT_PID,
    E2ETestCase,
    event,
    first_media_pid,
    pids,
)

STATUS_KEYS = {"stream_url", "event", "uptime_seconds", "idle_seconds", "last_check", "clients",
               "bytes_sent", "bitrate_kbps", "switches", "error", "source_kind", "codecs",
               "hls_sessions"}  # SPEC §16


class ServeTests(E2ETestCase):
    """A client tuning in gets the live event's MPEG-TS, shared, from its start at a PAT."""

    def live_on(self, *channel_ids: str, name: str = "a") -> dict:
        url = self.provider.stream(name, "a")
        now = self.now()
        return {cid: [event("Bruins vs Rangers", now - 60, now + 600, url)] for cid in channel_ids}

    async def test_stream_is_whole_ts_packets_starting_at_a_pat(self) -> None:
        epgd = self.epgd(self.live_on("test_1"))
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(200_000)
        self.assertEqual(client.status, 200)
        self.assertEqual(client.headers.get("content-type"), "video/mp2t")
        seen = pids(client.body)  # fails on any misaligned or non-0x47 packet
        self.assertEqual(first_media_pid(client.body), PAT_PID)
        self.assertLessEqual(set(seen) - {PAT_PID, 0x11, NULL_PID}, A_PIDS)
        self.assertLessEqual(A_PIDS, set(seen))
        port = self.provider.port.getHost().port
        self.assert_logged(
            f"[PROXY] Starting proxy for test_1 -> http://127.0.0.1:{port}/live/***/***/a.ts")
        self.assertEqual(self.provider.headers[0].get(b"user-agent"),
                         DEFAULT_USER_AGENT.encode())

    async def test_clients_and_channels_share_one_provider_connection(self) -> None:
        epgd = self.epgd(self.live_on("test_1", "test_2"))
        clients = [await epgd.open(path) for path in
                   ("/stream/test_1.ts", "/stream/test_1.ts", "/stream/test_2.ts")]
        for client in clients:
            await client.wait_bytes(100_000)
        self.assertEqual(self.provider.requests["a"], 1)
        self.assertEqual(self.provider.peak_total, 1)
        status = await epgd.status()
        self.assertEqual({k: v["clients"] for k, v in status.items()}, {"test_1": 2, "test_2": 1})

    async def test_joining_a_running_stream_starts_at_once_at_a_pat(self) -> None:
        epgd = self.epgd(self.live_on("test_1"))
        first = await epgd.open("/stream/test_1.ts")
        await first.wait_bytes(100_000)
        started = time.monotonic()
        late = await epgd.open("/stream/test_1.ts")
        await late.wait_bytes(188, timeout=2)
        waited = time.monotonic() - started
        await late.wait_bytes(20_000)
        self.assertLess(waited, 0.5, "a joining client waited for its first byte")
        self.assertEqual(first_media_pid(late.body), PAT_PID)
        self.assertEqual(self.provider.requests["a"], 1)

    async def test_unknown_channel_is_404_with_one_line(self) -> None:
        epgd = self.epgd(self.live_on("test_1"))
        response = await epgd.fetch("/stream/no_such_channel.ts")
        self.assertEqual(response.status, 404)
        self.assertEqual(response.text().count("\n"), 1, response.text())
        self.assertEqual(self.provider.requests.total(), 0)

    async def test_nothing_live_is_503_naming_the_next_event(self) -> None:
        url = self.provider.stream("a", "a")
        now = self.now()
        epgd = self.epgd({"test_1": [event("Late Game", now + 600, now + 4000, url)]})
        response = await epgd.fetch("/stream/test_1.ts")
        self.assertEqual(response.status, 503)
        self.assertIn("Late Game", response.text())
        self.assertEqual(response.text().count("\n"), 1, response.text())
        self.assertRegex(response.headers.get("retry-after", ""), r"^\d+$")
        self.assertGreater(int(response.headers["retry-after"]), 0)
        self.assertEqual(self.provider.requests.total(), 0)
        self.assert_no_credentials(response.text())

    async def test_max_clients_reached_is_503(self) -> None:
        epgd = self.epgd(self.live_on("test_1"), max_clients=1)
        first = await epgd.open("/stream/test_1.ts")
        await first.wait_bytes(10_000)
        second = await epgd.fetch("/stream/test_1.ts")
        self.assertEqual(second.status, 503)
        self.assertEqual(second.text().count("\n"), 1, second.text())
        self.assert_no_credentials(second.text())
        await first.wait_bytes(first.received + 50_000)  # the first one is untouched

    async def test_head_answers_headers_only(self) -> None:
        epgd = self.epgd(self.live_on("test_1"))
        response = await epgd.fetch("/stream/test_1.ts", method="HEAD")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers.get("content-type"), "video/mp2t")
        self.assertEqual(response.received, 0)

    async def test_stop_closes_its_clients_and_is_404_when_not_active(self) -> None:
        epgd = self.epgd(self.live_on("test_1"))
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(20_000)
        response = await epgd.fetch("/streams/stop/test_1")
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(response.text()), {"stopped": "test_1"})
        await client.wait_closed(timeout=3)
        await self.wait_until(lambda: self.provider.active_total == 0, 3,
                              "the provider connection to close")
        self.assertEqual(await epgd.status(), {})
        again = await epgd.fetch("/streams/stop/test_1", method="POST")
        self.assertEqual(again.status, 404)

    async def test_stop_needs_the_admin_token_when_one_is_set(self) -> None:
        epgd = self.epgd(self.live_on("test_1"), admin_token="t0ken")
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(20_000)
        refused = await epgd.fetch("/streams/stop/test_1")
        self.assertEqual(refused.status, 401)
        self.assertFalse(client.is_closed)
        allowed = await epgd.fetch("/streams/stop/test_1", method="POST",
                                   headers=["Authorization: Bearer t0ken"])
        self.assertEqual(allowed.status, 200)
        await client.wait_closed(timeout=3)

    async def test_status_has_exactly_the_spec_keys_with_masked_url(self) -> None:
        epgd = self.epgd(self.live_on("test_1"))
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(300_000)
        status = await epgd.status()
        self.assertEqual(set(status), {"test_1"})
        entry = status["test_1"]
        self.assertEqual(set(entry), STATUS_KEYS)
        port = self.provider.port.getHost().port
        self.assertEqual(entry["stream_url"], f"http://127.0.0.1:{port}/live/***/***/a.ts")
        self.assertEqual(entry["event"], "Bruins vs Rangers")
        self.assertEqual(entry["clients"], 1)
        self.assertEqual(entry["switches"], 0)
        self.assertIsNone(entry["error"])
        self.assertGreaterEqual(entry["bytes_sent"], 200_000)
        self.assertLessEqual(entry["bytes_sent"], client.received + 1_000_000)
        self.assertGreater(entry["bitrate_kbps"], 0)
        self.assertLess(entry["idle_seconds"], 2)
        self.assertGreaterEqual(entry["uptime_seconds"], 0)
        self.assertLess(abs(entry["last_check"] - time.time()), 5)
        self.assert_no_credentials(json.dumps(status))

    async def test_credentials_appear_in_no_log_line(self) -> None:
        epgd = self.epgd(self.live_on("test_1"))
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(20_000)
        await epgd.fetch("/streams/stop/test_1")
        lines = self.log_lines()
        self.assertTrue(any(re.search(r"\[PROXY\]", line) for line in lines), lines)
        self.assert_no_credentials()
