"""
The harness of tests/test_realswitch_e2e.py: epgd (continuous output, SPEC §7.1) switching a
channel between real captures of the corpus (tests/data/ts/real/, served by
`realclips.LiveServer`), every real player of tests/players.py and the media servers' ffmpeg
pipelines of tests/mediaservers.py reading it at once, and what each of them did judged as a
viewer would (`RealSwitchCase.judge`).

How the switches are timed (`Timing`), which clips pair up and what each makes a reader say
alone, with no switch (`Clip.own`: no complaint about a switch), how a player's picture is
known to follow a cut (`follow_delays`: a change of picture size; for a clip switched to
itself, pictures going on), how many frames it should show where the two clips' frame rates
differ (`shown_fraction`), and what epgd's own bytes must hold (one PMT, no continuity error,
no PCR going back to the 27 MHz tick: `pcr_steps_back`) are all here.
"""

from __future__ import annotations

import bisect
import json
import re
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from attrs import evolve, field, frozen
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from epgd.mpegts.splice.layout import OUT_PMT
from epgd.publish.outputs import Published
from epgd.schedule.model import Schedule
from tests import players, realclips
from tests.mediaservers import jellyfin, plex, run_for, segment_durations, tool
from tests.players import Playback
from tests.streamhelpers import E2ETestCase, Epgd, FakeCatalog, HTTPReader, config, event, schedule
from tests.tsverify import WRAP, read

CHANNEL = "test_1"
BURST = 1.5  # seconds of media the first source sends at once
MAX_FREEZE = 1.5
MIN_SHOWN = 0.9
FOLLOW = 2.0  # a picture change within this long after the player plays the cut
COMPLAINTS_PER_SWITCH = 2
#: seconds a player holds beyond what the stream gave it at once before it shows what arrives:
#: playbin's buffering (queue2 fills a few seconds of a network stream before it plays, and
#: keeps that lead: measured 2 s on 640x360, 3.5 s on 1280x720)
PLAYER_LEAD = {"gstreamer playbin": 3.5}
#: seconds after a player reports a new picture size in which it may still be showing the
#: old picture (VLC reports it when it decodes the new picture, a second or more before it
#: shows it): the frames expected there are those of the slower of the two
TRANSITION = 2.5
HLS_SEGMENT = 4.0  # stream.hls_segment's default: segments end at the first key frame after it
#: seconds an HLS player plays behind the cut: it starts three segments from the live edge
#: (RFC 8216 §6.3.3; both clips have a key frame every 2 s or less) and keeps that lead
HLS_LEAD = 3 * HLS_SEGMENT
#: ffmpeg lines that are a timestamp error in a media server's log
TIMESTAMP_ERRORS = re.compile(r"(?i)non.monoton|invalid (?:dts|pts|timestamps)|out of order|"
                              r"new (?:video|audio) stream")
#: what Jellyfin's ffmpeg (``+igndts+genpts``) says of a B-frame stream's first frames, before it
#: has seen enough to make up their DTS (rollover's and hevc's alone): before its second report
#: of progress (it reports twice a second; the first cut comes seconds later)
_AT_START = "Non-monotonous DTS in output stream 0:0"


@frozen
class Timing:
    """When a run's channel switches, and how far behind each cut its players show it."""

    first: float  # seconds from the start to the first switch
    every: float  # seconds between switches
    switches: int
    lead: float  # seconds every player has in hand beyond its own: the first burst, HLS's lead
    burst_every_time: bool = False  # every provider connection sends BURST s at once

    def watch(self, watchers: Iterable[str]) -> float:
        """How long to watch: to the last cut, then the longest wait for it, and a little."""
        longest = max((PLAYER_LEAD.get(name, 0.0) for name in watchers), default=0.0)
        return self.first + (self.switches - 1) * self.every + self.lead + longest + FOLLOW + 0.5


