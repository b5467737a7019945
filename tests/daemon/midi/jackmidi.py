"""Fake MIDI devices on a JACK server (DESIGN.md §10), for the surface integration tests.

``FakeSurface``: mido virtual ports through rtmidi's JACK API — an output the daemon reads and
an input collecting what the daemon sends back. ``RawSender``: a JACK client writing arbitrary
bytes as MIDI events (rtmidi refuses to send malformed messages; bad-input tests need them).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

import jack
import mido

BACKEND = "mido.backends.rtmidi/UNIX_JACK"
TIMEOUT_S = 5.0


async def until(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    """Wait until ``condition()`` holds; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)


class FakeSurface:
    """Virtual JACK MIDI ports named ``name``. ``received`` holds the hex of every message the
    daemon sent, in order; ``expect`` waits for one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.backend = mido.Backend(BACKEND, load=True)
        self.received: list[str] = []
        self.open()

    def open(self) -> None:
        self.output = self.backend.open_output(self.name, virtual=True)
        self.input = self.backend.open_input(
            self.name, virtual=True, callback=lambda m: self.received.append(m.hex())
        )

    def close(self) -> None:
        self.input.close()
        self.output.close()

    def send(self, *messages: mido.Message) -> None:
        for message in messages:
            self.output.send(message)

    async def expect(self, wanted: str, since: int = 0, what: str = "") -> int:
        """Wait for message ``wanted`` (hex) at or after position ``since``; returns its position."""

        def found() -> bool:
            return wanted in self.received[since:]

        await until(found, what or f"{wanted} from the daemon")
        return self.received.index(wanted, since)


class RawSender:
    """A JACK client ``name`` whose port ``out`` sends each queued byte string as one event."""

    PER_CYCLE = 32

    def __init__(self, name: str) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self.queue: collections.deque[bytes] = collections.deque()
        self.refused = 0
        self.client.set_process_callback(self._process)
        self.client.activate()

    def send(self, *events: bytes) -> None:
        self.queue.extend(events)

    async def drained(self) -> None:
        await until(lambda: not self.queue, "the raw sender to send everything", timeout_s=30.0)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        for _ in range(min(self.PER_CYCLE, len(self.queue))):
            try:
                self.port.write_midi_event(0, self.queue.popleft())
            except jack.JackErrorCode:  # larger than the port's buffer
                self.refused += 1
