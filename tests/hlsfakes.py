"""
In-memory HTTP for the HLS unit tests: a provider whose answers a test scripts by URL (a body,
a status, a content type, a final URL after redirects), answered at once or held for the test
to answer, with every request recorded with its time and headers; and ``HlsCase``, the clock,
provider and playlist builders that tests/hls/test_reader.py and test_segment.py share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from epgd.config import StreamConfig
from epgd.net import timers
from epgd.redact import Redactor
from epgd.stream.upstream import Upstream
from tests import tsutil
from tests.streamfakes import FakeResponse

M3U8 = b"application/vnd.apple.mpegurl"


@define
class Answer:
    body: bytes = b""
    code: int = 200
    content_type: bytes = b"video/mp2t"
    final: str | None = None  # the URL after redirects
    hold: bool = False  # leave the request open; the test answers it with ``release``
    stream: bool = False  # send headers only; the test sends the body with the response


class _Request:
    def __init__(self, url: str) -> None:
        self.absoluteURI = url.encode()


class ScriptedResponse(FakeResponse):
    def __init__(self, answer: Answer, url: str) -> None:
        super().__init__(answer.code, b"OK" if answer.code < 400 else b"Error")
        self.headers = Headers({b"content-type": [answer.content_type]})
        self.request = _Request(answer.final or url)
        self.answer = answer

    def deliverBody(self, protocol: Any) -> None:
        super().deliverBody(protocol)
        if not self.answer.stream and self.protocol is not None:
            if self.answer.body:
                self.send(self.answer.body)
            if self.protocol is not None and not self.transport.stopped:
                self.end()


@define
class Seen:
    at: float
    url: str
    headers: dict[str, list[str]]
    deferred: Deferred[Any]
    response: ScriptedResponse | None = None


@define
class ScriptedHTTP:
    """``routes[url]`` is an Answer, or a function of the request (its time, headers) giving one."""

    clock: Clock
    routes: dict[str, Answer | Callable[[Seen], Answer]] = field(factory=dict)
    requests: list[Seen] = field(factory=list)
    default: Callable[[Seen], Answer] | None = None  # for URLs without a route (else 404)

    def get(self, url: str, headers: Any = None, unbuffered: bool = False, **kw: Any) -> Deferred[Any]:
        assert unbuffered, "provider bodies are always read unbuffered"
        d: Deferred[Any] = Deferred()
        seen = Seen(self.clock.seconds(), url, dict(headers or {}), d)
        self.requests.append(seen)
        route = self.routes.get(url)
        answer = route(seen) if callable(route) else route
        if answer is None and self.default is not None:
            answer = self.default(seen)
        if answer is None:
            answer = Answer(b"not found\n", 404, b"text/plain")
        if not answer.hold:
            self.release(seen, answer)
        else:
            seen.response = ScriptedResponse(answer, url)
        return d

    def release(self, seen: Seen, answer: Answer | None = None) -> ScriptedResponse:
        response = ScriptedResponse(answer, seen.url) if answer else seen.response
        assert response is not None
        response.answer.hold = False
        seen.response = response
        if not seen.deferred.called:
            seen.deferred.callback(response)
        return response

    def count(self, url: str) -> int:
        return sum(1 for r in self.requests if r.url == url)

    def urls(self) -> list[str]:
        return [r.url for r in self.requests]

    def times(self, url: str) -> list[float]:
        return [r.at for r in self.requests if r.url == url]


class Tap:
    """A consumer of an Upstream that records bytes, cuts and failures in order."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.events: list[tuple[str, Any]] = []
        self.faults: list[str] = []  # what the Upstream counted for /metrics

    def write(self, data: bytes) -> None:
        self.data += data
        if self.events and self.events[-1][0] == "bytes":
            self.events[-1] = ("bytes", self.events[-1][1] + len(data))
        else:
            self.events.append(("bytes", len(data)))

    def upstream_cut(self, upstream: Any) -> None:
        self.events.append(("cut", len(self.data)))

    def upstream_failed(self, upstream: Any, reason: str) -> None:
        self.events.append(("failed", reason))

    @property
    def cuts(self) -> list[int]:
        return [at for kind, at in self.events if kind == "cut"]

    @property
    def failures(self) -> list[str]:
        return [why for kind, why in self.events if kind == "failed"]


def make_upstream(http: ScriptedHTTP, url: str, hls: bool = True, variant: str = "best",
                  **stream: Any) -> tuple[Upstream, Tap]:
    """A started Upstream (called ``hls`` from the start when ``hls``) on ``http`` with one Tap subscribed."""
    settings: dict[str, Any] = {"connect_timeout": 4.0, "reconnect_attempts": 2}
    settings.update(stream)
    tap = Tap()
    upstream = Upstream(url, "main", http, {"User-Agent": "epgd-test", "Referer": "http://tv.example/"},
                        http.clock, StreamConfig(**settings), Redactor(["s3cret"]), hls_variant=variant,
                        on_fault=lambda _, fault: tap.faults.append(fault), kind="hls" if hls else "ts")
    upstream.subscribe(tap)
    upstream.start()
    return upstream, tap


BASE = "http://cdn.test/live/"
URL = BASE + "chan.m3u8"
KEY = bytes(range(16, 32))


def seg(n: int, packets: int = 10) -> bytes:
    """Segment ``n``: a PAT, then packets whose payload byte is ``n`` (tells segments apart)."""
    return tsutil.pat() + b"".join(tsutil.packet(0x100, fill=n % 256, counter=i)
                                   for i in range(packets - 1))


def media(first: int, count: int, target: int = 4, ended: bool = False,
          before: dict[int, list[str]] | None = None, name: str = "s{n}.ts",
          head: tuple[str, ...] = ()) -> bytes:
    lines = ["#EXTM3U", f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{first}", *head]
    for n in range(first, first + count):
        lines += (before or {}).get(n, [])
        lines += [f"#EXTINF:{target}.0,", name.format(n=n)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


def segment_numbers(http: ScriptedHTTP) -> list[int]:
    return [int(u.rsplit("/s", 1)[1].split(".")[0]) for u in http.urls() if "/s" in u and u.endswith(".ts")]


class HlsCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(timers, "BACKOFF_JITTER", 0.0)  # exact retry delays
        self.clock = Clock()
        self.http = ScriptedHTTP(self.clock)
        for n in range(0, 400):
            self.http.routes[f"{BASE}s{n}.ts"] = Answer(seg(n))

    def serve(self, body: Any, url: str = URL, **how: Any) -> None:
        """The playlist at ``url``: bytes, or a function of the request time giving bytes."""
        if callable(body):
            self.http.routes[url] = lambda seen: Answer(body(seen.at), content_type=M3U8, **how)
        else:
            self.http.routes[url] = Answer(body, content_type=M3U8, **how)

    def start(self, url: str = URL, **kw: Any) -> tuple[Any, Tap]:
        upstream, tap = make_upstream(self.http, url, **kw)
        self.addCleanup(upstream.close)
        return upstream, tap

    def advance(self, seconds: float, step: float = 0.25) -> None:
        for _ in range(int(round(seconds / step))):
            self.clock.advance(step)

    def live(self, first: int = 10, count: int = 6, every: float = 4.0, **kw: Any) -> None:
        """A live window of ``count`` segments that gains one every ``every`` seconds."""
        self.serve(lambda t: media(first + int(t / every), count, **kw))
