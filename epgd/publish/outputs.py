"""
The outputs of one schedule, rendered once and served from memory (``epgd.web.PublishedOutputs``).

A guide request must not rebuild a week of XML: ``epg.xml`` and its gzip are rendered when
the schedule is published; the playlist is rendered once per base URL; ``schedule.json``
once per stretch of time in which its ``live`` flags and window cannot change.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable

from twisted.web.http import datetimeToString

from epgd.config import Config
from epgd.publish.m3u import render_playlist
from epgd.publish.schedule_json import change_points, render_schedule_json
from epgd.publish.xmltv import render_xmltv
from epgd.schedule.model import Schedule

# Base URLs come from the client's Host header: keep only a few renderings.
MAX_PLAYLISTS = 8


class Published:
    """Rendered outputs of ``schedule``; ``rendered_at`` is the "now" the guide window starts at."""

    def __init__(
        self,
        schedule: Schedule,
        config: Config,
        mask: Callable[[str], str],
        rendered_at: float | None = None,
    ) -> None:
        self.schedule = schedule
        self.rendered_at = (
            schedule.generated_at.timestamp() if rendered_at is None else rendered_at
        )
        self._days = float(config.guide.days)
        self._hold = config.stream.hold_after_end
        self._mask = mask
        self.epg_xml: bytes = render_xmltv(
            schedule,
            self.rendered_at,
            days=config.guide.days,
            filler=config.guide.filler,
            timezone=config.guide.timezone,
        )
        self.epg_gz: bytes = gzip.compress(self.epg_xml, compresslevel=6, mtime=0)
        self.etag: str = '"' + hashlib.sha256(self.epg_xml).hexdigest()[:32] + '"'
        self.last_modified: str = datetimeToString(int(self.rendered_at)).decode("ascii")
        self._playlists: OrderedDict[str, bytes] = OrderedDict()
        self._points = change_points(schedule, self._days, self._hold)
        self._json: tuple[int, bytes] | None = None

    def playlist(self, base_url: str) -> bytes:
        cached = self._playlists.get(base_url)
        if cached is None:
            cached = render_playlist(self.schedule, base_url)
            self._playlists[base_url] = cached
            while len(self._playlists) > MAX_PLAYLISTS:
                self._playlists.popitem(last=False)
        return cached

    def schedule_json(self, now: float) -> bytes:
        """Re-rendered only when ``now`` has crossed a moment at which the answer changes."""
        segment = bisect.bisect_right(self._points, now)
        if self._json is None or self._json[0] != segment:
            self._json = (segment, render_schedule_json(
                self.schedule, now, self._days, self._hold, self._mask))
        return self._json[1]
