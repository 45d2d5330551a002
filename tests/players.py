"""
Real players watching a live MPEG-TS URL, headless, reporting what a viewer would notice.

epgd's promise is that every switch plays through in the players people use (issue 17). Its
own checks (CC, PCR and PTS invariants, ffmpeg's demuxer) missed what GStreamer, mpv and VLC
then did on real streams: a pipeline that stops at the first switch, a picture that steps
back, audio that breaks up. So each function here runs one real player exactly as a user
would run it without a screen, for a bounded time, and returns a `Playback`: the frames it
showed (wall time, presentation time, mean luma of a tiny downscaled copy where the player
lets us read pixels), the video formats it switched to, its complaint lines, and whether it
was still playing at the end. `Playback` derives the rest: longest freeze, time jumps, share
of expected frames, when the picture changed source.

How each player is watched (all outputs null/dummy, no window, no sound card):

* GStreamer ``gst-launch-1.0``: the strict path ``souphttpsrc ! tsdemux`` (each demuxer pad
  linked once, by caps, as gst-launch's delayed linking does), and ``playbin``. Frames are the
  video fakesink's renders in the ``basesink`` debug log (its ``got times start:`` is the
  frame's running time); ``fakesink dump=true`` behind a 4x4 GRAY8 scaler prints each shown
  frame's pixels; ``-v`` prints the decoder's caps at each format change. Complaints are the
  debug log's WARN/ERROR lines and gst-launch's ``ERROR:``/``WARNING:`` messages.
* mpv ``--vo=null --ao=null`` with a ``lavfi`` chain (scale to 4x4 gray, ``showinfo``) that logs
  every frame with its pts and mean; its decoder's ``Decoder format:`` lines are format changes; ``[w]``/``[e]`` log lines
  are complaints; JSON IPC is polled for ``time-pos`` and the drop counters.
* VLC ``cvlc --intf dummy --aout adummy --vout stats`` (the dummy video output's sibling that
  logs one line per displayed picture, with ``-vv``), the ``scene`` filter writing every few
  frames as an 8x8 PPM for the luma, and the ``oldrc`` interface on a UNIX socket polled for
  ``get_time``. VLC refuses to run as root, so as root it runs as ``nobody`` with a HOME of its
  own. Complaints are its ``error:``/``warning:`` lines, and its debug lines that name stream
  trouble (``discontinuity``, ``too late``).

A missing player raises `PlayerMissing` (an AssertionError), so the test fails and says what
to install: CI installs all of them. ffmpeg as Plex and Jellyfin run it lives in
tests/mediaservers.py.

Every function blocks for about ``seconds`` (run it in a thread beside a reactor) and ends the
player's whole process group.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from attrs import define, field, frozen

#: what a Debian machine installs for each program (the names CI uses)
PACKAGES = {
    "gst-launch-1.0": "gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
                      "gstreamer1.0-plugins-bad gstreamer1.0-libav",
    "mpv": "mpv",
    "cvlc": "vlc-bin vlc-plugin-base",
}
#: caps that pick the demuxer's video and audio pads (gst-launch links a pad by caps, once)
GST_VIDEO_CAPS = "video/x-h264;video/x-h265;video/mpeg,mpegversion=(int)[1,2]"
GST_AUDIO_CAPS = "audio/mpeg;audio/x-ac3;audio/x-eac3;audio/x-private1-ac3"
_GRAY = "videoconvert ! videoscale ! video/x-raw,format=GRAY8,width=4,height=4"
_END_GRACE = 1.5  # a player whose last frame is older than this at the end has stopped


class PlayerMissing(AssertionError):
    """A player the test needs is not installed: a failure, never a skip (CI installs them)."""


def require(program: str) -> str:
    """The path of ``program``, or `PlayerMissing` naming the Debian packages to install."""
    path = shutil.which(program)
    if path is None:
        raise PlayerMissing(f"{program} is not installed; install it (Debian: apt-get install "
                            f"{PACKAGES.get(program, program)}): the real-player tests need it")
    return path


@frozen
class Frame:
    """One picture the player showed: when (seconds since it started), its presentation time
    in seconds as the player counts it (None when it does not tell), the mean luma 0-255 of a
    tiny copy (None when it lets us read none for this frame)."""

    wall: float
    pts: float | None = None
    luma: float | None = None


@frozen
class Jump:
    """Presentation time stepping back, or forward much further than the wall clock moved."""

    wall: float
    before: float
    after: float

    def __str__(self) -> str:
        return f"at {self.wall:.2f}s: {self.before:.3f} -> {self.after:.3f}"


@define
class Playback:
    """What one player did with one URL; the derived properties are what a viewer notices."""

    player: str
    url: str
    seconds: float  # how long it was watched
    frames: list[Frame] = field(factory=list)
    formats: list[tuple[float, str]] = field(factory=list)  # (wall, "1280x720 h264") at each change
    complaints: list[tuple[float, str]] = field(factory=list)  # (wall, line)
    clock: list[tuple[float, float]] = field(factory=list)  # (wall, position) polled, where it tells
    clock_step: float = 0.0  # resolution of those positions (VLC's get_time counts whole seconds)
    running_at_end: bool = False
    exit_code: int | None = None
    dropped: int = 0  # frames the player says it dropped
    log: list[str] = field(factory=list, repr=False)  # last lines, for a failure message

    @property
    def first_frame(self) -> float | None:
        return self.frames[0].wall if self.frames else None

    @property
    def kept_playing(self) -> bool:
        """Still running at the end, with a frame in the last ``_END_GRACE`` seconds."""
        return (self.running_at_end and bool(self.frames)
                and self.seconds - self.frames[-1].wall <= _END_GRACE)

    @property
    def longest_freeze(self) -> float:
        """Longest wall time with no new frame, from the first frame to the end of the run."""
        if not self.frames:
            return self.seconds
        walls = [f.wall for f in self.frames] + [self.seconds]
        return max(b - a for a, b in zip(walls, walls[1:], strict=False)) if len(walls) > 1 else 0.0

    def shown_fraction(self, fps: float, startup: float = 1.0) -> float:
        """
        Frames shown over the frames a player at ``fps`` shows, counted from ``startup``
        seconds after its first frame (players show a first picture, then wait out their
        buffer: VLC holds it about 0.7 s) to the end of the run.
        """
        if not self.frames:
            return 0.0
        start = self.frames[0].wall + startup
        expected = fps * (self.seconds - start)
        shown = sum(1 for f in self.frames if f.wall >= start)
        return shown / expected if expected > 0 else 0.0

    def time_jumps(self, slack: float = 0.5) -> list[Jump]:
        """
        Presentation time going backwards, or forwards by more than the wall time between the
        two frames plus ``slack`` seconds, from frame to frame (or, for a player that gives no
        per-frame time, from one polled position to the next).
        """
        points = [(f.wall, f.pts) for f in self.frames if f.pts is not None]
        step = 0.0
        if not points:
            points, step = list(self.clock), self.clock_step
        jumps = []
        for (w1, p1), (w2, p2) in zip(points, points[1:], strict=False):
            if p2 < p1 - 1e-3 - step or p2 - p1 > (w2 - w1) + slack + step:
                jumps.append(Jump(w2, p1, p2))
        return jumps

    def source_changes(self, label: Callable[[Frame, str | None], str | None] | None = None) -> list[float]:
        """
        Wall times at which the picture changed source after the first one: by default each
        format change (size or codec); with ``label``, each frame is given a source name by
        ``label(frame, format at that time)`` and a change is where that name changes.
        """
        if label is None:
            return [wall for wall, _ in self.formats[1:]]
        changes = []
        current = None
        for frame in self.frames:
            name = label(frame, self.format_at(frame.wall))
            if name is None:
                continue
            if current is not None and name != current:
                changes.append(frame.wall)
            current = name
        return changes

    def format_at(self, wall: float) -> str | None:
        found = None
        for at, fmt in self.formats:
            if at <= wall:
                found = fmt
        return found

    def complaints_between(self, start: float, end: float) -> list[str]:
        return [line for wall, line in self.complaints if start <= wall < end]

    def complaints_after_start(self, grace: float = 1.0) -> list[str]:
        """
        Complaints from ``grace`` seconds after the first frame on: a player joining a live
        stream mid-way grumbles about the first incomplete packets, a viewer never notices.
        """
        start = (self.first_frame if self.first_frame is not None else self.seconds) + grace
        return self.complaints_between(start, float("inf"))

    def follows(self, switches: Iterable[float], within: float = 2.0) -> list[float | None]:
        """
        For each switch (wall time the new source reached the player), how long until the
        picture changed source (`source_changes`), or None when it did not within ``within``.
        """
        changes = self.source_changes()
        delays: list[float | None] = []
        for at in switches:
            later = [c - at for c in changes if at <= c <= at + within]
            delays.append(min(later) if later else None)
        return delays

    def problems(self, fps: float, max_freeze: float = 1.5, min_fraction: float = 0.9,
                 complaints_allowed: int = 0) -> list[str]:
        """
        What a viewer would notice, judged by issue 17's bar: stopped, a freeze over
        ``max_freeze`` s, under ``min_fraction`` of the frames, time going back or leaping,
        more than ``complaints_allowed`` complaint lines once playing. Empty when it played
        through.
        """
        found = []
        if not self.kept_playing:
            found.append(f"stopped (running {self.running_at_end}, exit {self.exit_code}, "
                         f"last frame {self.frames[-1].wall if self.frames else None} of {self.seconds:.1f}s)")
        if self.longest_freeze > max_freeze:
            found.append(f"froze {self.longest_freeze:.2f}s")
        if (fraction := self.shown_fraction(fps)) < min_fraction:
            found.append(f"showed {fraction:.0%} of the frames")
        if jumps := self.time_jumps():
            found.append(f"time jumps {[str(j) for j in jumps]}")
        if len(complaints := self.complaints_after_start()) > complaints_allowed:
            found.append(f"{len(complaints)} complaints: {complaints[:5]}")
        return found

    def summary(self) -> str:
        """A few lines for an assertion message."""
        lines = [f"{self.player} on {self.url} for {self.seconds:.1f}s: {len(self.frames)} frames "
                 f"(first at {self.first_frame}), longest freeze {self.longest_freeze:.2f}s, "
                 f"kept playing {self.kept_playing} (running {self.running_at_end}, exit {self.exit_code}), "
                 f"dropped {self.dropped}",
                 f"  formats: {self.formats}",
                 f"  jumps: {[str(j) for j in self.time_jumps()]}",
                 f"  complaints ({len(self.complaints)}): {[c for _, c in self.complaints[:12]]}"]
        if not self.frames:
            lines.append("  last log lines: " + " | ".join(self.log[-15:]))
        return "\n".join(lines)


# -- running a player ------------------------------------------------------------------


@define
class _Run:
    """A player process and its output lines, each stamped with seconds since it started."""

    argv: list[str]
    env: dict[str, str] | None = None
    start: float = 0.0
    process: subprocess.Popen[bytes] | None = None
    lines: list[tuple[float, str, str]] = field(factory=list)  # (wall, "out"/"err", text)
    readers: list[threading.Thread] = field(factory=list)

    def launch(self) -> None:
        self.start = time.monotonic()
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=self.env, start_new_session=True)
        for name, stream in (("out", self.process.stdout), ("err", self.process.stderr)):
            reader = threading.Thread(target=self._read, args=(name, stream), daemon=True)
            reader.start()
            self.readers.append(reader)

    def _read(self, name: str, stream: Iterable[bytes] | None) -> None:
        assert stream is not None
        for raw in stream:
            self.lines.append((time.monotonic() - self.start, name, raw.decode("utf-8", "replace").rstrip()))

    def now(self) -> float:
        return time.monotonic() - self.start

    def finish(self) -> tuple[bool, int | None]:
        """End the whole process group (TERM, then KILL); (was it running, its exit code)."""
        assert self.process is not None
        running = self.process.poll() is None
        code = self.process.poll()
        if running:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.process.pid, signal.SIGKILL)  # helpers it may have left behind
        if self.process.poll() is None:
            self.process.wait(timeout=5)
        deadline = time.monotonic() + 2
        while living_in_group(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # a SIGKILL takes effect a moment after it is sent
        for reader in self.readers:
            reader.join(timeout=5)
        return running, code


def living_in_group(pgid: int) -> list[int]:
    """PIDs of the processes of group ``pgid`` still alive (zombies awaiting a reaper are not)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _watch(run: _Run, seconds: float, poll: Callable[[], None] | None = None, every: float = 0.25) -> None:
    """Let the player run for ``seconds`` (calling ``poll`` every ``every`` seconds)."""
    run.launch()
    deadline = run.start + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(every, left))
        if poll is not None and run.process is not None and run.process.poll() is None:
            try:
                poll()
            except OSError:
                pass


