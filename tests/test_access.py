"""
Tests for epgd.access (SPEC §15): who must log in and how, open networks (IPv4 and IPv6),
the login throttle on a ``task.Clock``, scoping, the per-user connection limit, and what the
log says. Requests are ``DummyRequest``s whose TCP peer is set by hand.
"""

from __future__ import annotations

import base64
from typing import Any

from attrs import evolve
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from epgd.access import Access, Viewer
from epgd.config import Config, LineupConfig, ServerConfig, StreamConfig, UserConfig

OUTSIDE = "203.0.113.7"
ALICE = UserConfig(name="alice", password="Wonder-land9", max_connections=2, lineups=("nhl",))
BOB = UserConfig(name="bob", password="xyzzy-42", max_connections=1)
CAROL = UserConfig(name="carol", password="no-limit-1", max_connections=0)


def make_config(users: tuple[UserConfig, ...] = (ALICE, BOB, CAROL), token: str = "",
                networks: tuple[str, ...] | None = None) -> Config:
    server = ServerConfig(admin_token=token)
    if networks is not None:
        server = ServerConfig(admin_token=token, open_networks=networks)
    return Config(server=server, lineups=(LineupConfig(id="nhl", channels=2), LineupConfig(id="nba", channels=1)),
                  users=users)


def request(host: str = OUTSIDE, basic: tuple[str, str] | None = None, bearer: str = "",
            **args: str) -> DummyRequest:
    r = DummyRequest([b""])
    r.client = (IPv6Address if ":" in host else IPv4Address)("TCP", host, 40000)
    if basic is not None:
        r.requestHeaders.addRawHeader(b"authorization", b"Basic " + base64.b64encode(":".join(basic).encode()))
    if bearer:
        r.requestHeaders.addRawHeader(b"authorization", b"Bearer " + bearer.encode())
    for name, value in args.items():
        r.addArg(name.encode(), value.encode())
    return r


def header(r: DummyRequest, name: str) -> str | None:
    values = r.responseHeaders.getRawHeaders(name.encode())
    return values[0].decode() if values else None


class AccessTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1764000000)
        self.access = Access(make_config(), self.clock)

    def refused(self, result: Any, code: int, r: DummyRequest) -> str:
        self.assertIsInstance(result, bytes, result)
        self.assertEqual(r.responseCode, code)
        text = result.decode()
        self.assertTrue(text.endswith("\n") and "\n" not in text[:-1], text)
        return text


class NoAccountsTests(AccessTestCase):
    """With no [[user]] nothing here applies."""

    def setUp(self) -> None:
        super().setUp()
        self.access = Access(make_config(users=()), self.clock)

    def test_every_viewer_passes_from_anywhere(self) -> None:
        for host in (OUTSIDE, "2001:db8::1", "127.0.0.1"):
            self.assertIsInstance(self.access.viewer(request(host)), Viewer)
        self.assertIsNone(self.access.operator(request()))
        self.assertIsNone(self.access.admin(request()))

    def test_streams_are_served_unlimited_and_uncounted(self) -> None:
        served = []
        for _ in range(5):
            self.access.stream(request(), "nhl_1", lambda r, c: served.append(c) or Deferred())
        self.assertEqual(served, ["nhl_1"] * 5)

    def test_wrong_credentials_are_not_even_looked_at(self) -> None:
        for _ in range(20):
            self.assertIsInstance(self.access.viewer(request(username="x", password="y")), Viewer)

    def test_admin_token_as_before(self) -> None:
        access = Access(make_config(users=(), token="tok3n"), self.clock)
        r = request("127.0.0.1")
        self.assertIn("admin token required", self.refused(access.admin(r), 401, r))
        self.assertEqual(header(r, "WWW-Authenticate"), 'Bearer realm="epgd"')
        self.assertIsNone(access.admin(request(bearer="tok3n")))
        self.assertIsNone(access.admin(request(token="tok3n")))


