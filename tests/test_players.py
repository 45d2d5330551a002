"""
Tests of the real-player harness (tests/players.py) itself: that it passes a stream every
player plays cleanly, that it catches what real players do with a raw switch between two real
captures, that a missing player fails the test, and that no player outlives its run.

The streams come from tests/realclips.py's LiveServer: a capture looped as a live channel
(clock running on), and a naive proxy's output that cuts between two looped captures (after
4 s, then every 2.5 s), each joined at its latest PAT, and passes their packets unchanged. The two captures differ the way real
providers' streams do: rollover-h264-aac48k.ts (640x360, PCR on the audio PID 0x102, clock
about to wrap) and aac44k-h264-720p2997.ts (1280x720, PCR on the video PID 0x101, clock near
10 s), with the same PMT and elementary PIDs, so the cut changes the PMT's PCR_PID, every
clock, CCs, the picture size and the audio rate, and nothing else tells the player.

All four players watch each stream at once (threads), so the module takes about 15 s.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from twisted.trial.unittest import TestCase

from tests import players, realclips
from tests.players import PLAYERS, Playback, PlayerMissing

LOOP = "ac3dvb-h264-576p25.ts"  # H.264 720x576 25 fps + AC-3 as DVB private data; loops every 2.04 s
SWITCH = ("rollover-h264-aac48k.ts", "aac44k-h264-720p2997.ts")
FIRST, EVERY = 4.0, 2.5  # seconds of media before the first cut and between cuts
BURST = 5.0  # seconds the looping server sends at once: playbin starts at once, not after ~3 s
SWITCH_BURST = 1.5  # the switching one sends less, so its first cut reaches the players at
CUT = FIRST - SWITCH_BURST  # about this many seconds, after their first frames


def play_all(url: str, seconds: float) -> dict[str, Playback]:
    """Every player on ``url`` at the same time, for ``seconds``."""
    with ThreadPoolExecutor(len(PLAYERS)) as pool:
        runs = {name: pool.submit(play, url, seconds) for name, play in PLAYERS.items()}
        return {name: run.result() for name, run in runs.items()}


class HarnessTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.server = realclips.LiveServer({
            "loop": realclips.looped(realclips.load(LOOP), 60),
            "switch": realclips.switching([realclips.load(name) for name in SWITCH], EVERY, 60, first=FIRST),
        }, burst=BURST, bursts={"switch": SWITCH_BURST})
        self.addCleanup(self.server.close)

    def test_a_real_capture_looped_live_plays_clean_in_every_player(self) -> None:
        """
        The pass case: each player keeps playing to the end, never freezes over 1.5 s, shows
        at least 90% of the frames, its time never jumps and it has nothing to complain about
        once playing; and the harness reads what it must (the picture size, pixels).
        """
        results = play_all(self.server.url("loop"), 5.0)
        failures = []
        for name, playback in results.items():
            problems = playback.problems(fps=25)
            size = (playback.format_at(playback.seconds) or "").split(" ")[0]
            if not size.endswith("x576"):  # VLC gives the display size: 1024x576 for 16:9
                problems.append(f"formats {playback.formats}, expected a 576-line picture")
            if sum(1 for f in playback.frames if f.luma is not None) < 10:
                problems.append("no pixels read")
            if problems:
                failures.append(f"{name}: {problems}\n{playback.summary()}")
        self.assertEqual(failures, [])

    def test_a_raw_switch_between_real_captures_is_caught_in_every_player(self) -> None:
        """
        The fail case, and what each player does with it (as measured on GStreamer 1.22,
        mpv 0.35, VLC 3.0.24): the harness must flag every one of them, each for the
        reason that player really shows.
        """
        results = play_all(self.server.url("switch"), 9.0)
        for name, playback in results.items():
            self.assertNotEqual(playback.problems(fps=25), [], f"{name} passed:\n{playback.summary()}")
        # gst-launch's tsdemux reads the new PCR PID as a new program, whose pads nothing
        # links: "Internal data stream error ... not-linked", and the pipeline ends.
        tsdemux = results["gstreamer tsdemux"]
        self.assertFalse(tsdemux.running_at_end, tsdemux.summary())
        self.assertTrue(any("not-linked" in line for _, line in tsdemux.complaints), tsdemux.summary())
        self.assertIsNone(tsdemux.follows([CUT], 3.0)[0], tsdemux.summary())
        # playbin shows the new picture more than 2 s late, after a freeze of seconds or with
        # its clock stepping back to the new source's (it does either, from run to run).
        playbin = results["gstreamer playbin"]
        self.assertIsNone(playbin.follows([CUT], 2.0)[0], playbin.summary())
        self.assertTrue(playbin.longest_freeze > 1.5 or playbin.time_jumps(), playbin.summary())
        # mpv follows the picture, its clock leaps by the clocks' difference, and then it
        # shows nothing more.
        mpv = results["mpv"]
        self.assertIsNotNone(mpv.follows([CUT], 2.0)[0], mpv.summary())
        self.assertNotEqual(mpv.time_jumps(), [], mpv.summary())
        self.assertFalse(mpv.kept_playing, mpv.summary())
        # VLC follows every cut at once, but reports the continuity breaks and timestamps it
        # cannot convert, its clock leaps, and it shows too few frames.
        vlc = results["vlc"]
        self.assertIsNotNone(vlc.follows([CUT], 2.0)[0], vlc.summary())
        self.assertTrue(any("discontinuity" in c for c in vlc.complaints_after_start()), vlc.summary())
        self.assertLess(vlc.shown_fraction(25), 0.9, vlc.summary())

    def test_a_missing_player_fails_the_test_naming_what_to_install(self) -> None:
        """Not a skip: CI installs every player, so its absence is an error someone must see."""
        path = os.environ.get("PATH", "")
        os.environ["PATH"] = "/nonexistent"
        self.addCleanup(os.environ.__setitem__, "PATH", path)
        with self.assertRaises(PlayerMissing) as raised:
            players.mpv("http://127.0.0.1:9/none.ts", 1.0)
        self.assertIsInstance(raised.exception, AssertionError)
        self.assertIn("apt-get install mpv", str(raised.exception))
        self.assertRaises(PlayerMissing, players.gst_tsdemux, "http://127.0.0.1:9/none.ts", 1.0)
        self.assertRaises(PlayerMissing, players.vlc, "http://127.0.0.1:9/none.ts", 1.0)

    def test_a_run_ends_the_players_whole_process_group(self) -> None:
        """A player's helpers (VLC's, a shell's children) must not outlive the bounded run."""
        run = players._Run(["sh", "-c", "sleep 30 & sleep 30"])
        players._watch(run, 0.3)
        running, code = run.finish()
        self.assertTrue(running)
        self.assertIsNone(code)
        assert run.process is not None
        self.assertEqual(players.living_in_group(run.process.pid), [])

