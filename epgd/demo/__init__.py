"""
``twistd -n epgd --demo``: epgd plus a demo provider in one process, no config needed.

``demo_setup`` builds the demo configuration (two lineups fed by an Xtream-style provider on
a free loopback port) and the service that runs that provider. The tap imports this package
only when ``--demo`` is given, so none of it is on the daemon's normal path.

The port must be in the configuration before any service starts (the provider URLs name it),
yet the listening port belongs in ``startService``. So ``demo_setup`` binds and listens on a
plain socket at once, which reserves the port and already queues connections, and the
service adopts that very socket when it starts (``IReactorSocket.adoptStreamPort``): no
window in which another process could take the port, and nothing for twistd's daemonizing
fork to disturb.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorSocket
from twisted.logger import Logger
from twisted.web.http import combinedLogFormatter
from twisted.web.server import Site

from epgd.config import (
    Config,
    GuideConfig,
    HdhrConfig,
    LineupConfig,
    ProviderConfig,
    ServerConfig,
    StreamConfig,
)
from epgd.redact import Redactor

USERNAME = "demo"
PASSWORD = "s3cret"
DEFAULT_EVENT_LENGTH = 180.0
#: a PPV event fills this share of its slot; the rest is the slate naming the next one (§14).
#: The demo starts inside that gap (20-30 s before the first switch): Demo PPV 1 opens on the slate.
PPV_SHARE = 5 / 6


def demo_config(port: int, base: Config | None, event_length: float = DEFAULT_EVENT_LENGTH,
                state_dir: str = "") -> Config:
    """
    The demo configuration for a provider on ``127.0.0.1:port``. ``base`` (``--demo
    --config FILE``) keeps its ``server``, ``stream`` and ``hdhr`` sections; the rest
    (providers, lineups, events, guide) is the demo's.
    """
    from epgd.demo.scenario import PPV_GROUP, PPV_PATTERN, PPV_TIME_FORMATS, SPORTS_GROUP

    root = f"http://127.0.0.1:{port}"
    credentials = f"username={USERNAME}&password={PASSWORD}"
    provider = ProviderConfig(
        name="demo",
        playlist=f"{root}/get.php?{credentials}&type=m3u_plus",
        guide=f"{root}/xmltv.php?{credentials}",
        # the guide reaches hours ahead; this only keeps the PPV names (nine events) fresh
        refresh_interval=max(5.0, min(60.0, 3 * event_length)),
    )
    lineups = (
        LineupConfig(
            id="demo_sports", name="Demo Sports", channels=2, first_number=101,
            providers=("demo",), match_group=f"^{SPORTS_GROUP}$",
            exclude_title="^no event", default_duration=2 * event_length,
        ),
        LineupConfig(
            id="demo_ppv", name="Demo PPV", channels=1, first_number=201,
            providers=("demo",), match_group=f"^{PPV_GROUP}$",
            name_pattern=PPV_PATTERN, name_time_formats=PPV_TIME_FORMATS,
            default_duration=event_length * PPV_SHARE,
        ),
    )
    if base is not None:
        server, stream, hdhr, path = base.server, base.stream, base.hdhr, base.path
    else:
        server = ServerConfig(state_dir=state_dir or os.path.join(tempfile.gettempdir(), "epgd-demo"))
        # an ended event is not held (hold_after_end): its gap shows the slate
        stream = StreamConfig(check_interval=1.0, hold_after_end=0.0)
        hdhr = HdhrConfig()
        path = "--demo"
    return Config(
        server=server, stream=stream, guide=GuideConfig(days=1, filler=True, timezone="UTC"),
        hdhr=hdhr,
        providers=(provider,), lineups=lineups, events=(), path=path,
    )


def _epgd_port(listen: tuple[str, ...]) -> str:
    """The port of epgd's first TCP listener, for the URLs a newcomer should open."""
    for description in listen:
        match = re.match(r"^tcp6?:(?:port=)?(\d+)", description)
        if match:
            return match.group(1)
    return "8080"