class LoginTests(AccessTestCase):
    def test_outside_without_login_is_401_with_a_basic_challenge(self) -> None:
        r = request()
        text = self.refused(self.access.viewer(r), 401, r)
        self.assertTrue(text.startswith("login required"))
        self.assertEqual(header(r, "WWW-Authenticate"), 'Basic realm="epgd"')

    def test_the_three_forms(self) -> None:
        for viewer in (self.access.viewer(request(basic=("alice", "Wonder-land9"))),
                       self.access.viewer(request(username="alice", password="Wonder-land9")),
                       self.access.viewer(request(), login=("alice", "Wonder-land9"))):
            assert isinstance(viewer, Viewer)
            self.assertEqual((viewer.user, viewer.address), (ALICE, OUTSIDE))
            self.assertEqual(viewer.lineups, frozenset({"nhl"}))

    def test_wrong_or_half_credentials(self) -> None:
        for r in (request(basic=("alice", "wrong")), request(basic=("mallory", "Wonder-land9")),
                  request(username="alice"), request(password="Wonder-land9"),
                  request(username="alice", password="xyzzy-42")):
            text = self.refused(self.access.viewer(r), 401, r)
            self.assertEqual(text, "login required: wrong user name or password\n")
            self.assertEqual(header(r, "WWW-Authenticate"), 'Basic realm="epgd"')

    def test_a_broken_basic_header_is_a_failed_login(self) -> None:
        r = request()
        r.requestHeaders.addRawHeader(b"authorization", b"Basic %%%not-base64")
        self.refused(self.access.viewer(r), 401, r)

    def test_credentials_are_checked_on_open_networks_too(self) -> None:
        """A LAN viewer that says who it is gets that account's view, or a 401."""
        viewer = self.access.viewer(request("192.168.1.20", basic=("alice", "Wonder-land9")))
        assert isinstance(viewer, Viewer)
        self.assertEqual(viewer.user, ALICE)
        r = request("192.168.1.20", basic=("alice", "nope"))
        self.refused(self.access.viewer(r), 401, r)

    def test_the_admin_token_is_a_viewer_who_sees_everything(self) -> None:
        access = Access(make_config(token="tok3n"), self.clock)
        viewer = access.viewer(request(bearer="tok3n"))
        assert isinstance(viewer, Viewer)
        self.assertTrue(viewer.admin)
        self.assertIsNone(viewer.lineups)
        r = request(token="guess")
        self.assertEqual(self.refused(access.viewer(r), 401, r), "login required: wrong admin token\n")

    def test_the_xtream_api_needs_an_account_from_anywhere(self) -> None:
        refusal = self.access.user(request("127.0.0.1"))
        self.assertFalse(isinstance(refusal, Viewer))
        found = self.access.user(request("127.0.0.1", username="bob", password="xyzzy-42"))
        assert isinstance(found, Viewer)
        self.assertEqual(found.user, BOB)


class OpenNetworkTests(AccessTestCase):
    def test_default_networks_need_no_login(self) -> None:
        for host in ("127.0.0.1", "10.1.2.3", "172.16.5.4", "192.168.1.20", "::1", "fe80::1",
                     "fd12:3456::7", "::ffff:192.168.1.20"):
            viewer = self.access.viewer(request(host))
            self.assertIsInstance(viewer, Viewer, host)
            assert isinstance(viewer, Viewer)
            self.assertIsNone(viewer.user)
            self.assertIsNone(viewer.lineups)

    def test_everything_else_logs_in(self) -> None:
        for host in (OUTSIDE, "8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:203.0.113.7"):
            r = request(host)
            self.refused(self.access.viewer(r), 401, r)

    def test_a_unix_socket_peer_is_not_an_open_network(self) -> None:
        """Typically a reverse proxy relaying the internet."""
        r = request()
        r.client = UNIXAddress(b"/run/epgd.sock")
        self.refused(self.access.viewer(r), 401, r)

    def test_configured_networks(self) -> None:
        access = Access(make_config(networks=("198.51.100.0/24", "2001:db8:1::/48")), self.clock)
        for host, is_open in (("198.51.100.9", True), ("2001:db8:1::5", True), ("192.168.1.1", False),
                              ("127.0.0.1", False), ("2001:db8:2::5", False)):
            self.assertEqual(isinstance(access.viewer(request(host)), Viewer), is_open, host)

    def test_no_open_network_at_all(self) -> None:
        access = Access(make_config(networks=()), self.clock)
        r = request("127.0.0.1")
        self.refused(access.viewer(r), 401, r)

    def test_status_endpoints_need_the_token_from_outside_only(self) -> None:
        access = Access(make_config(token="tok3n"), self.clock)
        r = request()
        self.assertEqual(self.refused(access.operator(r), 401, r), "admin token required\n")
        self.assertEqual(header(r, "WWW-Authenticate"), 'Bearer realm="epgd"')
        self.assertIsNone(access.operator(request(bearer="tok3n")))
        self.assertIsNone(access.operator(request(token="tok3n")))
        self.assertIsNone(access.operator(request("192.168.1.20")))
        # no token set: nothing to ask for (SPEC §15)
        self.assertIsNone(self.access.operator(request()))

    def test_admin_endpoints_from_outside_need_a_token_even_when_none_is_set(self) -> None:
        r = request()
        self.assertIn("server.admin_token", self.refused(self.access.admin(r), 401, r))
        self.assertIsNone(self.access.admin(request("192.168.1.20")))


