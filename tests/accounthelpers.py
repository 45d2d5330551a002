"""
Shared fixtures of the viewer-account tests (SPEC §15): a configuration with two lineups and
three accounts, a real schedule and its real ``Published`` outputs, fake stream and catalog
collaborators, and an in-memory client whose TCP peer is any address (``StubTreq`` always
connects from 127.0.0.1, an open network).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from zope.interface import implementer

from epgd.config import Config, GuideConfig, LineupConfig, ProviderConfig, ServerConfig, UserConfig
from epgd.publish.outputs import Published
from epgd.redact import Redactor
from epgd.schedule.model import Channel, Event, Schedule, Source

NOW = 1764000000.0  # 2025-11-24 16:00:00 UTC, on a whole hour
OUTSIDE = "203.0.113.7"
PROVIDER = "http://provider.example/get.php?username=joe&password=hunter22"
ALICE = UserConfig(name="alice", password="Wonder-land9", max_connections=2, lineups=("nhl",))
BOB = UserConfig(name="bob", password="xyzzy-42", max_connections=1)
USERS = (ALICE, BOB)
SECRETS = ("Wonder-land9", "xyzzy-42", "hunter22")


def utc(t: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(t, _dt.UTC)


def make_config(users: tuple[UserConfig, ...] = USERS, token: str = "", base_url: str = "") -> Config:
    return Config(
        server=ServerConfig(admin_token=token, base_url=base_url, state_dir="/nonexistent/epgd-state"),
        guide=GuideConfig(days=1),
        providers=(ProviderConfig(name="main", playlist=PROVIDER),),
        lineups=(LineupConfig(id="nhl", name="NHL PPV", channels=2, first_number=101,
                              logo="http://logos.example/nhl.png"),
                 LineupConfig(id="nba", name="NBA", channels=1, first_number=103)),
        users=users,
        path="accounts.toml",
    )


def event(key: str, title: str, start: float, stop: float, lineup: str = "nhl", desc: str = "") -> Event:
    source = Source("main", f"{title} feed", f"http://provider.example/live/joe/hunter22/{len(key)}.ts")
    return Event(key=key, lineup=lineup, title=title, start=utc(start), stop=utc(stop), sources=(source,),
                 desc=desc)


def make_schedule(now: float = NOW) -> Schedule:
    """nhl_1 (101): a game live now and five to come; nhl_2 (102): nothing; nba_1 (103): a game."""
    hour = 3600.0
    nhl = [event("bruins", "Bruins vs Rangers", now - hour / 2, now + 1.5 * hour,
                 desc="Ünïcödé — live from Boston")]
    nhl += [event(f"game{i}", f"Game {i}", now + (2 * i) * hour, now + (2 * i + 1) * hour) for i in range(1, 6)]
    return Schedule(generated_at=utc(now), channels=(
        Channel(id="nhl_1", name="NHL PPV 1", number=101, lineup="nhl", group="NHL PPV",
                logo="http://logos.example/nhl.png", events=tuple(nhl)),
        Channel(id="nhl_2", name="NHL PPV 2", number=102, lineup="nhl", group="NHL PPV",
                logo="http://logos.example/nhl.png"),
        Channel(id="nba_1", name="NBA 1", number=103, lineup="nba", group="NBA",
                events=(event("lakers", "Lakers vs Celtics", now - hour, now + hour, lineup="nba"),)),
    ))


def redactor(config: Config) -> Redactor:
    return Redactor.for_urls([PROVIDER], [(u.name, u.password) for u in config.users])


def published(config: Config, now: float = NOW) -> Published:
    return Published(make_schedule(now), config, redactor(config).mask, rendered_at=now)


class Catalog:
    def __init__(self, outputs: Published | None) -> None:
        self.outputs = outputs

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "providers": {"main": {"loaded": True}}}

    def published(self) -> Published | None:
        return self.outputs

    def refresh(self) -> Deferred[None]:
        return succeed(None)


class Streams:
    """Serves every stream as one TS packet that stays open until ``end()``."""

    def __init__(self) -> None:
        self.served: list[str] = []
        self.open: list[Deferred[bytes]] = []

    def serve(self, request: IRequest, channel_id: str) -> Any:
        self.served.append(channel_id)
        request.setHeader(b"Content-Type", b"video/mp2t")
        if request.method == b"HEAD":
            return b""
        request.write(b"\x47" + b"\xff" * 187)
        done: Deferred[bytes] = Deferred()
        self.open.append(done)
        return done

    def serve_slate(self, request: IRequest, channel_id: str, reason: str) -> Any:
        """The slate alone (SPEC §14), as the manager serves a user at its limit."""
        self.served.append(f"{channel_id}: slate {reason!r}")
        request.setHeader(b"Content-Type", b"video/mp2t")
        return b"\x47" + b"\xff" * 187

    def serve_hls(self, request: IRequest, channel_id: str, prefix: str = "") -> Any:
        """A playlist of one segment, its URI as the HLS output writes it (``prefix`` + sequence)."""
        self.served.append(f"{channel_id}.m3u8")
        request.setHeader(b"Content-Type", b"application/vnd.apple.mpegurl")
        return f"#EXTM3U\n#EXTINF:4.000,\n{prefix or channel_id + '/'}7.ts\n".encode()

    def serve_hls_segment(self, request: IRequest, channel_id: str, name: str) -> Any:
        self.served.append(f"{channel_id}/{name}")
        request.setHeader(b"Content-Type", b"video/mp2t")
        return b"\x47" + b"\xff" * 187

    def end(self) -> None:
        for done in self.open:
            if not done.called:
                done.callback(b"")

    def status(self) -> dict[str, Any]:
        return {"nhl_1": {"clients": 1, "stream_url": "http://provider.example/live/***/***/1.ts"}}

    def stop(self, channel_id: str) -> bool:
        return False

    def connections(self) -> dict[str, int]:
        return {}


@implementer(IResource)
class From:
    """The wrapped resource, as reached from ``host`` (the TCP peer the access checks read)."""

    isLeaf = True

    def __init__(self, wrapped: Any, host: str) -> None:
        self.wrapped = wrapped
        self.host = host

    def getChildWithDefault(self, name: bytes, request: Any) -> Any:
        return self

    def putChild(self, path: bytes, child: Any) -> None:
        raise NotImplementedError

    def render(self, request: Any) -> Any:
        request.client = (IPv6Address if ":" in self.host else IPv4Address)("TCP", self.host, 40000)
        return self.wrapped.render(request)


def client(resource: Any, host: str = OUTSIDE) -> StubTreq:
    return StubTreq(From(resource, host))
