"""
The status page (GET /, SPEC §13) in a real headless Chromium, over the DevTools protocol
(tests/cdp.py): what a person running epgd sees, at desktop and phone size, updating itself
from the JSON endpoints; admin buttons that ask for the token. Screenshots go to the test's
temporary directory (``_trial_temp/tests.test_status_page.*/.../screenshots``) to look at.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from epgd import __version__, status
from epgd.config import LineupConfig, ProviderConfig, UserConfig
from tests.cdp import Chromium, Page, find_chromium
from tests.fakeprovider import PASSWORD, USER
from tests.programs import require
from tests.stackhelpers import LIVE_TITLE, NEXT_TITLE, Stack, stack_config, write_provider_files
from tests.streamhelpers import E2ETestCase
from tests.test_web import ApiTestCase, make_config

ZONE = "America/New_York"


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def text_of(selector: str) -> str:
    """A JS expression: the trimmed text of the first match, or "" (never throws)."""
    return f"(document.querySelector({json.dumps(selector)}) || {{textContent: ''}}).textContent.trim()"


class PageFilesTests(SynchronousTestCase):
    """The shipped files themselves: nothing from outside epgd, nothing that runs provider text."""

    def test_no_external_url_and_no_html_injection_sink(self) -> None:
        html = status.page({"base_url": ""}).decode()
        script = status.script().decode()
        for text in (html, script):
            self.assertIsNone(re.search(r"(?i)\b(?:https?|wss?|ftp):|//[a-z0-9-]+\.[a-z]", text))
        for attribute in re.findall(r'(?:src|href)="([^"]*)"', html):
            self.assertRegex(attribute, r"^(?:[a-z/][\w/.]*|data:,)$")
        self.assertNotIn("innerHTML", script)
        self.assertNotIn("insertAdjacentHTML", script)
        self.assertNotIn("document.write", script)
        self.assertNotIn("eval(", script)

    def test_watch_player_ships_hls_js_unchanged_with_its_licence(self) -> None:
        """hls.js is vendored as npm packs it (version and hash recorded), its licence beside it."""
        watch, _ = status.asset("watch.js", False)
        self.assertIsNone(re.search(rb"(?i)\b(?:https?|wss?|ftp):|//[a-z0-9-]+\.[a-z]", watch))
        for sink in (b"innerHTML", b"insertAdjacentHTML", b"document.write", b"eval("):
            self.assertNotIn(sink, watch)
        self.assertIn(b'"hls.min.js"', watch)  # loaded from epgd, by a relative URL
        hls, _ = status.asset("hls.min.js", False)
        self.assertEqual(hashlib.sha256(hls).hexdigest(), status.HLS_JS_SHA256)
        self.assertIn(f'"{status.HLS_JS_VERSION}"'.encode(), hls)
        licence = files("epgd.status").joinpath("hls.min.js.LICENSE.txt").read_text(encoding="utf-8")
        self.assertIn("Apache License", licence)
        packed, gzipped = status.asset("hls.min.js", True)
        self.assertTrue(gzipped)
        self.assertEqual(gzip.decompress(packed), hls)
        with self.assertRaises(KeyError):
            status.asset("../__init__.py", False)

    def test_served_values_cannot_end_the_script_element(self) -> None:
        html = status.page({"base_url": "http://x/</script><script>alert(1)</script>"}).decode()
        self.assertEqual(html.count("</script>"), 3)  # the JSON block's, status.js's and watch.js's
        blob = re.search(r'<script id="epgd-info" type="application/json">(.*?)</script>', html, re.S)
        assert blob is not None
        self.assertEqual(json.loads(blob.group(1))["base_url"],
                         "http://x/</script><script>alert(1)</script>")


class RouteTests(ApiTestCase):
    """GET /, /status.js and the additions to /health, through Klein without sockets."""

    def info(self, body: bytes) -> dict[str, Any]:
        found = re.search(rb'<script id="epgd-info" type="application/json">(.*?)</script>', body, re.S)
        assert found is not None
        return json.loads(found.group(1))

    def test_page_is_html_with_a_policy_that_allows_only_epgd(self) -> None:
        self.use(evolve(make_config(), lineups=(LineupConfig(id="nhl_ppv", name="NHL PPV", channels=2),)))
        response, body = self.request("GET", "/")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "content-type"), "text/html; charset=utf-8")
        policy = self.header(response, "content-security-policy") or ""
        self.assertIn("default-src 'none'", policy)
        self.assertIn("connect-src 'self'", policy)
        self.assertEqual(self.info(body), {
            "version": __version__, "base_url": "", "token": False, "hdhr": True,
            "lineups": [{"id": "nhl_ppv", "name": "NHL PPV"}]})
        script, code = self.request("GET", "/status.js")
        self.assertEqual(script.code, 200)
        self.assertEqual(self.header(script, "content-type"), "text/javascript; charset=utf-8")
        self.assertEqual(code, status.script())

    def test_player_scripts_and_a_policy_that_lets_the_video_play(self) -> None:
        response, body = self.request("GET", "/")
        policy = self.header(response, "content-security-policy") or ""
        self.assertIn("media-src 'self' blob:", policy)  # hls.js feeds the video a MediaSource
        self.assertIn(b'<script src="watch.js"></script>', body)
        self.assertIn(b'<video id="watch-video"', body)
        for name in status.SCRIPTS:
            response, script = self.request("GET", f"/{name}", {"Accept-Encoding": "gzip"})
            self.assertEqual(response.code, 200)
            self.assertEqual(self.header(response, "content-type"), "text/javascript; charset=utf-8")
            self.assertEqual(gzip.decompress(script) if self.header(response, "content-encoding") else script,
                             status.asset(name, False)[0])
        response, script = self.request("GET", "/hls.min.js")
        self.assertIsNone(self.header(response, "content-encoding"))
        self.assertEqual(hashlib.sha256(script).hexdigest(), status.HLS_JS_SHA256)

    def test_page_says_a_token_is_needed_but_never_shows_it(self) -> None:
        self.use(make_config(token="hunter2", base_url="http://tv.lan:8080/"))
        _, body = self.request("GET", "/")
        info = self.info(body)
        self.assertEqual((info["token"], info["base_url"]), (True, "http://tv.lan:8080"))
        self.assertNotIn(b"hunter2", body)

    def test_health_adds_connections_of_max_streams(self) -> None:
        self.streams.connections = lambda: {"main": 2}  # type: ignore[method-assign]
        self.use(evolve(make_config(), providers=(ProviderConfig(name="main", playlist="p.m3u",
                                                                 max_streams=3),)))
        response, body = self.request("GET", "/health")
        provider = json.loads(body)["providers"]["main"]
        self.assertEqual((provider["connections"], provider["max_streams"]), (2, 3))
        self.assertIn("loaded", provider)  # SPEC §4's fields are kept


class BrowserTestCase(E2ETestCase):
    """epgd's whole stack and a headless Chromium (no tests of its own)."""

    timeout = 120
    async def stack(self, admin_token: str = "", live_title: str = LIVE_TITLE) -> Stack:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.provider.stream("one", "a", rate=300_000)
        self.provider.stream("two", "b", rate=300_000)
        playlist, guide = write_provider_files(directory, self.provider, self.now(),
                                               live_title=live_title)
        config = stack_config(directory, playlist, guide, admin_token=admin_token, max_streams=3)
        running = Stack(self.reactor, config, self.provider)
        self.addCleanup(running.stop)
        await running.ready()
        return running

    async def browser(self, width: int = 1280, height: int = 900) -> Page:
        chromium = find_chromium()
        if chromium is None:
            require("chromium", "the status page is judged in a real browser")
        assert chromium is not None
        profile = tempfile.mkdtemp(prefix="epgd-chromium-")
        browser = Chromium.launch(self.reactor, chromium, profile)
        self.addCleanup(shutil.rmtree, profile, ignore_errors=True)
        self.addCleanup(browser.close)
        page = await browser.new_page(width, height)
        await page.send("Emulation.setTimezoneOverride", {"timezoneId": ZONE})
        await page.send("Emulation.setLocaleOverride", {"locale": "en-GB"})
        return page

    def screenshots(self) -> str:
        path = os.path.abspath(os.path.join(self.mktemp(), "screenshots"))
        os.makedirs(path)
        return path


