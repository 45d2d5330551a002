"""
``python -m epgd check|build``: the offline commands (the daemon itself is ``twistd epgd``).

``check`` validates a configuration and shows what it describes; ``build`` fetches every
provider once and writes playlist.m3u, epg.xml and schedule.json. Every failure is one line
on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogBeginner
from twisted.python.failure import Failure
from zope.interface import provider

from epgd import __version__
from epgd.config import Config, ConfigError, load_config
from epgd.redact import Redactor
from epgd.tap import provider_urls


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m epgd",
        description="Offline commands of epgd. Run the daemon with: twistd -n epgd --config FILE",
    )
    top.add_argument("--version", action="version", version=f"epgd {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="validate a configuration and print its providers, lineups and events")
    check.add_argument("--config", "-c", default="epgd.toml", help="TOML file (default: ./epgd.toml)")
    build = commands.add_parser(
        "build", help="fetch every provider once and write playlist.m3u, epg.xml and schedule.json to DIR"
    )
    build.add_argument("--config", "-c", default="epgd.toml", help="TOML file (default: ./epgd.toml)")
    build.add_argument("--out", "-o", required=True, metavar="DIR", help="directory to write the files to")
    return top


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(str(e), file=err)
        return 1
    if args.command == "check":
        out.write(summary(config))
        return 0
    return build(config, args.out, err)


def summary(config: Config) -> str:
    """What the configuration describes, credentials masked."""
    mask = Redactor.for_urls(provider_urls(config), [(u.name, u.password) for u in config.users]).mask
    lines = [f"{config.path}: OK", f"listen: {', '.join(config.server.listen)}", "", "providers:"]
    for p in config.providers:
        limit = f"max {p.max_streams} streams" if p.max_streams else "no stream limit"
        lines.append(f"  {p.name}: refresh every {p.refresh_interval:g} s, {limit}")
        lines.append(f"    playlist {mask(p.playlist)}")
        lines.append(f"    guide    {mask(p.guide) if p.guide else '(none)'}")
    lines += ["", "lineups:"]
    for lineup in config.lineups:
        source = ", ".join(lineup.providers) or "all providers"
        lines.append(f"  {lineup.id} ({lineup.display_name}): {lineup.channels} channels from {source}")
        for index, channel_id in enumerate(lineup.channel_ids(), start=1):
            number = lineup.channel_number(index)
            lines.append(f"    {number:>5}  {channel_id:<24} {lineup.channel_name(index)}")
    lines += ["", _hdhr_line(config), ""] + _user_lines(config)
    lines += ["", "events:" if config.events else "events: none"]
    for e in config.events:
        where = mask(e.url) if e.url else f"{e.provider} / {e.channel}"
        stop = e.stop.isoformat() if e.stop else "?"
        lines.append(f"  {e.lineup}: {e.title}  {e.start.isoformat()} .. {stop}  <- {where}")
    return "\n".join(lines) + "\n"


def _user_lines(config: Config) -> list[str]:
    """The viewer accounts (SPEC §15), never their passwords."""
    if not config.users:
        return ["users: none (viewers need no login; the Xtream Codes API is off)"]
    networks = ", ".join(config.server.open_networks) or "none: every viewer logs in"
    lines = [f"users (no login needed from {networks}):"]
    for user in config.users:
        limit = f"{user.max_connections} connections at most" if user.max_connections else "no connection limit"
        lines.append(f"  {user.name}: {', '.join(user.lineups) or 'every lineup'}; {limit}")
    return lines


def _hdhr_line(config: Config) -> str:
    """The HDHomeRun tuner media servers will see (SPEC §10)."""
    hdhr = config.hdhr
    if not hdhr.enabled:
        return "hdhr: off"
    tuners = hdhr.tuner_count or sum(lineup.channels for lineup in config.lineups)
    device = hdhr.device_id or "generated once, kept in state_dir"
    discovery = f"UDP port {hdhr.discovery_port}" if hdhr.discovery else "off"
    return f'hdhr: tuner "{hdhr.friendly_name}", {tuners} tuners, device id {device}, discovery {discovery}'


def build(config: Config, out_dir: str, err: TextIO) -> int:
    """Run ``build_once`` under ``react``; returns only through ``SystemExit``."""
    from twisted.internet.task import react

    from epgd.oneshot import build_once

    globalLogBeginner.beginLoggingTo([_warnings_to(err)], redirectStandardIO=False)
    redactor = Redactor.for_urls(provider_urls(config))

    def run(reactor: Any) -> Deferred[None]:
        def done(paths: list[str]) -> None:
            for path in paths:
                print(f"wrote {path}")

        def failed(failure: Failure) -> None:
            print(f"{config.path}: build failed: {_one_line(failure, redactor)}", file=err)
            raise SystemExit(1)

        d: Deferred[Any] = build_once(config, reactor, out_dir, redactor)
        return d.addCallbacks(done, failed)

    react(run)
    return 0  # not reached: react() exits


def _one_line(failure: Failure, redactor: Redactor) -> str:
    text = " ".join(str(failure.value).split()) or type(failure.value).__name__
    return redactor.mask(text)


def _warnings_to(err: TextIO) -> Any:
    """Warnings and errors from the build, one line each on stderr; the rest is quiet."""

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        level = event.get("log_level", LogLevel.info)
        if level < LogLevel.warn:
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += ": " + " ".join(str(failure.value).split())
        print(f"{level.name}: {text}", file=err)

    return observe


if __name__ == "__main__":
    sys.exit(main())
