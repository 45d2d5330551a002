"""
A source's bytes in, whole MPEG-TS packets out: its first bytes are judged ("is this MPEG-TS
at all?") before anything is passed on, then everything goes through an ``Aligner``. The one
path both provider streams and HLS segments take.
"""

from __future__ import annotations

from collections.abc import Callable

from epgd.mpegts.packet import SNIFF_BYTES, Aligner, sniff


class NotTs(Exception):
    """The first bytes are not MPEG-TS: ``verdict`` says what they are, ``head`` holds them."""

    def __init__(self, verdict: str, head: bytes) -> None:
        super().__init__(verdict)
        self.verdict = verdict
        self.head = head


class Intake:
    """
    ``feed`` chunks as they arrive; whole packets come back (maybe ``b""``) once the first
    ``SNIFF_BYTES`` have been judged by ``judge`` (``None``: MPEG-TS; else what they are, and
    ``feed`` raises ``NotTs``). ``reset`` starts over with a new connection; ``realign``
    forgets only a partial packet (the bytes that follow do not continue the ones before).
    """

    def __init__(self, judge: Callable[[bytes], str | None] = sniff) -> None:
        self._judge = judge
        self._aligner = Aligner()
        self._head = bytearray()
        self.judged = False
        self.packets_in = 0  # bytes of whole packets passed on

    @property
    def head(self) -> bytes:
        """What came before the first bytes were judged."""
        return bytes(self._head)

    def reset(self) -> None:
        self._aligner.reset()
        self._head = bytearray()
        self.judged = False

    def realign(self) -> None:
        self._aligner.reset()

    def feed(self, data: bytes) -> bytes:
        if not self.judged:
            self._head += data
            if len(self._head) < SNIFF_BYTES:
                return b""
            data = self._take_head()
        packets = self._aligner.feed(data)
        self.packets_in += len(packets)
        return packets

    def finish(self) -> bytes:
        """
        At a clean end of input that stops on a packet boundary (an HLS segment): a head
        shorter than the judging window is judged now, then the last packet held back for
        its successor comes out if it is whole.
        """
        out = b""
        if not self.judged and self._head:
            out = self._aligner.feed(self._take_head())
        out += self._aligner.flush()
        self.packets_in += len(out)
        return out

    def _take_head(self) -> bytes:
        head = bytes(self._head)
        verdict = self._judge(head)
        if verdict is not None:
            self._head = bytearray()
            raise NotTs(verdict, head)
        self._head = bytearray()
        self.judged = True
        return head
