"""A channel's recent output kept once for all its viewers (epgd.stream.out.backlog)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.out.backlog import Backlog


def read(backlog: Backlog, offset: int, limit: int) -> bytes:
    return b"".join(bytes(p) for p in backlog.since(offset, limit))


class BacklogTests(SynchronousTestCase):
    def test_whole_chunks_are_the_same_objects_no_copy(self) -> None:
        backlog = Backlog()
        one, two = b"a" * 10, b"b" * 10
        backlog.append(one)
        backlog.append(two)
        parts = backlog.since(0, 100)
        self.assertEqual(len(parts), 2)
        self.assertIs(parts[0], one)
        self.assertIs(parts[1], two)
        self.assertEqual(read(backlog, 5, 10), b"a" * 5 + b"b" * 5)
        self.assertEqual(backlog.since(20, 10), [])

    def test_a_read_stops_at_its_limit(self) -> None:
        backlog = Backlog()
        backlog.append(b"x" * 1000)
        self.assertEqual(len(read(backlog, 0, 300)), 300)
        self.assertEqual(len(read(backlog, 900, 300)), 100)

    def test_what_nobody_needs_is_forgotten_whole_chunks_at_a_time(self) -> None:
        backlog = Backlog()
        for i in range(100):
            backlog.append(bytes([i]) * 10)
        backlog.trim(505)
        self.assertEqual(backlog.start, 500, "the chunk holding 505 stays whole")
        self.assertEqual(backlog.size, 500)
        self.assertEqual(read(backlog, 505, 10), bytes([50]) * 5 + bytes([51]) * 5)
        with self.assertRaises(ValueError):
            backlog.since(499, 10)
        backlog.trim(backlog.end)
        self.assertEqual(backlog.size, 0)

    def test_merge_makes_one_object_for_joiners_to_share(self) -> None:
        backlog = Backlog()
        for chunk in (b"old", b"ENTRY", b"more", b"last"):
            backlog.append(chunk)
        backlog.merge(3)
        (part,) = backlog.since(3, 100)
        self.assertEqual(part, b"ENTRYmorelast")
        self.assertIs(backlog.since(3, 100)[0], part)
        self.assertEqual(read(backlog, 0, 100), b"oldENTRYmorelast")

    @given(st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=30),
           st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 200)), max_size=20),
           st.integers(0, 2000))
    def test_any_read_gives_the_bytes_at_that_offset(
            self, chunks: list[bytes], reads: list[tuple[int, int]], keep: int) -> None:
        backlog = Backlog()
        whole = b""
        for chunk in chunks:
            backlog.append(chunk)
            whole += chunk
        keep = min(keep, len(whole))
        backlog.trim(keep)
        self.assertLessEqual(backlog.start, keep)
        for offset, limit in reads:
            offset = backlog.start + offset % (len(whole) - backlog.start + 1)
            self.assertEqual(read(backlog, offset, limit), whole[offset:offset + limit])
