"""Tests for epgd.sources.xmltv: real guides, times, tolerance and hostile input."""

from __future__ import annotations

import datetime as dt
import gc
import gzip
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.sources import SourceError
from epgd.sources.models import GuideChannel, Programme
from epgd.sources.xmltv import DROP_EVERY, parse_guide, parse_xmltv_time

DATA = os.path.join(os.path.dirname(__file__), "data", "xmltv")
UTC = dt.UTC


def fixture(name: str) -> str:
    return os.path.join(DATA, name)


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def guide(body: str, header: str = '<?xml version="1.0" encoding="UTF-8"?>\n') -> bytes:
    return (header + "<tv>\n" + body + "\n</tv>\n").encode("utf-8")


class TimeTests(SynchronousTestCase):
    def test_formats(self) -> None:
        cases = {
            "20261124190000 -0500": at(2026, 11, 25, 0, 0),
            "20261124190000 +0000": at(2026, 11, 24, 19, 0),
            "20261124190000": at(2026, 11, 24, 19, 0),  # no zone: UTC
            "202611241900": at(2026, 11, 24, 19, 0),  # 12 digits, no seconds
            "202611241900 +0100": at(2026, 11, 24, 18, 0),
            "20010829000500 BST": at(2001, 8, 28, 23, 5),
            "20261124190000 EST": at(2026, 11, 25, 0, 0),
            "20261124190000 gmt": at(2026, 11, 24, 19, 0),
            "20261124190000 +05:30": at(2026, 11, 24, 13, 30),
            "  20261124190000   +0100  ": at(2026, 11, 24, 18, 0),
            "20261124": at(2026, 11, 24, 0, 0),
            "20260503084250 -0300": at(2026, 5, 3, 11, 42, 50),
        }
        for text, expected in cases.items():
            self.assertEqual(parse_xmltv_time(text), expected, text)
            self.assertEqual(parse_xmltv_time(text).utcoffset(), dt.timedelta(0))

    def test_offset_is_added(self) -> None:
        self.assertEqual(parse_xmltv_time("20261124190000 +0000", offset=-3600), at(2026, 11, 24, 18))

    def test_rejects(self) -> None:
        for text in ("", "tomorrow", "2026112419000", "20261324190000 +0000",
                     "20261124190000 XYZ", "20261124190000 +01"):
            self.assertRaises(ValueError, parse_xmltv_time, text)

    @settings(max_examples=300, deadline=None)
    @given(
        moment=st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 12, 31)),
        zone=st.integers(min_value=-14 * 60, max_value=14 * 60),
        seconds=st.booleans(),
        colon=st.booleans(),
    )
    def test_any_offset_round_trips(self, moment: dt.datetime, zone: int, seconds: bool,
                                    colon: bool) -> None:
        """Whatever zone a guide writes times in, the parsed instant is the same."""
        moment = moment.replace(microsecond=0, second=moment.second if seconds else 0)
        instant = moment.replace(tzinfo=UTC)
        local = instant.astimezone(dt.timezone(dt.timedelta(minutes=zone)))
        sign = "-" if zone < 0 else "+"
        hh, mm = divmod(abs(zone), 60)
        stamp = local.strftime("%Y%m%d%H%M%S" if seconds else "%Y%m%d%H%M")
        text = f"{stamp} {sign}{hh:02d}{':' if colon else ''}{mm:02d}"
        self.assertEqual(parse_xmltv_time(text), instant)


