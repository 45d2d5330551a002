"""One segment to one viewer (epgd.stream.hlsout.sender): in pieces, as the socket drains."""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase

from epgd.stream.hlsout.sender import PIECE, SegmentSender
from tests.streamfakes import FakeRequest


class PausingRequest(FakeRequest):
    """A socket whose buffer fills after each write: the producer is paused at once."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None:
            self.producer.pauseProducing()


class SenderTests(SynchronousTestCase):
    def test_all_at_once_when_the_socket_takes_it(self) -> None:
        data = bytes(range(256)) * (2 * PIECE // 256 + 7)
        request = FakeRequest()
        done = SegmentSender(request, data).start()
        self.assertEqual(self.successResultOf(done), b"")
        self.assertEqual(request.body, data)
        self.assertEqual([len(w) for w in request.written], [PIECE, PIECE, len(data) - 2 * PIECE])
        self.assertIsNone(request.producer)  # unregistered before Klein finishes the response

    def test_one_piece_per_resume(self) -> None:
        data = b"\x47" * (PIECE + 10)
        request = PausingRequest()
        sender = SegmentSender(request, data)
        done = sender.start()
        self.assertNoResult(done)
        self.assertEqual(len(request.body), PIECE)
        sender.resumeProducing()
        self.assertEqual(self.successResultOf(done), b"")
        self.assertEqual(request.body, data)

    def test_a_viewer_that_goes_away_stops_it(self) -> None:
        request = PausingRequest()
        sender = SegmentSender(request, b"\x47" * (3 * PIECE))
        done = sender.start()
        done.cancel()  # Klein, when the connection is lost
        self.failureResultOf(done, CancelledError)
        sender.resumeProducing()
        self.assertEqual(len(request.body), PIECE)

    def test_a_request_already_gone_gets_nothing(self) -> None:
        request = FakeRequest()
        request.disconnect()
        done = SegmentSender(request, b"\x47" * 188).start()
        self.assertNoResult(done)
        self.assertEqual(request.written, [])
