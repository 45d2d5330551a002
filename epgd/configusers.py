"""
Reading the viewer accounts of SPEC §15: ``[[user]]`` tables and ``server.open_networks``.

Kept apart from ``epgd.config`` (which knows every other section) because accounts have rules
of their own: a password goes into stream URLs (``/live/U/P/101.ts``), so it must be a valid
path segment, and it must never appear in an error line. Every failure is one ``ConfigError``
line through the ``Reader``, like the rest of the configuration.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from attrs import fields

from epgd.configread import Reader, show
from epgd.configtypes import UserConfig

__all__ = ["read_open_networks", "read_users"]

_USER_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: what cannot stand in a URL path segment or a query value unquoted, as apps type them
_PASSWORD_BAD = re.compile(r"[/?#%&=\s\x00-\x1f\x7f]")


def read_open_networks(reader: Reader, value: Any) -> tuple[str, ...]:
    """An array of networks (``"192.168.0.0/16"``, ``"fd00::/8"``, a bare address); ``[]`` allowed."""
    key = "server.open_networks"
    if isinstance(value, str):
        value = [value]
    networks = reader.strings(value, key)
    for i, text in enumerate(networks):
        try:
            ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            reader.fail(f"{key}[{i}]", 'not a network: use CIDR notation like "192.168.0.0/16" or "fd00::/8"',
                        text)
    return tuple(text.strip() for text in networks)


def read_users(reader: Reader, tables: Sequence[dict[str, Any]], lineups: Sequence[str]) -> tuple[UserConfig, ...]:
    """Every ``[[user]]`` table: names unique, lineups known, passwords usable in URLs (never shown)."""
    users: list[UserConfig] = []
    known = tuple(a.name for a in fields(UserConfig))
    for i, t in enumerate(tables):
        key = f"user[{i}]"
        reader.table(t, key, known, required=("name", "password"))
        name = reader.string(t["name"], f"{key}.name", nonempty=True)
        if not _USER_NAME.fullmatch(name):
            reader.fail(f"{key}.name", "must be made of A-Z, a-z, 0-9, _, . and -", name)
        if any(name == other.name for other in users):
            reader.fail(f"{key}.name", "duplicate user name", name)
        password = t["password"]
        if not isinstance(password, str) or not password:
            reader.fail(f"{key}.password", "must be a non-empty string", shown=False)
        if _PASSWORD_BAD.search(password):
            # the value is a secret: say what is wrong, never what it is
            reader.fail(f"{key}.password", "must not contain spaces, control characters or any of "
                        "/ ? # % & = (it goes into stream URLs)", shown=False)
        chosen = reader.strings(t.get("lineups", []), f"{key}.lineups")
        for j, lineup in enumerate(chosen):
            if lineup not in lineups:
                names = ", ".join(f'"{x}"' for x in lineups)
                reader.fail(f"{key}.lineups[{j}]", f"unknown lineup {show(lineup)} (known: {names})", shown=False)
        users.append(UserConfig(
            name=name,
            password=password,
            max_connections=reader.integer(t.get("max_connections", 2), f"{key}.max_connections", 0),
            lineups=tuple(dict.fromkeys(chosen)),
        ))
    return tuple(users)
