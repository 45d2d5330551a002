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
import zlib
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
    stream: IO[bytes]
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(source))
    else:
        path = os.fspath(source)
        try:
            stream = open(path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as e:
            raise SourceError(f"cannot read {path}: {e.strerror or e}") from None
    # Two layers at most: a server may gzip (Content-Encoding) a file that is a .gz already.
    try:
        for _ in range(2):
            if _peek(stream, 2) != GZIP_MAGIC:
                break
            stream = _ClosingGzip(stream)  # type: ignore[assignment]
    except (OSError, EOFError, zlib.error) as e:
        stream.close()
        raise SourceError(f"corrupt gzip data: {e}") from None
    return stream


def _peek(stream: IO[bytes], size: int) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return peek(size)[:size]
    position = stream.tell()
    data = stream.read(size)
    stream.seek(position)
    return data


class _ClosingGzip(gzip.GzipFile):
    """A GzipFile that also closes the stream it reads from."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__(fileobj=inner, mode="rb")
        self._inner = inner

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


def is_gzip_file(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


__all__ = ["GZIP_MAGIC", "RawSource", "SourceError", "is_gzip_file", "open_raw"]
