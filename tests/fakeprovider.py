"""
A fake IPTV provider for the stream's end-to-end tests and benchmarks.

It serves ``/live/USER/PASS/<name>.ts`` on 127.0.0.1 from MPEG-TS clips, looped and paced at a
set byte rate, and misbehaves on request the way real providers do: drops the connection after
N bytes (rotating connections), stalls, delays its first byte, answers 404/500, HTML with
status 200 or an HLS playlist whose segments do not exist (tests/fakehls.py serves real HLS). It honours TCP backpressure (each response is a streaming
producer registered on its request, so a slow reader pauses it) and counts connections per
stream and in total, so a test can assert "one provider connection per source URL".

A ``live`` stream does not wait for its reader, as live encoders and CDNs do not: the clip
runs on in real time whether it is read or not, and what the reader has not taken within
``live`` seconds (its socket stayed full) is skipped, whole packets, and counted in
``skipped``: any pause in reading it is video lost for good.
"""

from __future__ import annotations

import json
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from attrs import define, evolve
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IPushProducer,
    IReactorTCP,
)
from twisted.internet.task import LoopingCall
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

CLIP_DIR = Path(__file__).parent / "data" / "ts"
USER = "tvuser42"
PASSWORD = "s3cretpw9"
TICK = 0.01  # pacing granularity (seconds)
BURST = 256 * 1024  # largest single write
LIVE_SEND_BUFFER = 64 * 1024  # a live source's socket send buffer (the kernel doubles it)
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Access denied</title></head>"
             b"<body><h1>Your subscription has expired</h1></body></html>\n")
HLS_PLAYLIST = (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:1\n"
                b"#EXTINF:6.0,\nseg1.ts\n#EXTINF:6.0,\nseg2.ts\n")


def load_clip(name: str) -> bytes:
    """A clip made by tests/data/ts/make_clips.sh: ``"a"`` or ``"b"``."""
    return (CLIP_DIR / f"{name}.ts").read_bytes()


@define
class Behaviour:
    """How one stream name answers. Applies to connections opened after it is set."""

    clip: bytes = b""
    rate: float | None = 500_000.0  # bytes per second; None = as fast as the socket takes it
    status: int = 200
    content_type: bytes = b"video/mp2t"
    body: bytes | None = None  # a fixed body (error page, HTML, playlist) instead of the clip
    first_byte_delay: float = 0.0  # seconds before the status line
    drop_after: int | None = None  # close the connection after this many body bytes
    stall_after: int | None = None  # stop sending (connection kept open) after this many
    write_size: int | None = None  # cap on each write, to force odd chunking
    live: float | None = None  # a live source: skip what is not taken within this many seconds


