"""``python -m epgd build``: one fetch, three files (epgd.oneshot)."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import Config, ProviderConfig, ServerConfig
from epgd.oneshot import build_once, http_base_url
from epgd.redact import Redactor
from epgd.sources import SourceError
from epgd.sources.models import ProviderData
from tests.test_catalog import PASSWORD, PLAYLIST_URL, T0, FakeFeed, make_config, provider_data


class BuildOnceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0.timestamp())
        self.base = self.mktemp()
        self.config = make_config(os.path.join(self.base, "state"))
        self.out = os.path.join(self.base, "out")
        self.redactor = Redactor.for_urls([PLAYLIST_URL])

    def factory(self, refresh: Any, cached: ProviderData | None = None) -> Any:
        def make(reactor: Any, provider: ProviderConfig, **kwargs: Any) -> FakeFeed:
            feed = FakeFeed(reactor, provider, **kwargs)
            feed.cached = cached
            feed.refresh = lambda: refresh  # type: ignore[method-assign]
            return feed
        return make

    def test_writes_the_three_files(self) -> None:
        d = build_once(self.config, self.clock, self.out, self.redactor,
                       feed_factory=self.factory(succeed(provider_data("Game"))))
        paths = self.successResultOf(d)
        self.assertEqual([os.path.basename(p) for p in paths],
                         ["playlist.m3u", "epg.xml", "schedule.json"])
        with open(os.path.join(self.out, "playlist.m3u"), "rb") as f:
            self.assertIn(b'x-tvg-url="http://localhost:8181/epg.xml"', f.read())
        with open(os.path.join(self.out, "epg.xml"), "rb") as f:
            self.assertIn(b"<title>Game</title>", f.read())
        with open(os.path.join(self.out, "schedule.json"), "rb") as f:
            body = json.load(f)
        self.assertEqual(body["channels"][0]["events"][0]["title"], "Game")
        self.assertEqual(sorted(os.listdir(self.out)), ["epg.xml", "playlist.m3u", "schedule.json"])

    def test_files_readable_by_a_web_server(self) -> None:
        """Cron users publish DIR with nginx: the files get the umask's mode, not 0600."""
        umask = os.umask(0o022)
        self.addCleanup(os.umask, umask)
        d = build_once(self.config, self.clock, self.out, self.redactor,
                       feed_factory=self.factory(succeed(provider_data("Game"))))
        for path in self.successResultOf(d):
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o644, path)
        os.chmod(os.path.join(self.out, "epg.xml"), 0o640)
        d = build_once(self.config, self.clock, self.out, self.redactor,
                       feed_factory=self.factory(succeed(provider_data("Game"))))
        self.successResultOf(d)
        self.assertEqual(os.stat(os.path.join(self.out, "epg.xml")).st_mode & 0o777, 0o640)

    def test_falls_back_to_cache(self) -> None:
        d = build_once(self.config, self.clock, self.out, self.redactor,
                       feed_factory=self.factory(fail(SourceError("down")),
                                                 cached=provider_data("Cached game")))
        self.successResultOf(d)
        with open(os.path.join(self.out, "epg.xml"), "rb") as f:
            self.assertIn(b"Cached game", f.read())

    def test_no_data_at_all_writes_nothing(self) -> None:
        d = build_once(self.config, self.clock, self.out, self.redactor,
                       feed_factory=self.factory(fail(SourceError(f"cannot reach {PLAYLIST_URL}"))))
        failure = self.failureResultOf(d, SourceError)
        self.assertIn("no provider data", str(failure.value))
        self.assertNotIn(PASSWORD, str(failure.value))
        self.assertFalse(os.path.exists(os.path.join(self.out, "epg.xml")))

    def test_base_url(self) -> None:
        self.assertEqual(http_base_url(self.config), "http://localhost:8181")
        self.assertEqual(http_base_url(Config(server=ServerConfig(
            listen=("systemd:domain=INET:index=0", "tcp:port=9000")))), "http://localhost:9000")
        self.assertEqual(http_base_url(Config(server=ServerConfig(base_url="http://tv:1/"))),
                         "http://tv:1")
