"""
Provider data in: fetching (``fetch``), parsing (``m3u``, ``xmltv``) and the per-provider
last-good cache (``feed``). Nothing here knows about lineups or schedules.

Raw provider files are stored exactly as received; gzip is recognised by its magic bytes
when the data is read, so the fetcher never has to guess from headers or file names.
"""

from __future__ import annotations

import gzip
import io
import os
from typing import IO, Union

GZIP_MAGIC = b"\x1f\x8b"

#: What the parsers accept: the data itself, or the path of a file holding it.
RawSource = Union[bytes, str, "os.PathLike[str]"]


class SourceError(Exception):
    """
    Provider data could not be fetched or is not what it should be. The message is one line
    a user can act on, with every credential already masked.
    """


def open_raw(source: RawSource) -> IO[bytes]:
    """
    A readable binary stream of ``source`` (bytes or a path), transparently gunzipped when
    the data starts with the gzip magic, so a 500 MB guide is never loaded whole.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data[:2] == GZIP_MAGIC:
            return gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")  # type: ignore[return-value]
        return io.BytesIO(data)
    path = os.fspath(source)
    try:
        if is_gzip_file(path):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from None


def is_gzip_file(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


__all__ = ["GZIP_MAGIC", "RawSource", "SourceError", "is_gzip_file", "open_raw"]