class RealGuideTests(SynchronousTestCase):
    def test_prefers_english_titles(self) -> None:
        parsed = parse_guide(fixture("MultilanguageData.xml"))
        self.assertEqual([p.title for p in parsed.programmes],
                         ["Homes Under the Hammer - English"] * 2)
        first = parsed.programmes[0]
        self.assertEqual(first.categories, ("Property - English", "Property - Empty Language",
                                            "Property - No Language"))
        self.assertEqual(first.episode_nums, (("xmltv_ns", "18.50/30."),))
        self.assertEqual((first.start, first.stop), (at(2015, 11, 26, 10), at(2015, 11, 26, 11)))

    def test_bom_and_display_names(self) -> None:
        parsed = parse_guide(fixture("schedulesdirect.xml"))
        self.assertEqual(parsed.channels[0].display_names,
                         ("CFTO", "CTV Toronto", "201 CFTO", "201", "CTV"))
        self.assertEqual(parsed.channels[0].icon, "s10108_dark_360w_270h.png")
        custom = parse_guide(fixture("custom.xml")).programmes[0]
        self.assertEqual((custom.title, custom.sub_title), ("Unforgettable", "Trajectories"))
        self.assertEqual(custom.episode_nums, (("dd_progid", "EP01419807.0010"), ("xmltv_ns", "0.9.0/1")))

    def test_no_declaration_single_quotes_and_offset(self) -> None:
        parsed = parse_guide(fixture("makrodigitaltelevision.com.content.xml"))
        self.assertEqual(len(parsed.programmes), 66)
        first = parsed.programmes[0]
        self.assertEqual(first.title, "Programación Infantil")
        self.assertEqual(first.start, at(2025, 2, 16, 13))  # 08:00 -0500

    def test_comments_and_odd_seconds(self) -> None:
        parsed = parse_guide(fixture("x1co.com.br.content.xml"))
        self.assertEqual(len(parsed.programmes), 91)
        self.assertEqual(parsed.programmes[0].start, at(2026, 5, 3, 11, 42, 50))
        self.assertEqual(parsed.programmes[0].desc, "Bob Esponja — T5 Ep37")

    def test_custom_elements_and_many_episode_systems(self) -> None:
        parsed = parse_guide(fixture("nzxmltv.com.content.xml"))
        self.assertEqual(parsed.channels[0].display_names, ("TVNZ 1",))
        first = parsed.programmes[0]
        self.assertEqual(len(first.episode_nums), 9)
        self.assertIn(("xmltv_ns", "2022.36.0"), first.episode_nums)
        self.assertEqual(first.icon, "https://www.thetvdb.com/banners/posters/5dbebff2986f2.jpg")

    def test_event_guide_with_wanted_filter(self) -> None:
        """Only the channels asked for (by their <channel> element) and their programmes."""
        wanted_id = "c4d67645c49d16e6a6fba22712cc3449"
        asked: list[GuideChannel] = []

        def wanted(channel: GuideChannel) -> bool:
            asked.append(channel)
            return any("Anaheim Ducks" in n for n in channel.display_names) or channel.id == wanted_id

        parsed = parse_guide(fixture("daddylive-excerpt.xml"), wanted=wanted)
        self.assertEqual(len(asked), 4)
        self.assertEqual({c.id for c in parsed.channels},
                         {wanted_id, "7addd226ace0e1bd8e75844b40b3e922"})
        self.assertEqual(sorted(p.title for p in parsed.programmes), [
            "NHL : Anaheim Ducks vs Florida Panthers - 06:00 PM EST - (01/19/2025)",
            "Super Smash Women : Northern Brave W vs Canterbury Magicians W - 06:30 PM EST - (01/19/2025)",
        ])
        self.assertEqual(len(parse_guide(fixture("daddylive-excerpt.xml")).programmes), 4)


