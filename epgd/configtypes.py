"""
epgd's configuration values: frozen attrs classes with every default of SPEC.md §3.

Every default lives here, in one place, so the SPEC and the code cannot drift apart. Reading
and validating a TOML file into these is ``epgd.config``'s job.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping

from attrs import field, frozen

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
)
#: loopback, private and link-local networks: the LAN, where media servers cannot log in (SPEC §15)
DEFAULT_OPEN_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                         "fc00::/7", "fe80::/10")


class ConfigError(Exception):
    """
    A configuration mistake, already phrased as the single line a user sees:
    ``epgd.toml: lineup[0].channels: must be an integer from 1 to 999, got "four"``.
    """


@frozen
class ServerConfig:
    listen: tuple[str, ...] = ("tcp:8080",)
    base_url: str = ""
    admin_token: str = ""
    state_dir: str = "./state"
    max_clients: int = 500
    open_networks: tuple[str, ...] = DEFAULT_OPEN_NETWORKS


#: the picture sizes ``stream.slate_size`` allows (``epgd.mpegts.slate.picture.SIZES``, named
#: here so that reading a configuration does not load Pillow)
SLATE_SIZES = ("1920x1080", "1280x720", "960x540", "640x360")


@frozen
class StreamConfig:
    check_interval: float = 5.0
    idle_timeout: float = 300.0
    chunk_size: int = 8192
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 10.0
    client_buffer: int = 8388608
    hold_after_end: float = 3600.0
    reconnect_attempts: int = 5
    #: "continuous": one unbroken program per channel (SPEC §7.1); "passthrough": bytes unchanged
    output: str = "continuous"
    #: at a splice to other codecs: "continue", or "close" the clients so their players re-tune
    on_codec_change: str = "continue"
    #: a channel with nothing to play shows a slate (SPEC §14) instead of answering 503
    slate: bool = True
    #: the slate's picture, one of SLATE_SIZES
    slate_size: str = "1280x720"
    #: HLS output (SPEC §16): segments end at the first key frame at least this long
    hls_segment: float = 4.0
    #: segments an HLS output playlist lists (and epgd keeps in memory per channel)
    hls_window: int = 6


@frozen
class GuideConfig:
    days: int = 7
    filler: bool = True
    timezone: str = "UTC"


@frozen
class HdhrConfig:
    enabled: bool = True
    friendly_name: str = "epgd"
    tuner_count: int = 0
    device_id: str = ""
    discovery: bool = False
    discovery_port: int = 65001


@frozen
class ProviderConfig:
    name: str
    playlist: str
    guide: str = ""
    refresh_interval: float = 21600.0
    max_streams: int = 0
    headers: Mapping[str, str] = field(factory=dict, hash=False)
    guide_offset: float = 0.0
    fetch_timeout: float = 3600.0
    max_guide_bytes: int = 2147483648
    #: "best", "worst", "<N>p" (tallest variant not above N lines) or a bit/s ceiling as digits
    hls_variant: str = "best"


@frozen
class LineupConfig:
    id: str
    name: str = ""  # empty means "same as id"; use display_name
    channels: int = 4
    first_number: int = 1
    group: str = ""  # empty means "same as display_name"; use group_title
    logo: str = ""
    providers: tuple[str, ...] = ()
    match_group: str = ""
    match_name: str = ""
    match_title: str = ""
    exclude_title: str = ""
    name_pattern: str = ""
    name_time_formats: tuple[str, ...] = ("%I:%M %p", "%I:%M%p", "%H:%M")
    default_duration: float = 10800.0
    pre_padding: float = 0.0
    post_padding: float = 0.0

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def group_title(self) -> str:
        return self.group or self.display_name

    def channel_ids(self) -> list[str]:
        """The stable ids of this lineup's combined channels: ``nhl_ppv_1`` .. ``nhl_ppv_N``."""
        return [f"{self.id}_{i}" for i in range(1, self.channels + 1)]

    def channel_name(self, index: int) -> str:
        """Display name of the 1-based ``index``-th channel: ``NHL PPV 1``."""
        return f"{self.display_name} {index}"

    def channel_number(self, index: int) -> int:
        return self.first_number + index - 1


@frozen
class UserConfig:
    """A viewer account (SPEC §15). The password never shows in a repr, a log line or a status."""

    name: str
    password: str = field(repr=False)
    max_connections: int = 2  # channels watched at once; 0 = no limit
    lineups: tuple[str, ...] = ()  # empty: every lineup

    def sees(self, lineup_id: str) -> bool:
        return not self.lineups or lineup_id in self.lineups


@frozen
class EventConfig:
    lineup: str
    title: str
    start: _dt.datetime  # timezone-aware
    stop: _dt.datetime | None = None
    url: str = ""
    provider: str = ""
    channel: str = ""


@frozen
class Config:
    server: ServerConfig = ServerConfig()
    stream: StreamConfig = StreamConfig()
    guide: GuideConfig = GuideConfig()
    hdhr: HdhrConfig = HdhrConfig()
    providers: tuple[ProviderConfig, ...] = ()
    lineups: tuple[LineupConfig, ...] = ()
    events: tuple[EventConfig, ...] = ()
    users: tuple[UserConfig, ...] = ()
    path: str = "epgd.toml"  # where it came from, for messages

    def provider(self, name: str) -> ProviderConfig | None:
        for provider in self.providers:
            if provider.name == name:
                return provider
        return None
