"""
Fuzzing the provider parsers (M3U and XMLTV) with what a hostile or broken provider sends:
random bytes, truncations, entity tricks, and every real-world file in ../shared/data (and
tests/data) mutated. A parse either gives values or fails with ``SourceError``; a guide
cut short is never reported whole.

Time: no wall clock is read. Every input here is bounded in size (hypothesis sizes, files cut
to ``HEAD`` bytes), and the parsers bound the work of one line (``m3u.MAX_LINE``) and of one
text node (libxml2's limits, no ``huge_tree``), so an input that made a parser super-linear
(the quadratic #EXTINF scan took 96 s on one 160 KB line) would show up as a test run that
hits trial's timeout rather than as a flaky figure.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import ProviderConfig
from epgd.redact import Redactor
from epgd.sources import SourceError
from epgd.sources.feed import ProviderFeed
from epgd.sources.m3u import parse_playlist
from epgd.sources.models import Guide, Playlist
from epgd.sources.xmltv import parse_guide
from tests.test_fetch import sync_thread

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEAD = 256 * 1024  # bytes of each data file used: bounds the work of one example


def _data_dirs() -> list[str]:
    """tests/data, and ../shared/data beside the clone (CI) or the worktree's checkout."""
    found = [os.path.join(HERE, "data")]
    for shared in (os.path.join(ROOT, "..", "shared", "data"),
                   os.path.join(ROOT, "..", "..", "shared", "data")):
        if os.path.isdir(shared):
            found.append(os.path.normpath(shared))
            break
    return found


@cache
def data_files() -> tuple[str, ...]:
    files = []
    for directory in _data_dirs():
        for base, _, names in os.walk(directory):
            files.extend(os.path.join(base, n) for n in sorted(names))
    return tuple(sorted(files))


@cache
def contents(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # fuzz the text inside, and the gzip framing separately
        data = gzip.decompress(data)
    return data[:HEAD]


@cache
def whole_guides() -> tuple[str, ...]:
    """The real guides that parse whole: truncating one must never look whole."""
    whole = []
    for path in data_files():
        if not path.endswith((".xml", ".xml.gz")):
            continue
        data = contents(path)
        try:
            if len(data) < HEAD and parse_guide(data).whole and data.rstrip().endswith(b"</tv>"):
                whole.append(path)
        except SourceError:
            pass
    return tuple(whole)


FRAGMENTS = [
    b' a="x' * 200, b" a='x" * 200, b"#EXTINF:-1", b"#EXTINF:", b",", b'"', b"'", b"\r", b"\n",
    b"\r\n", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"#EXTM3U", b"=" * 50, b"|User-Agent=x",
    b"<", b"&", b"&a9;", b"]]>", b"<![CDATA[", b"<!--", b"</programme>", b"<programme>",
    b"<title>", b"</tv>", b'<!ENTITY x SYSTEM "file:///etc/passwd">', b"&x;", b"%p;",
    b" " * 5000, b"\xe9", b"\xc3", b"\xf0\x9f\x8f\x92",
]

# An internal subset with a billion laughs, an external entity and a parameter entity.
ENTITY_TRICKS = (
    b'<!DOCTYPE tv [<!ENTITY a0 "lollollol">'
    + b"".join(b'<!ENTITY a%d "%s">' % (i, b"&a%d;" % (i - 1) * 10) for i in range(1, 10))
    + b'<!ENTITY x SYSTEM "file:///etc/passwd"><!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]>'
)


@st.composite
def mutated(draw: Any, files: tuple[str, ...]) -> bytes:
    """A data file, with a few random edits: cut, insert a fragment or random bytes, delete."""
    data = bytearray(contents(draw(st.sampled_from(files))))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["cut", "fragment", "bytes", "delete", "tricks"]))
        if edit == "cut":
            del data[where:]
        elif edit == "fragment":
            data[where:where] = draw(st.sampled_from(FRAGMENTS)) * draw(st.integers(1, 20))
        elif edit == "bytes":
            data[where:where] = draw(st.binary(max_size=64))
        elif edit == "delete":
            del data[where:where + draw(st.integers(1, 200))]
        else:
            declaration = data.find(b"?>")
            at = declaration + 2 if 0 <= declaration < 200 else 0
            data[at:at] = ENTITY_TRICKS
    return bytes(data)


def check_playlist(playlist: Playlist) -> None:
    for channel in playlist.channels:
        assert channel.name and channel.url, channel
        assert not any(c in channel.name + channel.url for c in "\r\n"), channel
    assert playlist.skipped >= 0


