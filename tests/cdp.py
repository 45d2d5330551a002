"""
Headless Chromium driven over the DevTools protocol, for the status page's browser tests.

Chromium is started with ``--remote-debugging-pipe``: it reads JSON commands from its fd 3 and
writes answers and events to its fd 4, each message ended by a NUL byte (what Puppeteer and
Playwright use too). Twisted's ``spawnProcess`` maps those two descriptors, so no WebSocket
library, no driver binary and no download is needed: only ``/usr/bin/chromium``. The flags
keep it off the network (this machine has none) and its state in a fresh profile directory.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser to run, or None when none is installed (the tests that need it then fail)."""
    configured = os.environ.get("EPGD_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def flags(profile: str) -> list[str]:
    return [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
        # no name resolves but loopback: a page that reached out would fail loudly
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank",
    ]


class CDPError(Exception):
    """Chromium answered a command with an error."""


class Chromium(ProcessProtocol):
    """One browser process; ``send`` commands, ``on`` events, ``close`` it in cleanup."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self._buffer = b""
        self._next = 0
        self._waiting: dict[int, Deferred[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self.stderr = b""
        self.ended: Deferred[None] = Deferred()
        self.running = False

    @classmethod
    def launch(cls, reactor: Any, executable: str, profile: str) -> Chromium:
        browser = cls(reactor)
        env = {"HOME": profile, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        reactor.spawnProcess(browser, executable, [executable, *flags(profile)], env=env,
                             childFDs={0: "w", 1: "r", 2: "r", 3: "w", 4: "r"})
        browser.running = True
        return browser

    # -- the pipe --------------------------------------------------------------------

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd != 4:
            self.stderr = (self.stderr + data)[-20000:]
            return
        self._buffer += data
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw)
            if "id" in message:
                waiter = self._waiting.pop(message["id"], None)
                if waiter is None:
                    continue
                if "error" in message:
                    waiter.errback(CDPError(json.dumps(message["error"])))
                else:
                    waiter.callback(message.get("result", {}))
            else:
                for listener in list(self._listeners):
                    listener(message)

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        for waiter in self._waiting.values():
            waiter.errback(CDPError("chromium exited: " + self.stderr[-2000:].decode("utf-8", "replace")))
        self._waiting.clear()
        self.ended.callback(None)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 20.0) -> Deferred[dict[str, Any]]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        waiter: Deferred[dict[str, Any]] = Deferred()
        self._waiting[self._next] = waiter
        self.transport.writeToChild(3, json.dumps(message).encode() + b"\0")  # type: ignore[union-attr]
        return waiter.addTimeout(timeout, self.reactor)

    def on(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    async def close(self) -> None:
        if not self.running:
            return
        try:
            await self.send("Browser.close", timeout=5)
        except (CDPError, TimeoutError):
            pass
        ended = self.ended
        timer = self.reactor.callLater(10, self._kill)
        await ended
        if timer.active():
            timer.cancel()

    def _kill(self) -> None:
        if self.running:
            self.transport.signalProcess("KILL")  # type: ignore[union-attr]

    # -- pages -----------------------------------------------------------------------

    async def new_page(self, width: int = 1280, height: int = 900, mobile: bool = False,
                       scale: float = 1.0) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self.on(page._event)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send("Network.enable")
        await page.resize(width, height, mobile, scale)
        return page


class Page:
    """One tab: navigate, evaluate script, screenshot; records every request it makes."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session
        self.requests: list[str] = []
        self.console: list[str] = []
        self.loads = 0

    def _event(self, message: dict[str, Any]) -> None:
        if message.get("sessionId") != self.session:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Page.loadEventFired":
            self.loads += 1
        elif method == "Runtime.exceptionThrown":
            self.console.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:2000])
        elif method == "Runtime.consoleAPICalled":
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.console.append(f"{params.get('type')}: {' '.join(args)}")

    def send(self, method: str, params: dict[str, Any] | None = None) -> Deferred[dict[str, Any]]:
        return self.browser.send(method, params, self.session)

    async def resize(self, width: int, height: int, mobile: bool = False, scale: float = 1.0) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile})

    async def goto(self, url: str) -> None:
        loads = self.loads
        await self.send("Page.navigate", {"url": url})
        await self.wait_for(lambda: self.loads > loads, "the page's load event")

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise CDPError(json.dumps(answer["exceptionDetails"])[:2000])
        return answer["result"].get("value")

    async def wait_for(self, test: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        from twisted.internet.task import deferLater

        waited = 0.0
        while not test():
            if waited >= timeout:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await deferLater(self.browser.reactor, 0.05, lambda: None)
            waited += 0.05

    async def wait_js(self, expression: str, what: str, timeout: float = 20.0) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        from twisted.internet.task import deferLater

        waited, value = 0.0, None
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if waited >= timeout:
                raise AssertionError(f"timed out after {timeout}s waiting for {what} "
                                     f"(last value {value!r}; console: {self.console[-5:]})")
            await deferLater(self.browser.reactor, 0.1, lambda: None)
            waited += 0.1

    async def screenshot(self, path: str, full_page: bool = True) -> bytes:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                              "scale": 1}
        shot = await self.send("Page.captureScreenshot", params)
        data = base64.b64decode(shot["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data
