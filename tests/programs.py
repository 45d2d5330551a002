"""
The real programs some tests run (ffmpeg as the media servers run it, GStreamer, mpv, VLC,
Chromium, nginx, HAProxy, xmllint, hdhomerun_config): where one is missing, the test that
needs it FAILS and says what to install. A judge that is not there must never let a test
pass silently; ``.ci/run`` installs them all (see the README for the list).
"""

from __future__ import annotations

import shutil

from twisted.trial.unittest import FailTest

#: program -> the Debian package that brings it
PACKAGES = {
    "ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "xmllint": "libxml2-utils",
    "hdhomerun_config": "hdhomerun-config", "chromium": "chromium",
    "gst-launch-1.0": "gstreamer1.0-tools", "gst-inspect-1.0": "gstreamer1.0-tools",
    "mpv": "mpv", "cvlc": "vlc-bin", "nginx": "nginx", "haproxy": "haproxy",
}


def require(name: str, why: str = "") -> str:
    """The path of program ``name``; fails the calling test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        package = PACKAGES.get(name, name)
        reason = f"{name} is not installed (apt-get install {package})"
        raise FailTest(f"{reason}: {why}" if why else reason)
    return path
