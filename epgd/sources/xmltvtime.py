"""
XMLTV times (``20261124190000 -0500`` and the variants real guides send) -> aware UTC datetimes.
"""

from __future__ import annotations

import datetime as _dt
import re

UTC = _dt.UTC

# Zone abbreviations seen in real guides (XMLTV allows them; most tools emit offsets).
NAMED_ZONES: dict[str, int] = {  # minutes east of UTC
    "UTC": 0, "UT": 0, "GMT": 0, "Z": 0, "WET": 0, "BST": 60, "WEST": 60, "CET": 60,
    "MET": 60, "CEST": 120, "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180, "SAST": 120,
    "EST": -300, "EDT": -240, "CST": -360, "CDT": -300, "MST": -420, "MDT": -360,
    "PST": -480, "PDT": -420, "AKST": -540, "AKDT": -480, "HST": -600, "AST": -240,
    "ADT": -180, "NST": -210, "NDT": -150, "AWST": 480, "ACST": 570, "ACDT": 630,
    "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780, "JST": 540, "KST": 540,
    "HKT": 480, "SGT": 480, "IST": 330,
}

_TIME = re.compile(
    r"\s*(?P<digits>\d{8}(?:\d\d){0,3})\s*"
    r"(?:(?P<sign>[+-])(?P<hh>\d\d):?(?P<mm>\d\d)|(?P<name>[A-Za-z]{1,5}))?\s*$"
)


def parse_xmltv_time(value: str, offset: float = 0.0) -> _dt.datetime:
    """
    ``20261124190000 -0500`` (also 12-, 10- or 8-digit, no zone = UTC, ``+05:30``, named zones
    such as ``BST``, stray spaces) -> aware UTC datetime, ``offset`` seconds added.
    Raises ValueError for anything else.
    """
    match = _TIME.match(value)
    if match is None:
        raise ValueError(f"not an XMLTV time: {value!r}")
    digits = match.group("digits").ljust(14, "0")
    zone_minutes = 0
    if match.group("sign"):
        zone_minutes = int(match.group("hh")) * 60 + int(match.group("mm"))
        if match.group("sign") == "-":
            zone_minutes = -zone_minutes
    elif match.group("name"):
        name = match.group("name").upper()
        if name not in NAMED_ZONES:
            raise ValueError(f"unknown time zone in XMLTV time: {value!r}")
        zone_minutes = NAMED_ZONES[name]
    local = _dt.datetime(
        int(digits[0:4]), int(digits[4:6]), int(digits[6:8]),
        int(digits[8:10]), int(digits[10:12]), int(digits[12:14]), tzinfo=UTC,
    )
    return local - _dt.timedelta(minutes=zone_minutes) + _dt.timedelta(seconds=offset)