class DemoProviderService(Service):
    """Runs the demo provider on the socket ``demo_setup`` bound, and says what to open."""

    log = Logger()

    def __init__(self, reactor: Any, site: Site, sock: socket.socket, config: Config,
                 provider: Any, first_switch: float, owned_state_dir: str = "") -> None:
        self.reactor = reactor
        self.site = site
        self.config = config
        self.provider = provider
        self.first_switch = first_switch
        self._socket: socket.socket | None = sock
        self._port: IListeningPort | None = None
        self._owned_state_dir = owned_state_dir
        self.port_number: int = sock.getsockname()[1]

    def startService(self) -> None:
        super().startService()
        sock, self._socket = self._socket, None
        if sock is None:  # restarted: bind the same port again
            self._port = self.reactor.listenTCP(self.port_number, self.site, interface="127.0.0.1")
        elif IReactorSocket.providedBy(self.reactor):
            self._port = self.reactor.adoptStreamPort(
                sock.fileno(), socket.AF_INET, self.site)  # type: ignore[arg-type]
            sock.close()  # the port holds its own duplicate of the descriptor
        else:
            sock.close()
            self._port = self.reactor.listenTCP(self.port_number, self.site, interface="127.0.0.1")
        self._announce()

    def _announce(self) -> None:
        web = f"http://localhost:{_epgd_port(self.config.server.listen)}"
        self.log.info("[DEMO] demo provider listening on http://127.0.0.1:{port}",
                      port=self.port_number)
        self.log.info("[DEMO] status page: {web}/ (streams, switches, what is on now)", web=web)
        self.log.info(
            "[DEMO] open {web}/playlist.m3u in VLC (or any IPTV player); guide {web}/epg.xml, "
            "stream status {web}/streams/status, one stream {web}/stream/demo_sports_1.ts",
            web=web,
        )
        wait = max(0, round(self.first_switch - self.reactor.seconds()))
        length = self.provider.scenario.event_length
        self.log.info(
            "[DEMO] the first switch (Demo Sports 1, Demo PPV 1) comes in {wait} s; then "
            "Demo PPV 1 switches every {length:g} s, each Demo Sports channel every {game:g} s",
            length=length, wait=wait, game=2 * length,
        )
        if self.config.stream.slate:
            self.log.info(
                "[DEMO] Demo PPV 1 shows the slate (what is up next, and when) for the last {gap:g} s "
                "before each of its events, now included: tune to it and the event starts in the "
                "same connection", gap=round(length * (1 - PPV_SHARE), 1),
            )

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self.provider.stop_streams()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._owned_state_dir:
            shutil.rmtree(self._owned_state_dir, ignore_errors=True)
        port, self._port = self._port, None
        if port is not None:
            return port.stopListening()
        return None


def demo_setup(reactor: Any, base: Config | None,
               event_length: float = DEFAULT_EVENT_LENGTH) -> tuple[Config, DemoProviderService]:
    """
    The demo Config and the service running its provider. The provider's port is bound
    now (see the module docstring); ``event_length`` is how long each event lasts (tests
    make it short). Without ``base``, epgd's state goes to a fresh temporary directory,
    removed when the demo stops, so a demo never litters the working directory nor reads a
    previous run's stale cache.
    """
    from epgd.demo.clip import load_clips
    from epgd.demo.provider import DemoProvider
    from epgd.demo.scenario import Scenario, start_epoch

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        owned = ""
        if base is None:
            parent = os.path.join(tempfile.gettempdir(), "epgd-demo")
            os.makedirs(parent, exist_ok=True)
            owned = tempfile.mkdtemp(prefix="run-", dir=parent)
        config = demo_config(port, base, event_length, owned)
        scenario = Scenario(epoch=start_epoch(reactor.seconds(), event_length),
                            event_length=event_length)
        provider = DemoProvider(scenario, load_clips(), reactor, USERNAME, PASSWORD)
    except BaseException:
        sock.close()
        raise
    redactor = Redactor.for_urls([config.providers[0].playlist])
    site = Site(provider, reactor=reactor,
                logFormatter=lambda when, request: redactor.mask(combinedLogFormatter(when, request)))
    site.noisy = False
    first_switch = scenario.epoch + event_length
    return config, DemoProviderService(reactor, site, sock, config, provider, first_switch, owned)
