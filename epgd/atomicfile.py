"""
Writing a small state file so that a crash at any moment leaves the old one or the new one,
whole: a temp file in the same directory (``.NAME-*.tmp``, which a start-up sweep removes if
a killed run left one), fsynced, renamed over the old, and the rename made durable.
"""

from __future__ import annotations

import os
import tempfile


def fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data``; ``mode``: the file's permissions (default: mkstemp's 0600)."""
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path).split(".")[0] or "state"
    fd, temp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    fsync_directory(directory)
