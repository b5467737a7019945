"""MIDI ports through python-rtmidi; bytes into messages through mido.

mido's own rtmidi ports always install a Python callback, and with JACK's MIDI API rtmidi runs
that callback inside JACK's real-time process thread, which would then wait for the GIL: a busy
asyncio loop would make the whole JACK graph, audio included, miss its deadlines. So inputs are
opened here without a callback. rtmidi queues what arrives (in C++), one poller thread collects
it every ``POLL_S`` while a surface is in use and every ``IDLE_POLL_S`` once it has been still
for ``ACTIVE_S`` (an idle rack wakes 20 times a second, not 500; the first message after a
pause waits at most ``IDLE_POLL_S``, the turn of a knob that follows it at most ``POLL_S``), sleeps
while no input is open, and hands each batch to asyncio with ``loop.call_soon_threadsafe``. Bytes are
split into messages here, with mido's tokenizer, so that malformed input is counted (mido's
ports drop it silently) and messages that rtmidi glues onto a truncated SysEx are recovered.

The API comes from a mido backend name, as ``MIDO_BACKEND`` and ``[midi] backend`` spell it:
``mido.backends.rtmidi`` (rtmidi's default API), ``mido.backends.rtmidi/UNIX_JACK`` or
``mido.backends.rtmidi/LINUX_ALSA``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import mido
import rtmidi
from mido.tokenizer import Tokenizer

from controlroom.daemon.errors import PortError

#: JACK client / ALSA sequencer client name of every port the daemon opens. Ports whose name
#: starts with it are never offered as a surface's port: they are the daemon's own.
CLIENT_NAME = "controlroom"
DEFAULT_BACKEND = "mido.backends.rtmidi"
POLL_S = 0.002
#: The poll period once no input has had anything for ``ACTIVE_S`` (s).
IDLE_POLL_S = 0.05
ACTIVE_S = 2.0
#: Messages rtmidi may queue per input between two polls.
QUEUE_LIMIT = 4096
#: Events (one MIDI message, or a SysEx) longer than this are dropped unread.
MAX_EVENT_BYTES = 4096
#: Events waiting for the loop per input; beyond this a flood is dropped (and counted).
MAX_PENDING = 2048
#: Events handled per turn of the loop before other work gets its turn.
MAX_BATCH = 64

DROP_MALFORMED = "midi_malformed"
DROP_OVERSIZED = "midi_oversized"
DROP_OVERFLOW = "midi_overflow"

#: (arrival time in seconds on a steady clock, the event's bytes)
Event = tuple[float, Sequence[int]]


def backend_name(backend: str | None) -> str:
    """The backend in use: ``backend`` ([midi] backend), else ``$MIDO_BACKEND``, else rtmidi's default."""
    return backend or os.environ.get("MIDO_BACKEND") or DEFAULT_BACKEND


def api_for(backend: str | None) -> int:
    """The rtmidi API a mido backend name selects; PortError for other backends or APIs
    this python-rtmidi was built without."""
    name = backend_name(backend)
    module, _, api = name.partition("/")
    compiled = {n[4:]: getattr(rtmidi, n) for n in dir(rtmidi) if n.startswith("API_")}
    compiled = {n: a for n, a in compiled.items() if a in rtmidi.get_compiled_api()}
    expected = f"expected {DEFAULT_BACKEND}, optionally with /" + " or /".join(compiled)
    if module != DEFAULT_BACKEND:
        raise PortError(f"MIDI backend {name!r} is not supported ({expected})")
    if not api:
        return rtmidi.API_UNSPECIFIED
    if api not in compiled:
        raise PortError(f"MIDI API {api!r} is not available ({expected})")
    return compiled[api]


def decode(data: Sequence[int]) -> tuple[list[mido.Message], str | None]:
    """The messages in one event's bytes, and the drop reason if some bytes formed none
    (stray data bytes, running status, a message cut short, an oversized event)."""
    if len(data) > MAX_EVENT_BYTES:
        return [], DROP_OVERSIZED
    messages, used = [], 0
    for token in Tokenizer(data):
        used += len(token)
        messages.append(mido.Message.from_bytes(token))
    return messages, (DROP_MALFORMED if used != len(data) else None)


def find(names: Sequence[str], wanted: str) -> str | None:
    """The first of ``names`` containing ``wanted``, ignoring case (ALSA and JACK decorate
    device names with client names and numbers)."""
    wanted = wanted.casefold()
    return next((n for n in names if wanted in n.casefold()), None)


def _theirs(names: Sequence[str]) -> list[str]:
    return [n for n in names if not n.startswith(CLIENT_NAME)]


def _open(rt: rtmidi.MidiIn | rtmidi.MidiOut, name: str, label: str) -> None:
    try:
        rt.open_port(rt.get_ports().index(name), label)
    except (ValueError, rtmidi.RtMidiError) as exc:  # the port vanished in between
        rt.delete()
        raise PortError(f"cannot open {name!r}: {exc or 'gone'}") from None


class Ports:
    """The ports of one rtmidi API (names listed fresh on every call)."""

    def __init__(self, api: int) -> None:
        self.api = api
        try:
            self._in = rtmidi.MidiIn(api, name=CLIENT_NAME)
            self._out = rtmidi.MidiOut(api, name=CLIENT_NAME)
        except rtmidi.RtMidiError as exc:  # e.g. no JACK server, no ALSA sequencer
            raise PortError(str(exc)) from None

    def inputs(self) -> list[str]:
        return _theirs(_listed(self._in))

    def outputs(self) -> list[str]:
        return _theirs(_listed(self._out))

    def open_input(self, name: str, label: str) -> Input:
        return Input(self.api, name, label)

    def open_output(self, name: str, label: str) -> Output:
        return Output(self.api, name, label)

    def close(self) -> None:
        self._in.delete()
        self._out.delete()


