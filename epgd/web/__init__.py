"""
The HTTP API (SPEC §4): Klein routes only. Parse, call a collaborator, render.

The collaborators are injected: a ``Catalog`` (provider data, the current schedule and its
rendered outputs) and a ``StreamManager`` (live streams). Neither knows about HTTP routing,
and this package knows nothing of how either works. ``base`` holds the one Klein app and what
the route groups share, ``hdhr`` the HDHomeRun emulation's routes, ``api`` all the others.
"""

from epgd.web.api import EpgdApi
from epgd.web.base import CatalogLike, PublishedOutputs, StreamsLike

__all__ = ["CatalogLike", "EpgdApi", "PublishedOutputs", "StreamsLike"]
