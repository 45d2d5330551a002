"""
The HLS end-to-end tests' harness: epgd in front of a `FakeHls` (and the TS `FakeProvider`
for fail-over targets), with both providers' credentials known to the Redactor.
"""

from __future__ import annotations

from typing import Any

from epgd.config import Config, LineupConfig, ProviderConfig, ServerConfig, StreamConfig
from tests.fakehls import PASSWORD, USER, FakeHls
from tests.streamhelpers import LINEUP, NULL_PID, PACKET, E2ETestCase, Epgd, pids, schedule


def without_keepalive(data: bytes | bytearray) -> bytes:
    """The media packets a client got: epgd's keepalive null packets taken out."""
    whole = len(data) - len(data) % PACKET
    view = memoryview(bytes(data[:whole]))
    kept = [view[i:i + PACKET] for i, pid in zip(range(0, whole, PACKET), pids(data[:whole]),
                                                  strict=True) if pid != NULL_PID]
    return b"".join(kept)


class HlsTestCase(E2ETestCase):
    """A real reactor, a fake HLS provider ("hls") and a fake TS provider ("main")."""

    timeout = 30

    def setUp(self) -> None:
        super().setUp()
        self.hls = FakeHls(self.reactor)
        self.hls.start()
        self.addCleanup(self.hls.stop)

    def config(self, hls_variant: str = "best", **stream: Any) -> Config:
        settings: dict[str, Any] = {
            "check_interval": 0.5, "idle_timeout": 30.0, "connect_timeout": 2.0,
            "client_buffer": 4 * 1024 * 1024, "hold_after_end": 0.0, "reconnect_attempts": 2,
            "output": "passthrough",
        }
        settings.update(stream)
        return Config(
            server=ServerConfig(listen=()),
            stream=StreamConfig(**settings),
            providers=(
                ProviderConfig(name="main", playlist=self.provider.playlist_url()),
                ProviderConfig(name="hls", playlist=f"{self.hls.base}/get.php?username={USER}"
                               f"&password={PASSWORD}", hls_variant=hls_variant,
                               headers={"Referer": "http://tv.example/"}),
            ),
            lineups=(LineupConfig(id=LINEUP, channels=3),),
            path="hls.toml",
        )

    def epgd_hls(self, channels: dict[str, list[Any]], hls_variant: str = "best",
                 **stream: Any) -> Epgd:
        running = Epgd(self.reactor, self.config(hls_variant, **stream),
                       schedule(channels, self.now()))
        self.addCleanup(running.stop)
        return running

    def assert_no_credentials(self, *texts: str) -> None:
        super().assert_no_credentials(*texts)
        for text in (*texts, *self.log_lines()):
            for secret in (USER, PASSWORD):
                if secret in text:
                    self.fail(f"credential {secret!r} leaked in: {text[:300]!r}")