# -- GStreamer --------------------------------------------------------------------------

_GST_TIME = re.compile(r"(\d+):(\d\d):(\d\d)\.(\d+)")
_GST_LEVEL = re.compile(r"^\d+:\d\d:\d\d\.\d+\s+\d+\s+0x[0-9a-f]+\s+(WARN|ERROR|FIXME)\s+(\S+)\s+(.*)$")
_DUMP = re.compile(r"^[0-9a-f]{8} \(0x[0-9a-f]+\): ((?:[0-9a-f]{2} )+)")
_CAPS = re.compile(r"caps = video/x-raw.*?width=\(int\)(\d+), height=\(int\)(\d+)")
#: GStreamer lines that are the harness's own doing, not the stream's
_GST_NOISE = ("No value transform to serialize field", "gst_debug_", "Error closing file")


def _gst_time(text: str) -> float:
    match = _GST_TIME.search(text)
    if match is None:
        raise ValueError(text)
    h, m, s, frac = match.groups()
    return int(h) * 3600 + int(m) * 60 + int(s) + int(frac) / 10 ** len(frac)


def gst_tsdemux(url: str, seconds: float, audio: bool = True) -> Playback:
    """
    ``souphttpsrc ! tsdemux``, video (and, with ``audio``, sound) decoded by decodebin, sinks
    synced. Pass ``audio=False`` for a stream without sound: decodebin holds the pipeline out
    of PLAYING until it has data, so an audio branch that never gets a pad shows no picture.
    """
    launch = require("gst-launch-1.0")
    argv = [launch, "-v", "souphttpsrc", f"location={url}", "is-live=true", "!", "tsdemux", "name=d",
            "d.", "!", GST_VIDEO_CAPS, "!", "queue", "!", "decodebin", "!", *_GRAY.split(), "!",
            "fakesink", "name=vsink", "sync=true", "dump=true"]
    if audio:
        argv += ["d.", "!", GST_AUDIO_CAPS, "!", "queue", "!", "decodebin", "!", "audioconvert", "!",
                 "fakesink", "name=asink", "sync=true", "async=false"]
    return _gst(argv, url, seconds, "gstreamer tsdemux")


