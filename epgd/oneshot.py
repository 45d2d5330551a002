"""
``python -m epgd build``: fetch every provider once, build the schedule and write
playlist.m3u, epg.xml and schedule.json into a directory, for users who serve the files from
a web server or a cron job instead of running the daemon.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from epgd.catalog import ASSIGNMENTS, FeedFactory, FeedLike, default_feed_factory, make_feeds, one_line
from epgd.config import Config
from epgd.publish.outputs import Published
from epgd.redact import Redactor
from epgd.schedule.build import build_schedule
from epgd.schedule.packing import PackingState
from epgd.sources import SourceError
from epgd.sources.models import ProviderData

log = Logger()


def http_base_url(config: Config) -> str:
    """server.base_url, else http://localhost:<port of the first tcp listen string>."""
    if config.server.base_url:
        return config.server.base_url.rstrip("/")
    for desc in config.server.listen:
        parts = desc.split(":")
        if parts[0] != "tcp":
            continue
        for part in parts[1:]:
            value = part.split("=", 1)[1] if part.startswith("port=") else part
            if value.isdigit():
                return f"http://localhost:{value}"
            if "=" not in part:
                break
    return "http://localhost:8080"


def write_atomically(path: str, data: bytes) -> None:
    """
    Temp file + rename. The result is readable as a plainly created file would be (umask
    applied, or the mode of the file it replaces): a web server serves these files.
    """
    directory = os.path.dirname(path) or "."
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build_once(
    config: Config,
    reactor: IReactorTime,
    out_dir: str,
    redactor: Redactor,
    feed_factory: FeedFactory | None = None,
) -> Deferred[list[str]]:
    """
    ``python -m epgd build``: fetch every provider once (falling back to its cached data),
    build the schedule, and write playlist.m3u, epg.xml and schedule.json atomically into
    ``out_dir``. Fires with the paths written; errbacks with a one-line SourceError when no
    provider has any data (the previous files are then left as they were).
    """
    return Deferred.fromCoroutine(
        _build_once(config, reactor, out_dir, redactor, feed_factory or default_feed_factory))


async def _fetch_or_cached(name: str, feed: FeedLike, mask: Callable[[str], str],
                           errors: list[str]) -> ProviderData | None:
    try:
        data: ProviderData = await maybeDeferred(feed.refresh)
        return data
    except Exception:
        failure = Failure()
    message = one_line(failure, mask)
    # The feed logged a SourceError already; say only what happens next.
    said = "" if failure.check(SourceError) else f" ({message})"
    try:
        cached: ProviderData | None = await maybeDeferred(feed.load_cached)
    except Exception:
        cached = None
    if cached is None:
        errors.append(f"{name}: {message}")
        log.warn("provider {provider}: fetch failed{said} and no cached data either",
                         provider=name, said=said)
    else:
        log.warn("provider {provider}: fetch failed{said}, using its cached data",
                         provider=name, said=said)
    return cached


async def _build_once(config: Config, reactor: IReactorTime, out_dir: str,
                      redactor: Redactor, factory: FeedFactory) -> list[str]:
    for directory in (config.server.state_dir, out_dir):
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as e:
            raise SourceError(f"cannot create {directory}: {e.strerror or e}") from None
    feeds = make_feeds(config, reactor, redactor, factory)
    errors: list[str] = []
    try:
        fetched = await gatherResults([
            Deferred.fromCoroutine(_fetch_or_cached(name, feed, redactor.mask, errors))
            for name, feed in feeds.items()
        ])
    finally:
        await gatherResults([maybeDeferred(f.close) for f in feeds.values()],
                            consumeErrors=True).addErrback(lambda _: None)
    data = {name: d for name, d in zip(feeds, fetched, strict=True) if d is not None}
    if feeds and not data:
        raise SourceError("no provider data, nothing written: " + "; ".join(errors))
    state_path = os.path.join(config.server.state_dir, ASSIGNMENTS)
    now = reactor.seconds()
    schedule, state = build_schedule(config, data, PackingState.load(state_path), now)
    state.save(state_path)
    published = Published(schedule, config, redactor.mask, now)
    outputs = {
        "playlist.m3u": published.playlist(http_base_url(config)),
        "epg.xml": published.epg_xml,
        "schedule.json": published.schedule_json(now),
    }
    written = []
    for filename, body in outputs.items():
        path = os.path.join(out_dir, filename)
        try:
            write_atomically(path, body)
        except OSError as e:
            raise SourceError(f"cannot write {path}: {e.strerror or e}") from None
        written.append(path)
    return written
