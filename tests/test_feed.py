"""Tests for epgd.sources.feed: refresh, the atomic last-good cache, /health fields."""

from __future__ import annotations

import datetime as dt
import gzip
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from epgd.config import ProviderConfig
from epgd.redact import Redactor
from epgd.sources import SourceError
from epgd.sources.feed import ProviderFeed
from epgd.sources.models import ProviderChannel
from tests.test_fetch import HTML, FakeProviderSite, sync_thread

PLAYLIST = (
    "#EXTM3U\n"
    '#EXTINF:-1 tvg-id="nhl07.us" group-title="NHL",NHL 07\nhttp://p.example/live/u/p/7.ts\n'
    '#EXTINF:-1 group-title="NHL",NHL 08\nhttp://p.example/live/u/p/8.ts\n'
    '#EXTINF:-1 tvg-id="cooking.us" group-title="Food",Cooking\nhttp://p.example/live/u/p/9.ts\n'
)
GUIDE = (
    '<?xml version="1.0"?><tv>'
    '<channel id="NHL07.US"><display-name>NHL 07 HD</display-name></channel>'
    '<channel id="x8"><display-name>nhl  08</display-name></channel>'
    '<channel id="cooking.us"><display-name>Cooking</display-name></channel>'
    '<programme channel="NHL07.US" start="20261124190000 -0500" stop="20261124220000 -0500">'
    "<title>Bruins vs Rangers</title></programme>"
    '<programme channel="x8" start="20261124200000 +0000"><title>Kings vs Ducks</title></programme>'
    '<programme channel="cooking.us" start="20261124200000 +0000"><title>Pasta</title></programme>'
    "</tv>"
)


def nhl_only(channel: ProviderChannel) -> bool:
    return channel.group == "NHL"


class FeedCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_764_000_000)
        self.sources = os.path.abspath(self.mktemp())
        os.makedirs(self.sources)
        self.state = os.path.abspath(self.mktemp())
        self.playlist = self.write("playlist.m3u", PLAYLIST)
        self.guide = self.write("guide.xml", GUIDE)
        self.cache = os.path.join(self.state, "providers", "main")

    def write(self, name: str, data: str | bytes) -> str:
        path = os.path.join(self.sources, name)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return path

    def feed(self, wanted: Callable[[ProviderChannel], bool] | None = nhl_only,
             run: Callable[..., Deferred[Any]] = sync_thread, **provider: Any) -> ProviderFeed:
        config = ProviderConfig(name="main", playlist=self.playlist, guide=self.guide, **provider)
        feed = ProviderFeed(self.reactor, config, "epgd-test", self.state, Redactor(),
                            wanted_channel=wanted, run_in_thread=run)
        self.addCleanup(feed.close)
        return feed

    def cached(self, name: str) -> bytes:
        with open(os.path.join(self.cache, name), "rb") as f:
            return f.read()