def gst_playbin(url: str, seconds: float) -> Playback:
    """``playbin uri=URL`` with fake sinks (it buffers about 2 s of a network stream first)."""
    launch = require("gst-launch-1.0")
    argv = [launch, "-v", "playbin", f"uri={url}",
            f"video-sink={_GRAY} ! fakesink name=vsink sync=true dump=true",
            "audio-sink=fakesink name=asink sync=true async=false"]
    return _gst(argv, url, seconds, "gstreamer playbin")


def _gst(argv: list[str], url: str, seconds: float, name: str) -> Playback:
    env = dict(os.environ, GST_DEBUG="*:2,basesink:5", GST_DEBUG_NO_COLOR="1")
    run = _Run(argv, env)
    _watch(run, seconds)
    running, code = run.finish()
    playback = Playback(name, url, seconds, running_at_end=running, exit_code=code,
                        log=[text for _, _, text in run.lines[-40:]])
    pending: float | None = None
    walls: list[tuple[float, float | None]] = []
    lumas: list[float] = []
    for wall, stream, text in run.lines:
        if stream == "err":
            if "<vsink>" in text and "basesink" in text:
                if "got times start:" in text and "gst_base_sink_chain_unlocked" in text:
                    pending = _gst_time(text.split("got times start:")[1])
                elif "rendering object" in text:
                    walls.append((wall, pending))
                continue
            level = _GST_LEVEL.match(text)
            if level and not any(noise in text for noise in _GST_NOISE):
                playback.complaints.append((wall, f"{level.group(1)} {level.group(2)} {level.group(3)}"))
            continue
        dump = _DUMP.match(text)
        if dump:
            values = [int(b, 16) for b in dump.group(1).split()]
            lumas.append(sum(values) / len(values))
        elif text.startswith(("ERROR:", "WARNING:")) or "Internal data stream error" in text:
            playback.complaints.append((wall, text))
        elif (caps := _CAPS.search(text)) and (caps.group(1), caps.group(2)) != ("4", "4") \
                and ("avdec" in text or "decodebin" in text.lower() or "mpeg2dec" in text):
            fmt = f"{caps.group(1)}x{caps.group(2)}"
            if not playback.formats or playback.formats[-1][1] != fmt:
                playback.formats.append((wall, fmt))
    playback.frames = [Frame(wall, pts, lumas[i] if i < len(lumas) else None)
                       for i, (wall, pts) in enumerate(walls)]
    return playback


