"""
``twistd epgd``: the command-line options and the service tree of one epgd process.

``makeService`` wires the object graph of HACKING.md: configuration, the ``Catalog``
(provider data and the schedule), the ``StreamManager`` and one web listener per
``server.listen`` endpoint string, all children of one ``MultiService`` so that twistd
starts them in that order and stops them in reverse (listeners first, SIGTERM included).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from attrs import evolve
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from epgd import logmask
from epgd.config import Config, ConfigError, check_listen, load_config
from epgd.httpguard import EpgdSite, access_log_formatter
from epgd.redact import Redactor

DEFAULT_CONFIG = "epgd.toml"


class Options(usage.Options):
    """Options of ``twistd epgd``; a bad configuration ends here with one line, before twistd starts."""

    synopsis = "[--config FILE | --demo] [--listen ENDPOINT ...]"
    longdesc = (
        "Builds combined IPTV event channels from provider playlists and guides and serves "
        "them as /playlist.m3u, /epg.xml and live /stream/{id}.ts. Without --config, "
        f"./{DEFAULT_CONFIG} is used if it exists."
    )
    optParameters = [
        ["config", "c", None, f"TOML configuration file (default: ./{DEFAULT_CONFIG} if present)."],
    ]
    optFlags = [
        ["demo", None, "Run a built-in demo provider on loopback and serve demo lineups from it "
                       "(with --config, that file's [server], [stream] and [hdhr] are kept; "
                       "it needs no [[provider]] or [[lineup]])."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["loaded"] = None

    def opt_listen(self, description: str) -> None:
        """
        Twisted endpoint to listen on, e.g. tcp:8080:interface=127.0.0.1 or
        systemd:domain=INET:index=0. Repeatable; replaces server.listen.
        """
        self["listen"].append(description)

    def postOptions(self) -> None:
        try:
            self["loaded"] = settle(self["config"], bool(self["demo"]), self["listen"])
        except ConfigError as e:
            # Not a UsageError: twistd would print the whole usage text before it.
            print(str(e), file=sys.stderr)
            raise SystemExit(1) from None


def settle(path: str | None, demo: bool, listen: Iterable[str]) -> Config | None:
    """
    The configuration to run with (None: the demo alone), or a ``ConfigError`` line.
    Every ``--listen`` string is checked here too, so a typo fails before anything starts.
    """
    for description in listen:
        reason = check_listen(description)
        if reason:
            raise ConfigError(f'epgd: --listen: not a Twisted endpoint string ({reason}), got "{description}"')
    if path is None:
        if demo:
            return None
        if not os.path.exists(DEFAULT_CONFIG):
            raise ConfigError(
                f"epgd: no configuration: give --config FILE (see epgd.example.toml), "
                f"put one at ./{DEFAULT_CONFIG}, or try --demo"
            )
        path = DEFAULT_CONFIG
    # the demo brings its own provider and lineups: FILE may have none
    return load_config(path, sources_required=not demo)


def makeService(options: Mapping[str, Any]) -> MultiService:
    """twistd's entry point: the service tree for parsed ``Options`` (or an equivalent dict)."""
    from twisted.internet import reactor

    config = options.get("loaded")
    if config is None and options.get("config"):
        config = load_config(options["config"], sources_required=not options.get("demo"))
    # twistd's own options (the parent of ours): will it fork into the background?
    parent = getattr(options, "parent", None)
    daemon = parent is not None and not parent.get("nodaemon", True) and os.name == "posix"
    return build_service(config, reactor, demo=bool(options.get("demo")),
                         listen=options.get("listen") or (), daemon=daemon)


def build_service(
    config: Config | None,
    reactor: Any,
    demo: bool = False,
    listen: Iterable[str] = (),
    daemon: bool = False,
) -> MultiService:
    """
    The whole process as one ``MultiService``. Children start in the order added (the demo
    provider is up before the first fetch) and stop in reverse (listeners close first).
    ``daemon``: twistd will fork into the background (no ``-n``) before the listeners bind.
    """
    from epgd.catalog import Catalog
    from epgd.stream.manager import StreamManager
    from epgd.web import EpgdApi

    top = EpgdService(daemon)  # reactor: the global one (time, TCP, sockets...), hence Any
    if demo:
        from epgd.demo import demo_setup

        config, demo_service = demo_setup(reactor, config)
        _adopt(top, demo_service, "demo")
    if config is None:
        raise ConfigError("epgd: no configuration: give --config FILE or --demo")
    listen = tuple(listen)
    if listen:
        config = evolve(config, server=evolve(config.server, listen=listen))
        if demo:
            demo_service.config = config  # its start-up log names the URLs to open

    redactor = Redactor.for_urls(provider_urls(config), [(u.name, u.password) for u in config.users])
    logmask.install(redactor)  # before twistd adds its log observer: every line is masked
    catalog = Catalog(config, reactor, redactor)
    _adopt(top, catalog, "catalog")
    streams = StreamManager(config, reactor, schedule=catalog.schedule, redactor=redactor,
                            has_data=catalog.has_data)
    _adopt(top, streams, "streams")
    catalog.on_schedule(streams.schedule_changed)

    tuner = None
    if config.hdhr.enabled:
        from epgd.hdhr.device import HdhrDevice

        tuner = HdhrDevice.from_config(config)
    api = EpgdApi(config, catalog, streams, reactor, hdhr=tuner, redactor=redactor)
    site = EpgdSite(api.app.resource(), redactor)
    listeners = []
    for index, description in enumerate(config.server.listen):
        listener = Listener(reactor, description, site, top.start_failed)
        listeners.append(listener)
        _adopt(top, listener, f"listen-{index}")
    if tuner is not None and config.hdhr.discovery:
        _adopt(top, discovery_listener(config, tuner, listeners, reactor), "hdhr-discovery")
    return top