class FeedTests(FeedCase):
    def test_refresh_installs_and_caches(self) -> None:
        feed = self.feed()
        self.assertFalse(feed.loaded)
        data = self.successResultOf(feed.refresh())
        self.assertIs(feed.data, data)
        self.assertTrue(feed.loaded)
        self.assertIsNone(feed.error)
        self.assertEqual(feed.last_refresh, dt.datetime.fromtimestamp(1_764_000_000, dt.UTC))
        self.assertEqual((feed.channels, feed.programmes), (3, 2))
        self.assertEqual(self.cached("playlist.m3u"), PLAYLIST.encode())
        self.assertEqual(self.cached("guide.xml"), GUIDE.encode())
        self.assertEqual(sorted(os.listdir(self.cache)), ["guide.xml", "playlist.m3u"])

    def test_guide_keeps_only_linked_channels(self) -> None:
        """Linked by tvg-id (any case) or by name = display-name (any case and spacing)."""
        data = self.successResultOf(self.feed().refresh())
        assert data.guide is not None
        self.assertEqual([c.id for c in data.guide.channels], ["NHL07.US", "x8"])
        self.assertEqual({p.title for p in data.guide.programmes}, {"Bruins vs Rangers", "Kings vs Ducks"})
        everything = self.successResultOf(self.feed(wanted=None).refresh())
        assert everything.guide is not None
        self.assertEqual(len(everything.guide.programmes), 3)

    def test_guide_offset(self) -> None:
        data = self.successResultOf(self.feed(guide_offset=-3600).refresh())
        assert data.guide is not None
        bruins = next(p for p in data.guide.programmes if p.title == "Bruins vs Rangers")
        self.assertEqual(bruins.start, dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.UTC))

    def test_failed_refresh_keeps_the_last_good_data_and_files(self) -> None:
        feed = self.feed()
        good = self.successResultOf(feed.refresh())
        self.reactor.advance(60)
        self.write("playlist.m3u", HTML)
        failure = self.failureResultOf(feed.refresh(), SourceError)
        self.assertEqual(str(failure.value), "playlist is not M3U: got an HTML page")
        self.assertEqual(feed.error, "playlist is not M3U: got an HTML page")
        self.assertIs(feed.data, good)
        self.assertEqual(feed.last_refresh, dt.datetime.fromtimestamp(1_764_000_000, dt.UTC))

        # A good new playlist with a broken guide: neither file replaces the old ones.
        self.write("playlist.m3u", PLAYLIST.replace("NHL 08", "NHL 09"))
        self.write("guide.xml", "<html><body>502 Bad Gateway</body></html>")
        failure = self.failureResultOf(feed.refresh(), SourceError)
        self.assertEqual(feed.error, "guide is not XMLTV: got an HTML page")
        self.assertEqual(self.cached("playlist.m3u"), PLAYLIST.encode())
        self.assertEqual(self.cached("guide.xml"), GUIDE.encode())
        self.assertEqual(sorted(os.listdir(self.cache)), ["guide.xml", "playlist.m3u"])
        self.assertIs(feed.data, good)

        self.write("guide.xml", GUIDE)
        self.successResultOf(feed.refresh())
        self.assertIsNone(feed.error)
        self.assertIn(b"NHL 09", self.cached("playlist.m3u"))

    def test_cut_short_guide_never_replaces_a_whole_one(self) -> None:
        """A download that broke off (no </tv>, or a gzip stream cut) is malformed data."""
        feed = self.feed()
        good = self.successResultOf(feed.refresh())
        self.reactor.advance(60)
        cut = GUIDE[: GUIDE.index("<programme channel=\"x8\"")]
        for broken in (cut.encode(), gzip.compress(GUIDE.encode())[:-30]):
            self.write("guide.xml", broken)
            self.failureResultOf(feed.refresh(), SourceError)
            self.assertIs(feed.data, good)
            assert feed.error is not None
            self.assertIn("guide is cut short", feed.error)
            self.assertEqual(self.cached("guide.xml"), GUIDE.encode())

    def test_cut_short_guide_used_when_there_is_nothing_better(self) -> None:
        """With no whole guide yet, the programmes before the break beat none; /health says so."""
        cut = GUIDE[: GUIDE.index("<programme channel=\"x8\"")]
        self.write("guide.xml", cut)
        feed = self.feed()
        data = self.successResultOf(feed.refresh())
        assert data.guide is not None
        self.assertEqual([p.title for p in data.guide.programmes], ["Bruins vs Rangers"])
        self.assertEqual(feed.error, "guide is cut short (the data ends before </tv>); "
                                     "using its 1 programmes (no whole guide yet)")
        # A later cut guide replaces the earlier cut one; a whole one clears the error.
        self.successResultOf(feed.refresh())
        self.write("guide.xml", GUIDE)
        self.successResultOf(feed.refresh())
        self.assertIsNone(feed.error)
        self.assertEqual(feed.programmes, 2)

    def test_empty_playlist_is_a_failure(self) -> None:
        feed = self.feed()
        self.successResultOf(feed.refresh())
        self.write("playlist.m3u", "#EXTM3U\n")
        self.failureResultOf(feed.refresh(), SourceError)
        self.assertEqual(feed.error, "playlist has no channels")
        self.assertEqual(feed.channels, 3)

    def test_restart_loads_the_cache(self) -> None:
        """A new feed on the same state_dir serves the last good data with the provider gone."""
        first = self.successResultOf(self.feed().refresh())
        os.remove(self.playlist)
        feed = self.feed()
        self.assertIsNone(feed.data)
        data = self.successResultOf(feed.load_cached())
        self.assertEqual(data, first)
        self.assertTrue(feed.loaded)
        self.assertIsNotNone(feed.last_refresh)
        self.failureResultOf(feed.refresh(), SourceError)
        self.assertEqual(feed.error, f"playlist {self.playlist} failed: no such file")
        self.assertIs(feed.data, data)

    def test_no_cache(self) -> None:
        feed = self.feed()
        self.assertIsNone(self.successResultOf(feed.load_cached()))
        self.assertFalse(feed.loaded)
        self.assertEqual((feed.channels, feed.programmes), (0, 0))

    def test_unusable_cache_is_ignored(self) -> None:
        os.makedirs(self.cache)
        with open(os.path.join(self.cache, "playlist.m3u"), "w") as f:
            f.write("<html>login</html>")
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        feed = self.feed()
        self.assertIsNone(self.successResultOf(feed.load_cached()))
        self.assertFalse(feed.loaded)
        self.assertTrue(any("unusable" in e.get("log_format", "") for e in logged))

    def test_gzip_guide_cached_as_gz(self) -> None:
        self.guide = self.write("guide.xml.gz", gzip.compress(GUIDE.encode()))
        feed = self.feed()
        self.successResultOf(feed.refresh())
        self.assertEqual(sorted(os.listdir(self.cache)), ["guide.xml.gz", "playlist.m3u"])
        again = self.feed()
        self.assertEqual(self.successResultOf(again.load_cached()).guide, feed.data.guide)  # type: ignore[union-attr]
        self.guide = self.write("guide.xml", GUIDE)
        self.successResultOf(self.feed().refresh())
        self.assertEqual(sorted(os.listdir(self.cache)), ["guide.xml", "playlist.m3u"])

    def test_provider_without_guide(self) -> None:
        self.successResultOf(self.feed().refresh())
        self.guide = ""
        data = self.successResultOf(self.feed().refresh())
        self.assertIsNone(data.guide)
        self.assertEqual(os.listdir(self.cache), ["playlist.m3u"])

    def test_refresh_while_refreshing_shares_the_outcome(self) -> None:
        parses: list[Deferred[Any]] = []

        def held(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
            if f.__name__ == "_parse":
                d: Deferred[Any] = Deferred()
                parses.append(d)
                d.addCallback(lambda _: f(*args))
                return d
            return sync_thread(f, *args)

        feed = self.feed(run=held)
        first, second = feed.refresh(), feed.refresh()
        self.assertNoResult(first)
        self.assertEqual(len(parses), 1)
        parses[0].callback(None)
        self.assertIs(self.successResultOf(first), self.successResultOf(second))

    def test_stale_temp_files_are_removed(self) -> None:
        os.makedirs(self.cache)
        stale = os.path.join(self.cache, ".guide-abc.part")
        with open(stale, "w") as f:
            f.write("half a guide")
        self.feed()
        self.assertFalse(os.path.exists(stale))


def damaged(guide: str, title: str) -> str:
    """``guide`` with the first programme's title replaced by ``title`` (raw markup)."""
    return guide.replace("<title>Bruins vs Rangers</title>", f"<title>{title}</title>", 1)


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE tv [<!ENTITY a0 "lollollollol">'
          + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)) + "]>")