class ThrottleTests(AccessTestCase):
    def fail(self, times: int, host: str = OUTSIDE) -> None:
        for _ in range(times):
            r = request(host, basic=("alice", "guess"))
            self.refused(self.access.viewer(r), 401, r)

    def test_ten_failures_in_a_minute_close_the_address_for_a_minute(self) -> None:
        self.fail(10)
        for r in (request(basic=("alice", "Wonder-land9")), request(), request(username="bob", password="xyzzy-42")):
            text = self.refused(self.access.viewer(r), 429, r)
            self.assertEqual(header(r, "Retry-After"), "60")
            self.assertIn("too many failed logins", text)
        r = request()
        self.refused(self.access.operator(r), 429, r)
        self.clock.advance(59)
        r = request(basic=("alice", "Wonder-land9"))
        self.refused(self.access.viewer(r), 429, r)
        self.assertEqual(header(r, "Retry-After"), "1")
        self.clock.advance(1)
        self.assertIsInstance(self.access.viewer(request(basic=("alice", "Wonder-land9"))), Viewer)

    def test_other_addresses_are_not_affected(self) -> None:
        self.fail(10)
        self.assertIsInstance(self.access.viewer(request("198.51.100.1", basic=("alice", "Wonder-land9"))),
                              Viewer)
        self.assertIsInstance(self.access.viewer(request("192.168.1.20")), Viewer)

    def test_nine_failures_or_slow_ones_do_not(self) -> None:
        self.fail(9)
        self.assertIsInstance(self.access.viewer(request(basic=("alice", "Wonder-land9"))), Viewer)
        self.clock.advance(61)
        self.fail(9)  # the first nine are out of the window by now
        self.assertIsInstance(self.access.viewer(request(basic=("alice", "Wonder-land9"))), Viewer)

    def test_missing_credentials_are_no_failed_login(self) -> None:
        """A browser asks without credentials first, then again after the 401."""
        for _ in range(30):
            r = request()
            self.refused(self.access.viewer(r), 401, r)
        self.assertIsInstance(self.access.viewer(request(basic=("alice", "Wonder-land9"))), Viewer)

    def test_admin_token_guesses_count(self) -> None:
        access = Access(make_config(token="tok3n"), self.clock)
        for _ in range(10):
            r = request(bearer="guess")
            self.refused(access.admin(r), 401, r)
        r = request(bearer="tok3n")
        self.refused(access.admin(r), 429, r)

    def test_the_log_says_who_failed_and_never_the_password(self) -> None:
        with capturedLogs() as events:
            self.fail(9)
            r = request(basic=("Wonder-land9", "x"))  # a password typed into the name field
            self.refused(self.access.viewer(r), 401, r)
        text = "\n".join(formatEvent(e) for e in events)
        self.assertIn(f"[ACCESS] failed login (user alice) from {OUTSIDE}", text)
        self.assertIn("failed login (an unknown user)", text)
        self.assertIn(f"[ACCESS] {OUTSIDE} failed 10 logins within 60 s: refused for 60 s", text)
        self.assertNotIn("guess", text)
        self.assertNotIn("Wonder-land9", text)