TS = Timing(first=3.5, every=2.5, switches=3, lead=BURST)
BURSTING = Timing(first=3.5, every=2.5, switches=2, lead=BURST, burst_every_time=True)
HLS = Timing(first=3.0, every=5.0, switches=1, lead=HLS_LEAD)


@frozen
class Own:
    """
    A line a capture makes a reader say alone, looped with no switch: ``reader`` is a prefix of
    the reader's name, ``pattern`` a regex; with ``step``, the line is the capture's only where
    the pattern's groups ``a`` and ``b`` differ by exactly that (a timestamp the capture itself
    has out of order by so much), so the same complaint about a splice still counts.
    """

    reader: str
    pattern: str
    step: int | None = None

    def covers(self, reader: str, line: str) -> bool:
        if not reader.startswith(self.reader):
            return False
        found = re.search(self.pattern, line)
        if found is None:
            return False
        return self.step is None or int(found.group("a")) - int(found.group("b")) == self.step


@frozen
class Clip:
    """
    A corpus file and what a run needs beyond `realclips.RealClip`: its picture's height (what
    tells it from another on screen), ``own``: what it makes readers say alone, and
    ``own_back``: how far (s) a player's clock steps back at its loop's seam alone.
    """

    file: str
    height: int
    own: tuple[Own, ...] = field(default=())
    own_back: float = 0.0

    @property
    def real(self) -> realclips.RealClip:
        return realclips.clip(self.file)


#: GStreamer says when a clock passes 2^33, as it must
ROLLOVER = Clip("rollover-h264-aac48k.ts", 360, own=(Own("gstreamer", "WRAPAROUND detected"),))
H264_50P = Clip("h264-50p-aac48k.ts", 576)
AAC44K = Clip("aac44k-h264-720p2997.ts", 720)
HEVC = Clip("hevc-aac44k-30.ts", 1280)
AC3DVB = Clip("ac3dvb-h264-576p25.ts", 576)
#: GStreamer's h264parse cannot parse its SEI (user data unregistered)
H264_5994 = Clip("h264-720p5994.ts", 720, own=(
    Own("gstreamer", r"parse_user_data_unregistered: No more remaining payload|failed to parse one or more SEI"),))
#: its B-frames carry a PTS 40 ms (3600) before their DTS: FFmpeg's demuxer (mpv, the media
#: servers) says so, and the media servers' muxer replaces each such DTS
EAC3 = Clip("eac3-first-h264-720p25.ts", 720, own=(
    Own("", r"Invalid timestamps stream=\d+, pts=(?P<b>\d+), dts=(?P<a>\d+)", step=3600),
    Own("", r"Invalid DTS: (?P<a>\d+) PTS: (?P<b>\d+) in output stream 0:0", step=3600),
    Own("mpv", r"Invalid timestamps")))  # mpv's line gives no values
#: its loop's seam (the open GOP's leading B-frames, two frames cut off before it): GStreamer
#: says decreasing timestamp, playbin's clock steps back 20 ms, Jellyfin's DTS go back 2 frames
MPEG2 = Clip("mpeg2-576i25-mp2.ts", 576, own_back=0.021, own=(
    Own("gstreamer", "decreasing timestamp"),
    Own("jellyfin", r"Non-monotonous DTS in output stream 0:0; previous: (?P<a>\d+), current: (?P<b>\d+)",
        step=7200)))


