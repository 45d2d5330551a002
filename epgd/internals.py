"""
Every name epgd uses past Twisted's public API, in one place.

Each was taken because no public API does the job (the reason is beside it in the module that
uses it). A Twisted upgrade may move any of them without a deprecation period, so
``tests/test_internals.py`` checks that each still resolves on the installed Twisted, that each
module named here still uses what is listed (and no module uses one that is not), and names the
test that exercises each use: an upgrade fails a test, not production.

``INTERNALS[epgd module][owner]`` is a tuple of names, where the owner is the dotted path of a
Twisted module or class. Most are private (``_x``); some are public attributes of a private
module, or attributes Twisted sets but does not document as API (``epgd.stream.out.bodywriter``
reads the socket under a response). No code here: modules import the table, so the one that
checks its names at run time (the body writer) reads them from here.

Replaced by public API in the restructure (issue 16): ``epgd.tap`` set
``StreamServerEndpointService._raiseSynchronously`` and read ``._waitingForPort``; it now wraps
its endpoint (``IStreamServerEndpoint.listen``) to fail at once and to learn the port.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

INTERNALS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    # the header-limited client pool: a protocol that counts header bytes while its response
    # parser reads a status line or headers, and the factory and pool that build it
    "epgd.net.pool": {
        "twisted.web": ("_newclient",),
        "twisted.web._newclient": ("HTTP11ClientProtocol", "STATUS", "HEADER"),
        "twisted.web._newclient.HTTP11ClientProtocol": ("_parser", "_giveUp"),
        "twisted.web._newclient.HTTPClientParser": ("state",),
        "twisted.web.client": ("_HTTP11ClientFactory",),
        "twisted.web.client._HTTP11ClientFactory": ("_quiescentCallback",),
        "twisted.web.client.HTTPConnectionPool": ("_factory",),
    },
    # a request whose connection is already gone never fires notifyFinish again
    "epgd.stream.out.client": {
        "twisted.web.http.Request": ("_disconnected",),
    },
    # server.listen and --listen checked without listening (nor systemd's sockets)
    "epgd.configread": {
        "twisted.internet.endpoints": ("_parseServer",),
    },
    # one sendmsg per write straight to a plain TCP response's socket
    "epgd.stream.out.bodywriter": {
        "twisted.web.http.Request": ("startedWriting", "chunked", "finished", "_disconnected",
                                     "sentLength", "channel"),
        "twisted.web.server.Request": ("_encoder", "_inFakeHead"),
        "twisted.internet.tcp.Connection": ("socket", "dataBuffer", "_tempDataLen", "connected",
                                            "disconnecting", "_writeDisconnected", "TLS"),
    },
}
