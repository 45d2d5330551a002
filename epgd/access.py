"""
Who may see what (SPEC §15): open networks, viewer accounts, the login throttle and each
user's connection limit.

Routes ask one question and get either a ``Viewer`` or the refusal already rendered:

    viewer = self.access.viewer(request)          # Viewer | bytes (401, 429)
    if isinstance(viewer, bytes):
        return viewer

A stream route makes one call that also scopes the channel, applies the user's
``max_connections`` and counts the connection while it lasts:

    return self.access.stream(request, channel_id, self.streams.serve)

With no ``[[user]]`` table every check passes at once and nothing is counted: epgd behaves as
it did before accounts existed. Everything here is in memory and driven by an injected clock.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import ipaddress
import math
from collections.abc import Callable, Iterable
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from epgd.config import Config, UserConfig
from epgd.plaintext import error_line
from epgd.publish.slatetext import user_full
from epgd.throttle import Throttle

__all__ = ["Access", "AtLimit", "Refusal", "Sessions", "Viewer", "client_address"]

BASIC_CHALLENGE = b'Basic realm="epgd"'
BEARER_CHALLENGE = b'Bearer realm="epgd"'

#: a user's open sessions: user name -> the (client address, channel id) pairs it watches now.
#: The TS connections are one source; HLS output adds its own (``Access.session_sources``).
Sessions = Callable[[str], Iterable[tuple[str, str]]]


@frozen
class Viewer:
    """
    Who a request comes from: a logged-in ``user``, the operator (``admin``: the admin token),
    or, with ``user`` None and ``admin`` False, an anonymous viewer on an open network (or any
    viewer at all when no account is configured).
    """

    address: str
    user: UserConfig | None = None
    admin: bool = False

    @property
    def lineups(self) -> frozenset[str] | None:
        """The lineups this viewer may see; None: every one."""
        if self.user is None or not self.user.lineups:
            return None
        return frozenset(self.user.lineups)

    def sees(self, lineup_id: str) -> bool:
        return self.user is None or self.user.sees(lineup_id)


@frozen
class Refusal:
    """An answer instead of the resource: ``render`` sets the code and headers, gives the one line."""

    code: int
    line: str
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def render(self, request: IRequest) -> bytes:
        for name, value in self.headers:
            request.setHeader(name, value)
        return error_line(request, self.code, self.line)


@frozen
class AtLimit:
    """
    A user already watches ``limit`` channels. The one place this is decided: the stream
    routes answer 503 with ``line``; the slate (SPEC §14) shows ``slate_text`` instead.
    """

    user: str
    limit: int

    @property
    def line(self) -> str:
        return (f"user {self.user} already watches {self.limit} channel{'s' if self.limit != 1 else ''}: "
                f"max_connections is {self.limit}")

    @property
    def slate_text(self) -> str:
        return user_full(self.user, self.limit)


def client_address(request: IRequest) -> str:
    """The TCP peer's address, normalised (``::ffff:10.0.0.5`` is ``10.0.0.5``); never a header."""
    host = getattr(request.getClientAddress(), "host", None)
    if not isinstance(host, str):
        return "unix"  # a UNIX socket: typically a reverse proxy, so never an open network
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class Access:
    """The accounts of one epgd process and what their requests may do."""

    log = Logger()

    def __init__(self, config: Config, clock: IReactorTime) -> None:
        self.config = config
        self.clock = clock
        self.enabled = bool(config.users)
        self.users = {user.name: user for user in config.users}
        self._keys = [(user, user.name.encode("utf-8"), user.password.encode("utf-8"))
                      for user in config.users]
        self._networks = [ipaddress.ip_network(n, strict=False) for n in config.server.open_networks]
        self._token = config.server.admin_token.encode("utf-8")
        self._lineup_of = {cid: lineup.id for lineup in config.lineups for cid in lineup.channel_ids()}
        self.throttle = Throttle(clock)
        self._streams: dict[str, collections.Counter[tuple[str, str]]] = {}
        #: user -> (address, channel) -> when it last asked for an HLS playlist or segment
        self._hls_seen: dict[str, dict[tuple[str, str], float]] = {}
        #: where a user's open sessions are counted: TS connections and HLS sessions
        self.session_sources: list[Sessions] = [self._stream_sessions, self._hls_sessions]

    # -- who is asking ---------------------------------------------------------------

    def is_open(self, address: str) -> bool:
        """Whether ``address`` is in ``server.open_networks`` (where no login is needed)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self._networks)

    def viewer(self, request: IRequest, login: tuple[str, str] | None = None) -> Viewer | bytes:
        """
        The viewer of a viewer endpoint (playlist, guide, schedule, streams, HDHomeRun), or
        the rendered refusal: 401 (login missing or wrong), 429 (too many failed logins).
        ``login``: a name and password from an Xtream path (``/live/U/P/101.ts``).
        """
        found = self.identify(request, login)
        return found.render(request) if isinstance(found, Refusal) else found

    def user(self, request: IRequest, login: tuple[str, str] | None = None) -> Viewer | Refusal:
        """A logged-in user, from anywhere (the Xtream Codes API is per account), or why not."""
        return self.identify(request, login, user_required=True)

    def identify(self, request: IRequest, login: tuple[str, str] | None = None,
                 user_required: bool = False) -> Viewer | Refusal:
        """``viewer`` before rendering: a credential offered is checked wherever the request comes from."""
        if not self.enabled and not user_required:
            return Viewer("")
        address = client_address(request)
        refusal = self._closed(address)
        if refusal is not None:
            return refusal
        offered = login or _basic(request) or _query_login(request)
        if offered is not None:
            user = self._check(*offered)
            if user is None:
                self._failed(address, offered[0])
                return _login_refusal("wrong user name or password")
            return Viewer(address, user)
        token = _offered_token(request)
        if token is not None and self._token and not user_required:
            if hmac.compare_digest(token, self._token):
                return Viewer(address, admin=True)
            self._failed(address, "")
            return _login_refusal("wrong admin token")
        if user_required:
            return _login_refusal("log in with the user name and password of an account")
        if self.is_open(address):
            return Viewer(address)
        return _login_refusal("log in: HTTP Basic, ?username=&password=, or /live/USER/PASSWORD/ URLs")

    def operator(self, request: IRequest) -> bytes | None:
        """
        ``/``, ``/streams/status``, ``/health``: from outside the open networks they need the
        admin token when one is set (SPEC §15). None: go ahead.
        """
        if not self.enabled:
            return None
        address = client_address(request)
        refusal = self._closed(address)
        if refusal is None and self._token and not self.is_open(address):
            refusal = self._token_check(request, address)
        return refusal.render(request) if refusal is not None else None

    def admin(self, request: IRequest) -> bytes | None:
        """
        Admin endpoints (``/refresh``, ``/streams/stop``, ``/metrics``): the token when one is
        set. With accounts, a request from outside the open networks needs one even when none
        is set (an open VPS port must not let anyone stop streams). None: go ahead.
        """
        address = client_address(request) if self.enabled else ""
        refusal = self._closed(address) if self.enabled else None
        if refusal is None and self._token:
            refusal = self._token_check(request, address)
        elif refusal is None and self.enabled and not self.is_open(address):
            refusal = Refusal(401, "admin endpoints need server.admin_token from outside "
                                   "server.open_networks", ((b"WWW-Authenticate", BEARER_CHALLENGE),))
        return refusal.render(request) if refusal is not None else None

    def _token_check(self, request: IRequest, address: str) -> Refusal | None:
        token = _offered_token(request)
        if token is not None and hmac.compare_digest(token, self._token):
            return None
        if token is not None and self.enabled:
            self._failed(address, "")
        return Refusal(401, "admin token required", ((b"WWW-Authenticate", BEARER_CHALLENGE),))

    def _check(self, name: str, password: str) -> UserConfig | None:
        """Every account compared, in constant time each: timing tells neither names nor passwords."""
        name_bytes, password_bytes = name.encode("utf-8"), password.encode("utf-8")
        found = None
        for user, user_name, user_password in self._keys:
            name_ok = hmac.compare_digest(name_bytes, user_name)
            password_ok = hmac.compare_digest(password_bytes, user_password)
            if name_ok and password_ok:
                found = user
        return found

    def _closed(self, address: str) -> Refusal | None:
        left = self.throttle.blocked(address)
        if not left:
            return None
        seconds = max(1, math.ceil(left))
        return Refusal(429, f"too many failed logins from this address: try again in {seconds} s",
                       ((b"Retry-After", str(seconds).encode("ascii")),))

    def _failed(self, address: str, name: str) -> None:
        # A name that is no account may be a password typed in the wrong field: never logged.
        who = f"user {name}" if name in self.users else "an unknown user" if name else "the admin token"
        self.log.info("[ACCESS] failed login ({who}) from {address}", who=who, address=address)
        if self.throttle.failed(address):
            self.log.warn("[ACCESS] {address} failed {count} logins within {window:g} s: refused for "
                          "{block:g} s", address=address, count=self.throttle.failures,
                          window=self.throttle.window, block=self.throttle.block)

    # -- what they see ---------------------------------------------------------------

    def sees(self, viewer: Viewer, channel_id: str) -> bool:
        """False for a channel of a lineup the viewer's account does not include."""
        lineup = self._lineup_of.get(channel_id)
        return lineup is None or viewer.sees(lineup)

    # -- connections -----------------------------------------------------------------

    def sessions(self, user: str) -> set[tuple[str, str]]:
        """What ``user`` watches now, from every source: (client address, channel id) pairs."""
        found: set[tuple[str, str]] = set()
        for source in self.session_sources:
            found.update(source(user))
        return found

    def active(self, user: str) -> int:
        """Connections ``user`` holds now as ``max_connections`` counts them."""
        return len(self.sessions(user))

    def at_limit(self, viewer: Viewer, channel_id: str) -> AtLimit | None:
        """
        Whether watching ``channel_id`` would take ``viewer`` past its ``max_connections``.
        One more connection from an address to a channel it already watches is free.
        """
        user = viewer.user
        if user is None or not user.max_connections:
            return None
        open_now = self.sessions(user.name)
        if (viewer.address, channel_id) in open_now or len(open_now) < user.max_connections:
            return None
        return AtLimit(user.name, user.max_connections)

    def stream(self, request: IRequest, channel_id: str, serve: Callable[[IRequest, str], Any],
               login: tuple[str, str] | None = None,
               slate: Callable[[IRequest, str, str], Any] | None = None) -> Any:
        """
        The whole answer of a stream route: who asks (``viewer``), whether they see the
        channel (404 if not), the user's limit (the slate saying so with ``stream.slate``,
        through ``slate``; else 503 naming it), then ``serve``; a connection that streams
        counts against the user until it ends.
        """
        viewer = self._admit(request, channel_id, login, slate)
        if not isinstance(viewer, Viewer):
            return viewer
        result = serve(request, channel_id)
        if viewer.user is not None and isinstance(result, Deferred):
            self._count(viewer.user.name, (viewer.address, channel_id), request, result)
        return result

    def hls(self, request: IRequest, channel_id: str, serve: Callable[[IRequest, str, Viewer], Any],
            login: tuple[str, str] | None = None) -> Any:
        """
        ``stream`` for an HLS playlist or segment (SPEC §16): the same checks (503 at the
        limit: a playlist cannot be the slate's TS), then ``serve`` told who asks (its segment
        URIs must log in as the playlist did); the request opens or renews the user's HLS
        session on the channel, which counts for 3 × ``hls_segment`` seconds.
        """
        viewer = self._admit(request, channel_id, login, None)
        if not isinstance(viewer, Viewer):
            return viewer
        if viewer.user is not None:
            seen = self._hls_seen.setdefault(viewer.user.name, {})
            seen[(viewer.address, channel_id)] = self.clock.seconds()
        return serve(request, channel_id, viewer)

    def _admit(self, request: IRequest, channel_id: str, login: tuple[str, str] | None,
               slate: Callable[[IRequest, str, str], Any] | None) -> Viewer | Any:
        """The viewer of a stream request, or the answer refusing it (401, 404, 429, 503 or the slate)."""
        viewer = self.identify(request, login, user_required=login is not None)
        if isinstance(viewer, Refusal):
            return viewer.render(request)
        if not self.sees(viewer, channel_id):
            return error_line(request, 404, f"unknown channel {channel_id!r}")
        limit = self.at_limit(viewer, channel_id)
        if limit is not None:
            self.log.info("[ACCESS] {line}; refused {channel} to {address}", line=limit.line,
                          channel=channel_id, address=viewer.address)
            if slate is not None and self.config.stream.slate:
                return slate(request, channel_id, limit.slate_text)
            request.setHeader(b"Retry-After", b"30")
            return error_line(request, 503, limit.line)
        return viewer

    def _count(self, user: str, key: tuple[str, str], request: IRequest, done: Deferred[Any]) -> None:
        """Hold ``key`` open until the response ends or its connection goes, whichever is first."""
        self._streams.setdefault(user, collections.Counter())[key] += 1
        released = False

        def release(result: object = None) -> object:
            nonlocal released
            if not released:
                released = True
                counts = self._streams.get(user)
                if counts is not None:
                    counts[key] -= 1
                    if counts[key] <= 0:
                        del counts[key]
                    if not counts:
                        del self._streams[user]
            return result

        done.addBoth(release)
        request.notifyFinish().addBoth(lambda _: release())  # type: ignore[attr-defined]

    def _stream_sessions(self, user: str) -> Iterable[tuple[str, str]]:
        return tuple(self._streams.get(user, ()))

    def _hls_sessions(self, user: str) -> Iterable[tuple[str, str]]:
        """The user's HLS sessions: (address, channel) that asked for a playlist or segment lately."""
        seen = self._hls_seen.get(user)
        if not seen:
            return ()
        since = self.clock.seconds() - 3 * self.config.stream.hls_segment
        for key in [k for k, when in seen.items() if when < since]:
            del seen[key]
        if not seen:
            del self._hls_seen[user]
        return tuple(seen)


def _login_refusal(why: str) -> Refusal:
    return Refusal(401, f"login required: {why}", ((b"WWW-Authenticate", BASIC_CHALLENGE),))


def _basic(request: IRequest) -> tuple[str, str] | None:
    """``Authorization: Basic`` credentials; undecodable ones count as offered (and wrong)."""
    header = request.getHeader(b"authorization") or b""
    if header[:6].lower() != b"basic ":
        return None
    try:
        name, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ("", "")
    return name, password


def _query_login(request: IRequest) -> tuple[str, str] | None:
    """``?username=U&password=P`` (the Xtream Codes form; a POSTed form counts too)."""
    args = request.args or {}
    if b"username" not in args and b"password" not in args:
        return None
    name = args.get(b"username", [b""])[0]
    password = args.get(b"password", [b""])[0]
    return name.decode("utf-8", "replace"), password.decode("utf-8", "replace")


def _offered_token(request: IRequest) -> bytes | None:
    """The admin token offered (``Authorization: Bearer`` or ``?token=``), or None."""
    header = request.getHeader(b"authorization") or b""
    if header[:7].lower() == b"bearer ":
        return header[7:].strip()
    args = request.args or {}
    return args[b"token"][0] if args.get(b"token") else None
