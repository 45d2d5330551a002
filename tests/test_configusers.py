"""
Tests for epgd.configusers: ``[[user]]`` tables and ``server.open_networks`` (SPEC §3, §15),
each mistake one line naming file and key, and a password never shown in one.
"""

from __future__ import annotations

import copy
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from epgd.config import ConfigError, UserConfig, parse_config
from epgd.configtypes import DEFAULT_OPEN_NETWORKS

BASE: dict[str, Any] = {
    "provider": [{"name": "main", "playlist": "http://p.example/get.php?username=joe&password=hunter22"}],
    "lineup": [{"id": "nhl", "channels": 2}, {"id": "nba", "channels": 1}],
}


def with_users(*users: dict[str, Any], **server: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["user"] = list(users)
    if server:
        data["server"] = server
    return data


class UserTests(SynchronousTestCase):
    def error(self, data: dict[str, Any]) -> str:
        with self.assertRaises(ConfigError) as caught:
            parse_config(data, "epgd.toml")
        text = str(caught.exception)
        self.assertNotIn("\n", text)
        return text

    def test_defaults(self) -> None:
        config = parse_config(with_users({"name": "alice", "password": "Wonder-land9"}), "f")
        self.assertEqual(config.users, (UserConfig(name="alice", password="Wonder-land9", max_connections=2,
                                                   lineups=()),))
        self.assertTrue(config.users[0].sees("nba"))
        self.assertEqual(config.server.open_networks, DEFAULT_OPEN_NETWORKS)

    def test_no_users_by_default(self) -> None:
        self.assertEqual(parse_config(copy.deepcopy(BASE), "f").users, ())

    def test_values(self) -> None:
        config = parse_config(with_users(
            {"name": "alice.b-2_X", "password": "p@ss:w!rd", "max_connections": 0, "lineups": ["nba"]},
            {"name": "Bob", "password": "xyzzy-42", "lineups": ["nhl", "nba"]},
        ), "f")
        alice, bob = config.users
        self.assertEqual((alice.name, alice.password, alice.max_connections, alice.lineups),
                         ("alice.b-2_X", "p@ss:w!rd", 0, ("nba",)))
        self.assertFalse(alice.sees("nhl"))
        self.assertEqual(bob.lineups, ("nhl", "nba"))

    def test_repr_hides_the_password(self) -> None:
        config = parse_config(with_users({"name": "alice", "password": "Wonder-land9"}), "f")
        self.assertNotIn("Wonder-land9", repr(config))

    def test_mistakes(self) -> None:
        cases = [
            ({"password": "x"}, "epgd.toml: user[0].name: required key is missing"),
            ({"name": "alice"}, "epgd.toml: user[0].password: required key is missing"),
            ({"name": "al ice", "password": "x"}, 'epgd.toml: user[0].name: must be made of A-Z, a-z, 0-9, '
                                                  '_, . and -, got "al ice"'),
            ({"name": "alice", "password": ""}, "epgd.toml: user[0].password: must be a non-empty string"),
            ({"name": "alice", "password": 1234}, "epgd.toml: user[0].password: must be a non-empty string"),
            ({"name": "alice", "password": "x", "max_connections": -1},
             "epgd.toml: user[0].max_connections: must be an integer of at least 0, got -1"),
            ({"name": "alice", "password": "x", "max_connections": "two"},
             'epgd.toml: user[0].max_connections: must be an integer of at least 0, got "two"'),
            ({"name": "alice", "password": "x", "lineups": ["nfl"]},
             'epgd.toml: user[0].lineups[0]: unknown lineup "nfl" (known: "nhl", "nba")'),
            ({"name": "alice", "password": "x", "lineups": "nhl"},
             'epgd.toml: user[0].lineups: must be an array of strings, got "nhl"'),
            ({"name": "alice", "password": "x", "colour": "red"}, "epgd.toml: user[0].colour: unknown key"),
        ]
        for user, expected in cases:
            self.assertEqual(self.error(with_users(user)), expected)

    def test_names_are_unique(self) -> None:
        line = self.error(with_users({"name": "alice", "password": "one-pass"},
                                     {"name": "alice", "password": "two-pass"}))
        self.assertEqual(line, 'epgd.toml: user[1].name: duplicate user name, got "alice"')

    def test_a_password_that_cannot_go_into_a_url_is_refused_without_showing_it(self) -> None:
        for password in ("has space", "a/b", "what?", "x#y", "100%", "a&b", "a=b", "tab\there"):
            line = self.error(with_users({"name": "alice", "password": password}))
            self.assertTrue(line.startswith("epgd.toml: user[0].password: must not contain"), line)
            self.assertNotIn(password, line)

    def test_open_networks(self) -> None:
        config = parse_config(with_users(open_networks=["192.168.1.0/24", "fd00::/8", "10.1.2.3"]), "f")
        self.assertEqual(config.server.open_networks, ("192.168.1.0/24", "fd00::/8", "10.1.2.3"))
        self.assertEqual(parse_config(with_users(open_networks=[]), "f").server.open_networks, ())
        for bad, key in (("10.0.0.0/33", "[0]"), ("lan", "[0]")):
            self.assertEqual(self.error(with_users(open_networks=[bad])),
                             f'epgd.toml: server.open_networks{key}: not a network: use CIDR notation like '
                             f'"192.168.0.0/16" or "fd00::/8", got "{bad}"')
        self.assertEqual(self.error(with_users(open_networks=[1])),
                         "epgd.toml: server.open_networks[0]: must be a string, got 1")