class StreamTests(AccessTestCase):
    """Scoping and max_connections, through ``Access.stream`` as the routes call it."""

    def setUp(self) -> None:
        super().setUp()
        self.open: list[tuple[DummyRequest, Deferred[bytes]]] = []

    def serve(self, r: Any, channel_id: str) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.open.append((r, d))
        return d

    def watch(self, channel_id: str, host: str = OUTSIDE, who: tuple[str, str] = ("bob", "xyzzy-42"),
              ) -> tuple[Any, DummyRequest]:
        r = request(host)
        return self.access.stream(r, channel_id, self.serve, login=who), r

    def test_another_lineups_channel_is_404(self) -> None:
        result, r = self.watch("nba_1", who=("alice", "Wonder-land9"))
        self.assertEqual(self.refused(result, 404, r), "unknown channel 'nba_1'\n")
        self.assertEqual(self.open, [])
        result, _ = self.watch("nhl_2", who=("alice", "Wonder-land9"))
        self.assertIsInstance(result, Deferred)

    def test_one_more_channel_than_the_limit_is_503_naming_user_and_limit(self) -> None:
        first, _ = self.watch("nhl_1")
        self.assertIsInstance(first, Deferred)
        result, r = self.watch("nhl_2")
        text = self.refused(result, 503, r)
        self.assertEqual(text, "user bob already watches 1 channel: max_connections is 1\n")
        self.assertEqual(header(r, "Retry-After"), "30")
        self.assertEqual(len(self.open), 1)
        self.assertEqual(self.access.active("bob"), 1)

    def test_one_more_channel_than_the_limit_gets_the_slate_saying_so(self) -> None:
        """With stream.slate (the default), SPEC §14: the slate names the user and the limit."""
        shown: list[tuple[str, str]] = []

        def slate(r: Any, channel_id: str, text: str) -> bytes:
            shown.append((channel_id, text))
            return b"the slate"

        self.watch("nhl_1")
        result = self.access.stream(request(), "nhl_2", self.serve, login=("bob", "xyzzy-42"), slate=slate)
        self.assertEqual((result, shown), (b"the slate", [("nhl_2", "bob: all 1 connections in use")]))
        self.assertEqual(self.access.active("bob"), 1)  # the slate is no connection of the user's
        off = Access(evolve(make_config(), stream=StreamConfig(slate=False)), self.clock)
        off.stream(request(), "nhl_1", self.serve, login=("bob", "xyzzy-42"), slate=slate)
        r = request()
        result = off.stream(r, "nhl_2", self.serve, login=("bob", "xyzzy-42"), slate=slate)
        self.refused(result, 503, r)
        self.assertEqual(len(shown), 1)

    def test_same_address_same_channel_counts_once(self) -> None:
        for _ in range(3):
            result, _ = self.watch("nhl_1")
            self.assertIsInstance(result, Deferred)
        self.assertEqual(self.access.active("bob"), 1)
        # the same channel from another address is another connection
        result, r = self.watch("nhl_1", host="198.51.100.1")
        self.refused(result, 503, r)

    def test_an_ended_connection_frees_its_place(self) -> None:
        self.watch("nhl_1")
        (r, done), = self.open
        done.callback(b"")  # the stream ended for it
        self.assertEqual(self.access.active("bob"), 0)
        result, _ = self.watch("nhl_2")
        self.assertIsInstance(result, Deferred)
        # or the client went away: notifyFinish fires
        r2, _ = self.open[-1]
        r2.processingFailed(Exception("connection lost"))
        self.assertEqual(self.access.active("bob"), 0)

    def test_two_connections_on_one_channel_hold_it_until_both_end(self) -> None:
        self.watch("nhl_1")
        self.watch("nhl_1")
        self.open[0][1].callback(b"")
        self.assertEqual(self.access.active("bob"), 1)
        result, r = self.watch("nhl_2")
        self.refused(result, 503, r)
        self.open[1][0].finish()
        self.assertEqual(self.access.active("bob"), 0)

    def test_refusals_and_head_are_not_counted(self) -> None:
        self.access.stream(request(), "nhl_1", lambda r, c: b"503 nothing on\n", login=("bob", "xyzzy-42"))
        self.assertEqual(self.access.active("bob"), 0)

    def test_no_limit_and_anonymous_viewers(self) -> None:
        for i in range(5):
            result, _ = self.watch(f"nhl_{i % 2 + 1}", host=f"198.51.100.{i}", who=("carol", "no-limit-1"))
            self.assertIsInstance(result, Deferred)
        for i in range(5):
            result = self.access.stream(request(f"192.168.1.{i}"), "nba_1", self.serve)
            self.assertIsInstance(result, Deferred)

    def test_at_limit_is_the_one_decision(self) -> None:
        """What the slate (SPEC §14) will show instead of the 503."""
        viewer = Viewer(OUTSIDE, BOB)
        self.assertIsNone(self.access.at_limit(viewer, "nhl_1"))
        self.watch("nhl_1")
        self.assertIsNone(self.access.at_limit(viewer, "nhl_1"))
        limit = self.access.at_limit(viewer, "nhl_2")
        assert limit is not None
        self.assertEqual((limit.user, limit.limit), ("bob", 1))
        self.assertEqual(limit.slate_text, "bob: all 1 connections in use")

    def test_other_session_sources_count(self) -> None:
        """HLS output adds its sessions (SPEC §16) through ``session_sources``."""
        self.access.session_sources.append(lambda user: [("198.51.100.1", "nba_1")] if user == "bob" else [])
        self.assertEqual(self.access.active("bob"), 1)
        result, r = self.watch("nhl_1")
        self.refused(result, 503, r)
        result, _ = self.watch("nba_1", host="198.51.100.1")
        self.assertIsInstance(result, Deferred)

    def test_a_wrong_login_never_reaches_the_stream(self) -> None:
        result, r = self.watch("nhl_1", who=("bob", "guess"))
        self.refused(result, 401, r)
        self.assertEqual(self.open, [])