# -- mpv ---------------------------------------------------------------------------------

_MPV_LINE = re.compile(r"^\[\s*([\d.]+)\]\[(\w)\]\[([\w/]+)\] (.*)$")
_SHOWINFO = re.compile(r"Parsed_showinfo_\d+: n:\s*\d+ pts:\s*-?\d+ pts_time:(-?[\d.]+).*?mean:\[(\d+)")
_MPV_FORMAT = re.compile(r"^Decoder format: (\d+x\d+)")
#: mpv log lines that are the harness's own doing
_MPV_NOISE = ("Could not create device", "No terminal", "ipc", "Disabling terminal")


def mpv(url: str, seconds: float) -> Playback:
    """mpv with null audio and video outputs; every frame logged by a lavfi ``showinfo``."""
    binary = require("mpv")
    folder = Path(tempfile.mkdtemp(prefix="epgd-mpv-"))
    log, sock = folder / "mpv.log", folder / "ipc.sock"
    argv = [binary, "--no-config", "--no-terminal", "--vo=null", "--ao=null", "--idle=no",
            "--log-file=" + str(log), "--msg-level=all=v", "--input-ipc-server=" + str(sock),
            "--vf=lavfi=[scale=4:4,format=gray,showinfo]", url]
    run = _Run(argv)
    samples: list[tuple[float, float, int]] = []
    ipc: list[socket.socket] = []

    def poll() -> None:
        if not ipc:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(0.5)
            conn.connect(str(sock))
            ipc.append(conn)
        conn = ipc[0]
        request = "".join(json.dumps({"command": ["get_property", prop], "request_id": n}) + "\n"
                          for n, prop in enumerate(("time-pos", "frame-drop-count")))
        conn.sendall(request.encode())
        answers: dict[int, object] = {}
        buffer = b""
        while len(answers) < 2:
            buffer += conn.recv(65536)
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                message = json.loads(raw)
                if "request_id" in message:
                    answers[message["request_id"]] = message.get("data")
        position, drops = answers.get(0), answers.get(1)
        if isinstance(position, (int, float)):
            samples.append((run.now(), float(position), int(drops) if isinstance(drops, int) else 0))

    try:
        _watch(run, seconds, poll)
        running, code = run.finish()
        text = log.read_text(errors="replace") if log.exists() else ""
    finally:
        for conn in ipc:
            conn.close()
        shutil.rmtree(folder, ignore_errors=True)
    playback = Playback("mpv", url, seconds, running_at_end=running, exit_code=code,
                        clock=[(wall, pos) for wall, pos, _ in samples],
                        dropped=max((d for _, _, d in samples), default=0))
    codec = ""
    for raw in text.splitlines():
        match = _MPV_LINE.match(raw)
        if not match:
            continue
        wall, level, module, message = float(match.group(1)), match.group(2), match.group(3), match.group(4)
        playback.log.append(raw)
        if (info := _SHOWINFO.search(message)) is not None:
            playback.frames.append(Frame(wall, float(info.group(1)), float(info.group(2))))
        elif module == "vd" and message.startswith("Selected codec:"):
            codec = message.split(":", 1)[1].split("(")[0].strip()
        elif module == "vd" and (fmt := _MPV_FORMAT.search(message)) is not None:
            playback.formats.append((wall, f"{fmt.group(1)} {codec}".strip()))
        elif level in "ewf" and not any(noise in message for noise in _MPV_NOISE):
            playback.complaints.append((wall, f"[{module}] {message}"))
    playback.log = playback.log[-40:]
    return playback


