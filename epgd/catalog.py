"""
The Catalog service: every provider's last good data, the schedule built from it, and the
rendered outputs the web API serves.

On start it loads each provider's cached data and publishes a schedule from it at once (a
restart with the provider down still serves the last schedule), then fetches every provider
and re-fetches each every ``refresh_interval``. Each successful refresh rebuilds the schedule,
saves the sticky lane assignments, renders a new ``Published`` and swaps it in whole.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from epgd.buckets import Buckets
from epgd.config import Config, ProviderConfig
from epgd.publish.outputs import Published
from epgd.redact import Redactor
from epgd.schedule.build import build_schedule
from epgd.schedule.events import lineup_takes
from epgd.schedule.model import Schedule, utc_iso
from epgd.schedule.packing import PackingState
from epgd.sources import SourceError
from epgd.sources.feed import ProviderFeed
from epgd.sources.fetch import remove_quietly
from epgd.sources.models import ProviderChannel, ProviderData

REPUBLISH_INTERVAL = 3600.0  # move the epg.xml window on at least this often
ASSIGNMENTS = "assignments.json"
#: upper bounds (seconds) of the refresh-duration histogram /metrics shows
REFRESH_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Durations(Buckets):
    """How long a provider's refreshes took, in fixed buckets: bounded, whatever the uptime."""

    def __init__(self, bounds: tuple[float, ...] = REFRESH_BUCKETS) -> None:
        super().__init__(bounds)


class FeedLike(Protocol):
    """What the Catalog needs of ``epgd.sources.feed.ProviderFeed``."""

    @property
    def loaded(self) -> bool: ...

    @property
    def last_refresh(self) -> _dt.datetime | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def channels(self) -> int: ...

    @property
    def programmes(self) -> int: ...

    @property
    def programmes_skipped(self) -> int: ...

    @property
    def data(self) -> ProviderData | None: ...

    def load_cached(self) -> Deferred[ProviderData | None]: ...

    def refresh(self) -> Deferred[ProviderData]: ...

    def close(self) -> Deferred[None]: ...


FeedFactory = Callable[..., FeedLike]
RunInThread = Callable[..., "Deferred[Any]"]


def default_feed_factory(reactor: Any, provider: ProviderConfig, **kwargs: Any) -> FeedLike:
    return ProviderFeed(reactor, provider, **kwargs)


def one_line(failure: Failure, mask: Callable[[str], str]) -> str:
    """A failure as the one masked line /health and the log show."""
    value = failure.value
    text = str(value) if isinstance(value, SourceError) else f"{type(value).__name__}: {value}"
    return mask(" ".join(text.split())) or type(value).__name__


def make_feeds(config: Config, reactor: Any, redactor: Redactor,
               factory: FeedFactory) -> dict[str, FeedLike]:
    def wanted(channel: ProviderChannel) -> bool:
        return any(lineup_takes(lineup, channel) for lineup in config.lineups)

    return {
        provider.name: factory(
            reactor, provider,
            user_agent=config.stream.user_agent,
            inactivity=config.stream.connect_timeout,
            state_dir=config.server.state_dir,
            redactor=redactor,
            wanted_channel=wanted,
            run_in_thread=None,
        )
        for provider in config.providers
    }


def remove_stale_temps(state_dir: str) -> None:
    """
    Temp files a killed run left in ``state_dir`` (``.packing-*.tmp`` of the lane state, any
    other ``.*.tmp``); provider downloads (``.*.part``) are the feeds' own. The file they were
    to replace is whole: each is renamed into place only once written and fsynced.
    """
    try:
        names = os.listdir(state_dir)
    except OSError:
        return
    for name in names:
        if name.startswith(".") and name.endswith(".tmp"):
            remove_quietly(os.path.join(state_dir, name))


def default_runner(reactor: Any) -> RunInThread:
    """
    Where schedule builds run: the reactor's thread pool, so that a build over a huge guide
    never stalls streams and requests; inline when the reactor has no threads (``task.Clock``).
    """
    if IReactorThreads.providedBy(reactor):
        return lambda f, *a, **kw: deferToThreadPool(reactor, reactor.getThreadPool(), f, *a, **kw)
    return maybeDeferred


