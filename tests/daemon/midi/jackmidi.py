"""Fake MIDI devices on a JACK server, for the surface integration tests.

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
import rtmidi
from timekit import scaled

BACKEND = "mido.backends.rtmidi/UNIX_JACK"
#: Bound for anything awaited (a loaded 2-core machine may take seconds to run a JACK client).
TIMEOUT_S = 20.0
#: Messages the fake surface's input may queue between two reads (floods included).
QUEUE_LIMIT = 1 << 16


async def until(condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    """Wait until ``condition()`` holds; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + scaled(timeout_s)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.005)


class FakeSurface:
    """Virtual JACK MIDI ports named ``name``. ``received`` holds the hex of every message the
    daemon sent, in order; ``expect`` waits for one.

    The input is read by polling, as the daemon reads its own: with a Python callback (as mido's
    rtmidi input installs), JACK's process thread needs the GIL, and closing the port from a
    thread that holds it deadlocks in ``jack_deactivate``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.backend = mido.Backend(BACKEND, load=True)
        self._received: list[str] = []
        self.open()

    def open(self) -> None:
        self.output = self.backend.open_output(self.name, virtual=True)
        self.input = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=self.name, queue_size_limit=QUEUE_LIMIT)
        self.input.ignore_types(sysex=False, timing=False, active_sense=True)
        self.input.open_virtual_port(self.name)

    def close(self) -> None:
        self._drain()  # keep what arrived before the unplug
        self.input.close_port()
        self.input.delete()
        self.input = None
        self.output.close()

    @property
    def received(self) -> list[str]:
        """Every message received so far, as hex (invalid ones left out, as mido would)."""
        self._drain()
        return self._received

    def _drain(self) -> None:
        while self.input is not None and (event := self.input.get_message()) is not None:
            try:
                self._received.append(mido.Message.from_bytes(event[0]).hex())
            except ValueError:
                pass

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