class ToleranceTests(SynchronousTestCase):
    def test_iso_8859_1(self) -> None:
        data = (b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<tv><programme start="20011211180000"'
                b' channel="bbc1"><title>\xa3 Caf\xe9</title></programme></tv>')
        self.assertEqual(parse_guide(data).programmes[0].title, "£ Café")

    def test_cdata_non_ascii_and_whitespace(self) -> None:
        data = guide('<programme start="20260101000000 +0000" channel="c">'
                     '<title>  <![CDATA[Tom & Jerry <live>]]>  </title>'
                     '<desc><![CDATA[Ünïcödé — 中文]]></desc></programme>')
        programme = parse_guide(data).programmes[0]
        self.assertEqual(programme.title, "Tom & Jerry <live>")
        self.assertEqual(programme.desc, "Ünïcödé — 中文")

    def test_any_element_order_and_unknown_elements(self) -> None:
        data = guide(
            '<programme channel="c" start="20260101000000 +0000">'
            '<x-rating>9</x-rating><desc>D</desc><category>Sports</category><title>T</title>'
            '<credits><actor>A</actor></credits><icon src="http://i.example/x.png"/></programme>'
            '<x-unknown><programme-like/></x-unknown>'
            '<channel id="c"><display-name>C</display-name></channel>'
        )
        parsed = parse_guide(data)
        programme = parsed.programmes[0]
        self.assertEqual((programme.title, programme.desc, programme.categories, programme.icon),
                         ("T", "D", ("Sports",), "http://i.example/x.png"))
        self.assertEqual(parsed.channels, (GuideChannel(id="c", display_names=("C",)),))

    def test_every_field_of_a_full_programme(self) -> None:
        data = guide(
            '<programme start="20260101200000 +0100" stop="20260101213000 +0100" channel=" c1 ">'
            '<title lang="en">  The\n  Match </title><sub-title>Final,\tsecond   leg</sub-title>'
            '<desc>  Both teams at full strength.\n </desc><category>Sports</category>'
            '<icon src=" http://i.example/m.png "/><icon src="http://i.example/other.png"/>'
            '<episode-num>S01E02</episode-num></programme>'
        )
        self.assertEqual(parse_guide(data).programmes[0], Programme(
            channel="c1", start=at(2026, 1, 1, 19), stop=at(2026, 1, 1, 20, 30),
            title="The Match", sub_title="Final, second leg",
            desc="Both teams at full strength.", categories=("Sports",),
            icon="http://i.example/m.png", episode_nums=(("onscreen", "S01E02"),),
        ))

    def test_english_chosen_per_kind_and_empty_ones_passed_over(self) -> None:
        data = guide(
            '<programme channel="c" start="20260101000000"><title lang="de"> </title>'
            '<title lang="fr">Le titre</title><sub-title lang="de">Teil</sub-title>'
            '<sub-title lang="en-GB">Part</sub-title><desc lang="de">Text</desc>'
            '<category lang="de">Sport</category><category lang="en">Sports</category>'
            '<category>Live</category><category lang="en">Sports</category>'
            '<episode-num system="xmltv_ns">0.1.</episode-num><episode-num> </episode-num>'
            '<episode-num system=" dd_progid ">EP1</episode-num></programme>'
        )
        programme = parse_guide(data).programmes[0]
        self.assertEqual((programme.title, programme.sub_title, programme.desc),
                         ("Le titre", "Part", "Text"))
        self.assertEqual(programme.categories, ("Sports", "Live"))
        self.assertEqual(programme.episode_nums, (("xmltv_ns", "0.1."), ("dd_progid", "EP1")))

    def test_repeated_values_are_equal_whatever_their_spacing(self) -> None:
        """Values are shared between programmes; sharing never mixes up different ones."""
        data = guide("".join(
            f'<programme channel="c" start="2026010100{i:02d}00"><title>{title}</title>'
            f'<category>{category}</category><episode-num system="{system}">{number}</episode-num>'
            f'<icon src="{icon}"/></programme>'
            for i, (title, category, system, number, icon) in enumerate([
                ("News", "Talk", "onscreen", "E1", "a.png"),
                (" News ", " Talk", "", "E1 ", "a.png "),
                ("News at  Ten", "Talk show", "xmltv_ns", "E1", "b.png"),
                ("News", "", "onscreen", " ", ""),
            ])))
        got = [(p.title, p.categories, p.episode_nums, p.icon) for p in parse_guide(data).programmes]
        self.assertEqual(got, [
            ("News", ("Talk",), (("onscreen", "E1"),), "a.png"),
            ("News", ("Talk",), (("onscreen", "E1"),), "a.png"),
            ("News at Ten", ("Talk show",), (("xmltv_ns", "E1"),), "b.png"),
            ("News", (), (), ""),
        ])

    def test_text_around_entity_references_is_kept(self) -> None:
        data = (
            b'<?xml version="1.0"?>\n<!DOCTYPE tv [<!ENTITY x SYSTEM "file:///etc/hostname">]>\n'
            b'<tv><programme channel="a" start="20260101000000"><title>Tom &x;and&x; Jerry</title>'
            b'<desc>Before&x; after</desc><category>A&x;B</category></programme></tv>'
        )
        programme = parse_guide(data).programmes[0]
        self.assertEqual((programme.title, programme.desc, programme.categories),
                         ("Tom and Jerry", "Before after", ("AB",)))

    def test_many_programmes_and_unknown_elements_between_them(self) -> None:
        """The tree is pruned as it grows; nothing read before a pruning is lost or changed."""
        count = DROP_EVERY * 2 + 7
        data = guide('<channel id="c"><display-name>C</display-name></channel>' + "".join(
            f'<programme channel="c" start="{at(2026, 1, 1) + dt.timedelta(minutes=i):%Y%m%d%H%M}">'
            f'<title>P{i}</title>'
            f'</programme><x-note>{i}</x-note>'
            for i in range(count)))
        parsed = parse_guide(data)
        self.assertEqual([p.title for p in parsed.programmes], [f"P{i}" for i in range(count)])
        self.assertEqual((parsed.skipped, parsed.cut_short), (0, ""))

    def test_collector_is_back_on_after_a_parse(self) -> None:
        """The cyclic collector is paused only while a guide is read, even one that fails."""
        self.addCleanup(gc.enable)
        gc.enable()
        parse_guide(guide('<programme channel="a" start="20260101000000"><title>T</title></programme>'))
        self.assertTrue(gc.isenabled())
        self.assertRaises(SourceError, parse_guide, b"<html>502</html>")
        self.assertTrue(gc.isenabled())
        gc.disable()
        parse_guide(guide('<programme channel="a" start="20260101000000"><title>T</title></programme>'))
        self.assertFalse(gc.isenabled())  # left as it was found

    def test_missing_stop_is_next_start(self) -> None:
        data = guide(
            '<programme channel="a" start="20260101020000"><title>Third</title></programme>'
            '<programme channel="a" start="20260101000000"><title>First</title></programme>'
            '<programme channel="b" start="20260101010000"><title>Other</title></programme>'
            '<programme channel="a" start="20260101010000" stop="20260101013000"><title>Second</title></programme>'
        )
        stops = {p.title: p.stop for p in parse_guide(data).programmes}
        self.assertEqual(stops, {"First": at(2026, 1, 1, 1), "Second": at(2026, 1, 1, 1, 30),
                                 "Third": None, "Other": None})

    def test_malformed_programmes_are_skipped_and_counted(self) -> None:
        data = guide(
            '<programme channel="a" start="20260101000000"><title>Good</title></programme>'
            '<programme channel="a"><title>No start</title></programme>'
            '<programme channel="a" start="yesterday"><title>Bad start</title></programme>'
            '<programme start="20260101000000"><title>No channel</title></programme>'
            '<programme channel="a" start="20260101010000"><desc>No title</desc></programme>'
            '<programme channel="a" start="20260101020000" stop="garbage"><title>Bad stop</title></programme>'
        )
        parsed = parse_guide(data)
        self.assertEqual([p.title for p in parsed.programmes], ["Good", "Bad stop"])
        self.assertEqual(parsed.skipped, 4)
        self.assertIsNone(parsed.programmes[1].stop)

    def test_offset(self) -> None:
        data = guide('<programme channel="a" start="20260101000000 +0000" stop="20260101010000 +0000">'
                     '<title>T</title></programme>')
        programme = parse_guide(data, offset=7200).programmes[0]
        self.assertEqual((programme.start, programme.stop), (at(2026, 1, 1, 2), at(2026, 1, 1, 3)))

    def test_truncated_file_keeps_what_came_before(self) -> None:
        body = "".join(
            f'<programme channel="a" start="202601010{i}0000"><title>P{i}</title></programme>\n'
            for i in range(6)
        )
        data = guide(body)
        cut = data[: data.index(b"P4") + 1]
        parsed = parse_guide(cut)
        titles = [p.title for p in parsed.programmes]
        self.assertEqual(titles[:4], ["P0", "P1", "P2", "P3"])
        self.assertLessEqual(len(titles), 5)
        self.assertEqual(parsed.cut_short, "the data ends before </tv>")
        gz = gzip.compress(data)
        parsed = parse_guide(gz[: len(gz) * 2 // 3])
        titles = [p.title for p in parsed.programmes]
        self.assertGreaterEqual(len(titles), 1)
        self.assertEqual(titles, [f"P{i}" for i in range(len(titles))])
        self.assertIn("end-of-stream", parsed.cut_short)

    def test_cut_short_told_from_whole_at_every_cut(self) -> None:
        """The recovering parser closes a cut document itself: only the tail tells."""
        data = guide("".join(
            f'<programme channel="a" start="202601010{i}0000"><title>P{i}</title></programme>\n'
            for i in range(3))) + b"\n<!-- generated by a grabber -->\n"
        self.assertEqual(parse_guide(data).cut_short, "")
        path = self.mktemp()
        end = data.rindex(b"</tv>")
        for cut in range(40, end + 4):
            with open(path, "wb") as f:
                f.write(data[:cut])
            for source in (data[:cut], path):
                try:
                    parsed = parse_guide(source)
                except SourceError:
                    continue  # too little to be XMLTV at all
                self.assertNotEqual(parsed.cut_short, "", (cut, source is path))
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(parse_guide(path).cut_short, "")

    def test_gzip_bytes_and_file(self) -> None:
        data = gzip.compress(guide('<programme channel="a" start="20260101000000"><title>Z</title></programme>'))
        self.assertEqual(parse_guide(data).programmes[0].title, "Z")
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(parse_guide(path).programmes[0].title, "Z")

    def test_programmes_before_their_channel(self) -> None:
        """Elements in any order: a channel wanted by display-name still gets its programmes."""
        data = guide(
            '<programme channel="x1" start="20260101000000"><title>Early</title></programme>'
            '<programme channel="x2" start="20260101000000"><title>Unwanted</title></programme>'
            '<programme channel="byid" start="20260101000000"><title>Undeclared</title></programme>'
            '<channel id="x1"><display-name>NHL 07</display-name></channel>'
            '<channel id="x2"><display-name>Cooking</display-name></channel>'
        )
        parsed = parse_guide(data, wanted=lambda c: "NHL 07" in c.display_names or c.id == "byid")
        self.assertEqual(sorted(p.title for p in parsed.programmes), ["Early", "Undeclared"])
        self.assertEqual([c.id for c in parsed.channels], ["x1"])


class HostileInputTests(SynchronousTestCase):
    def assertRejected(self, data: bytes, message: str) -> None:
        error = self.assertRaises(SourceError, parse_guide, data)
        self.assertEqual(str(error), message)

    def test_html_instead_of_xml(self) -> None:
        self.assertRejected(b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head></html>",
                            "guide is not XMLTV: got an HTML page")

    def test_empty_and_json(self) -> None:
        self.assertRejected(b"", "guide is empty")
        self.assertRejected(b"\xef\xbb\xbf  \n", "guide is empty")
        self.assertRejected(b'{"error": "invalid credentials"}', "guide is not XMLTV: got a JSON response")
        self.assertRejected(b"Access denied", "guide is not XMLTV: the data is not XML")

    def test_other_xml_root(self) -> None:
        self.assertRejected(b'<?xml version="1.0"?><rss><channel id="a"/></rss>',
                            "guide is not XMLTV: the root element is <rss>, not <tv>")

    def test_external_entities_are_not_expanded(self) -> None:
        secret = self.mktemp()
        with open(secret, "w") as f:
            f.write("TOP-SECRET-CONTENT")
        data = (
            f'<?xml version="1.0"?>\n<!DOCTYPE tv [\n'
            f'  <!ENTITY x SYSTEM "file://{os.path.abspath(secret)}">\n'
            f'  <!ENTITY p SYSTEM "file:///etc/passwd">\n]>\n'
            '<tv><channel id="a"><display-name>A&x;</display-name></channel>'
            '<programme channel="a" start="20260101000000"><title>T&p;&x;</title>'
            '<desc>&x;</desc></programme></tv>'
        ).encode()
        parsed = parse_guide(data)
        everything = repr(parsed)
        self.assertNotIn("TOP-SECRET", everything)
        self.assertNotIn("root:", everything)
        self.assertEqual(parsed.programmes[0].title, "T")
        self.assertEqual(parsed.channels[0].display_names, ("A",))

    def test_remote_dtd_is_not_fetched(self) -> None:
        """A DOCTYPE pointing at a (here unreachable) remote DTD parses without touching it."""
        data = (b'<?xml version="1.0"?><!DOCTYPE tv SYSTEM "http://127.0.0.1:9/xmltv.dtd">'
                b'<tv><programme channel="a" start="20260101000000"><title>T</title></programme></tv>')
        self.assertEqual(parse_guide(data).programmes[0].title, "T")
