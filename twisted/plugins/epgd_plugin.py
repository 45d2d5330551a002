"""twistd plugin: ``twistd epgd`` runs ``epgd.tap.makeService``."""

from twisted.application.service import ServiceMaker

epgd = ServiceMaker(
    "epgd", "epgd.tap", "IPTV event-channel proxy: combined channels as M3U, XMLTV and live streams", "epgd"
)
