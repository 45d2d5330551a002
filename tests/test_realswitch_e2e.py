"""
End to end on real captures (issue 17, item 4): epgd's continuous output (SPEC §7.1) switching
a channel between real broadcast and encoder captures every few seconds, watched at once by
the four real players of tests/players.py (GStreamer tsdemux and playbin, mpv, VLC) and read
by the media servers' ffmpeg pipelines of tests/mediaservers.py (Plex's ``-c copy`` recording,
Jellyfin's ``-copyts`` HLS remux), judged by what a viewer notices:

* every player keeps playing to the end, never freezes over 1.5 s, shows at least 90% of the
  frames, its time never steps back or leaps, it has at most a couple of complaints per switch,
  and its picture follows every switch within 2 s of the moment it plays the cut (two pictures
  of different sizes; a clip switched to itself cannot be told apart on screen, and there
  pictures going on after each cut are what show the new source);
* the recording and the HLS remux have one video and one audio stream, last about the wall
  time, and ffmpeg reports no timestamp error making them and at most a couple of errors per
  switch decoding them;
* epgd's own bytes, read beside them, are one program: no continuity error, no PCR going back
  (to the 27 MHz tick: GStreamer reads a few ticks back as a new clock).

What a capture makes a reader say alone, looped with no switch (tests/data/README.md for the
players, measured again for the media servers: `Clip.own`), is no complaint about a switch.

Sources are `realclips.LiveServer` loops of the corpus (tests/data/ts/real/). The first one a
viewer gets sends a provider's first burst (``BURST`` s at once), so every player starts with
that much in hand and plays each later cut about that long after it arrives; the sources
switched to send in real time. A provider that bursts at every connection is a test of its
own (the bursts must not pile up in the viewers' delay), and so is the HLS output in VLC
(issue 20: ``/playlist.m3u?output=m3u8`` plays through a switch).

Pairs have the same video and audio codecs (a codec change is another matter: README) and
between them cover the corpus: B-frames, the PCR on the audio PID, a 2^33 wrap, 24, 25, 29.97,
30, 50 and 59.94 fps, interlaced MPEG-2 with the PCR on a PID of its own, HEVC, AC-3 as DVB
private data, E-AC-3 listed before the video, AAC at 44.1 and 48 kHz, video with no sound. Left
out: the 8-programme multiplex (its other programmes are cut mid-GOP: README) and aac-first
(its PMT calls its AAC MPEG audio, so GStreamer cannot play the capture alone).

A run watches for `Timing.watch` s (16 s): the players and media servers of one or two
channels run at once in threads beside the reactor that runs epgd. CI runs the tests one at a
time; two such runs at once (``trial -j2``) load a two-core machine enough for VLC to drop
pictures of the 720p59.94 clip.
"""

from __future__ import annotations

from tests.realswitch import (
    AAC44K,
    AC3DVB,
    BURSTING,
    EAC3,
    H264_50P,
    H264_5994,
    HEVC,
    HLS,
    MPEG2,
    ROLLOVER,
    Pair,
    RealSwitchCase,
    lead_growth,
    target_duration_changes,
)