class StatusPageBrowserTests(BrowserTestCase):
    async def test_live_event_streams_and_updates_without_a_reload(self) -> None:
        stack = await self.stack()
        first = await stack.open("/stream/test_1.ts")
        await first.wait_bytes(20_000, 10)
        page = await self.browser()
        await page.goto(stack.base + "/")

        # the live event on its channel, with its start in the browser's zone
        now_title = text_of('[data-channel="test_1"] [data-field="now"] .title')
        self.assertEqual(await page.wait_js(now_title, "the live event's title"), LIVE_TITLE)
        self.assertEqual(await page.evaluate(text_of('[data-channel="test_1"] [data-field="next"] .title')),
                         NEXT_TITLE)
        schedule = await stack.json("/schedule.json")
        live = next(e for e in schedule["channels"][0]["events"] if e["live"])
        start = _dt.datetime.fromisoformat(live["start"].replace("Z", "+00:00"))
        shown = await page.evaluate(
            "[...document.querySelectorAll('[data-channel=\"test_1\"] [data-field=\"now\"] time')]"
            ".map(t => [t.textContent, t.getAttribute('datetime')])")
        self.assertEqual(shown[0], [start.astimezone(ZoneInfo(ZONE)).strftime("%H:%M"), live["start"]])
        self.assertIn(ZONE, await page.evaluate(text_of("#zone")))

        # the active stream: event, masked source, its one viewer
        clients = text_of('[data-stream="test_1"] [data-field="clients"]')
        self.assertEqual(await page.wait_js(clients, "the stream's viewer count"), "1 viewer")
        self.assertEqual(await page.evaluate(text_of('[data-stream="test_1"] [data-field="event"]')),
                         LIVE_TITLE)
        source = await page.evaluate(text_of('[data-stream="test_1"] [data-field="source"]'))
        self.assertTrue(source.endswith("/live/***/***/one.ts"), source)
        connections = text_of('[data-provider="main"] [data-field="connections"]')
        self.assertEqual(await page.wait_js(connections, "the provider's connections"),
                         "1 of 3 connections")
        self.assertEqual(await page.evaluate(text_of("#hdhr-address")), stack.base[len("http://"):])

        # a second viewer joins: the page follows, without reloading
        await page.evaluate("window.epgdTestMark = 'same document'")
        loads = page.loads
        second = await stack.open("/stream/test_1.ts")
        await second.wait_bytes(10_000, 10)
        await page.wait_js(f"{clients} === '2 viewers'", "the second viewer to show", timeout=15)
        self.assertEqual(await page.evaluate("window.epgdTestMark"), "same document")
        self.assertEqual(page.loads, loads)

        shots = self.screenshots()
        desktop = await page.screenshot(os.path.join(shots, "desktop.png"))
        self.assertEqual(png_size(desktop)[0], 1280)
        await page.resize(390, 844, mobile=True, scale=2)
        await page.wait_js("window.innerWidth === 390", "the phone viewport")
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        self.assertLessEqual(overflow, 0, "the page scrolls sideways on a phone")
        phone = await page.screenshot(os.path.join(shots, "phone.png"))
        self.assertEqual(png_size(phone)[0], 780)
        self.assertEqual(await page.evaluate(text_of('[data-stream="test_1"] [data-field="clients"]')),
                         "2 viewers")

        # everything came from epgd itself; no credential anywhere on the page
        self.assertTrue(page.requests)
        for url in page.requests:
            self.assertTrue(url.startswith(stack.base + "/") or url.startswith("data:"), url)
        body = await page.evaluate("document.documentElement.outerHTML")
        for secret in (USER, PASSWORD):
            self.assertNotIn(secret, body)
        self.assertEqual([c for c in page.console if c.startswith(("exception", "error"))], [])

    async def test_stop_and_refresh_ask_for_the_token(self) -> None:
        title = 'Bruins <img src=x onerror="window.pwned=1"> & Rangers'
        stack = await self.stack(admin_token="let-me-in", live_title=title)
        viewer = await stack.open("/stream/test_1.ts")
        await viewer.wait_bytes(10_000, 10)
        page = await self.browser(800, 900)
        await page.goto(stack.base + "/")
        event = text_of('[data-stream="test_1"] [data-field="event"]')
        self.assertEqual(await page.wait_js(event, "the stream card"), title)  # as text, not markup
        self.assertIsNone(await page.evaluate("window.pwned"))
        self.assertEqual(await page.evaluate("document.querySelectorAll('main img').length"), 0)

        stop = "document.querySelector('[data-stream=\"test_1\"] button')"
        await page.evaluate(f"{stop}.click()")
        self.assertEqual(await page.wait_js(f"{stop}.textContent", "the confirmation"), "Stop now?")
        await page.evaluate(f"{stop}.click()")
        await page.wait_js("document.getElementById('token-dialog').open", "the token prompt")
        await page.evaluate("document.getElementById('token-input').value = 'wrong';"
                            "document.getElementById('token-ok').click()")
        await page.wait_js("document.getElementById('token-dialog').open && "
                           + text_of("#token-label") + ".includes('refused')", "the prompt again")
        self.assertFalse(viewer.is_closed)
        await page.evaluate("document.getElementById('token-input').value = 'let-me-in';"
                            "document.getElementById('token-ok').click()")
        await viewer.wait_closed(10)
        await page.wait_js("document.querySelector('[data-stream=\"test_1\"]') === null",
                           "the stopped stream to leave the page")
        self.assertEqual(await page.evaluate(text_of("#notice")), "Stopped test_1.")
        self.assertEqual(await page.evaluate(text_of('[data-provider="main"] [data-field="connections"]')),
                         "0 of 3 connections")  # read again at once, not at the next poll

        # the token is remembered for the tab: refresh asks no more
        await page.evaluate("document.getElementById('refresh').click()")
        await self.wait_until(lambda: stack.catalog.refreshes[("main", "ok")] >= 2, 10,
                              "the refresh the button asked for")
        self.assertFalse(await page.evaluate("document.getElementById('token-dialog').open"))
        self.assertEqual(await page.wait_js(text_of("#notice"), "the refresh notice"),
                         "Refreshing every provider…")
        shots = self.screenshots()
        await page.screenshot(os.path.join(shots, "after-stop.png"))


    async def test_from_outside_the_page_works_with_the_token_in_its_url(self) -> None:
        """With accounts and no open network (a VPS), the operator opens /?token=… (SPEC §15)."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.provider.stream("one", "a", rate=300_000)
        self.provider.stream("two", "b", rate=300_000)
        playlist, guide = write_provider_files(directory, self.provider, self.now())
        config = stack_config(directory, playlist, guide, admin_token="let-me-in")
        config = evolve(config, server=evolve(config.server, open_networks=()),
                        users=(UserConfig(name="alice", password="Wonder-land9"),))
        stack = Stack(self.reactor, config, self.provider)
        self.addCleanup(stack.stop)
        await self.wait_until(lambda: stack.catalog.published() is not None and stack.catalog.has_data(), 15,
                              "the provider files to load")
        self.assertEqual((await stack.fetch("/")).status, 401)
        page = await self.browser()
        await page.goto(stack.base + "/?token=let-me-in")
        now_title = text_of('[data-channel="test_1"] [data-field="now"] .title')
        self.assertEqual(await page.wait_js(now_title, "the live event's title"), LIVE_TITLE)
        self.assertEqual(await page.evaluate("location.search"), "")  # the token left the address bar
        provider = text_of('[data-provider="main"] [data-field="connections"]')
        self.assertEqual(await page.wait_js(provider, "the provider's connections (from /health)"),
                         "0 connections (no limit)")


async def click(page: Page, selector: str) -> None:
    """A real mouse click (a user gesture, as the browser counts them) on ``selector``."""
    await page.evaluate(f"document.querySelector({json.dumps(selector)}).scrollIntoView({{block: 'center'}})")
    box = await page.evaluate(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
        " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
    for kind in ("mousePressed", "mouseReleased"):
        await page.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                     "button": "left", "clickCount": 1})


class WatchBrowserTests(BrowserTestCase):
    """SPEC §16: the Watch button plays the channel in the page, with sound, from epgd alone."""

    timeout = 120

    async def watch_stack(self) -> Stack:
        from tests.test_splice_e2e import looped

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        for name, colour in (("one", "red"), ("two", "green")):
            data, rate = looped(colour, 120)
            self.provider.stream(name, data, rate=rate)  # at its own pace, its clock running on
        playlist, guide = write_provider_files(directory, self.provider, self.now())
        running = Stack(self.reactor, stack_config(directory, playlist, guide, hls_segment=1.0),
                        self.provider)
        self.addCleanup(running.stop)
        await running.ready()
        return running

    async def watch(self, player: str) -> None:
        stack = await self.watch_stack()
        page = await self.browser()
        await page.goto(stack.base + "/" + (f"?player={player}" if player else ""))
        button = '[data-channel="test_1"] button[data-watch="test_1"]'
        await page.wait_js(f"document.querySelector({json.dumps(button)}) !== null", "the Watch button")
        await click(page, button)
        video = "document.getElementById('watch-video')"
        await page.wait_js("document.getElementById('watch-dialog').open", "the player")
        # it plays: its time advances, past what one segment holds
        try:
            await page.wait_js(f"{video}.currentTime > 2", "the video to play", timeout=40)
        except AssertionError:
            state = await page.evaluate(
                f"JSON.stringify({{error: {video}.error && [{video}.error.code, {video}.error.message], "
                f"ready: {video}.readyState, network: {video}.networkState, time: {video}.currentTime, "
                f"src: {video}.currentSrc, note: document.getElementById('watch-note').textContent}})")
            raise AssertionError(f"the video does not play: {state}; requests {page.requests[-8:]}; "
                                 f"console {page.console[-8:]}") from None
        first = await page.evaluate(f"{video}.currentTime")
        await self.sleep(1.5)
        later = await page.evaluate(f"{video}.currentTime")
        self.assertGreater(later - first, 0.8, "the video's time does not advance")
        self.assertFalse(await page.evaluate(f"{video}.paused"))
        # with sound: not muted, and the browser decodes its audio
        self.assertFalse(await page.evaluate(f"{video}.muted"))
        self.assertGreater(await page.evaluate(f"{video}.webkitAudioDecodedByteCount"), 0)
        self.assertEqual(await page.evaluate(text_of("#watch-title")), "Test Sports 1")
        used = await page.evaluate(f"{video}.dataset.player")
        self.assertEqual(used, player or ("native" if await page.evaluate(
            f"{video}.canPlayType('application/vnd.apple.mpegurl') !== ''") else "hls.js"))
        status = await stack.json("/streams/status")
        self.assertEqual(status["test_1"]["hls_sessions"], 1)
        self.assertEqual(status["test_1"]["clients"], 0)  # HLS only: no TS connection
        shots = self.screenshots()
        await page.screenshot(os.path.join(shots, f"watch-{player or 'default'}.png"), full_page=False)
        # closing stops it
        await page.evaluate("document.getElementById('watch-close').click()")
        await page.wait_js(f"{video}.paused && !{video}.dataset.channel", "the player to stop")
        # everything came from epgd itself
        for url in page.requests:
            self.assertTrue(url.startswith((stack.base + "/", "data:", "blob:")), url)
        if used == "hls.js":
            self.assertIn(stack.base + "/hls.min.js", page.requests)
        else:
            self.assertNotIn(stack.base + "/hls.min.js", page.requests)  # never fetched needlessly
        self.assertEqual([c for c in page.console if c.startswith(("exception", "error"))], [])

    async def test_watch_plays_with_the_browsers_own_choice(self) -> None:
        await self.watch("")

    async def test_watch_plays_with_hls_js(self) -> None:
        """The path Firefox takes (no native HLS): hls.js from epgd over Media Source Extensions."""
        await self.watch("hls.js")