def check_guide(guide: Guide) -> None:
    for programme in guide.programmes:
        assert programme.title and programme.channel, programme
        assert programme.start.tzinfo is not None
        assert programme.stop is None or programme.stop >= programme.start
        assert "root:" not in programme.title + programme.desc  # no external entity read
    assert guide.whole == (not guide.flaw())


FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class PlaylistFuzzTests(SynchronousTestCase):
    def parse(self, data: bytes) -> None:
        try:
            playlist = parse_playlist(data, "p")
        except SourceError as e:
            self.assertEqual(len(str(e).splitlines()), 1)
            return
        check_playlist(playlist)

    @FUZZ
    @given(st.binary(max_size=4096))
    def test_random_bytes(self, data: bytes) -> None:
        self.parse(b"#EXTM3U\n" + data)
        self.parse(data)

    @FUZZ
    @given(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join))
    def test_fragments(self, data: bytes) -> None:
        self.parse(b"#EXTM3U\n#EXTINF:-1 " + data + b"\nhttp://h.example/1.ts\n")

    @FUZZ
    @given(st.data())
    def test_every_data_file_mutated(self, data: Any) -> None:
        self.parse(data.draw(mutated(data_files())))


class GuideFuzzTests(SynchronousTestCase):
    def parse(self, data: bytes) -> Guide | None:
        try:
            guide = parse_guide(data)
        except SourceError as e:
            self.assertEqual(len(str(e).splitlines()), 1)
            return None
        check_guide(guide)
        return guide

    @FUZZ
    @given(st.binary(max_size=4096))
    def test_random_bytes(self, data: bytes) -> None:
        self.parse(b'<?xml version="1.0"?><tv>' + data)
        self.parse(data)

    @FUZZ
    @given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join))
    def test_fragments_and_entity_tricks(self, data: bytes) -> None:
        guide = self.parse(b'<?xml version="1.0"?>' + ENTITY_TRICKS + b'<tv><channel id="c"/>'
                           b'<programme channel="c" start="20260101000000 +0000"><title>'
                           + data + b"</title></programme></tv>")
        if guide is not None and b"&" in data:
            self.assertFalse(guide.whole and any("lol" * 100 in p.title for p in guide.programmes))

    @FUZZ
    @given(st.data())
    def test_every_data_file_mutated(self, data: Any) -> None:
        self.parse(data.draw(mutated(data_files())))

    @FUZZ
    @given(st.data())
    def test_a_truncated_guide_is_never_whole(self, data: Any) -> None:
        guides = whole_guides()
        self.assertTrue(guides, "tests/data holds whole guides")
        whole = contents(data.draw(st.sampled_from(guides)))
        end = whole.rstrip().rindex(b"</tv>") + len(b"</tv>")
        cut = whole[: data.draw(st.integers(0, end - 1))]
        guide = self.parse(cut)
        if guide is not None:
            self.assertFalse(guide.whole, f"cut at {len(cut)} of {len(whole)}")
        gzipped = gzip.compress(whole)
        guide = self.parse(gzipped[: data.draw(st.integers(10, len(gzipped) - 1))])
        if guide is not None:
            self.assertFalse(guide.whole)


class CutShortIsNeverOkTests(SynchronousTestCase):
    """Through the feed: a guide cut anywhere leaves /health's error set."""

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(st.data())
    def test_cut_guide(self, data: Any) -> None:
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        guide_path = os.path.join(base, "guide.xml")
        playlist_path = os.path.join(base, "playlist.m3u")
        with open(playlist_path, "wb") as f:
            f.write(b"#EXTM3U\n#EXTINF:-1 tvg-id=\"x\",X\nhttp://h.example/x.ts\n")
        whole = contents(data.draw(st.sampled_from(whole_guides())))
        end = whole.rstrip().rindex(b"</tv>") + len(b"</tv>")
        with open(guide_path, "wb") as f:
            f.write(whole[: data.draw(st.integers(0, end - 1))])
        reactor = MemoryReactorClock()
        reactor.advance(dt.datetime(2026, 11, 24, tzinfo=dt.UTC).timestamp())
        feed = ProviderFeed(reactor, ProviderConfig(name="m", playlist=playlist_path,
                                                    guide=guide_path),
                            "epgd-test", os.path.join(base, "state"), Redactor(),
                            run_in_thread=sync_thread)
        self.addCleanup(feed.close)
        result = feed.refresh()
        result.addErrback(lambda f: f.trap(SourceError))
        self.successResultOf(result)
        self.assertIsNotNone(feed.error)
