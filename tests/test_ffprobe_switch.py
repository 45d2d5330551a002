"""
A recording of ``/stream/{id}.ts`` across a switch is a file players can decode: ffprobe finds
both services and ffmpeg decodes both pictures, with no error beyond those a cut between two
independent streams must cause (a decoder joining mid-GOP, the old stream's last audio frame
cut short, timestamps jumping).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.programs import require
from tests.streamhelpers import B_PIDS, E2ETestCase, event, pids

RATE = 60_000  # bytes/s: a little faster than the clips' real rate, so few loops
PROBE = ["-analyzeduration", "100M", "-probesize", "100M"]

# A decoder that joins mid-GOP (the new source starts at a PAT, not at a keyframe) says these
# until the next keyframe; and each source has its own clock.
JOINING = re.compile(r"non-existing PPS \d+ referenced|decode_slice_header error|no frame!"
                     r"|Last message repeated \d+ times|non monotonically increasing dts")
# The old source's last video and audio frames are cut short at the switch: the decoders
# complain about that frame, a handful of lines. Anything else (the demuxer losing sync,
# corrupt packets, PES size mismatches) is damage done by the proxy.
CUT_FRAME = re.compile(r"^\[(h264|aac) @ [^]]+\] |^Error while decoding stream #0:\d+: ")
MAX_CUT_FRAME_LINES = 8


def tool(name: str) -> str:
    return require(name, "it checks that a recording across a switch decodes")


class RecordingAcrossASwitchTests(E2ETestCase):
    timeout = 40

    async def record(self) -> Path:
        url_a = self.provider.stream("a", "a", rate=RATE)
        url_b = self.provider.stream("b", "b", rate=RATE)
        now = self.now()
        boundary = now + 2.5
        epgd = self.epgd({"test_1": [event("Game A", now - 60, boundary, url_a),
                                     event("Game B", boundary, now + 600, url_b)]})
        client = await epgd.open("/stream/test_1.ts")

        def b_bytes() -> int:
            seen = pids(client.body[: len(client.body) - len(client.body) % 188])
            return sum(1 for pid in seen if pid in B_PIDS) * 188

        await client.wait_for(lambda: b_bytes() >= 2 * RATE, 12, "2 s of clip b")
        await client.close()
        path = Path(self.mktemp())
        path.mkdir(parents=True)
        recording = path / "rec.ts"
        recording.write_bytes(bytes(client.body[: len(client.body) - len(client.body) % 188]))
        return recording

    async def test_recording_across_a_switch_decodes(self) -> None:
        ffprobe, ffmpeg = tool("ffprobe"), tool("ffmpeg")
        recording = await self.record()

        probe = subprocess.run(
            [ffprobe, "-v", "error", *PROBE, "-count_frames", "-show_programs",
             "-show_entries", "stream=id,codec_type,nb_read_frames", "-of", "json", str(recording)],
            capture_output=True, text=True, timeout=60, check=False)
        self.assertEqual(probe.returncode, 0, probe.stderr)
        programs = json.loads(probe.stdout)["programs"]
        self.assertEqual({p["program_id"] for p in programs}, {1, 2},
                         "both services (1 from clip a, 2 from clip b) must be in the recording")
        # Streams of a program that left the PAT are listed only at the top level.
        frames = {s["id"]: int(s.get("nb_read_frames") or 0)
                  for s in json.loads(probe.stdout)["streams"] if s["codec_type"] == "video"}
        self.assertGreater(frames.get("0x101", 0), 10, f"clip a's pictures do not decode: {frames}")
        self.assertGreater(frames.get("0x201", 0), 10, f"clip b's pictures do not decode: {frames}")

        decode = subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-v", "error", *PROBE, "-i", str(recording),
             "-map", "0", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60, check=False)
        self.assertEqual(decode.returncode, 0, decode.stderr)
        lines = [line.strip() for line in decode.stderr.splitlines()
                 if line.strip() and not JOINING.search(line)]
        damage = [line for line in lines if not CUT_FRAME.search(line)]
        self.assertEqual(damage, [], "ffmpeg found damage in the stream itself")
        self.assertLessEqual(len(lines), MAX_CUT_FRAME_LINES,
                             "more broken frames than one cut explains:\n" + "\n".join(lines))