class NotWholeGuideTests(FeedCase):
    """A guide that is damaged, cut short or has programmes skipped never replaces a whole one."""

    def assertKeptWhole(self, broken: str | bytes, why: str, **provider: Any) -> ProviderFeed:
        feed = self.feed(**provider)
        good = self.successResultOf(feed.refresh())
        self.reactor.advance(60)
        self.write("guide.xml", broken)
        self.failureResultOf(feed.refresh(), SourceError)
        self.assertIs(feed.data, good)
        self.assertEqual(feed.programmes, 2)
        assert feed.error is not None
        self.assertIn(why, feed.error)
        self.assertEqual(self.cached("guide.xml"), GUIDE.encode())
        return feed

    def test_markup_in_a_title(self) -> None:
        """libxml2 'recovers' from a bare < by losing every later programme."""
        self.assertKeptWhole(damaged(GUIDE, "Game 0 < Zero"),
                             "guide is damaged (XML error at line 1: StartTag: invalid element name")

    def test_entity_bomb(self) -> None:
        """The amplification limit stops a billion laughs; recover=True must not hide that."""
        bomb = damaged(GUIDE, "&a9;").replace('<?xml version="1.0"?>', LAUGHS)
        self.assertKeptWhole(bomb, "Maximum entity amplification factor exceeded")

    def test_whitespace_bomb(self) -> None:
        """A small gzip of endless blanks: libxml2's text limit (no huge_tree) ends it."""
        import zlib

        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        head, tail = GUIDE.encode().split(b"</tv>")
        body = packer.compress(head) + b"".join(
            packer.compress(b" " * (1 << 20)) for _ in range(12)) + packer.compress(b"</tv>")
        bomb = body + packer.flush()
        self.assertLess(len(bomb), 100_000)
        self.assertKeptWhole(bomb, "Text node too long")

    def test_decompressed_size_cap(self) -> None:
        """max_guide_bytes counts the guide as it is decompressed, whatever the file's size."""
        padded = GUIDE.replace("</tv>", "<!--" + "x" * 5000 + "--></tv>")
        feed = self.assertKeptWhole(gzip.compress(padded.encode()),
                                    "guide is larger than 4 KiB once decompressed",
                                    max_guide_bytes=4096)
        self.write("guide.xml", padded)  # the plain file is refused by its size, unread
        self.failureResultOf(feed.refresh(), SourceError)
        self.assertIn("guide is larger than 4 KiB once decompressed", str(feed.error))

    def test_malformed_programmes_are_counted(self) -> None:
        broken = GUIDE.replace('start="20261124200000 +0000"><title>Kings',
                               'start="tomorrow"><title>Kings')
        feed = self.assertKeptWhole(broken, "guide is 1 malformed programmes skipped")
        self.assertEqual(feed.programmes_skipped, 1)
        # Nothing better: used, and /health still says what is wrong with it.
        fresh = self.feed()
        data = self.successResultOf(fresh.refresh())
        assert data.guide is not None
        self.assertEqual(len(data.guide.programmes), 1)
        self.assertEqual(fresh.programmes_skipped, 1)
        self.assertEqual(fresh.error, "guide is 1 malformed programmes skipped; using its 1 "
                                      "programmes (no whole guide yet)")

    def test_damaged_cache_loaded_at_start_is_reported(self) -> None:
        self.write("guide.xml", damaged(GUIDE, "Game 0 < Zero"))
        self.successResultOf(self.feed().refresh())
        restarted = self.feed()
        self.successResultOf(restarted.load_cached())
        self.assertIn("guide is damaged", str(restarted.error))

    def test_files_are_on_disk_before_they_are_renamed(self) -> None:
        calls: list[str] = []
        real_fsync, real_replace = os.fsync, os.replace
        self.patch(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
        self.patch(os, "replace", lambda a, b: (calls.append("replace " + os.path.basename(b)),
                                                real_replace(a, b))[1])
        self.successResultOf(self.feed().refresh())
        self.assertEqual(calls, ["fsync", "fsync", "replace playlist.m3u", "fsync",
                                 "replace guide.xml", "fsync"])

    def test_close_stops_a_parse_in_its_thread(self) -> None:
        """The stop event reaches the parsers: SIGTERM is not held up by a parse thread."""
        feed = self.feed()
        parses: list[Any] = []

        def later(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            parses.append(lambda: d.callback(f(*args)))
            return d

        feed._run = later  # the parse waits until the test runs it, after close()
        refreshing = feed.refresh()
        self.successResultOf(feed.close())
        self.assertRaises(SourceError, parses[0])
        self.failureResultOf(refreshing)


class FeedOverHttpTests(TestCase):
    """The whole path against a provider site on 127.0.0.1, credentials in its URLs."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.site = FakeProviderSite(self)
        self.site.serve("/get.php", PLAYLIST.encode())
        self.logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        playlist = self.site.url("/get.php?username=alice7&password=s3cret9&type=m3u_plus")
        guide = self.site.url("/xmltv.php?username=alice7&password=s3cret9")
        self.feed = ProviderFeed(
            reactor, ProviderConfig(name="main", playlist=playlist, guide=guide),
            "epgd-test", os.path.abspath(self.mktemp()), Redactor.for_urls([playlist]),
            wanted_channel=nhl_only, run_in_thread=sync_thread,
        )
        self.addCleanup(self.feed.close)

    def everything_logged(self) -> str:
        from twisted.logger import formatEvent

        return "\n".join(formatEvent(e) for e in self.logged)

    @inlineCallbacks
    def test_errors_are_masked_and_data_arrives(self) -> Any:
        error = yield self.assertFailure(self.feed.refresh(), SourceError)
        port = self.site.port.getHost().port
        expected = (f"guide http://127.0.0.1:{port}/xmltv.php?username=***&password=*** "
                    "failed: HTTP 404 Not Found")
        self.assertEqual(str(error), expected)
        self.assertEqual(self.feed.error, expected)
        self.assertFalse(self.feed.loaded)
        self.site.serve("/xmltv.php", gzip.compress(GUIDE.encode()),
                        headers={b"Content-Encoding": b"gzip"})
        data = yield self.feed.refresh()
        self.assertEqual((self.feed.channels, self.feed.programmes), (3, 2))
        self.assertEqual(data.playlist.channels[0].url, "http://p.example/live/u/p/7.ts")
        logs = self.everything_logged()
        self.assertIn("404", logs)
        for secret in ("alice7", "s3cret9"):
            self.assertNotIn(secret, logs)
            self.assertNotIn(secret, str(error))

    @inlineCallbacks
    def test_close_stops_a_refresh_in_flight(self) -> Any:
        arrived = self.site.stall("/get.php")
        refreshing = self.feed.refresh()
        yield arrived
        yield self.feed.close()
        error = yield self.assertFailure(refreshing, SourceError)
        self.assertEqual(str(error), "refresh stopped: epgd is shutting down")
        self.assertIsNone(self.feed.error, "stopping is not a provider failure")
        self.assertNotIn("refresh failed", self.everything_logged())
