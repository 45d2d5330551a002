"""
A zap storm (issue 11): a viewer flicking through channels a thousand times — tune in, maybe
watch a moment, hang up — must leave epgd as it found it: no provider connection, no timer,
no file descriptor more than before.
"""

from __future__ import annotations

import psutil

from tests.streamhelpers import E2ETestCase, event

ZAPS = 1000


class ZapStormTests(E2ETestCase):
    timeout = 180

    async def test_a_thousand_zaps_leave_nothing_behind(self) -> None:
        url_a = self.provider.stream("a", "a", rate=200_000)
        url_b = self.provider.stream("b", "b", rate=200_000)
        now = self.now()
        epgd = self.epgd({"test_1": [event("A", now - 60, now + 3600, url_a)],
                          "test_2": [event("B", now - 60, now + 3600, url_b)],
                          "test_3": [event("A again", now - 60, now + 3600, url_a)]},
                         idle_timeout=1.0, output="continuous")
        warm_up = await epgd.fetch("/streams/status")  # the web site's own timers start
        epgd.clients.remove(warm_up)
        process = psutil.Process()
        fds = process.num_fds()
        timers = len(self.reactor.getDelayedCalls())
        for zap in range(ZAPS):
            client = await epgd.open(f"/stream/test_{zap % 3 + 1}.ts")
            if zap % 5 == 0:
                await client.wait_bytes(188)  # this one watched a moment
            await client.close()
            epgd.clients.remove(client)
        self.assertLessEqual(self.provider.peak_total, 2, "more than one connection per source URL")
        await self.wait_until(lambda: not epgd.manager.channels, 15, "the idle streams to stop")
        await self.wait_until(lambda: self.provider.active_total == 0, 5, "the provider connections to close")
        await self.sleep(0.2)  # let the last sockets finish closing
        self.assertEqual(epgd.manager.registry.upstreams(), [])
        self.assertEqual(len(self.reactor.getDelayedCalls()), timers, self.reactor.getDelayedCalls())
        self.assertEqual(process.num_fds(), fds)
        self.assertEqual(epgd.manager._clients, set())
