"""The HDHomeRun emulation's routes (SPEC §10.1), as Plex, Jellyfin, Emby and Channels DVR ask."""

from __future__ import annotations

from typing import Any

from attrs import evolve
from twisted.web.iweb import IRequest

from epgd.hdhr.device import LINEUP_STATUS, HdhrDevice
from epgd.httpguard import shorten
from epgd.plaintext import error_line
from epgd.web.base import ApiBase, app, json_body


class HdhrRoutes(ApiBase):
    """``/discover.json``, the lineups, the device description and ``/auto/v{number}``."""

    def _tuner(self, request: IRequest) -> HdhrDevice | bytes:
        if not self.config.hdhr.enabled:
            return error_line(request, 404, "not found: HDHomeRun emulation is off (hdhr.enabled)")
        viewer = self.access.viewer(request)
        if isinstance(viewer, bytes):
            return viewer
        if self._hdhr is None:
            self._hdhr = HdhrDevice.from_config(self.config)
        if viewer.lineups is None:
            return self._hdhr
        if viewer.lineups not in self._tuners:  # an account's tuner: its lineups' channels only
            self._tuners[viewer.lineups] = HdhrDevice(evolve(self.config, lineups=tuple(
                lu for lu in self.config.lineups if lu.id in viewer.lineups)), self._hdhr.device_id)
        return self._tuners[viewer.lineups]

    def _xml(self, request: IRequest, body: bytes, content_type: bytes = b"application/xml") -> bytes:
        request.setHeader(b"Content-Type", content_type)
        return body

    @app.route("/discover.json", methods=["GET", "HEAD"])
    def hdhr_discover(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return json_body(request, tuner.discover(self.base_url(request)))

    @app.route("/lineup.json", methods=["GET", "HEAD"])
    def hdhr_lineup(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return json_body(request, tuner.lineup(self.base_url(request)))

    @app.route("/lineup.xml", methods=["GET", "HEAD"])
    def hdhr_lineup_xml(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return self._xml(request, tuner.lineup_xml(self.base_url(request)))

    @app.route("/lineup_status.json", methods=["GET", "HEAD"])
    def hdhr_lineup_status(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return json_body(request, LINEUP_STATUS)

    @app.route("/lineup.post", methods=["GET", "POST"])
    def hdhr_lineup_post(self, request: IRequest) -> bytes:
        # Plex starts a "channel scan" here (?scan=start&source=Cable); ours is always done.
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return json_body(request, {})

    @app.route("/device.xml", methods=["GET", "HEAD"])
    @app.route("/capability", methods=["GET", "HEAD"])
    def hdhr_device(self, request: IRequest) -> bytes:
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        return self._xml(request, tuner.device_xml(self.base_url(request)), b"text/xml; charset=utf-8")

    @app.route("/auto/v<string:number>", methods=["GET", "HEAD"])
    def hdhr_tune(self, request: IRequest, number: str) -> Any:
        """Exactly /stream/{id}.ts of that channel; ?transcode= and ?duration= mean nothing to us."""
        tuner = self._tuner(request)
        if isinstance(tuner, bytes):
            return tuner
        channel_id = tuner.channel_for(number)
        if channel_id is None:
            return error_line(request, 404, f"unknown channel number {shorten(number)!r}: see /lineup.json")
        return self.access.stream(request, channel_id, self.streams.serve, slate=self._slate)

