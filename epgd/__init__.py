"""
epgd: combined IPTV event channels, published as M3U and XMLTV and streamed live.

The daemon is started by ``twistd epgd`` (see ``epgd.tap``); ``python -m epgd`` holds the
offline commands.
"""

__version__ = "0.1.0"
