"""
A channel's recent output, kept once for all its viewers: each viewer reads on from its own
offset, so a viewer that falls behind costs an offset, not a copy of what it has not yet
taken, and a joiner starts from the same bytes as every other joiner.

Offsets count every byte the channel ever put out; chunks are kept whole as they came (a
chunk is split once where a joiner may start, so joiners start on a chunk's first byte) and
forgotten whole once nobody needs them.
"""

from __future__ import annotations

from bisect import bisect_right

#: a part of the backlog as a viewer gets it: a whole chunk, or a view of one (no copy)
Part = bytes | memoryview


class Backlog:
    """Chunks by offset: ``start`` is the first byte still kept, ``end`` the next to come."""

    __slots__ = ("_chunks", "_starts", "_head", "start", "end")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._starts: list[int] = []
        self._head = 0  # chunks before it are forgotten (compacted now and then)
        self.start = 0
        self.end = 0

    @property
    def size(self) -> int:
        """Bytes kept: what the channel holds in memory for its viewers and joiners."""
        return self.end - self.start

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._starts.append(self.end)
            self.end += len(data)

    def since(self, offset: int, limit: int) -> list[Part]:
        """
        What follows ``offset``, at most ``limit`` bytes (at least one byte, when there is
        any): whole chunks where they fit, views of them where not.
        """
        if offset >= self.end:
            return []
        if offset < self.start:
            raise ValueError(f"offset {offset} is forgotten (the backlog starts at {self.start})")
        chunks, starts = self._chunks, self._starts
        i = bisect_right(starts, offset, self._head) - 1
        parts: list[Part] = []
        skip = offset - starts[i]
        room = max(1, limit)
        while i < len(chunks) and room > 0:
            chunk = chunks[i]
            take = min(len(chunk) - skip, room)
            parts.append(chunk if skip == 0 and take == len(chunk)
                         else memoryview(chunk)[skip:skip + take])
            room -= take
            skip = 0
            i += 1
        return parts

    def merge(self, offset: int) -> None:
        """
        One chunk from ``offset`` (a chunk's first byte) to the end: a burst of joiners that
        start there gets one object to share, not a list each.
        """
        starts = self._starts
        i = bisect_right(starts, offset, self._head) - 1
        if i < self._head or starts[i] != offset or i >= len(starts) - 1:
            return
        self._chunks[i:] = [b"".join(self._chunks[i:])]
        del starts[i + 1:]

    def trim(self, keep_from: int) -> None:
        """Forget the chunks that end at or before ``keep_from``."""
        chunks, starts = self._chunks, self._starts
        head = self._head
        while head < len(chunks) and starts[head] + len(chunks[head]) <= keep_from:
            chunks[head] = b""
            head += 1
        self.start = starts[head] if head < len(chunks) else self.end
        if head > 32 and head * 2 > len(chunks):
            del chunks[:head]
            del starts[:head]
            head = 0
        self._head = head