def discovery_listener(config: Config, tuner: Any, listeners: list[Listener], reactor: Any) -> IService:
    """HDHomeRun UDP discovery (SPEC §10.2), announcing the first TCP listener's port."""
    from epgd.hdhr.discovery import DiscoveryListener, DiscoveryProtocol, announced_base_url

    def http_port() -> int | None:
        for listener in listeners:
            port = getattr(listener.port.getHost(), "port", None) if listener.port else None
            if port is not None:
                return int(port)
        return None

    protocol = DiscoveryProtocol(tuner.device_id, tuner.tuner_count,
                                 announced_base_url(config.server.base_url, http_port))
    return DiscoveryListener(protocol, config.hdhr.discovery_port, reactor)


class StartFailed(Exception):
    """The start cannot go on; the message is the one line the user sees."""


class EpgdService(MultiService):
    """
    The process's service tree, and where a start failure is told. In the foreground the
    line goes to stderr (twistd's log by then) and the process exits 1. Under a daemonizing
    twistd, stderr is /dev/null by the time the listeners bind (the fork came first), so the
    terminal twistd was started from is kept (a duplicate of its stderr, closed once started)
    to print the line on; ``StartFailed`` then lets twistd remove its pidfile and exit 1.
    """

    def __init__(self, daemon: bool = False) -> None:
        super().__init__()
        self._terminal: Any = os.fdopen(os.dup(2), "w") if daemon else None

    def start_failed(self, line: str) -> NoReturn:
        print(line, file=sys.stderr)
        if self._terminal is None:
            raise SystemExit(1)
        try:
            print(line, file=self._terminal, flush=True)
        except OSError:
            pass
        self._close_terminal()
        raise StartFailed(line)

    def startService(self) -> None:
        super().startService()
        self._close_terminal()

    def _close_terminal(self) -> None:
        if self._terminal is not None:
            terminal, self._terminal = self._terminal, None
            try:
                terminal.close()
            except OSError:
                pass


class Listener(StreamServerEndpointService):
    """One ``server.listen`` endpoint; failing to bind stops the start with one line, not a traceback."""

    def __init__(self, reactor: Any, description: str, factory: Any,
                 failed: Callable[[str], NoReturn] | None = None) -> None:
        super().__init__(_AtOnce(endpoints.serverFromString(reactor, description), self._listening),
                         factory)
        self.description = description
        self.port: IListeningPort | None = None  # once listening (HDHomeRun discovery announces it)
        self._failed = failed or EpgdService().start_failed

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            self._failed(f'epgd: cannot listen on "{self.description}": {e.socketError}')

    def _listening(self, port: IListeningPort) -> None:
        self.port = port

    def stopService(self) -> Any:
        self.port = None
        return super().stopService()


@implementer(IStreamServerEndpoint)
class _AtOnce:
    """
    An endpoint whose ``listen`` raises what fails at once (a busy port), and tells
    ``bound`` the port once listening. ``StreamServerEndpointService`` alone logs such a
    failure and runs on without a port; its switch to raise instead is private, and an
    endpoint is public API.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, bound: Callable[[IListeningPort], None]) -> None:
        self._endpoint = endpoint
        self._bound = bound

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        listening = self._endpoint.listen(protocolFactory)
        at_once: list[Failure] = []
        later = False

        def bound(port: IListeningPort) -> IListeningPort:
            self._bound(port)
            return port

        def failed(failure: Failure) -> Failure | None:
            if later:
                return failure  # the service logs it, as it always has
            at_once.append(failure)
            return None

        listening.addCallbacks(bound, failed)
        later = True
        if at_once:
            at_once[0].raiseException()
        return listening


def provider_urls(config: Config) -> list[str]:
    """Every configured URL whose credentials must be masked wherever they turn up."""
    urls = [u for p in config.providers for u in (p.playlist, p.guide) if u]
    return urls + [e.url for e in config.events if e.url]


def masked_log_formatter(redactor: Redactor) -> Any:
    """The access log in combined format, with ``?token=`` and other secrets masked."""
    return access_log_formatter(redactor)


def _adopt(parent: MultiService, child: Any, name: str) -> None:
    service = IService(child)
    if service.name is None:
        service.setName(name)
    service.setServiceParent(parent)
