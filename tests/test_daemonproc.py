"""The end-to-end harness itself: a report read back is never one from before the change."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from daemonproc import LOOPBACK, STATE, OscPeer, message
from pythonosc.osc_message import OscMessage


def report(volume: float) -> bytes:
    return message(STATE, json.dumps({"state": {"volume": volume}}))


def test_a_late_answer_to_an_earlier_request_is_not_taken_for_the_next():
    # A daemon busy past the first request's timeout answers it later, in order: the next
    # query must skip that stale answer (-30 dB, before the change) and return its own (-6 dB).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind((LOOPBACK, 0))
        with OscPeer(daemon.getsockname()[1]) as peer:
            with pytest.raises(TimeoutError):
                peer.query(timeout=0.05)
            first, sender = daemon.recvfrom(1 << 16)
            assert OscMessage(first).address == STATE
            daemon.sendto(report(-30.0), sender)  # waiting in the peer's socket before it asks again

            def answer_the_second():
                daemon.recvfrom(1 << 16)
                daemon.sendto(message("/controlroom/volume", -6.0), sender)
                daemon.sendto(report(-6.0), sender)

            answering = threading.Thread(target=answer_the_second)
            answering.start()
            try:
                assert peer.query()["state"]["volume"] == -6.0
            finally:
                answering.join()