@frozen
class Pair:
    """
    Two sources with the same codecs a channel switches between: ``first``, then ``second``,
    ``first``, ...; ``second`` None: ``first`` again, from its last PAT ``offset`` seconds into
    its loop (its clock, and where the capture has PATs inside the loop its picture, elsewhere).
    """

    first: Clip
    second: Clip | None = None
    offset: float = 0.0

    @property
    def clips(self) -> tuple[Clip, Clip]:
        return self.first, self.second or self.first

    @property
    def name(self) -> str:
        return f"{self.first.file} <-> {self.second.file if self.second else f'itself {self.offset}s on'}"

    @property
    def sized(self) -> bool:
        """Whether the two pictures differ in height, so a player's formats tell them apart."""
        return self.second is not None and self.second.height != self.first.height

    @property
    def audio(self) -> bool:
        return bool(self.first.real.audio)

    def own(self, reader: str, line: str) -> bool:
        """Whether ``line`` is one the captures make ``reader`` say alone."""
        return any(own.covers(reader, line) for clip in self.clips for own in clip.own)

    @property
    def own_back(self) -> float:
        return max(clip.own_back for clip in self.clips)


class Run:
    """What one switching channel gave: its cuts (monotonic times) and every reader's results."""

    def __init__(self, pair: Pair, timing: Timing) -> None:
        self.pair = pair
        self.timing = timing
        self.cuts: list[float] = []
        self.starts: dict[str, float] = {}  # player -> monotonic time it was launched
        self.playbacks: dict[str, Playback] = {}
        self.servers: dict[str, tuple[Path, str]] = {}  # media server -> (its output, its log)
        self.wall = 0.0  # how long the media servers read
        self.raw = b""  # epgd's bytes, read beside them
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, raw bytes so far)
        self.playlists: list[tuple[float, str]] = []  # (monotonic time, the HLS playlist then)

    def cuts_for(self, player: str) -> list[float]:
        """The cuts on ``player``'s own clock (seconds since it was launched)."""
        return [cut - self.starts[player] for cut in self.cuts]


def watch(player: str, url: str, seconds: float, run: Run, audio: bool) -> Playback:
    """One player on ``url`` (in a thread), noting when it was launched."""
    run.starts[player] = time.monotonic()
    if player == "gstreamer tsdemux":
        return players.gst_tsdemux(url, seconds, audio=audio)
    return players.PLAYERS[player](url, seconds)


class Publishing(FakeCatalog):
    """A catalog that serves one schedule's playlist and guide."""

    def __init__(self, published: Published) -> None:
        self._published = published

    def published(self) -> Published:  # type: ignore[override]
        return self._published


