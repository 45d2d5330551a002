"""
The demo provider: a small Xtream-style panel on loopback, the way real providers answer.

``/get.php?username=U&password=P&type=m3u_plus`` (playlist), ``/xmltv.php?username=U&password=P``
(guide) and ``/live/U/P/<id>.ts`` (an endless MPEG-TS stream at its real bitrate). Wrong
credentials get 401, as from a real panel. The playlist and guide are made afresh from the
``Scenario`` on each request, so the events roll forward with the clock.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import Request
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from epgd.demo.clip import Clip
from epgd.demo.scenario import Scenario, stream_clip
from epgd.mpegts.packet import PACKET_SIZE
from epgd.plaintext import error_line

_STREAM_PATH = re.compile(r"^/live/([^/]+)/([^/]+)/(\d+)\.(?:ts|mpegts)$")


@implementer(IPushProducer)
class ClipStreamer:
    """
    Sends one clip, looped seamlessly, to one request at the clip's own byte rate.

    Pacing is by bytes per second (clip size over clip duration, whole packets per tick),
    with ``prebuffer`` seconds sent at once so players start quickly, as real providers'
    buffers do. Registered as a streaming producer on the request: when the client reads
    slowly Twisted pauses it, and it stops sending (nothing queues up); on resume it carries
    on from the live point without a burst, the way a live source would.
    """

    log = Logger()

    def __init__(
        self,
        clip: Clip,
        request: Request,
        clock: IReactorTime,
        tick: float = 0.1,
        prebuffer: float = 1.0,
    ) -> None:
        self.clip = clip
        self.request = request
        self.clock = clock
        self.tick = tick
        self.prebuffer = prebuffer
        self.sent = 0  # bytes written to the request
        self._loop = 0  # which repetition ``_data`` is
        self._data = clip.loop(0)
        self._offset = 0  # position in ``_data``
        self._base = clock.seconds()  # when ``sent`` would be 0 at the clip's rate
        self._timer = LoopingCall(self._send)
        self._timer.clock = clock
        self._done = False
        self._paused = False

    def start(self) -> None:
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addBoth(self._finished)
        self._run()

    def _run(self) -> None:
        if not self._done and not self._paused and not self._timer.running:
            self._timer.start(self.tick, now=True)

    def _due(self) -> int:
        """Bytes that should have been sent by now, in whole packets."""
        elapsed = self.clock.seconds() - self._base
        due = int((elapsed + self.prebuffer) * self.clip.byte_rate)
        return due - due % PACKET_SIZE

    def _send(self) -> None:
        want = self._due() - self.sent
        while want > 0 and not self._done and not self._paused:
            take = min(want, len(self._data) - self._offset)
            chunk = self._data[self._offset : self._offset + take]
            self._offset += take
            want -= take
            self.sent += take
            if self._offset >= len(self._data):
                self._loop += 1
                self._data = self.clip.loop(self._loop)
                self._offset = 0
            self.request.write(chunk)  # may pause us, or finish the request

    # IPushProducer

    def pauseProducing(self) -> None:
        self._paused = True
        if self._timer.running:
            self._timer.stop()

    def resumeProducing(self) -> None:
        if self._done:
            return
        self._paused = False
        # a live source does not catch up on what a slow reader missed: carry on from here
        self._base = self.clock.seconds() + self.prebuffer - self.sent / self.clip.byte_rate
        self._run()

    def stopProducing(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._done:
            return
        self._done = True
        if self._timer.running:
            self._timer.stop()

    def _finished(self, result: None | Failure) -> None:
        self._stop()


class DemoProvider(Resource):
    """The whole demo panel as one leaf resource: three routes and a credentials check."""

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        scenario: Scenario,
        clips: Sequence[Clip],
        clock: IReactorTime,
        username: str = "demo",
        password: str = "s3cret",
    ) -> None:
        super().__init__()
        self.scenario = scenario
        self.clips = tuple(clips)
        self.clock = clock
        self.username = username
        self.password = password
        self.streamers: set[ClipStreamer] = set()

    def _authorized(self, user: bytes, password: bytes) -> bool:
        user_ok = hmac.compare_digest(user, self.username.encode("utf-8"))
        password_ok = hmac.compare_digest(password, self.password.encode("utf-8"))
        return user_ok and password_ok

    def _arg(self, request: Request, name: bytes) -> bytes:
        return (request.args or {}).get(name, [b""])[0]

    def _host(self, request: Request) -> str:
        host = (request.getHeader(b"host") or b"").decode("latin-1").strip()
        if not host:
            address = request.getHost()
            host = f"{getattr(address, 'host', '127.0.0.1')}:{getattr(address, 'port', 80)}"
        return f"http://{host}"

    def render_GET(self, request: Request) -> bytes | int:
        path = (request.path or b"/").decode("latin-1")
        if path in ("/get.php", "/xmltv.php"):
            if not self._authorized(self._arg(request, b"username"), self._arg(request, b"password")):
                return error_line(request, 401, "invalid username or password")
            if path == "/xmltv.php":
                request.setHeader(b"Content-Type", b"application/xml; charset=utf-8")
                return self.scenario.guide(self.clock.seconds())
            kind = self._arg(request, b"type") or b"m3u_plus"
            if kind not in (b"m3u_plus", b"m3u"):
                return error_line(request, 400, "type must be m3u_plus or m3u")
            request.setHeader(b"Content-Type", b"audio/x-mpegurl; charset=utf-8")
            base = f"{self._host(request)}/live/{self.username}/{self.password}"
            return self.scenario.playlist(base, self.clock.seconds()).encode("utf-8")
        match = _STREAM_PATH.match(path)
        if match is None:
            return error_line(request, 404, "not found: try /get.php, /xmltv.php or /live/USER/PASS/ID.ts")
        if not self._authorized(match.group(1).encode("latin-1"), match.group(2).encode("latin-1")):
            return error_line(request, 401, "invalid username or password")
        index = stream_clip(int(match.group(3)))
        if index is None or index >= len(self.clips):
            return error_line(request, 404, f"no stream {match.group(3)} on this demo provider")
        request.setHeader(b"Content-Type", b"video/mp2t")
        if request.method == b"HEAD":
            return b""
        streamer = ClipStreamer(self.clips[index], request, self.clock)
        self.streamers.add(streamer)
        request.notifyFinish().addBoth(lambda _: self.streamers.discard(streamer))
        streamer.start()
        return NOT_DONE_YET

    def stop_streams(self) -> None:
        """Ends every stream (service stop): their requests finish, their timers stop."""
        for streamer in list(self.streamers):
            streamer.stopProducing()
            if not streamer.request.finished:
                streamer.request.unregisterProducer()
                streamer.request.finish()
        self.streamers.clear()
