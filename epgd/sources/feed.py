"""
One provider's data and its last-good cache (SPEC §5.4).

``refresh`` downloads the playlist and then the guide into temporary files in
``state_dir/providers/<name>/``, parses both (in a thread: a guide can be 500 MB), and only when
both are good renames them over the last-good files (fsynced first, so a crash leaves the old
file or the new one, whole). A failed or malformed fetch therefore never replaces good data;
it is recorded in ``error`` for ``/health``. Nor does a guide that is not whole (cut short,
repaired XML, malformed programmes skipped) replace one that is; where nothing better
exists it is used, and ``error`` says what is wrong with it. ``load_cached`` parses
the last-good files, so a restart with the provider down serves the last schedule at once.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable
from threading import Event
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from epgd.atomicfile import fsync_directory
from epgd.config import ProviderConfig
from epgd.redact import Redactor
from epgd.sources import SourceError, is_gzip_file
from epgd.sources.fetch import INACTIVITY_TIMEOUT, Fetcher, remove_quietly
from epgd.sources.m3u import parse_playlist
from epgd.sources.models import GuideChannel, Playlist, ProviderChannel, ProviderData
from epgd.sources.xmltv import parse_guide

PLAYLIST = "playlist.m3u"
GUIDE = "guide.xml"


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def guide_filter(
    playlist: Playlist, wanted_channel: Callable[[ProviderChannel], bool] | None
) -> Callable[[GuideChannel], bool] | None:
    """
    Which guide channels are worth keeping: those linked (by tvg-id, or by name to a
    display-name; SPEC §5.1) to a playlist channel that ``wanted_channel`` accepts. Matching
    here is deliberately a little looser (case, spaces, tvg-name too) than the linking done
    later, so it never drops a programme that the schedule would use.
    """
    if wanted_channel is None:
        return None
    chosen = [c for c in playlist.channels if wanted_channel(c)]
    ids = {c.tvg_id.strip().casefold() for c in chosen if c.tvg_id.strip()}
    names = {_norm(c.name) for c in chosen} | {_norm(c.tvg_name) for c in chosen if c.tvg_name}

    def wanted(channel: GuideChannel) -> bool:
        return channel.id.casefold() in ids or any(
            _norm(n) in names for n in channel.display_names
        )

    return wanted


class GuideNotWhole(SourceError):
    """A guide that is not whole, refused because the last good one is; with its count."""

    def __init__(self, message: str, skipped: int) -> None:
        super().__init__(message)
        self.skipped = skipped


class ProviderFeed:
    """The last good data of one provider, and how to renew it."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        provider: ProviderConfig,
        user_agent: str,
        state_dir: str,
        redactor: Redactor,
        wanted_channel: Callable[[ProviderChannel], bool] | None = None,
        run_in_thread: Callable[..., Deferred[Any]] | None = None,
        *,
        inactivity: float = INACTIVITY_TIMEOUT,
        clock: Any = None,
    ) -> None:
        self.provider = provider
        self.redactor = redactor
        self.directory = os.path.join(state_dir, "providers", provider.name)
        self.wanted_channel = wanted_channel
        self.clock = clock if clock is not None else reactor
        self._run: Callable[..., Deferred[Any]] = run_in_thread or (
            lambda f, *a, **kw: deferToThreadPool(reactor, reactor.getThreadPool(), f, *a, **kw)
        )
        self._fetcher = Fetcher(
            reactor, user_agent, provider.headers, redactor,
            timeout=provider.fetch_timeout, inactivity=inactivity, clock=self.clock,
            run_in_thread=self._run,
        )
        self.loaded = False
        self.last_refresh: _dt.datetime | None = None
        self.error: str | None = None
        self.data: ProviderData | None = None
        self.programmes_skipped = 0  # malformed programmes the latest guide parse passed over
        # Set on close: a parse running in a thread stops at its next check, so that the
        # reactor's thread pool (joined at shutdown) never holds the process on SIGTERM.
        self._stop = Event()
        self._running: Deferred[ProviderData] | None = None
        self._waiting: list[Deferred[ProviderData]] = []
        self._remove_stale_parts()

    # -- for /health ------------------------------------------------------------------

    @property
    def channels(self) -> int:
        playlist = self.data.playlist if self.data else None
        return len(playlist.channels) if playlist else 0

    @property
    def programmes(self) -> int:
        guide = self.data.guide if self.data else None
        return len(guide.programmes) if guide else 0

    # -- the cache --------------------------------------------------------------------

    def cached_files(self) -> tuple[str | None, str | None]:
        """Paths of the last-good playlist and guide (either may be missing)."""
        return self._existing(PLAYLIST), self._existing(GUIDE) if self.provider.guide else None

    def load_cached(self) -> Deferred[ProviderData | None]:
        """Parse the last-good files, if any; None when there are none or they are unusable."""
        playlist, guide = self.cached_files()
        if playlist is None:
            return succeed(None)
        fetched = os.path.getmtime(playlist)
        d = self._run(self._parse, playlist, guide)
        d.addCallback(self._note_skipped)

        def loaded(data: ProviderData) -> ProviderData:
            if self.data is not None:  # a refresh finished first: it is newer
                return self.data
            error = self.error  # a refresh that failed meanwhile still shows in /health
            self._install(data, _dt.datetime.fromtimestamp(fetched, _dt.UTC))
            self.error = error or self._flaw(data)
            self.log.info(
                "provider {provider}: loaded last good data from {when} "
                "({channels} channels, {programmes} programmes)",
                provider=self.provider.name, when=self.last_refresh.isoformat(),  # type: ignore[union-attr]
                channels=self.channels, programmes=self.programmes,
            )
            return data

        def unusable(failure: Failure) -> None:
            self.log.warn(
                "provider {provider}: last good data in {directory} is unusable: {error}",
                provider=self.provider.name, directory=self.directory,
                error=self._describe(failure),
            )
            return None

        return d.addCallbacks(loaded, unusable)

    # -- refreshing -------------------------------------------------------------------

    def refresh(self) -> Deferred[ProviderData]:
        """
        Download and parse playlist and guide; fires with the new data, or fails with
        ``SourceError`` (one masked line, also kept in ``error``) keeping the last good data.
        A refresh asked for while one runs shares its outcome.
        """
        waiter: Deferred[ProviderData] = Deferred()
        self._waiting.append(waiter)
        if self._running is None:
            self._running = Deferred.fromCoroutine(self._refresh())
            self._running.addBoth(self._finished)
        return waiter

    def _finished(self, result: ProviderData | Failure) -> None:
        self._running = None
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    async def _refresh(self) -> ProviderData:
        temps: list[str] = []
        try:
            playlist = await self._fetcher.fetch(self.provider.playlist, self.directory, "playlist")
            temps.append(playlist)
            guide = None
            if self.provider.guide:
                guide = await self._fetcher.fetch(self.provider.guide, self.directory, "guide",
                                                  max_bytes=self.provider.max_guide_bytes)
                temps.append(guide)
            previous = self.data.guide if self.data is not None else None
            # A guide that is not whole must not replace a whole one; it may replace another.
            data = await self._run(self._parse, playlist, guide,
                                   previous is not None and previous.whole)
            self._note_skipped(data)
            self._commit(playlist, guide)
            temps.clear()
        except BaseException as e:  # noqa: BLE001 - any failure keeps the last good data
            if isinstance(e, GuideNotWhole):
                self.programmes_skipped = e.skipped
            if self._stop.is_set():  # closed: cancelled, or its parse stopped; not a failure
                self.log.info("provider {provider}: refresh stopped, epgd is shutting down",
                              provider=self.provider.name)
                raise SourceError("refresh stopped: epgd is shutting down") from None
            message = self._describe(Failure(e))
            self.error = message
            self.log.warn(
                "provider {provider}: refresh failed, keeping the last good data: {error}",
                provider=self.provider.name, error=message,
            )
            raise SourceError(message) from None
        finally:
            for temp in temps:
                remove_quietly(temp)
        self._install(data, _dt.datetime.fromtimestamp(self.clock.seconds(), _dt.UTC))
        self.error = self._flaw(data)
        self.log.info(
            "provider {provider}: refreshed, {channels} channels, {programmes} programmes",
            provider=self.provider.name, channels=self.channels, programmes=self.programmes,
        )
        return data

    def _parse(self, playlist_path: str, guide_path: str | None,
               need_whole_guide: bool = False) -> ProviderData:
        """Runs in a thread: both files parsed, or SourceError."""
        playlist = parse_playlist(playlist_path, self.provider.name, self._stop)
        if not playlist.channels:
            raise SourceError("playlist has no channels")
        guide = None
        if guide_path is not None:
            guide = parse_guide(
                guide_path,
                offset=self.provider.guide_offset,
                wanted=guide_filter(playlist, self.wanted_channel),
                max_bytes=self.provider.max_guide_bytes,
                stop=self._stop,
            )
            if not guide.whole and need_whole_guide:
                raise GuideNotWhole(f"guide is {guide.flaw()}; kept the last good guide, "
                                    "which is whole", guide.skipped)
        return ProviderData(provider=self.provider.name, playlist=playlist, guide=guide)

    def _note_skipped(self, data: ProviderData) -> ProviderData:
        self.programmes_skipped = data.guide.skipped if data.guide is not None else 0
        return data

    def _flaw(self, data: ProviderData) -> str | None:
        """/health's error for data that is served although its guide is not whole."""
        guide = data.guide
        if guide is None or guide.whole:
            return None
        return self.redactor.mask(f"guide is {guide.flaw()}; using its "
                                  f"{len(guide.programmes)} programmes (no whole guide yet)")

    def _commit(self, playlist: str, guide: str | None) -> None:
        """Put the new files in place of the last good ones (each rename is atomic)."""
        self._replace(playlist, PLAYLIST)
        if guide is not None:
            self._replace(guide, GUIDE)
        else:
            for name in (GUIDE, GUIDE + ".gz"):
                remove_quietly(os.path.join(self.directory, name))

    def _replace(self, temp: str, name: str) -> None:
        """The temp file is on disk already (the fetcher fsyncs it); then the rename is."""
        gz = is_gzip_file(temp)
        os.replace(temp, os.path.join(self.directory, name + (".gz" if gz else "")))
        remove_quietly(os.path.join(self.directory, name + ("" if gz else ".gz")))
        fsync_directory(self.directory)

    def _existing(self, name: str) -> str | None:
        for candidate in (name, name + ".gz"):
            path = os.path.join(self.directory, candidate)
            if os.path.isfile(path):
                return path
        return None

    def _install(self, data: ProviderData, when: _dt.datetime) -> None:
        self.data = data
        self.loaded = True
        self.last_refresh = when
        self.error = None

    def _describe(self, failure: Failure) -> str:
        error = failure.value
        text = str(error) if isinstance(error, SourceError) else (
            f"{error.__class__.__name__}: {error}")
        return " ".join(self.redactor.mask(text).split()) or error.__class__.__name__

    def _remove_stale_parts(self) -> None:
        """Temporary files left by a run that died mid-download."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if name.startswith(".") and name.endswith(".part"):
                remove_quietly(os.path.join(self.directory, name))

    def close(self) -> Deferred[None]:
        """Stop a refresh in flight (a parse thread too) and close the provider connections."""
        self._stop.set()
        if self._running is not None:
            self._running.cancel()
        return self._fetcher.close()
