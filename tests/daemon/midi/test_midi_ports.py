"""The wire: bytes into messages (counting what forms none), backends, port names, the bounded
hand-over from the poller thread to the event loop, the poller's sleep while no input is open."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from timekit import scaled

from controlroom.daemon.midi import ports
from controlroom.daemon.midi.ports import (
    DROP_MALFORMED,
    DROP_OVERSIZED,
    MAX_BATCH,
    MAX_PENDING,
    Inbox,
    PortError,
    api_for,
    decode,
    find,
)


def hexes(data) -> tuple[list[str], str | None]:
    messages, problem = decode(data)
    return [m.hex() for m in messages], problem


@pytest.mark.parametrize(
    ("data", "messages", "problem"),
    [
        ([0xB0, 1, 64], ["B0 01 40"], None),
        ([0xF0, 0x00, 0x00, 0x66, 0x14, 0x12, 0x00, 0x41, 0xF7], ["F0 00 00 66 14 12 00 41 F7"], None),
        ([0x01, 0x41], [], DROP_MALFORMED),  # running status without its status byte
        ([0x90, 60], [], DROP_MALFORMED),  # cut short
        ([0xF7], [], DROP_MALFORMED),  # an end of SysEx without its start
        ([0xF4], [], DROP_MALFORMED),  # undefined status
        # rtmidi glues the events after a SysEx without F7 onto it: the messages are recovered
        ([0xF0, 1, 2, 3, 0xB0, 1, 3, 0xB0, 1, 4, 0xF7], ["B0 01 03", "B0 01 04"], DROP_MALFORMED),
    ],
)
def test_decoding_recovers_messages_and_names_what_is_dropped(data, messages, problem):
    assert hexes(data) == (messages, problem)


def test_events_longer_than_the_limit_are_dropped_unread():
    assert hexes([0xF0] + [0x10] * ports.MAX_EVENT_BYTES + [0xF7]) == ([], DROP_OVERSIZED)


def test_random_bytes_never_raise():
    import random

    rng = random.Random(5)
    for _ in range(5000):
        decode([rng.randrange(256) for _ in range(rng.randrange(1, 12))])


@pytest.mark.parametrize("backend", ["mido.backends.portmidi", "mido.backends.rtmidi/NO_SUCH_API"])
def test_unusable_backends_are_named(backend):
    with pytest.raises(PortError, match="expected mido.backends.rtmidi"):
        api_for(backend)


def test_the_backend_defaults_to_mido_backend(monkeypatch):
    import rtmidi

    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    assert api_for(None) == rtmidi.API_UNIX_JACK
    assert api_for("mido.backends.rtmidi") == rtmidi.API_UNSPECIFIED


def test_ports_are_found_by_substring_in_any_case():
    names = ["Midi Through:Midi Through Port-0 14:0", "X-TOUCH MINI:X-TOUCH MINI MIDI 1 24:0"]
    assert find(names, "x-touch mini") == names[1]
    assert find(names, "nanoKONTROL") is None


def test_the_inbox_hands_events_over_in_batches_and_counts_a_flood():
    async def scenario():
        handled: list[int] = []
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def handle(batch):
            handled.append(len(batch))
            if sum(handled) == MAX_PENDING:
                done.set()

        inbox = Inbox(loop, handle)
        events = [(0.0, [0xB0, 1, k % 128]) for k in range(MAX_PENDING + 100)]
        thread = threading.Thread(target=inbox.put, args=(events,))
        thread.start()
        thread.join()
        await asyncio.wait_for(done.wait(), 5.0)
        for _ in range(3):  # a drain still scheduled would run within these turns
            await asyncio.sleep(0)
        assert sum(handled) == MAX_PENDING
        assert inbox.overflowed == 100
        assert max(handled) == MAX_BATCH

    asyncio.run(scenario())


def _switches(thread: threading.Thread) -> int:
    """Times ``thread`` left a CPU (voluntary and not): each wake-up counts one."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)


def test_the_poller_sleeps_while_no_input_is_open_and_polls_one_as_soon_as_it_is_added():
    poller = ports.Poller()
    thread = poller._thread  # its wake-ups are what is specified
    try:
        before = _switches(thread)
        time.sleep(10 * ports.IDLE_POLL_S)  # a thread polling nothing would wake ten times
        assert _switches(thread) - before <= 1

        polled = threading.Event()

        class Port:  # what the poller asks of an input: its queued events
            def poll(self):
                polled.set()
                return []

        poller.add(Port(), lambda events: None)
        assert polled.wait(scaled(5.0))
    finally:
        poller.close()
    assert not thread.is_alive()
