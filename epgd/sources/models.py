"""
What the parsers hand on: provider channels (from playlists) and guide programmes (from XMLTV).

Plain immutable values with ``slots`` so that a 200,000-entry playlist or half a million
programmes stay small in memory. They know nothing of lineups or schedules.
"""

from __future__ import annotations

import datetime as _dt

from attrs import frozen


@frozen
class ProviderChannel:
    """One ``#EXTINF`` entry of a provider's playlist."""

    provider: str
    name: str
    url: str
    tvg_id: str = ""
    tvg_name: str = ""
    group: str = ""
    logo: str = ""
    chno: str = ""


@frozen
class GuideChannel:
    """One XMLTV ``<channel>``: its id, every display-name, an icon."""

    id: str
    display_names: tuple[str, ...] = ()
    icon: str = ""


@frozen
class Programme:
    """One XMLTV ``<programme>``; times are timezone-aware UTC, ``guide_offset`` already applied."""

    channel: str
    start: _dt.datetime
    stop: _dt.datetime | None
    title: str
    sub_title: str = ""
    desc: str = ""
    categories: tuple[str, ...] = ()
    icon: str = ""
    episode_nums: tuple[tuple[str, str], ...] = ()  # (system, value)


@frozen
class Playlist:
    channels: tuple[ProviderChannel, ...]
    skipped: int = 0  # malformed entries passed over


@frozen
class Guide:
    channels: tuple[GuideChannel, ...]
    programmes: tuple[Programme, ...]
    skipped: int = 0  # malformed programmes passed over
    cut_short: str = ""  # why the data ended before </tv> (truncated download); "" when whole
    damaged: str = ""  # XML errors the parser repaired (and may have lost programmes to)

    @property
    def whole(self) -> bool:
        """Read to its end with nothing repaired or skipped: nothing better can exist."""
        return not (self.cut_short or self.damaged or self.skipped)

    def flaw(self) -> str:
        """What is wrong with it, one line ("" when whole)."""
        parts = [f"cut short ({self.cut_short})" if self.cut_short else "",
                 f"damaged ({self.damaged})" if self.damaged else "",
                 f"{self.skipped} malformed programmes skipped" if self.skipped else ""]
        return "; ".join(p for p in parts if p)


@frozen
class ProviderData:
    """The last good parsed data of one provider: what the schedule is built from."""

    provider: str
    playlist: Playlist | None = None
    guide: Guide | None = None
