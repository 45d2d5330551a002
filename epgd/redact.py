"""
Credential masking (SPEC §9): every URL shown in logs, status, schedule.json or an error
passes through ``Redactor.mask`` first.

Masked: userinfo, the values of credential-like query parameters, Xtream-style
``/live/USER/PASS/`` path segments, and every literal username or password found in a
provider's playlist URL (those may turn up anywhere: paths, other parameters, error text),
wherever it stands as a word of its own.

Viewer accounts (SPEC §15) add their passwords to those literals; a configured viewer's name
stays readable in its own URLs (``/live/alice/***/101.ts``, ``/alice/***/101``,
``?username=alice&password=***``), so that an operator sees who watched what.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
SECRET_PARAMS = frozenset({"username", "password", "user", "pass", "token", "key", "auth"})
_XTREAM_PATH = re.compile(r"/(live|movie|series|timeshift)/([^/?#]+)/([^/?#]+)/")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s]*@")
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:" + "|".join(sorted(SECRET_PARAMS)) + r"))=(?P<value>\*\*\*|[^&#\s\"'<>]*[^&#\s\"'<>:,.;)\]])",
    re.IGNORECASE,
)


def secrets_in_url(url: str) -> set[str]:
    """The literal credentials a provider URL carries, so they can be masked anywhere else."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if parts.username:
        found.add(parts.username)
    if parts.password:
        found.add(parts.password)
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name.lower() in SECRET_PARAMS and value:
            found.add(value)
    match = _XTREAM_PATH.search(parts.path)
    if match:
        found.update({match.group(2), match.group(3)})
    # Very short values ("1", "tv") would mask innocent text everywhere.
    return {s for s in found if len(s) >= 3}


class Redactor:
    """Masks URLs and free text; knows the literal secrets of every configured provider."""

    def __init__(self, secrets: Iterable[str] = (), viewers: Iterable[str] = ()) -> None:
        self._viewers = frozenset(v for v in viewers if v)
        # /alice/PASS/101 and /live/alice/PASS/101.ts: the password goes, the name stays
        self._viewer_path = re.compile(
            r"/(" + "|".join(re.escape(v) for v in sorted(self._viewers)) + r")/[^/?#\s]+/"
        ) if self._viewers else None
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        # A secret counts where it stands as a word of its own: a username "nhl" must not
        # turn the channel nhl_ppv_1 into ***_ppv_1 in every log line.
        self._literal = re.compile(
            r"(?<![A-Za-z0-9_])(?:" + "|".join(re.escape(s) for s in self._secrets) + r")(?![A-Za-z0-9_])"
        ) if self._secrets else None

    @classmethod
    def for_urls(cls, urls: Iterable[str], accounts: Iterable[tuple[str, str]] = ()) -> Redactor:
        """The secrets of ``urls``, and of viewer ``accounts`` (name, password): see the module doc."""
        secrets: set[str] = set()
        for url in urls:
            secrets |= secrets_in_url(url)
        accounts = list(accounts)
        secrets |= {password for _, password in accounts if len(password) >= 3}
        return cls(secrets, viewers=[name for name, _ in accounts])

    def mask(self, text: str) -> str:
        """Mask credentials in a URL, or in any text that may hold URLs."""
        viewers = self._viewers
        text = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
        text = _QUERY_SECRET.sub(lambda m: m.group("name") + "=" + (
            m.group("value") if m.group("name")[1:].lower() == "username" and m.group("value") in viewers
            else MASK), text)
        if self._viewer_path is not None:
            text = self._viewer_path.sub(lambda m: f"/{m.group(1)}/{MASK}/", text)
        text = _XTREAM_PATH.sub(lambda m: f"/{m.group(1)}/"
                                f"{m.group(2) if m.group(2) in viewers else MASK}/{MASK}/", text)
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        return text

    __call__ = mask
