"""Tests for epgd.publish.m3u: the playlist players load (SPEC §6.1)."""

from __future__ import annotations

import datetime as _dt

from twisted.trial.unittest import SynchronousTestCase

from epgd.publish.m3u import hls_urls, render_playlist
from epgd.schedule.model import Channel, Event, Schedule, Source

UTC = _dt.UTC
T0 = _dt.datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def _channels(lineup: str, name: str, count: int, logo: str = "", first: int = 1,
              group: str = "") -> tuple[Channel, ...]:
    return tuple(
        Channel(id=f"{lineup}_{i}", name=f"{name} {i}", number=first + i - 1,
                lineup=lineup, group=group or name, logo=logo)
        for i in range(1, count + 1)
    )


class PlaylistTests(SynchronousTestCase):
    def test_spec_example(self) -> None:
        """The header and one entry read exactly as SPEC §6.1 shows."""
        schedule = Schedule(T0, _channels("nhl_ppv", "NHL PPV", 1, logo="http://l/x.png"))
        text = render_playlist(schedule, "http://HOST").decode("utf-8")
        self.assertEqual(
            text,
            '#EXTM3U x-tvg-url="http://HOST/epg.xml" url-tvg="http://HOST/epg.xml"\n'
            '#EXTINF:-1 tvg-id="nhl_ppv_1" tvg-name="NHL PPV 1" tvg-chno="1" '
            'tvg-logo="http://l/x.png" group-title="NHL PPV",NHL PPV 1\n'
            "http://HOST/stream/nhl_ppv_1.ts\n",
        )

    def test_every_channel_whatever_is_on(self) -> None:
        """Empty channels are listed too, in lineup order, numbered from first_number."""
        event = Event(key="k", lineup="a", title="Game", start=T0,
                      stop=T0 + _dt.timedelta(hours=3),
                      sources=(Source("main", "A 1", "http://p/1.ts"),))
        chans = list(_channels("a", "A", 3, first=101))
        chans[1] = Channel(id="a_2", name="A 2", number=102, lineup="a", group="A",
                           events=(event,))
        schedule = Schedule(T0, tuple(chans) + _channels("b", "B", 2))
        lines = render_playlist(schedule, "http://h:8080/").decode().splitlines()
        self.assertEqual(len(lines), 1 + 2 * 5)
        self.assertEqual(
            [line for line in lines if line.startswith("http")],
            [f"http://h:8080/stream/{c}.ts" for c in ("a_1", "a_2", "a_3", "b_1", "b_2")],
        )
        self.assertIn('tvg-chno="103"', lines[5])

    def test_no_logo_attribute_without_logo(self) -> None:
        text = render_playlist(Schedule(T0, _channels("a", "A", 1)), "http://h").decode()
        self.assertNotIn("tvg-logo", text)

    def test_quotes_and_line_breaks_never_reach_attributes(self) -> None:
        """A lineup name with quotes or newlines cannot break the #EXTINF line apart."""
        chan = Channel(id="a_1", name='The "Big"\nGame 1', number=1, lineup="a",
                       group='Spo"rts\r\nX', logo='http://l/"a".png')
        lines = render_playlist(Schedule(T0, (chan,)), "http://h").decode().split("\n")
        self.assertEqual(lines[2], "http://h/stream/a_1.ts")
        extinf = lines[1]
        attrs, _, name = extinf.partition('",')
        self.assertEqual((attrs + '"').count('"'), 2 * 5)
        self.assertIn("tvg-name=\"The 'Big' Game 1\"", extinf)
        self.assertIn("group-title=\"Spo'rts X\"", extinf)
        self.assertEqual(name, 'The "Big" Game 1')


class HlsPlaylistTests(SynchronousTestCase):
    def test_same_playlist_with_hls_urls(self) -> None:
        """SPEC §16: /playlist.m3u?output=m3u8 is §6.1's playlist with /stream/{id}.m3u8 URLs."""
        schedule = Schedule(T0, _channels("nhl_ppv", "NHL .ts PPV", 2))
        plain = render_playlist(schedule, "http://HOST")
        hls = hls_urls(plain).decode("utf-8")
        for before, after in zip(plain.decode("utf-8").splitlines(), hls.splitlines(), strict=True):
            if before.startswith("http://HOST/stream/"):
                self.assertEqual(after, before.removesuffix(".ts") + ".m3u8")
            else:
                self.assertEqual(after, before)
        self.assertIn("http://HOST/stream/nhl_ppv_2.m3u8\n", hls)
        self.assertIn('tvg-name="NHL .ts PPV 1"', hls)  # only URL lines change
        self.assertNotIn("/stream/nhl_ppv_1.ts", hls)