def _listed(midi) -> list[str]:
    try:
        return midi.get_ports()
    except rtmidi.RtMidiError as exc:  # the MIDI server went away
        raise PortError(f"cannot list MIDI ports: {exc}") from None


class Input:
    """An input port read by polling. Times come from rtmidi's inter-message deltas, so
    that messages collected in one poll keep their spacing (encoder acceleration, hold times)."""

    def __init__(self, api: int, name: str, label: str) -> None:
        self.name = name
        self._rt = rtmidi.MidiIn(api, name=CLIENT_NAME, queue_size_limit=QUEUE_LIMIT)
        _open(self._rt, name, label)
        self._rt.ignore_types(sysex=False, timing=True, active_sense=True)
        self._clock: float | None = None

    def poll(self) -> list[Event]:
        """Everything queued since the last poll."""
        events = []
        while (item := self._rt.get_message()) is not None:
            data, delta = item
            self._clock = time.monotonic() if self._clock is None else self._clock + delta
            events.append((self._clock, data))
        return events

    def close(self) -> None:
        self._rt.close_port()
        self._rt.delete()


class Output:
    """An output port."""

    def __init__(self, api: int, name: str, label: str) -> None:
        self.name = name
        self._rt = rtmidi.MidiOut(api, name=CLIENT_NAME)
        _open(self._rt, name, label)

    @classmethod
    def matching(cls, api: int, wanted: str, label: str) -> Output:
        """The first output port whose name contains ``wanted`` (``find``), looked up and
        opened on one rtmidi client; PortError when none matches or the API is not there.
        Blocking (a JACK or ALSA client is opened): call it in a worker thread."""
        try:
            rt = rtmidi.MidiOut(api, name=CLIENT_NAME)
        except rtmidi.RtMidiError as exc:  # e.g. no JACK server, no ALSA sequencer
            raise PortError(str(exc)) from None
        try:
            name = find(_theirs(_listed(rt)), wanted)
            if name is None:
                raise PortError(f"no MIDI output port matches {wanted!r}")
        except PortError:
            rt.delete()
            raise
        _open(rt, name, label)  # deletes the client when the port vanished in between
        output = cls.__new__(cls)
        output.name, output._rt = name, rt
        return output

    def send(self, message: mido.Message) -> None:
        """Send ``message``; PortError when the API refuses (port gone, buffer full)."""
        try:
            self._rt.send_message(message.bytes())
        except (rtmidi.RtMidiError, ValueError) as exc:
            raise PortError(str(exc)) from None

    def close(self) -> None:
        self._rt.close_port()
        self._rt.delete()


class Inbox:
    """Events on their way from the poller thread to ``handle`` on the event loop: bounded
    (a flood beyond ``MAX_PENDING`` is dropped and counted in ``overflowed``), handed over
    with one wake-up per batch and handled ``MAX_BATCH`` at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handle: Callable[[list[Event]], None]) -> None:
        self._loop = loop
        self._handle = handle
        self._events: deque[Event] = deque()
        self._scheduled = False
        self.overflowed = 0  # written by the poller thread only

    def put(self, events: list[Event]) -> None:
        """Poller thread: queue ``events`` and wake the loop."""
        room = max(0, MAX_PENDING - len(self._events))
        if len(events) > room:
            self.overflowed += len(events) - room
            events = events[:room]
        self._events.extend(events)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        # cleared before taking, so that a put() racing with us schedules another drain
        self._scheduled = False
        batch = [self._events.popleft() for _ in range(min(MAX_BATCH, len(self._events)))]
        if self._events and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)
        self._handle(batch)


class Poller:
    """One thread that polls every registered input each ``POLL_S``, or ``IDLE_POLL_S`` while
    none has had anything for ``ACTIVE_S``, and sleeps while there is none."""

    def __init__(self) -> None:
        self._inputs: dict[Input, Callable[[list[Event]], None]] = {}
        self._changed = threading.Condition()  # guards _inputs and _stopping
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="controlroom-midi-in", daemon=True)
        self._thread.start()

    def add(self, port: Input, sink: Callable[[list[Event]], None]) -> None:
        with self._changed:
            self._inputs[port] = sink
            self._changed.notify()

    def remove(self, port: Input) -> None:
        """Stop polling ``port``; once this returns, the thread no longer touches it."""
        with self._changed:
            self._inputs.pop(port, None)

    def close(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        last_event = -ACTIVE_S
        period = IDLE_POLL_S
        while True:
            with self._changed:
                while not self._inputs and not self._stopping:
                    self._changed.wait()  # until add() or close()
                if self._stopping:
                    return
            # A plain sleep between polls: a timed wait on the Condition costs this thread
            # about twice the CPU per wake-up (its lock and waiter), and nothing needs to cut
            # the pause short (close() waits at most one period).
            time.sleep(period)
            with self._changed:
                if self._stopping:
                    return
                for port, sink in self._inputs.items():
                    events = port.poll()
                    if events:
                        sink(events)
                        last_event = time.monotonic()
            period = POLL_S if time.monotonic() - last_event < ACTIVE_S else IDLE_POLL_S