class Catalog(Service):
    """Provider data in, the current Schedule and its Published outputs out."""

    log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: IReactorTime,
        redactor: Redactor,
        feed_factory: FeedFactory | None = None,
        run_in_thread: RunInThread | None = None,
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.redactor = redactor
        self._run = run_in_thread or default_runner(reactor)
        self._building = False
        self._build_again: str | None = None  # why another build was asked for meanwhile
        self.feeds = make_feeds(config, reactor, redactor, feed_factory or default_feed_factory)
        self.state = PackingState.empty()
        self.state_path = os.path.join(config.server.state_dir, ASSIGNMENTS)
        self._published: Published | None = None
        self._callbacks: list[Callable[[Schedule], object]] = []
        self._loops: list[LoopingCall] = []
        self._inflight: dict[str, list[Deferred[None]]] = {}
        self._errors: dict[str, str] = {}
        #: for /metrics: finished fetches by (provider, "ok" or "error"), and their durations
        self.refreshes: Counter[tuple[str, str]] = Counter()
        self.refresh_durations: dict[str, Durations] = {name: Durations() for name in self.feeds}
        self._serving: set[str] = set()  # providers whose data the served schedule holds
        self._stopping = False

    # -- the interface web.py and the stream manager use --------------------------------

    def published(self) -> Published | None:
        return self._published

    def schedule(self) -> Schedule | None:
        return self._published.schedule if self._published else None

    def has_data(self) -> bool:
        """Whether the schedule being served holds provider data (health is past "starting")."""
        return bool(self._serving) or not self.feeds

    def on_schedule(self, callback: Callable[[Schedule], object]) -> None:
        """``callback(schedule)`` after every new schedule (not on a mere re-render)."""
        self._callbacks.append(callback)

    def refresh(self) -> Deferred[None]:
        """Fetch every provider now; fires when all are done (failures are in health())."""
        d = gatherResults([self._refresh_provider(name) for name in self.feeds])
        return d.addCallback(lambda _: None)

    def health(self) -> dict[str, Any]:
        providers: dict[str, Any] = {}
        for name, feed in self.feeds.items():
            error = feed.error or self._errors.get(name)
            providers[name] = {
                # loaded: its data is in the schedule being served, so a client that waits
                # for "ok" finds the events at once (builds run in a thread).
                "loaded": bool(feed.loaded) and name in self._serving,
                "last_refresh": utc_iso(feed.last_refresh) if feed.last_refresh else None,
                "error": self.redactor.mask(error) if error else None,
                "channels": int(feed.channels),
                "programmes": int(feed.programmes),
                # malformed programmes the latest guide parse passed over (SPEC §4)
                "programmes_skipped": int(getattr(feed, "programmes_skipped", 0)),
            }
        if not self.has_data():
            status = "starting"
        elif any(p["error"] for p in providers.values()):
            status = "degraded"
        else:
            status = "ok"
        return {"status": status, "providers": providers}

    # -- service ---------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        try:
            os.makedirs(self.config.server.state_dir, exist_ok=True)
        except OSError as e:
            self.log.error("cannot create state_dir {path}: {error}",
                           path=self.config.server.state_dir, error=e.strerror or str(e))
        remove_stale_temps(self.config.server.state_dir)
        self.state = PackingState.load(self.state_path)
        self._publish_channel_list()
        loads = [maybeDeferred(feed.load_cached).addErrback(self._cache_failed, name)
                 for name, feed in self.feeds.items()]
        gatherResults(loads).addCallback(self._cache_loaded).addErrback(
            lambda f: self.log.failure("loading cached provider data failed", f))

    def _publish_channel_list(self) -> None:
        """
        The channel list never depends on provider data (SPEC §6.1): publish it, with the
        manual events, before the first request, while cached data still loads in a thread.
        Cheap without provider data; the state is neither changed nor saved.
        """
        now = self.reactor.seconds()
        schedule, _ = build_schedule(self.config, {}, self.state, now)
        published = self._render(schedule, now)
        if published is not None and self._published is None:
            self._published = published

    def stopService(self) -> Deferred[None]:
        self._stopping = True
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        closing = [maybeDeferred(feed.close) for feed in self.feeds.values()]
        d: Deferred[Any] = gatherResults(closing, consumeErrors=True)
        d.addErrback(lambda f: self.log.warn("closing provider feeds: {error}",
                                             error=one_line(f, self.redactor.mask)))
        d.addBoth(lambda _: super(Catalog, self).stopService())
        return d.addCallback(lambda _: None)

    def _cache_failed(self, failure: Failure, name: str) -> None:
        self.log.warn("provider {provider}: cached data unusable: {error}",
                      provider=name, error=one_line(failure, self.redactor.mask))

    def _cache_loaded(self, _: object) -> None:
        if self._stopping or not self.running:
            return
        # Published at once even without data: the channel list never depends on it (SPEC
        # §6.1), and a first fetch may take minutes.
        cached = any(feed.data is not None for feed in self.feeds.values())
        self._rebuild("cached data" if cached else "start, before any provider data")
        for name in self.feeds:
            interval = self.config.provider(name).refresh_interval  # type: ignore[union-attr]
            self._start_loop(LoopingCall(self._refresh_provider, name), interval, True)
        self._start_loop(LoopingCall(self._republish), REPUBLISH_INTERVAL, False)

    def _start_loop(self, loop: LoopingCall, interval: float, now: bool) -> None:
        loop.clock = self.reactor
        self._loops.append(loop)
        loop.start(interval, now=now).addErrback(
            lambda f: self.log.failure("a Catalog loop stopped", f))

    # -- refreshing ------------------------------------------------------------------

    def _refresh_provider(self, name: str) -> Deferred[None]:
        """Re-fetch one provider; a fetch already under way is joined, not doubled."""
        waiter: Deferred[None] = Deferred()
        if name in self._inflight:
            self._inflight[name].append(waiter)
            return waiter
        self._inflight[name] = [waiter]
        started = self.reactor.seconds()
        d = maybeDeferred(self.feeds[name].refresh)

        def count(result: object, outcome: str) -> object:
            self.refreshes[(name, outcome)] += 1
            self.refresh_durations[name].observe(max(0.0, self.reactor.seconds() - started))
            return result

        d.addCallbacks(count, count, callbackArgs=("ok",), errbackArgs=("error",))
        d.addCallbacks(self._refreshed, self._refresh_failed,
                       callbackArgs=(name,), errbackArgs=(name,))
        d.addErrback(lambda f: self.log.failure("rebuilding after {provider}", f,
                                                provider=name))

        def release(_: object) -> None:
            for w in self._inflight.pop(name, []):
                w.callback(None)

        d.addBoth(release)
        return waiter

    def _refreshed(self, data: ProviderData, name: str) -> None:
        self._errors.pop(name, None)
        if not self._stopping:  # the feed has logged its figures
            self._rebuild(f"refresh of {name}")

    def _refresh_failed(self, failure: Failure, name: str) -> None:
        message = one_line(failure, self.redactor.mask)
        self._errors[name] = message
        if not failure.check(SourceError):  # a SourceError was logged by the feed itself
            self.log.error("provider {provider} refresh failed: {error}", provider=name,
                           error=message)

    # -- building and publishing ---------------------------------------------------------

    def _rebuild(self, why: str) -> None:
        """
        Build, save and render in a thread (a big guide takes seconds), one build at a time;
        a build asked for meanwhile runs once the current one is done, with the newest data.
        """
        if self._building:
            self._build_again = why
            return
        self._building = True
        data = {name: feed.data for name, feed in self.feeds.items() if feed.data is not None}
        now = self.reactor.seconds()
        d = self._run(self._build, data, self.state, now)
        d.addCallback(self._note_serving, set(data))
        d.addCallbacks(self._built, self._build_failed, callbackArgs=(why,),
                       errbackArgs=(why,))
        d.addErrback(lambda f: self.log.failure("publishing the schedule after {why}", f,
                                                why=why))
        d.addBoth(self._build_done)

    def _build(self, data: dict[str, ProviderData], state: PackingState,
               now: float) -> tuple[Schedule, PackingState, Published | None]:
        """Runs in a thread: pure work and the state file, nothing the reactor owns."""
        schedule, state = build_schedule(self.config, data, state, now)
        try:
            state.save(self.state_path)
        except OSError as e:
            self.log.warn("cannot save lane assignments to {path}: {error}",
                          path=self.state_path, error=e.strerror or str(e))
        return schedule, state, self._render(schedule, now)

    def _note_serving(self, result: tuple[Schedule, PackingState, Published | None],
                      providers: set[str]) -> tuple[Schedule, PackingState, Published | None]:
        if result[2] is not None:
            self._serving = providers
        return result

    def _build_failed(self, failure: Failure, why: str) -> None:
        self.log.error("building the schedule after {why} failed: {error}", why=why,
                       error=one_line(failure, self.redactor.mask))

    def _build_done(self, _: object) -> None:
        self._building = False
        again, self._build_again = self._build_again, None
        if again is not None and not self._stopping:
            self._rebuild(again)

    def _built(self, result: tuple[Schedule, PackingState, Published | None], why: str) -> None:
        schedule, self.state, published = result
        if published is None:
            return
        self._swap(published)
        if self._stopping:  # finished in its thread after stopService: listeners are gone
            return
        events = sum(len(c.events) for c in schedule.channels)
        self.log.info("schedule built after {why}: {events} events on {channels} channels, "
                      "{unplaced} unplaced", why=why, events=events,
                      channels=len(schedule.channels), unplaced=len(schedule.unplaced))
        for callback in list(self._callbacks):
            try:
                callback(schedule)
            except Exception:
                self.log.failure("a schedule listener failed")

    def _render(self, schedule: Schedule, now: float) -> Published | None:
        """The outputs of ``schedule`` (thread-safe: pure), or None, logged, when they fail."""
        try:
            return Published(schedule, self.config, self.redactor.mask, now)
        except Exception as e:
            self.log.error("rendering the outputs failed: {error}",
                           error=self.redactor.mask(f"{type(e).__name__}: {e}"))
            return None

    def _swap(self, published: Published) -> None:
        current = self._published
        if current is not None and current.etag == published.etag:
            # Same guide bytes: clients' If-Modified-Since must not see a change either.
            published.last_modified = current.last_modified
        self._published = published

    def _republish(self) -> None:
        """Re-render the same schedule so the guide window moves on in a long-running daemon."""
        current = self._published
        now = self.reactor.seconds()
        if current is None or now - current.rendered_at < REPUBLISH_INTERVAL / 2 or self._building:
            return

        def rendered(published: Published | None) -> None:
            # A new schedule that came in meanwhile wins over the re-rendered old one.
            if published is not None and self._published is current:
                self._swap(published)

        self._run(self._render, current.schedule, now).addCallback(rendered).addErrback(
            lambda f: self.log.failure("re-rendering the outputs", f))