@implementer(IPushProducer)
class _Sender:
    """One provider response: loops the clip at the set rate, paused by the reader's TCP window."""

    def __init__(self, provider: FakeProvider, name: str, request: Request, how: Behaviour) -> None:
        self.provider = provider
        self.name = name
        self.request = request
        self.how = how
        self.sent = 0
        self.skipped = 0  # live: bytes never sent because the reader did not take them in time
        self.paused = False
        self.done = False
        self.finished: Deferred[None] = Deferred()
        self._pos = 0
        self._loop = provider.looped(how.clip)
        self._base_time = 0.0
        self._base_sent = 0
        self._delay: IDelayedCall | None = None
        self._ticker: LoopingCall | None = None
        request.notifyFinish().addBoth(self._gone)

    def begin(self) -> None:
        """Send the status line and start the body (after the configured first-byte delay)."""
        if self.how.first_byte_delay > 0:
            self._delay = self.provider.reactor.callLater(self.how.first_byte_delay, self._start)
        else:
            self._start()

    def _start(self) -> None:
        self._delay = None
        if self.done:
            return
        request, how = self.request, self.how
        request.setResponseCode(how.status)
        request.setHeader(b"Content-Type", how.content_type)
        if how.body is not None:
            request.setHeader(b"Content-Length", str(len(how.body)).encode())
            request.write(how.body)
            request.finish()
            return
        if how.live is not None:
            self._small_send_buffer()
        request.registerProducer(self, True)
        if how.stall_after == 0:
            request.write(b"")  # headers only, then silence
            return
        self._base_time = self.provider.reactor.seconds()
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = self.provider.reactor
        self._ticker.start(0 if how.rate is None else self.provider.tick, now=True)

    def _tick(self) -> None:
        if self.done:
            return
        how = self.how
        if how.live is not None and how.rate is not None:
            self._live_skip(how.rate, how.live)
        if self.paused:
            return
        if how.rate is None:
            budget = 4 * BURST  # a bounded burst per reactor turn keeps the reactor responsive
        else:
            elapsed = self.provider.reactor.seconds() - self._base_time
            budget = int(how.rate * elapsed) - (self.sent + self.skipped - self._base_sent)
        for limit in (how.drop_after, how.stall_after):
            if limit is not None:
                budget = min(budget, limit - self.sent)
        while budget > 0 and not self.paused and not self.done:
            size = min(budget, BURST, how.write_size or BURST)
            self.request.write(self._loop[self._pos:self._pos + size])
            self._pos = (self._pos + size) % len(how.clip)
            self.sent += size
            self.provider.bytes_sent[self.name] += size
            budget -= size
        if how.drop_after is not None and self.sent >= how.drop_after and not self.done:
            self.drop()
        elif how.stall_after is not None and self.sent >= how.stall_after:
            self._stop_ticker()

    def _small_send_buffer(self) -> None:
        """
        A live source queues little for its reader (the kernel's own autotuned buffer would
        hold seconds of video on loopback, hiding any pause): what does not fit waits in
        Twisted's buffer, which pauses this sender, and then it skips.
        """
        transport = self.request.channel.transport if self.request.channel else None
        sock = getattr(transport, "socket", None)
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LIVE_SEND_BUFFER)

    def _live_skip(self, rate: float, window: float) -> None:
        """Live: the clip has run on; what is over ``window`` seconds old is gone (whole packets)."""
        elapsed = self.provider.reactor.seconds() - self._base_time
        behind = int(rate * elapsed) - (self.sent + self.skipped - self._base_sent)
        skip = (behind - int(rate * window)) // 188 * 188
        if skip > 0:
            self._pos = (self._pos + skip) % len(self.how.clip)
            self.skipped += skip
            self.provider.skipped[self.name] += skip

    def drop(self) -> None:
        """Close the connection mid-body, as a provider rotating connections does."""
        self._stop_ticker()
        transport = self.request.channel.transport if self.request.channel else None
        if transport is not None:
            transport.loseConnection()

    # IPushProducer: the reader's socket is full / has room again / is gone.
    def pauseProducing(self) -> None:
        self.paused = True
        self.provider.pauses[self.name] += 1

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            if self.how.live is None:  # a live source's clip ran on meanwhile
                self._base_time = self.provider.reactor.seconds()
                self._base_sent = self.sent + self.skipped

    def stopProducing(self) -> None:
        self._stop_ticker()

    def _stop_ticker(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = None

    def _gone(self, _: Any) -> None:
        self.done = True
        self._stop_ticker()
        if self._delay is not None and self._delay.active():
            self._delay.cancel()
        self._delay = None
        self.provider._closed(self)
        self.finished.callback(None)


class _Streams(Resource):
    isLeaf = True

    def __init__(self, provider: FakeProvider) -> None:
        super().__init__()
        self.provider = provider

    def render_GET(self, request: Request) -> Any:
        if request.path == b"/stats":  # for benchmarks in another process
            request.setHeader(b"Content-Type", b"application/json")
            provider = self.provider
            return json.dumps({"skipped": provider.skipped, "sent": provider.bytes_sent,
                               "active": provider.active}).encode()
        parts = request.path.decode("latin-1").split("/")
        if len(parts) != 5 or parts[1] != "live" or not parts[4].endswith(".ts"):
            request.setResponseCode(404)
            return b"no such path\n"
        if (parts[2], parts[3]) != (self.provider.user, self.provider.password):
            request.setResponseCode(403)
            return b"bad credentials\n"
        return self.provider._open(parts[4][:-3], request)


class QuietSite(Site):
    """No access log: the provider's own log lines would hold the credentials in its paths."""

    noisy = False

    def log(self, request: Request) -> None:
        pass


class FakeProvider:
    """The provider; ``start()`` it, point sources at ``url(name)``, ``stop()`` it in cleanup."""

    def __init__(self, reactor: Any, user: str = USER, password: str = PASSWORD,
                 tick: float = TICK) -> None:
        self.reactor = reactor
        self.tick = tick
        self.user = user
        self.password = password
        self.behaviours: dict[str, Behaviour] = {}
        self.active: Counter[str] = Counter()  # open connections per stream name
        self.peak: Counter[str] = Counter()  # most simultaneous connections per name
        self.requests: Counter[str] = Counter()  # connections ever opened per name
        self.pauses: Counter[str] = Counter()  # times a reader's full window paused us
        self.bytes_sent: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()  # live streams: bytes their readers missed
        self.peak_total = 0
        self.headers: list[dict[bytes, bytes]] = []  # request headers, in arrival order
        self.senders: set[_Sender] = set()
        self._loops: dict[int, tuple[bytes, bytes]] = {}
        self.port: IListeningPort | None = None

    # -- setup -----------------------------------------------------------------------

    def looped(self, clip: bytes) -> bytes:
        """``clip`` repeated so any BURST-sized slice is contiguous; one copy per clip."""
        cached = self._loops.get(id(clip))
        if cached is None or cached[0] is not clip:
            cached = (clip, clip * max(2, -(-2 * BURST // max(1, len(clip)))))
            self._loops[id(clip)] = cached
        return cached[1]

    def stream(self, name: str, clip: str | bytes = "a", **how: Any) -> str:
        """Serve ``name`` from a clip with the given `Behaviour` fields; returns its URL."""
        data = load_clip(clip) if isinstance(clip, str) else clip
        self.behaviours[name] = Behaviour(clip=data, **how)
        return self.url(name)

    def error(self, name: str, status: int = 404) -> str:
        return self._fixed(name, status, b"text/plain", b"stream not found\n")

    def html(self, name: str) -> str:
        return self._fixed(name, 200, b"text/html; charset=utf-8", HTML_PAGE)

    def hls(self, name: str) -> str:
        return self._fixed(name, 200, b"application/vnd.apple.mpegurl", HLS_PLAYLIST)

    def _fixed(self, name: str, status: int, content_type: bytes, body: bytes) -> str:
        self.behaviours[name] = Behaviour(status=status, content_type=content_type, body=body)
        return self.url(name)

    def change(self, name: str, **how: Any) -> None:
        """Change ``name``'s behaviour for the connections opened from now on."""
        self.behaviours[name] = evolve(self.behaviours[name], **how)

    def start(self, backlog: int = 50) -> int:
        reactor: IReactorTCP = self.reactor
        self.port = reactor.listenTCP(0, QuietSite(_Streams(self)), backlog=backlog,
                                      interface="127.0.0.1")
        return self.port.getHost().port

    @property
    def base(self) -> str:
        assert self.port is not None, "start() the provider first"
        return f"http://127.0.0.1:{self.port.getHost().port}"

    def url(self, name: str) -> str:
        return f"{self.base}/live/{self.user}/{self.password}/{name}.ts"

    def playlist_url(self) -> str:
        """An Xtream-style playlist URL carrying the credentials (for the Redactor)."""
        return f"{self.base}/get.php?username={self.user}&password={self.password}&type=m3u_plus"

    # -- runtime ---------------------------------------------------------------------

    @property
    def active_total(self) -> int:
        return sum(self.active.values())

    def drop_all(self, name: str) -> None:
        """Cut every open connection of ``name`` now."""
        for sender in list(self.senders):
            if sender.name == name:
                sender.drop()

    def _open(self, name: str, request: Request) -> Any:
        how = self.behaviours.get(name)
        if how is None:
            request.setResponseCode(404)
            return b"unknown stream\n"
        self.headers.append({k.lower(): v[0] for k, v in request.requestHeaders.getAllRawHeaders()})
        sender = _Sender(self, name, request, how)
        self.senders.add(sender)
        self.requests[name] += 1
        self.active[name] += 1
        self.peak[name] = max(self.peak[name], self.active[name])
        self.peak_total = max(self.peak_total, self.active_total)
        sender.begin()
        return NOT_DONE_YET

    def _closed(self, sender: _Sender) -> None:
        if sender in self.senders:
            self.senders.discard(sender)
            self.active[sender.name] -= 1

    def stop(self) -> Deferred[Any]:
        """Close every connection and the port; fires when all are gone."""
        waits: list[Deferred[Any]] = []
        for sender in list(self.senders):
            waits.append(sender.finished)
            transport = sender.request.channel.transport if sender.request.channel else None
            if transport is not None:
                transport.abortConnection()
        if self.port is not None:
            result = self.port.stopListening()
            if isinstance(result, Deferred):
                waits.append(result)
            self.port = None
        return gatherResults(waits)



def seamless(raw: bytes, loops: int = 24) -> bytes:
    """A clip repeated with its clock and counters running on, as a live channel's do."""
    from epgd.demo.clip import parse_clip

    clip = parse_clip("clip.ts", "clip", raw)
    return b"".join(clip.loop(n) for n in range(loops))


def main(argv: list[str]) -> None:
    """
    Run standalone: ``python -m tests.fakeprovider [rate|unlimited] [first_byte_delay]
    [seamless] [clip=PATH] [tick=SECONDS] [live=SECONDS]``; ``seamless``: the clips' clocks run
    on from loop to loop (for 24 loops); ``clip=PATH``: serve that file as stream "a" instead
    of tests/data/ts/a.ts; ``tick``: the pacing step (a larger one costs less per connection);
    ``live``: a live source's window (see ``Behaviour.live``). ``GET /stats`` answers the
    bytes sent and skipped per stream (JSON).
    """
    from twisted.internet import reactor

    rate = None if argv[:1] == ["unlimited"] else float(argv[0]) if argv else 1_000_000.0
    delay = float(argv[1]) if len(argv) > 1 else 0.0
    files = {"a": load_clip("a"), "b": load_clip("b")}
    tick = TICK
    live: float | None = None
    for arg in argv[2:]:
        if arg.startswith("clip="):
            files["a"] = Path(arg[5:]).read_bytes()
        elif arg.startswith("tick="):
            tick = float(arg[5:])
        elif arg.startswith("live="):
            live = float(arg[5:])
    provider = FakeProvider(reactor, tick=tick)
    provider.start(backlog=1024)  # a benchmark's nginx opens one connection per viewer at once
    for clip, raw in files.items():
        provider.stream(clip, seamless(raw) if "seamless" in argv[2:] else raw, rate=rate,
                        first_byte_delay=delay, live=live)
    print(provider.url("a"), provider.url("b"), flush=True)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:])
