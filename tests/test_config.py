"""
Tests for epgd.config: the defaults of SPEC §3 and the one-line error for every mistake.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import re
import tomllib
from typing import Any

from attrs import fields
from twisted.trial.unittest import SynchronousTestCase

from epgd.config import (
    Config,
    ConfigError,
    EventConfig,
    check_listen,
    load_config,
    parse_config,
)

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(HERE), "epgd.example.toml")
# The TOML block of SPEC.md §3, verbatim: the contract's own statement of every key and default.
SPEC_BLOCK = os.path.join(HERE, "data", "spec_config.toml")
# Keys whose value in SPEC §3 is an example, not a default (they are required or vary).
SPEC_EXAMPLE_VALUES = {"provider": {"name", "playlist", "guide"}, "lineup": {"id", "name"},
                       "user": {"name", "password"}}

MINIMAL: dict[str, Any] = {
    "provider": [{"name": "main", "playlist": "http://p.example/get.php?username=alice&password=s3cret"}],
    "lineup": [{"id": "nhl_ppv"}],
}


def config_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    data.update(copy.deepcopy(changes))
    return data


class DefaultsTests(SynchronousTestCase):
    """A minimal file gets every default SPEC §3 promises."""

    def setUp(self) -> None:
        self.config = parse_config(config_with(), "epgd.toml")

    def test_server(self) -> None:
        server = self.config.server
        self.assertEqual(server.listen, ("tcp:8080",))
        self.assertEqual((server.base_url, server.admin_token), ("", ""))
        self.assertEqual(server.state_dir, "./state")
        self.assertEqual(server.max_clients, 500)

    def test_stream(self) -> None:
        s = self.config.stream
        self.assertEqual(
            (s.check_interval, s.idle_timeout, s.chunk_size, s.connect_timeout),
            (5, 300, 8192, 10),
        )
        self.assertEqual((s.client_buffer, s.hold_after_end, s.reconnect_attempts), (8388608, 3600, 5))
        self.assertEqual(
            s.user_agent, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
        )
        self.assertEqual((s.output, s.on_codec_change), ("continuous", "continue"))
        self.assertEqual((s.slate, s.slate_size), (True, "1280x720"))
        self.assertEqual((s.hls_segment, s.hls_window), (4, 6))

    def test_hdhr(self) -> None:
        h = self.config.hdhr
        self.assertEqual((h.enabled, h.friendly_name, h.tuner_count, h.device_id), (True, "epgd", 0, ""))
        self.assertEqual((h.discovery, h.discovery_port), (False, 65001))

    def test_guide(self) -> None:
        g = self.config.guide
        self.assertEqual((g.days, g.filler, g.timezone), (7, True, "UTC"))

    def test_provider(self) -> None:
        (p,) = self.config.providers
        self.assertEqual(p.name, "main")
        self.assertEqual(p.guide, "")
        self.assertEqual((p.refresh_interval, p.max_streams, p.guide_offset), (21600, 0, 0))
        self.assertEqual((p.fetch_timeout, p.max_guide_bytes, p.hls_variant), (3600, 2147483648, "best"))
        self.assertEqual(dict(p.headers), {})

    def test_lineup(self) -> None:
        (lineup,) = self.config.lineups
        self.assertEqual(lineup.display_name, "nhl_ppv")
        self.assertEqual(lineup.group_title, "nhl_ppv")
        self.assertEqual(lineup.channel_ids(), ["nhl_ppv_1", "nhl_ppv_2", "nhl_ppv_3", "nhl_ppv_4"])
        self.assertEqual((lineup.first_number, lineup.logo, lineup.providers), (1, "", ()))
        for pattern in ("match_group", "match_name", "match_title", "exclude_title", "name_pattern"):
            self.assertEqual(getattr(lineup, pattern), "")
        self.assertEqual(lineup.name_time_formats, ("%I:%M %p", "%I:%M%p", "%H:%M"))
        self.assertEqual((lineup.default_duration, lineup.pre_padding, lineup.post_padding), (10800, 0, 0))
        self.assertEqual(self.config.events, ())

    def test_name_and_group(self) -> None:
        config = parse_config(config_with(lineup=[{"id": "nhl_ppv", "name": "NHL PPV"}]), "f.toml")
        self.assertEqual(config.lineups[0].channel_name(2), "NHL PPV 2")
        self.assertEqual(config.lineups[0].group_title, "NHL PPV")

    def test_path_remembered(self) -> None:
        self.assertEqual(self.config.path, "epgd.toml")

    def test_defaults_equal_spec_block(self) -> None:
        """
        Every value SPEC §3 shows as a default (all but its example names and URLs) is what
        an omitted key gets, so the code cannot drift from the contract.
        """
        spec = load_config(SPEC_BLOCK)
        self.assertEqual(spec.server, self.config.server)
        self.assertEqual(spec.stream, self.config.stream)
        self.assertEqual(spec.guide, self.config.guide)
        self.assertEqual(spec.hdhr, self.config.hdhr)
        user = parse_config(config_with(user=[{"name": "alice", "password": "pw"}]), "f").users[0]
        for kind, ours, theirs in (("provider", self.config.providers[0], spec.providers[0]),
                                   ("lineup", self.config.lineups[0], spec.lineups[0]),
                                   ("user", user, spec.users[0])):
            for attribute in fields(type(ours)):
                if attribute.name not in SPEC_EXAMPLE_VALUES[kind]:
                    self.assertEqual(getattr(ours, attribute.name), getattr(theirs, attribute.name),
                                     f"{kind}.{attribute.name}")
        (event,) = spec.events
        assert event.stop is not None
        self.assertEqual(event.stop - event.start, _dt.timedelta(hours=3))


class ValuesTests(SynchronousTestCase):
    """Accepted forms of values."""

    def test_listen_string_or_list(self) -> None:
        one = parse_config(config_with(server={"listen": "tcp:9090"}), "f")
        self.assertEqual(one.server.listen, ("tcp:9090",))
        many = parse_config(
            config_with(server={"listen": ["tcp:9090:interface=127.0.0.1", "systemd:domain=INET:index=0"]}),
            "f",
        )
        self.assertEqual(many.server.listen, ("tcp:9090:interface=127.0.0.1", "systemd:domain=INET:index=0"))

    def test_durations_int_or_float(self) -> None:
        config = parse_config(config_with(stream={"check_interval": 2.5, "idle_timeout": 60}), "f")
        self.assertEqual((config.stream.check_interval, config.stream.idle_timeout), (2.5, 60.0))

    def test_negative_guide_offset(self) -> None:
        data = config_with()
        data["provider"][0]["guide_offset"] = -3600
        self.assertEqual(parse_config(data, "f").providers[0].guide_offset, -3600)

    def test_first_number_runs_on_from_the_previous_lineup(self) -> None:
        config = parse_config(config_with(lineup=[
            {"id": "a", "channels": 4}, {"id": "b", "channels": 2},
            {"id": "c", "channels": 3, "first_number": 101}, {"id": "d", "channels": 1},
        ]), "f")
        self.assertEqual([(lineup.first_number, lineup.channel_number(lineup.channels))
                          for lineup in config.lineups], [(1, 4), (5, 6), (101, 103), (104, 104)])

    def test_hdhr_device_id_is_upper_case(self) -> None:
        config = parse_config(config_with(hdhr={"device_id": " 10439efd "}), "f")
        self.assertEqual(config.hdhr.device_id, "10439EFD")

    def test_headers(self) -> None:
        data = config_with()
        data["provider"][0]["headers"] = {"Referer": "http://x/", "X-Forwarded-For": "1.2.3.4"}
        self.assertEqual(dict(parse_config(data, "f").providers[0].headers)["Referer"], "http://x/")

    def test_event_stop_defaults_to_default_duration(self) -> None:
        start = _dt.datetime(2026, 11, 24, 19, tzinfo=_dt.timezone(_dt.timedelta(hours=-5)))
        data = config_with(event=[{"lineup": "nhl_ppv", "title": "Game", "start": start, "url": "http://x/1.ts"}])
        data["lineup"][0]["default_duration"] = 7200
        (event,) = parse_config(data, "f").events
        self.assertEqual(event, EventConfig(lineup="nhl_ppv", title="Game", start=start,
                                            stop=start + _dt.timedelta(hours=2), url="http://x/1.ts"))

    def test_event_from_provider_channel(self) -> None:
        start = _dt.datetime(2026, 11, 24, 19, tzinfo=_dt.UTC)
        data = config_with(event=[{"lineup": "nhl_ppv", "title": "G", "start": start,
                                   "provider": "main", "channel": "NHL 07"}])
        (event,) = parse_config(data, "f").events
        self.assertEqual((event.provider, event.channel, event.url), ("main", "NHL 07", ""))

    def test_example_file_has_every_spec_key_with_a_comment(self) -> None:
        """
        epgd.example.toml shows each key of SPEC §3 in its section, under a comment; where its
        value is not the default, that comment names the default.
        """
        with open(SPEC_BLOCK, "rb") as f:
            spec = tomllib.load(f)
        with open(EXAMPLE, "rb") as f:
            example = tomllib.load(f)
        documented = example_keys()
        for section, value in spec.items():
            spec_tables = value if isinstance(value, list) else [value]
            example_tables = example[section] if isinstance(example[section], list) else [example[section]]
            shown = {k: v for table in reversed(example_tables) for k, v in table.items()}
            for table in spec_tables:
                for key, default in table.items():
                    self.assertIn(key, shown, f"[{section}] {key} is missing from the example")
                    comment = documented.get((section, key), "")
                    self.assertTrue(comment, f"[{section}] {key} has no comment in the example")
                    if shown[key] != default and key not in SPEC_EXAMPLE_VALUES.get(section, ()):
                        if section in ("server", "stream", "guide"):
                            self.fail(f"[{section}] {key} = {shown[key]!r} in the example, default {default!r}")
                        if section != "event":
                            self.assertIn("default", comment.lower(), f"[{section}] {key}: {comment}")

    def test_example_file_loads_with_every_key(self) -> None:
        config = load_config(EXAMPLE)
        self.assertIsInstance(config, Config)
        self.assertEqual(config.path, EXAMPLE)
        self.assertEqual(len(config.events), 2)
        self.assertEqual(config.lineups[0].channel_ids()[-1], "nhl_ppv_4")
        with open(EXAMPLE, encoding="utf-8") as f:
            text = f.read()
        for key in ("listen", "base_url", "admin_token", "state_dir", "max_clients", "check_interval",
                    "idle_timeout", "chunk_size", "user_agent", "connect_timeout", "client_buffer",
                    "hold_after_end", "reconnect_attempts", "days", "filler", "timezone", "name",
                    "playlist", "guide", "refresh_interval", "max_streams", "headers", "guide_offset",
                    "id", "channels", "first_number", "group", "logo", "providers", "match_group",
                    "match_name", "match_title", "exclude_title", "name_pattern", "name_time_formats",
                    "default_duration", "pre_padding", "post_padding", "lineup", "title", "start",
                    "stop", "url", "provider", "channel", "output", "on_codec_change", "enabled",
                    "friendly_name", "tuner_count", "device_id", "discovery", "discovery_port",
                    "fetch_timeout", "max_guide_bytes", "hls_variant", "slate", "slate_size",
                    "open_networks", "password", "max_connections", "lineups", "hls_segment", "hls_window"):
            self.assertIn(f"\n{key} = ", text)


def example_keys() -> dict[tuple[str, str], str]:
    """(section, key) -> the comment lines just above its first line in epgd.example.toml."""
    found: dict[tuple[str, str], str] = {}
    section, comment = "", ""
    with open(EXAMPLE, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("#"):
                comment += line + " "
                continue
            header = re.fullmatch(r"\[\[?([a-z_]+)\]\]?", line)
            if header:
                section = header.group(1)
            key = re.match(r"([a-z_]+) = ", line)
            if key:
                found.setdefault((section, key.group(1)), comment.strip())
            comment = ""
    return found


class ErrorTests(SynchronousTestCase):
    """Each mistake: exactly one line, naming file, key and what is wrong."""

    def error(self, data: dict[str, Any], path: str = "epgd.toml") -> str:
        with self.assertRaises(ConfigError) as caught:
            parse_config(data, path)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(path + ": "), message)
        self.assertNotIn("s3cret", message)
        return message

    def lineup_error(self, **lineup: Any) -> str:
        return self.error(config_with(lineup=[{"id": "nhl_ppv", **lineup}]))

    def test_spec_example(self) -> None:
        self.assertEqual(
            self.lineup_error(channels="four"),
            'epgd.toml: lineup[0].channels: must be an integer from 1 to 999, got "four"',
        )

    def test_path_as_given(self) -> None:
        message = self.error(config_with(lineup=[{"id": "x", "channels": 0}]), "/etc/epgd/epgd.toml")
        self.assertEqual(message, "/etc/epgd/epgd.toml: lineup[0].channels: must be an integer from 1 to 999, got 0")

    def test_ranges(self) -> None:
        self.assertIn("got 1000", self.lineup_error(channels=1000))
        self.assertIn("got 4.5", self.lineup_error(channels=4.5))
        self.assertIn("got true", self.lineup_error(channels=True))
        self.assertIn("stream.chunk_size: must be an integer of at least 188, got 100",
                      self.error(config_with(stream={"chunk_size": 100})))
        self.assertIn("stream.check_interval: must be a positive number of seconds, got 0",
                      self.error(config_with(stream={"check_interval": 0})))
        self.assertIn("stream.idle_timeout: must be a positive number of seconds, got false",
                      self.error(config_with(stream={"idle_timeout": False})))
        self.assertIn("server.max_clients", self.error(config_with(server={"max_clients": 0})))
        self.assertIn("stream.client_buffer: must be at least stream.chunk_size",
                      self.error(config_with(stream={"client_buffer": 1000})))
        self.assertIn("lineup[0].pre_padding", self.lineup_error(pre_padding=-1))
        self.assertIn("stream.hold_after_end", self.error(config_with(stream={"hold_after_end": float("nan")})))
        self.assertEqual(self.error(config_with(stream={"idle_timeout": float("inf")})),
                         "epgd.toml: stream.idle_timeout: must be a positive number of seconds, got inf")
        self.assertIn("guide.days", self.error(config_with(guide={"days": "7"})))
        self.assertIn('guide.filler: must be true or false, got "yes"', self.error(config_with(guide={"filler": "yes"})))

    def test_stream_choices(self) -> None:
        self.assertEqual(self.error(config_with(stream={"output": "raw"})),
                         'epgd.toml: stream.output: must be one of "continuous", "passthrough", got "raw"')
        self.assertIn('stream.on_codec_change: must be one of "continue", "new_pid", "close", got true',
                      self.error(config_with(stream={"on_codec_change": True})))

    def test_slate_keys(self) -> None:
        self.assertEqual(self.error(config_with(stream={"slate": "no"})),
                         'epgd.toml: stream.slate: must be true or false, got "no"')
        self.assertEqual(self.error(config_with(stream={"slate_size": "1024x576"})),
                         'epgd.toml: stream.slate_size: must be one of "1920x1080", "1280x720", "960x540", '
                         '"640x360", got "1024x576"')
        for size in ("1920x1080", "640x360"):
            self.assertEqual(parse_config(config_with(stream={"slate": False, "slate_size": size}),
                                          "epgd.toml").stream.slate_size, size)

    def test_slate_sizes_are_the_pictures_the_slate_draws(self) -> None:
        from epgd.configtypes import SLATE_SIZES
        from epgd.mpegts.slate.picture import SIZES

        self.assertEqual(SLATE_SIZES, tuple(SIZES))
    def test_hls_output_settings(self) -> None:
        stream = parse_config(config_with(stream={"hls_segment": 2.5, "hls_window": 10}), "epgd.toml").stream
        self.assertEqual((stream.hls_segment, stream.hls_window), (2.5, 10))
        for value, shown in ((0, "0"), (0.5, "0.5"), (61, "61"), ("4", '"4"'), (True, "true")):
            self.assertEqual(self.error(config_with(stream={"hls_segment": value})),
                             f"epgd.toml: stream.hls_segment: must be a number of seconds from 1 to 60, got {shown}")
        for value, shown in ((2, "2"), (1001, "1001"), (6.5, "6.5")):
            self.assertEqual(self.error(config_with(stream={"hls_window": value})),
                             f"epgd.toml: stream.hls_window: must be an integer from 3 to 1000, got {shown}")

    def test_normalize_pids_is_gone(self) -> None:
        """The splicer replaced the opt-in PID rewrite: the old key is a typo now."""
        self.assertIn("stream.normalize_pids: unknown key",
                      self.error(config_with(stream={"normalize_pids": True})))

    def test_hls_variant(self) -> None:
        for good, stored in (("best", "best"), ("worst", "worst"), ("720p", "720p"), (5000000, "5000000"),
                             ("3000000", "3000000")):
            data = config_with()
            data["provider"][0]["hls_variant"] = good
            self.assertEqual(parse_config(data, "f").providers[0].hls_variant, stored)
        data = config_with()
        data["provider"][0]["hls_variant"] = "highest"
        self.assertIn('provider[0].hls_variant: must be "best", "worst", a height like "720p" or a number',
                      self.error(data))

    def test_hdhr_values(self) -> None:
        self.assertIn("hdhr.tuner_count: must be an integer from 0 to 999, got -1",
                      self.error(config_with(hdhr={"tuner_count": -1})))
        self.assertIn("hdhr.discovery: must be true or false", self.error(config_with(hdhr={"discovery": 1})))
        self.assertIn('hdhr.friendy_name: unknown key (did you mean "friendly_name"?)',
                      self.error(config_with(hdhr={"friendy_name": "x"})))

    def test_hdhr_device_id(self) -> None:
        self.assertEqual(
            self.error(config_with(hdhr={"device_id": "12345678"})),
            'epgd.toml: hdhr.device_id: must be "" or 8 hex digits with a valid HDHomeRun check digit, '
            'like "10439EFD" (with a valid check digit: "12345674"), got "12345678"',
        )
        for bad in ("10439EF", "hello", "FFFFFFFF", "00000000"):
            self.assertIn("hdhr.device_id: must be", self.error(config_with(hdhr={"device_id": bad})), bad)
        self.assertIn("hdhr.device_id: must be a string", self.error(config_with(hdhr={"device_id": 10439})))

    def test_overlapping_channel_numbers_name_both_lineups(self) -> None:
        data = config_with(lineup=[{"id": "nhl_ppv", "channels": 4, "first_number": 101},
                                   {"id": "nba", "channels": 3, "first_number": 104}])
        self.assertEqual(self.error(data), 'epgd.toml: lineup[1].first_number: channel numbers 104-106 '
                                           'of lineup "nba" overlap 101-104 of lineup "nhl_ppv"')
        # A default that runs on into an explicit range later on is caught too.
        data = config_with(lineup=[{"id": "a", "channels": 2}, {"id": "b", "channels": 1},
                                   {"id": "c", "channels": 1, "first_number": 3}])
        self.assertEqual(self.error(data), 'epgd.toml: lineup[2].first_number: channel numbers 3 '
                                           'of lineup "c" overlap 3 of lineup "b"')

    def test_unknown_keys(self) -> None:
        self.assertEqual(
            self.error(config_with(stream={"chek_interval": 5})),
            'epgd.toml: stream.chek_interval: unknown key (did you mean "check_interval"?)',
        )
        self.assertEqual(self.error(config_with(servr={})), 'epgd.toml: servr: unknown key (did you mean "server"?)')
        self.assertEqual(self.lineup_error(zzz=1), "epgd.toml: lineup[0].zzz: unknown key")
        data = config_with()
        data["provider"][0]["refresh"] = 5
        self.assertIn('provider[0].refresh: unknown key (did you mean "refresh_interval"?)', self.error(data))

    def test_missing_required(self) -> None:
        self.assertEqual(self.error(config_with(provider=[{"name": "main"}])),
                         "epgd.toml: provider[0].playlist: required key is missing")
        self.assertEqual(self.error(config_with(lineup=[{"name": "x"}])),
                         "epgd.toml: lineup[0].id: required key is missing")
        self.assertIn("at least one [[provider]]", self.error({"lineup": [{"id": "x"}]}))
        self.assertIn("at least one [[lineup]]", self.error({"provider": MINIMAL["provider"]}))

    def test_names(self) -> None:
        self.assertIn('lineup[0].id: must be made of a-z, 0-9 and _, got "NHL-PPV"',
                      self.error(config_with(lineup=[{"id": "NHL-PPV"}])))
        self.assertIn('provider[0].name: must be made of a-z, 0-9, _ and -, got "Main Provider"',
                      self.error(config_with(provider=[{"name": "Main Provider", "playlist": "p.m3u"}])))

    def test_duplicates(self) -> None:
        self.assertEqual(self.error(config_with(lineup=[{"id": "a"}, {"id": "a"}])),
                         'epgd.toml: lineup[1].id: duplicate lineup id, got "a"')
        providers = [{"name": "p", "playlist": "a.m3u"}, {"name": "p", "playlist": "b.m3u"}]
        self.assertIn("provider[1].name: duplicate provider name", self.error(config_with(provider=providers)))

    def test_unknown_provider_in_lineup(self) -> None:
        self.assertEqual(self.lineup_error(providers=["main", "backup"]),
                         'epgd.toml: lineup[0].providers[1]: unknown provider "backup" (known: "main")')
        self.assertIn("lineup[0].providers: must be an array of strings", self.lineup_error(providers="main"))

    def test_regexes(self) -> None:
        self.assertIn('lineup[0].match_title: invalid regex "(nhl"', self.lineup_error(match_title="(nhl"))
        self.assertIn("lineup[0].name_pattern: needs a named group (?P<title>...)",
                      self.lineup_error(name_pattern=r"(?P<time>\d+:\d+)"))
        self.assertIn("lineup[0].name_time_formats", self.lineup_error(name_time_formats=[]))

    def test_listen(self) -> None:
        self.assertIn('server.listen[1]: not a Twisted endpoint string (Unknown endpoint type: \'tpc\'), got "tpc:80"',
                      self.error(config_with(server={"listen": ["tcp:80", "tpc:80"]})))
        self.assertIn("server.listen: not a Twisted endpoint string",
                      self.error(config_with(server={"listen": "tcp:http"})))
        self.assertIn("out of range", self.error(config_with(server={"listen": "tcp:70000"})))
        self.assertIn("server.listen: must be", self.error(config_with(server={"listen": []})))
        self.assertIn("server.listen: not a Twisted endpoint string (a unix socket needs a path",
                      self.error(config_with(server={"listen": "unix:"})))
        self.assertIsNone(check_listen("unix:/run/epgd.sock"))
        self.assertIsNone(check_listen("tcp6:8080:interface=\\:\\:1"))
        self.assertIsNone(check_listen("systemd:domain=INET:index=0"))
        self.assertIsNotNone(check_listen("systemd:domain=INET"))

    def test_timezone(self) -> None:
        self.assertIn('guide.timezone: unknown time zone: use an IANA name like "America/New_York", got "EST5"',
                      self.error(config_with(guide={"timezone": "EST5"})))
        self.assertIn("guide.timezone", self.error(config_with(guide={"timezone": "../etc/passwd"})))

    def test_provider_values(self) -> None:
        data = config_with()
        data["provider"][0]["headers"] = {"Referer": 5}
        self.assertEqual(self.error(data), "epgd.toml: provider[0].headers.Referer: must be a string, got 5")
        data["provider"][0]["headers"] = {"Referer": "a\r\nX-Injected: 1"}
        self.assertEqual(self.error(data), "epgd.toml: provider[0].headers.Referer: must be a one-line string")
        data["provider"][0]["headers"] = {"Bad Name": "x"}
        self.assertEqual(self.error(data), 'epgd.toml: provider[0].headers: not a valid HTTP header name, got "Bad Name"')
        data["provider"][0]["headers"] = "Referer: x"
        self.assertIn("provider[0].headers: must be a table of strings", self.error(data))
        data = config_with(provider=[{"name": "m", "playlist": "ftp://alice:s3cret@host/list.m3u"}])
        message = self.error(data)
        self.assertIn("provider[0].playlist: must be an http(s) URL or a file path", message)

    def test_credentials_masked_in_messages(self) -> None:
        data = config_with()
        data["provider"][0]["guide"] = "gopher://h/xmltv.php?username=alice&password=s3cret"
        message = self.error(data)
        self.assertIn("password=***", message)
        self.assertNotIn("alice", message)

    def test_events(self) -> None:
        start = _dt.datetime(2026, 11, 24, 19, tzinfo=_dt.UTC)
        event = {"lineup": "nhl_ppv", "title": "Game", "start": start, "url": "http://x/1.ts"}
        self.assertIn('event[0].lineup: unknown lineup "nba" (known: "nhl_ppv")',
                      self.error(config_with(event=[{**event, "lineup": "nba"}])))
        self.assertIn("event[0]: needs a url, or a provider and a channel",
                      self.error(config_with(event=[{**event, "url": "", "provider": "main"}])))
        self.assertIn('event[0].provider: unknown provider "backup"',
                      self.error(config_with(event=[{**event, "provider": "backup", "channel": "x"}])))
        self.assertIn("event[0].start: must be a TOML date-time with a UTC offset",
                      self.error(config_with(event=[{**event, "start": start.replace(tzinfo=None)}])))
        self.assertIn("event[0].stop: must be after start",
                      self.error(config_with(event=[{**event, "stop": start}])))
        self.assertIn("event[0].title: required key is missing",
                      self.error(config_with(event=[{"lineup": "nhl_ppv", "start": start, "url": "u"}])))

    def test_section_shapes(self) -> None:
        self.assertIn("server: must be a table", self.error(config_with(server=5)))
        self.assertIn("lineup: must be one or more [[lineup]] tables", self.error(config_with(lineup=["x"])))


class LoadTests(SynchronousTestCase):
    """Reading the file itself."""

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_loads_file(self) -> None:
        path = self.write('[[provider]]\nname = "p"\nplaylist = "list.m3u"\n[[lineup]]\nid = "a"\nchannels = 2\n')
        config = load_config(path)
        self.assertEqual(config.lineups[0].channel_ids(), ["a_1", "a_2"])
        self.assertEqual(config.path, path)

    def test_toml_datetime_event(self) -> None:
        path = self.write('[[provider]]\nname = "p"\nplaylist = "l.m3u"\n[[lineup]]\nid = "a"\n'
                          '[[event]]\nlineup = "a"\ntitle = "T"\nstart = 2026-11-24T19:00:00-05:00\nurl = "u.ts"\n')
        (event,) = load_config(path).events
        assert event.stop is not None
        self.assertEqual(event.stop - event.start, _dt.timedelta(hours=3))
        self.assertEqual(event.start.utcoffset(), _dt.timedelta(hours=-5))

    def test_missing_file(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            load_config("/nonexistent/epgd.toml")
        self.assertEqual(str(caught.exception), "/nonexistent/epgd.toml: cannot read the file: No such file or directory")

    def test_empty_path(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            load_config("")
        self.assertEqual(str(caught.exception), "epgd: the configuration file name is empty")

    def test_syntax_error(self) -> None:
        path = self.write("[server]\nlisten = \n")
        with self.assertRaises(ConfigError) as caught:
            load_config(path)
        self.assertRegex(str(caught.exception), r"^.+: TOML syntax error: .*line 2")

    def test_not_utf8(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b'name = "\xff"\n')
        self.assertRaises(ConfigError, load_config, path)