# -- VLC ---------------------------------------------------------------------------------

_VLC_LATE = re.compile(r"(?:too late to be displayed|might be displayed late) \(missing (\d+) ms\)")
#: a picture late by less than this is a frame dropped under load (the run counts it in
#: ``dropped`` and in the frames shown), not a stream fault; later ones are complaints
_VLC_LATE_MS = 100
_VLC_SIZE = re.compile(r"VoutDisplayEvent 'resize' (\d+x\d+)")
_VLC_LINE = re.compile(r"^\[[0-9a-f]+\] (.+?) (error|warning|debug): (.*)$")
#: VLC debug lines that name stream trouble a viewer sees
_VLC_TROUBLE = ("discontinuity", "too late", "deadlock", "Timestamp conversion failed",
                "clock gap", "unexpected stream discontinuity", "picture might be displayed late")
#: VLC modules whose complaints are about the stream (not the headless setup, not our scene
#: filter's PPM encoder and converters)
_VLC_STREAM = ("demux", "decoder", "packetizer", "input", "es out", "clock", "video output",
               "audio output", "access", "stream")


def vlc(url: str, seconds: float, scene_ratio: int = 3) -> Playback:
    """
    cvlc with dummy interface and audio output and the ``stats`` dummy video output (one log
    line per displayed picture); the ``scene`` filter saves every ``scene_ratio``-th picture
    as an 8x8 PPM, whose mean gives the luma.
    """
    binary = require("cvlc")
    folder = Path(tempfile.mkdtemp(prefix="epgd-vlc-"))
    home, scenes, sock = folder / "home", folder / "scenes", folder / "rc.sock"
    home.mkdir()
    scenes.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # VLC refuses root: run it as nobody, in a folder nobody may write
        nobody = _nobody()
        for path in (folder, home, scenes):
            os.chown(path, nobody[0], nobody[1])
        prefix = [require("setpriv"), f"--reuid={nobody[0]}", f"--regid={nobody[1]}", "--clear-groups"]
    argv = [*prefix, "/usr/bin/env", f"HOME={home}", binary, "--intf", "dummy", "--extraintf", "oldrc",
            "--rc-unix", str(sock), "--rc-fake-tty", "--vout", "stats", "--aout", "adummy", "-vv",
            "--no-video-title-show", "--no-metadata-network-access", "--no-stats",
            "--video-filter=scene", "--scene-format=ppm", f"--scene-ratio={scene_ratio}",
            "--scene-width=8", "--scene-height=8", f"--scene-path={scenes}", "--scene-prefix=f",
            "--no-scene-replace", url]
    run = _Run(argv)
    clock: list[tuple[float, float]] = []
    rc: list[socket.socket] = []
    seen: dict[str, float] = {}

    def poll() -> None:
        for entry in os.scandir(scenes):  # note when each picture file appeared
            seen.setdefault(entry.name, run.now())
        if not rc:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(0.5)
            conn.connect(str(sock))
            rc.append(conn)
        rc[0].sendall(b"get_time\n")
        answer = rc[0].recv(4096).decode(errors="replace")
        numbers = re.findall(r"^\s*(\d+)\s*$", answer.replace(">", "\n"), re.M)
        if numbers:
            clock.append((run.now(), float(numbers[-1])))

    try:
        _watch(run, seconds, poll, every=0.1)
        running, code = run.finish()
        pictures = sorted((seen.get(entry.name, run.now()), entry.name, _ppm_luma(Path(entry.path)))
                          for entry in os.scandir(scenes))
    finally:
        for conn in rc:
            conn.close()
        shutil.rmtree(folder, ignore_errors=True)
    playback = Playback("vlc", url, seconds, running_at_end=running, exit_code=code, clock=clock, clock_step=1.0,
                        log=[text for _, _, text in run.lines[-40:]])
    shown: list[float] = []
    for wall, _, text in run.lines:
        match = _VLC_LINE.match(text)
        if not match:
            continue
        module, level, message = match.groups()
        if "VOUT got" in message:
            shown.append(wall)
        elif (size := _VLC_SIZE.search(message)) is not None:
            if not playback.formats or playback.formats[-1][1] != size.group(1):
                playback.formats.append((wall, size.group(1)))
        elif (late := _VLC_LATE.search(message)) is not None and int(late.group(1)) < _VLC_LATE_MS:
            playback.dropped += 1  # one frame dropped by a busy machine: counted, not a complaint
        elif (level != "debug" or any(t in message for t in _VLC_TROUBLE)) \
                and any(m in module for m in _VLC_STREAM) and "scene" not in message:
            playback.complaints.append((wall, f"{module} {level}: {message}"))
    # a saved picture belongs to the last frame shown before the poll that found its file
    lumas: dict[int, float] = {}
    for found, _, luma in pictures:
        index = bisect.bisect_right(shown, found) - 1
        if index >= 0 and luma is not None:
            lumas.setdefault(index, luma)
    playback.frames = [Frame(wall, None, lumas.get(i)) for i, wall in enumerate(shown)]
    return playback


def _nobody() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _ppm_luma(path: Path) -> float | None:
    """Mean luma (BT.601) of a binary PPM (P6, 8-bit)."""
    data = path.read_bytes()
    parts = data.split(maxsplit=4)
    if len(parts) < 5 or parts[0] != b"P6":
        return None
    width, height = int(parts[1]), int(parts[2])
    pixels = parts[4][-width * height * 3:]
    if len(pixels) < 3:
        return None
    total = 0.0
    for at in range(0, len(pixels) - 2, 3):
        total += 0.299 * pixels[at] + 0.587 * pixels[at + 1] + 0.114 * pixels[at + 2]
    return total / (len(pixels) // 3)


#: every player function, by name, for tests that run them all
PLAYERS: dict[str, Callable[[str, float], Playback]] = {
    "gstreamer tsdemux": gst_tsdemux,
    "gstreamer playbin": gst_playbin,
    "mpv": mpv,
    "vlc": vlc,
}
