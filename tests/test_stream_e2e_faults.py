"""
End to end: provider drops and stalls, slow clients and backpressure, idle streams (SPEC §7).
"""

from __future__ import annotations

import re
import socket

import psutil

from tests.streamhelpers import A_PIDS, NULL_PID, E2ETestCase, event, pids


class SlowSocket:
    """A client that asks for a stream and never reads: a tiny receive window, soon full."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(2)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.0\r\nHost: epgd.test\r\n\r\n".encode())
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()


SLOW_DROP = re.compile(r"(?i)\btest_1\b.*(drop|slow|behind|keep up)")


def server_side_open(server_port: int, client: SlowSocket) -> bool:
    """Whether epgd still holds its end of ``client``'s connection."""
    peer = client.sock.getsockname()[1]
    return any(c.laddr and c.laddr.port == server_port and c.raddr and c.raddr.port == peer
               and c.status == psutil.CONN_ESTABLISHED
               for c in psutil.Process().net_connections(kind="tcp"))


def rss() -> int:
    return psutil.Process().memory_info().rss


class FaultTests(E2ETestCase):
    timeout = 30

    def live(self, **how: object) -> dict:
        url = self.provider.stream("a", "a", **how)
        now = self.now()
        return {"test_1": [event("Game", now - 60, now + 600, url)]}

    async def test_provider_drops_are_reconnected_and_clients_stay(self) -> None:
        # 150,000 is not a multiple of 188: every drop cuts a packet in two.
        epgd = self.epgd(self.live(rate=500_000, drop_after=150_000))
        client = await epgd.open("/stream/test_1.ts", keep=2_000_000)
        await client.wait_bytes(700_000, timeout=10)
        self.assertFalse(client.is_closed)
        self.assertGreaterEqual(self.provider.requests["a"], 4)
        seen = pids(client.body)  # whole packets across every reconnect
        self.assertLessEqual(set(seen) - {0, 0x11, NULL_PID}, A_PIDS)
        self.assertLess(client.longest_silence(), 1.5)
        status = (await epgd.status())["test_1"]
        self.assertEqual(status["clients"], 1)
        self.assertLessEqual(self.provider.peak["a"], 1)

    async def test_keepalive_null_packets_while_the_provider_stalls(self) -> None:
        stall_at = 100_000  # mid-packet, on purpose
        epgd = self.epgd(self.live(rate=500_000, stall_after=stall_at), connect_timeout=10)
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(stall_at - 188 * 2)
        received = client.received
        await self.sleep(2.2)
        self.assertFalse(client.is_closed)
        seen = pids(client.body)
        stalled = seen[received // 188:]
        self.assertGreaterEqual(stalled.count(NULL_PID), 2,
                                f"no keepalive while stalled: {len(stalled)} packets after stall")
        self.assertEqual(set(stalled) - {NULL_PID} - A_PIDS - {0, 0x11}, set())

    async def test_slow_client_is_dropped_while_a_fast_one_keeps_up(self) -> None:
        epgd = self.epgd(self.live(rate=1_000_000), client_buffer=256 * 1024)
        fast = await epgd.open("/stream/test_1.ts", keep=1024)
        await fast.wait_bytes(50_000)
        before = rss()
        start = fast.received
        slow = SlowSocket(epgd.port.getHost().port, "/stream/test_1.ts")
        self.addCleanup(slow.close)
        await self.wait_until(lambda: any(SLOW_DROP.search(line) for line in self.log_lines()),
                              5, "the slow client to be dropped (logged)")
        self.assertEqual((await epgd.status())["test_1"]["clients"], 1)
        await self.sleep(1.0)
        self.assertFalse(fast.is_closed)
        self.assertGreater(fast.received - start, 800_000, "the fast client was slowed down")
        self.assertLess(rss() - before, 48 * 1024 * 1024, "memory grew with a slow client")
        # Dropped means closed, even though the client never reads what was queued for it.
        await self.wait_until(lambda: not server_side_open(epgd.port.getHost().port, slow), 3,
                              "epgd to close the dropped client's connection")

    async def test_when_every_client_is_slow_the_provider_is_paused(self) -> None:
        epgd = self.epgd(self.live(rate=None), client_buffer=32 * 1024 * 1024)
        before = rss()
        slow = SlowSocket(epgd.port.getHost().port, "/stream/test_1.ts")
        self.addCleanup(slow.close)
        await self.wait_until(lambda: self.provider.pauses["a"] > 0, 10,
                              "TCP backpressure to reach the provider")
        await self.sleep(1.5)
        sent = self.provider.bytes_sent["a"]
        await self.sleep(1.0)
        # Unpaced, the provider would send hundreds of MB a second if epgd kept reading.
        self.assertLess(self.provider.bytes_sent["a"] - sent, 4 * 1024 * 1024)
        self.assertLess(self.provider.bytes_sent["a"], 48 * 1024 * 1024)
        self.assertLess(rss() - before, 64 * 1024 * 1024, "epgd buffered instead of pausing")

    async def test_a_lone_paused_viewer_is_kept_and_the_provider_not_redialled(self) -> None:
        """A player paused longer than connect_timeout: held by backpressure, not dropped."""
        epgd = self.epgd(self.live(rate=None), connect_timeout=1.0)
        slow = SlowSocket(epgd.port.getHost().port, "/stream/test_1.ts")
        self.addCleanup(slow.close)
        await self.wait_until(lambda: self.provider.pauses["a"] > 0, 10,
                              "TCP backpressure to reach the provider")
        await self.sleep(3.5)  # paused for several connect_timeouts
        self.assertEqual(self.provider.requests["a"], 1, "epgd re-dialled a paused provider")
        self.assertFalse(any(SLOW_DROP.search(line) for line in self.log_lines()))
        self.assertEqual((await epgd.status())["test_1"]["clients"], 1)

    async def test_idle_stream_stops_after_idle_timeout(self) -> None:
        epgd = self.epgd(self.live(), idle_timeout=1.0, check_interval=0.25)
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_bytes(20_000)
        await client.close()
        await self.wait_until(lambda: any("idle for" in line for line in self.log_lines()), 5,
                              "the idle stop")
        self.assertEqual(await epgd.status(), {})
        line = self.assert_logged("idle for")
        self.assertRegex(line, r"\[PROXY\] test_1 idle for \d+s, stopping")
        await self.wait_until(lambda: self.provider.active_total == 0, 3,
                              "the provider connection to close")

    async def test_viewers_coming_back_reuse_the_running_stream(self) -> None:
        epgd = self.epgd(self.live())
        for _ in range(3):
            client = await epgd.open("/stream/test_1.ts")
            await client.wait_bytes(10_000)
            await client.close()
        self.assertEqual(self.provider.requests["a"], 1)
        await self.wait_until(lambda: self.provider.active_total <= 1, 3, "one connection")
        await self.sleep(0.2)
        self.assertEqual((await epgd.status())["test_1"]["clients"], 0)

    async def test_a_provider_sending_endless_headers_is_a_failed_source(self) -> None:
        """Header lines forever: cut off at 64 KiB (issue 11, item 3), the next source plays."""
        from twisted.internet.protocol import Factory, Protocol

        class Flood(Protocol):
            def dataReceived(self, data: bytes) -> None:
                self.transport.write(b"HTTP/1.1 200 OK\r\n")  # type: ignore[union-attr]
                for i in range(2000):  # 2 MB of header lines
                    self.transport.write(b"X-Filler-%d: %s\r\n" % (i, b"x" * 1000))  # type: ignore[union-attr]

        port = self.reactor.listenTCP(0, Factory.forProtocol(Flood), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        flood = f"http://127.0.0.1:{port.getHost().port}/live/{self.provider.user}/{self.provider.password}/9.ts"
        good = self.provider.stream("a", "a")
        now = self.now()
        epgd = self.epgd({"test_1": [event("Game", now - 60, now + 600, flood, good)]})
        client = await epgd.open("/stream/test_1.ts")
        await client.wait_for(lambda: any(p in A_PIDS for p in pids(
            client.body[: len(client.body) - len(client.body) % 188])), 8, "the second source")
        self.assert_logged("response headers longer than 64 KiB")