class RealSwitchCase(E2ETestCase):
    """Runs switching channels and judges what every reader made of them."""

    timeout = 90

    def setUp(self) -> None:
        super().setUp()
        # every player and media server of two channels at once (the reactor's pool has 10)
        self.pool = ThreadPool(minthreads=0, maxthreads=16, name="realswitch")
        self.pool.start()
        self.addCleanup(self.pool.stop)

    # -- running a switching channel ---------------------------------------------------

    def sources(self, pair: Pair, timing: Timing, warm_up: float = 0.0) -> list[str]:
        """The provider: the first source, then the two in turn (bursting as ``timing`` says)."""
        length = warm_up + timing.watch(players.PLAYERS) + 10
        first, second = pair.clips
        programs = {
            "first": realclips.looped(realclips.load(first.file), length),
            "a": realclips.looped(realclips.load(first.file), length),
            "b": realclips.looped(realclips.load(second.file), length, start=pair.offset),
        }
        server = realclips.LiveServer(programs, burst=BURST,
                                      bursts={} if timing.burst_every_time else {"a": 0.0, "b": 0.0})
        self.addCleanup(server.close)
        return [server.url("first"), server.url("b"), server.url("a")]

    def switching(self, urls: list[str], timing: Timing | None, **settings: Any) -> Epgd:
        """
        epgd with its ``CHANNEL`` switching as `schedule_switches` says (``timing`` None: on
        urls[0] until told otherwise), its playlist published (/playlist.m3u).
        """
        now = self.now()
        cfg = config(self.provider, output="continuous", **settings)
        current = schedule_switches(urls, timing, now)
        running = Epgd(self.reactor, cfg, current, catalog=Publishing(Published(current, cfg, str)))
        self.addCleanup(running.stop)
        return running

    async def hls_running(self, epgd: Epgd, segments: int = 3) -> None:
        """
        Until the channel's HLS playlist lists ``segments`` (a player then starts three target
        durations from the live edge, as RFC 8216 §6.3.3 says it should, and keeps that lead).
        """
        deadline = time.monotonic() + 10 * segments * HLS_SEGMENT
        while time.monotonic() < deadline:
            playlist = await epgd.fetch(f"/stream/{CHANNEL}.m3u8", timeout=20)
            if playlist.text().count("#EXTINF:") >= segments:
                return
            await self.sleep(0.25)
        self.fail(f"the HLS playlist listed fewer than {segments} segments after {10 * segments * HLS_SEGMENT}s")

    def note_cuts(self, epgd: Epgd, run: Run) -> LoopingCall:
        """Note the monotonic time of every cut (the channel's count of switches going up)."""
        def poll() -> None:
            figures = epgd.manager.status().get(CHANNEL)
            while len(run.cuts) < (figures["switches"] if figures else 0):
                run.cuts.append(time.monotonic())

        loop = LoopingCall(poll)
        loop.start(0.02)
        self.addCleanup(lambda: loop.stop() if loop.running else None)
        return loop

    def in_thread(self, f: Any, *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.pool, f, *args)

    async def play(self, pair: Pair, timing: Timing = TS, media_servers: bool = True,
                   watchers: Iterable[str] = tuple(players.PLAYERS), path: str = f"/stream/{CHANNEL}.ts") -> Run:
        """
        ``pair`` switching as ``timing`` says, watched by ``watchers`` (and read by the media
        servers) at ``path``, and read raw at /stream/CHANNEL.ts beside them. An HLS ``path``
        is opened once the channel's playlist lists three segments (a running channel).
        """
        names = list(watchers)
        seconds = timing.watch(names)
        hls = path.endswith("m3u8")
        urls = self.sources(pair, timing, warm_up=4 * HLS_SEGMENT if hls else 0.0)
        epgd = self.switching(urls, None if hls else timing)
        url = f"http://127.0.0.1:{epgd.port.getHost().port}{path}"
        run = Run(pair, timing)
        raw: HTTPReader = await epgd.open(f"/stream/{CHANNEL}.ts", keep=64 * 1024 * 1024)
        if hls:
            await self.hls_running(epgd)
            epgd.set_schedule(schedule_switches(urls, timing, self.now()))
        cuts = self.note_cuts(epgd, run)
        work: list[Deferred[Any]] = [self.in_thread(watch, name, url, seconds, run, pair.audio) for name in names]
        servers: dict[str, list[str]] = {}
        if media_servers:
            ffmpeg = tool("ffmpeg")
            folder = Path(self.mktemp())
            folder.mkdir()
            servers["plex"] = plex(ffmpeg, url, folder / "plex.ts")
            if pair.audio:  # Jellyfin maps the first audio stream: a channel with no sound has none
                servers["jellyfin"] = jellyfin(ffmpeg, url, folder / "jellyfin.m3u8")
            work += [self.in_thread(run_for, argv, seconds) for argv in servers.values()]
        if hls:
            work.append(ensureDeferred(self.read_playlists(epgd, run, seconds)))
        results = await gatherResults(work)
        cuts.stop()
        run.playbacks = dict(zip(names, results[:len(names)], strict=True))
        for (name, argv), (log, wall) in zip(servers.items(), results[len(names):len(names) + len(servers)],
                                             strict=True):
            run.servers[name] = (Path(argv[-1]), log)
            run.wall = wall
        run.raw = bytes(raw.body[:len(raw.body) - len(raw.body) % 188])
        run.arrivals = list(raw.arrivals)
        return run

    async def read_playlists(self, epgd: Epgd, run: Run, seconds: float) -> None:
        """The channel's HLS playlist every half second for ``seconds``: (time, its text)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            playlist = await epgd.fetch(f"/stream/{CHANNEL}.m3u8", timeout=10)
            run.playlists.append((time.monotonic(), playlist.text()))
            await self.sleep(0.5)

    # -- judging ---------------------------------------------------------------------------

    def judge(self, run: Run) -> list[str]:
        """Everything a viewer would notice, a line for each player or pipeline at fault."""
        if len(run.cuts) != run.timing.switches:
            return [f"epgd cut {len(run.cuts)} times, not {run.timing.switches}"]
        found = []
        for name, playback in run.playbacks.items():
            if problems := self.player_problems(run, name, playback):
                complaints = [(round(wall, 2), line[:100]) for wall, line in playback.complaints[:40]]
                found.append(f"{name}: {problems}\n{playback.summary()}\n  cuts at "
                             f"{[round(c, 2) for c in run.cuts_for(name)]}, complaints at {complaints}")
        found += self.media_server_problems(run)
        report = read(run.raw)
        if report.cc_errors:
            found.append(f"epgd's bytes: continuity errors {report.cc_errors[:5]}")
        if report.pmt_pids != {OUT_PMT}:
            found.append(f"epgd's bytes: PMTs on {report.pmt_pids}")
        if back := pcr_steps_back(run.raw):
            found.append(f"epgd's bytes: the PCR goes back (packet index, 27 MHz ticks): {back[:5]}")
        return [f"[{run.pair.name}] {line}" for line in found]

    def player_problems(self, run: Run, name: str, playback: Playback) -> list[str]:
        pair = run.pair
        judged = evolve(playback, complaints=[(wall, line) for wall, line in playback.complaints
                                              if not pair.own(name, line)])
        problems = []
        if not judged.kept_playing:
            problems.append(f"stopped (running {judged.running_at_end}, exit {judged.exit_code}, last frame "
                            f"{judged.frames[-1].wall if judged.frames else None} of {judged.seconds:.1f}s)")
        if judged.longest_freeze > MAX_FREEZE:
            problems.append(f"froze {judged.longest_freeze:.2f}s")
        if (fraction := shown_fraction(judged, pair)) < MIN_SHOWN:
            second = [0] * (int(judged.seconds) + 1)
            for frame in judged.frames:
                second[int(frame.wall)] += 1
            problems.append(f"showed {fraction:.0%} of the frames (each second: {second})")
        if jumps := [j for j in judged.time_jumps() if not 0 < j.before - j.after <= pair.own_back]:
            problems.append(f"time jumps {[str(j) for j in jumps]}")
        allowed = COMPLAINTS_PER_SWITCH * len(run.cuts)
        if len(after := judged.complaints_after_start()) > allowed:
            problems.append(f"{len(after)} complaints (at most {allowed}): {after[:6]}")
        cuts = run.cuts_for(name)
        within = run.timing.lead + PLAYER_LEAD.get(name, 0.0) + FOLLOW
        if pair.sized:
            delays = follow_delays((wall for wall, _ in judged.formats[1:]), cuts, within)
            if None in delays:
                problems.append(f"did not follow every cut within {within:.1f}s: cuts at "
                                f"{[round(c, 2) for c in cuts]}, picture changes {delays} later")
        elif late := [round(c, 2) for c in cuts if not any(c < f.wall <= c + within for f in judged.frames)]:
            # the same picture: the new source shows as pictures going on after each cut
            problems.append(f"no picture within {within:.1f}s of the cuts at {late}")
        return problems

    def media_server_problems(self, run: Run) -> list[str]:
        if not run.servers:
            return []
        ffmpeg, ffprobe = tool("ffmpeg"), tool("ffprobe")
        found = []
        expected = ["audio", "video"] if run.pair.audio else ["video"]
        allowed = COMPLAINTS_PER_SWITCH * len(run.cuts)
        for name, (path, log) in run.servers.items():
            if not path.exists():
                found.append(f"{name}: wrote nothing; its log ends: {log[-1500:]}")
                continue
            errors = [line for line in after_start(log)
                      if TIMESTAMP_ERRORS.search(line) and not run.pair.own(name, line)]
            if errors:
                found.append(f"{name}: {len(errors)} timestamp errors: {errors[:5]}")
            probe = subprocess.run([ffprobe, "-v", "error", "-show_entries", "stream=codec_type:format=duration",
                                    "-of", "json", str(path)], capture_output=True, text=True, timeout=60)
            streams = json.loads(probe.stdout or "{}")
            kinds = sorted(s.get("codec_type", "") for s in streams.get("streams", []))
            if kinds != expected:
                found.append(f"{name}: streams {kinds}, expected {expected}")
            duration = (sum(segment_durations(path)) if path.suffix == ".m3u8"
                        else float(streams.get("format", {}).get("duration", 0)))
            # as long as the wall time, give or take the first burst (which a reader joining
            # after it may get, from the PAT it joins at) and 10%
            if abs(duration - run.wall) > BURST + 0.1 * run.wall:
                found.append(f"{name}: {duration:.1f}s of media over {run.wall:.1f}s of wall time")
            # every frame decoded, timed on the 90 kHz clock (the null muxer's default, a
            # 1/fps clock of the first picture's rate, would count 50p frames as out of order)
            decoded = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-map", "0:v", "-map", "0:a?",
                                      "-enc_time_base", "1:90000", "-f", "null", "-"],
                                     capture_output=True, text=True, timeout=60)
            errors = [line for line in decoded.stderr.splitlines() if not run.pair.own(name, line)]
            if len(errors) > allowed:
                found.append(f"{name}: {len(errors)} errors decoding it (at most {allowed}): {errors[:6]}")
        return found

    async def assert_plays_through(self, *pairs: Pair) -> None:
        """Each of ``pairs`` (at once, each a channel of its own) plays through every switch."""
        runs = await gatherResults([ensureDeferred(self.play(pair)) for pair in pairs])
        problems = [line for run in runs for line in self.judge(run)]
        self.assertEqual(problems, [], "\n".join(problems))


def follow_delays(changes: Iterable[float], cuts: Iterable[float], within: float) -> list[float | None]:
    """
    For each cut in turn, how long until the next picture change not already taken by an
    earlier cut, or None when none comes within ``within`` (`Playback.follows` would give a
    player that shows every cut late one cut's change for the next).
    """
    pending = sorted(changes)
    delays: list[float | None] = []
    for cut in cuts:
        pending = [c for c in pending if c >= cut]
        if pending and pending[0] <= cut + within:
            delays.append(pending.pop(0) - cut)
        else:
            delays.append(None)
    return delays


def shown_fraction(playback: Playback, pair: Pair, startup: float = 1.0) -> float:
    """
    `Playback.shown_fraction` for pictures whose frame rates differ: the frames expected at
    each moment are those of the clip shown then, told by its height, and for ``TRANSITION``
    seconds after each change of size those of the slower clip.
    """
    if not playback.frames:
        return 0.0
    rates = {clip.height: clip.real.fps for clip in pair.clips}
    fastest, slowest = max(rates.values()), min(rates.values())
    changes = [wall for wall, _ in playback.formats[1:]]

    def fps_at(wall: float) -> float:
        if not pair.sized:
            return fastest
        if any(c <= wall < c + TRANSITION for c in changes):
            return slowest
        size = (playback.format_at(wall) or "").split(" ")[0]
        return rates.get(int(size.split("x")[1]) if "x" in size else 0, fastest)

    start = playback.frames[0].wall + startup
    expected, step, at = 0.0, 0.02, start
    while at < playback.seconds:
        expected += fps_at(at) * min(step, playback.seconds - at)
        at += step
    shown = sum(1 for f in playback.frames if f.wall >= start)
    return shown / expected if expected > 0 else 0.0


def schedule_switches(urls: list[str], timing: Timing | None, now: float) -> Schedule:
    """
    ``CHANNEL`` on urls[0] until ``timing.first`` s after ``now``, then on urls[1], urls[2],
    urls[1], ... every ``timing.every`` s, the last one on for long; ``timing`` None: urls[0].
    """
    events = [event("E0", now - 60, now + (timing.first if timing else 600), urls[0])]
    for k in range(1, timing.switches + 1 if timing else 1):
        assert timing is not None
        start = now + timing.first + (k - 1) * timing.every
        stop = start + timing.every if k < timing.switches else now + 600
        events.append(event(f"E{k}", start, stop, urls[1 + (k - 1) % 2]))
    return schedule({CHANNEL: events}, now)


def lead_growth(run: Run) -> float:
    """
    How much further the stream's clock ran ahead of the wall clock after the last cut than
    before the first: each PCR against when its packet arrived (the most ahead in the second
    before the first cut, against the most ahead from a second after the last).
    """
    report = read(run.raw)
    times = [t for t, _ in run.arrivals]
    counts = [n for _, n in run.arrivals]
    points = []
    for index, pcr in report.pcrs:
        arrived = bisect.bisect_left(counts, (index + 1) * 188)
        if arrived < len(times):
            points.append((times[arrived], pcr))
    if not points or not run.cuts:
        return 0.0
    t0, p0 = points[0]
    leads = [(t, ((pcr - p0) % WRAP) / 90_000 - (t - t0)) for t, pcr in points]
    before = max((lead for t, lead in leads if run.cuts[0] - 1.0 <= t < run.cuts[0]), default=0.0)
    after = max((lead for t, lead in leads if t >= run.cuts[-1] + 1.0), default=before)
    return after - before


def target_duration_changes(run: Run) -> list[str]:
    """
    Where the HLS playlists read during ``run`` changed EXT-X-TARGETDURATION: RFC 8216 §6.2.2
    lets a live playlist change only by segments coming and going (players reload it every
    target duration).
    """
    targets = [(round(at - run.starts["vlc"], 1), re.findall(r"#EXT-X-TARGETDURATION:(\d+)", text))
               for at, text in run.playlists]
    changes = [(at, found) for (at, found), (_, before) in zip(targets[1:], targets, strict=False)
               if found != before]
    if not changes:
        return []
    extinf = re.findall(r"#EXTINF:([\d.]+)", run.playlists[-1][1])
    return [f"the playlist's EXT-X-TARGETDURATION changed at (VLC's clock) {changes}, from "
            f"{targets[0][1]}; the last playlist's segments: {extinf}"]


def pcr_steps_back(raw: bytes) -> list[tuple[int, int]]:
    """
    Where the PCR goes back, to the 27 MHz tick (`tsverify` reads the 90 kHz base only, and a
    few ticks back are enough for GStreamer to read a new clock: "RESET detected"): (index of
    the packet, ticks back).
    """
    found = []
    last = None
    for index in range(len(raw) // 188):
        packet = raw[index * 188:index * 188 + 12]
        if packet[3] & 0x20 and packet[4] >= 7 and packet[5] & 0x10:
            b = packet[6:12]
            pcr = (b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7) * 300 + ((b[4] & 1) << 8 | b[5])
            if last is not None:
                step = (pcr - last) % (WRAP * 300)
                if step > WRAP * 150:
                    found.append((index, WRAP * 300 - step))
            last = pcr
    return found


def after_start(log: str) -> list[str]:
    """An ffmpeg log's lines, less the first frames' made-up DTS (`_AT_START`)."""
    lines = log.splitlines()  # progress reports end in a carriage return
    reports = [index for index, line in enumerate(lines) if line.startswith("frame=")]
    start = reports[1] if len(reports) > 1 else 0
    return [line for index, line in enumerate(lines) if index >= start or _AT_START not in line]
