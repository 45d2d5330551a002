"""
HLS sources end to end (SPEC §11) over real 127.0.0.1 sockets: what a player gets of
``/stream/{id}.ts`` when the provider serves HLS, and what the provider sees epgd fetch.
"""

from __future__ import annotations

from tests.hlshelpers import HlsTestCase, without_keepalive
from tests.streamhelpers import event


class FollowTests(HlsTestCase):
    async def test_live_hls_is_streamed_as_its_segments_bytes(self) -> None:
        url = self.hls.live("a", duration=0.5, window=5)
        now = self.now()
        epgd = self.epgd_hls({"test_1": [event("Game", now - 60, now + 600, url, provider="hls")]})
        client = await epgd.open("/stream/test_1.ts")
        first = 100 + 5 - 3  # three segments from the live edge
        want = self.hls.expected("a", first, 6)
        await client.wait_for(lambda: len(without_keepalive(client.body)) >= len(want), 10,
                              "six segments")
        got = without_keepalive(client.body)
        self.assertEqual(got[:len(want)], want)
        print(sorted(self.hls.requests.items()))