class RealSwitchTests(RealSwitchCase):
    # -- the pairs ---------------------------------------------------------------------------

    async def test_h264_aac_wrap_pcr_on_audio_24fps_and_50p(self) -> None:
        """
        rollover (640x360 24 fps, B-frames, PCR on the audio PID, its clock wraps 2^33 soon
        after the start) and 50p (720x576 50 fps, B-frames, PCR on the video PID).
        """
        await self.assert_plays_through(Pair(ROLLOVER, H264_50P))

    async def test_h264_aac_2997_aac44k_and_50p(self) -> None:
        """
        aac44k (1280x720 29.97 fps, no B-frames, AAC 44.1 kHz in long PES packets) and 50p
        (B-frames, AAC 48 kHz).
        """
        await self.assert_plays_through(Pair(AAC44K, H264_50P))

    test_h264_aac_2997_aac44k_and_50p.todo = (  # type: ignore[attr-defined]
        "AAC 44.1 <-> 48 kHz and B-frames after none: mpv and Plex, clean on this pair before switches "
        "waited for a key frame sent in real time (the cuts land elsewhere in aac44k's 0.72 s PES now), "
        "see one torn AAC frame at a cut: 'aac: Number of bands (47) exceeds limit (40)', the sound's "
        "DTS 378 ticks back ('594941 >= 594563'), mpv 'Invalid audio PTS' gaps of 0.14-0.73 s "
        "and 13 complaints (at most 6); an 'h264: error while decoding MB 63 44' at the cut out of "
        "aac44k (its video PES are not whole access units); VLC 'faad: decoded zero sample' at cuts; "
        "Jellyfin's +igndts remux rewrites 50p's B-frame DTS after aac44k (133 lines)")

    async def test_hevc_and_eac3_listed_first_to_themselves(self) -> None:
        """
        Two channels at once, each switching a clip to itself (entered a loop later): HEVC
        720x1280 30 fps with B-frames and AAC 44.1 kHz; E-AC-3 5.1 listed before H.264 720p25
        with B-frames.
        """
        await self.assert_plays_through(Pair(HEVC, offset=5.1), Pair(EAC3, offset=6.1))

    async def test_ac3_dvb_to_itself(self) -> None:
        """H.264 576p25 with AC-3 as DVB private data: entered again 1 s into its 2 s loop."""
        await self.assert_plays_through(Pair(AC3DVB, offset=1.0))

    async def test_interlaced_mpeg2_pcr_pid_of_its_own_to_itself(self) -> None:
        """MPEG-2 576i25 (open GOPs, B-frames), MP2, PCR on its own PID: entered 1.2 s later."""
        await self.assert_plays_through(Pair(MPEG2, offset=1.2))

    test_interlaced_mpeg2_pcr_pid_of_its_own_to_itself.todo = (  # type: ignore[attr-defined]
        "intermittent since the timeline's PCR fixes (passed in 3 runs of 4 alone, and in CI): when it "
        "fails, mpv: 'Audio device underrun detected' about 3 s after the last cut (1.5 s after it plays "
        "it), then a 1.0-1.1 s freeze: it shows 88-89% of the frames (at least 90%); "
        "the splicer's own output of this pair (run without players) keeps the sound gapless to "
        "under a frame at each cut and the stream's lead over real time flat")

    async def test_5994_video_only_to_itself(self) -> None:
        """H.264 720p59.94 with no sound (a key frame every 0.5 s): entered 4.3 s later."""
        await self.assert_plays_through(Pair(H264_5994, offset=4.3))

    # -- beyond the pairs ----------------------------------------------------------------------

    async def test_a_provider_bursting_at_every_connection(self) -> None:
        """
        Providers send a few seconds at once to every new connection. The players must still
        show each switch within 2 s of playing the cut: the bursts of the sources switched to
        must not pile up in the stream's lead over the wall clock, a burst more at each switch
        (the viewer's delay would grow at every switch, and a client that reads in real time
        be dropped once its queue passes client_buffer).
        """
        run = await self.play(Pair(ROLLOVER, H264_50P), BURSTING, media_servers=False)
        problems = self.judge(run)
        if (growth := lead_growth(run)) > 0.5:
            problems.append(f"epgd's bytes: the stream's lead over the wall clock grew {growth:.2f}s "
                            f"over {len(run.cuts)} switches")
        self.assertEqual(problems, [], "\n".join(problems))

    async def test_the_hls_playlist_plays_in_vlc_through_a_switch(self) -> None:
        """
        Issue 20: ``/playlist.m3u?output=m3u8`` opened in VLC plays the channel's HLS output
        (default segments) through a switch, 50p to rollover, as the TS output plays; and the
        live playlist changes only by segments coming and going (RFC 8216 §6.2.2: players
        reload it every target duration).
        """
        run = await self.play(Pair(H264_50P, ROLLOVER), HLS, media_servers=False, watchers=["vlc"],
                              path="/playlist.m3u?output=m3u8")
        problems = self.judge(run) + target_duration_changes(run)
        self.assertEqual(problems, [], "\n".join(problems))

    test_the_hls_playlist_plays_in_vlc_through_a_switch.todo = (  # type: ignore[attr-defined]
        "HLS output: VLC plays the switch without a complaint now, but the segment holding the cut "
        "runs on to the new source's next key frame past hls_segment (5.06 s for 4), so "
        "EXT-X-TARGETDURATION changes 5 -> 6 in a live playlist (RFC 8216 §6.2.2)")
