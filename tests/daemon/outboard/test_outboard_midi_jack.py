"""Preset recall over real JACK MIDI: a running daemon (virtual audio) sends Bank Select MSB
(CC 0), LSB (CC 32) and Program Change to a "DSP" port when its set is selected, at start-up and
on every switch, each message at least ``min_interval_ms`` after the one before.

The oracle is what a JACK MIDI input receives: the exact bytes, and the gaps between their
arrivals as JACK's clock stamps them (read in periods of 64 frames: a gap may look up to two
periods shorter than it was sent)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
import rtmidi
from daemonkit import running, until
from outboardkit import Rack

from controlroom.daemon.config import parse_config

pytestmark = pytest.mark.jack

BACKEND = "mido.backends.rtmidi/UNIX_JACK"
MIN_INTERVAL_MS = 80.0
#: Two JACK periods (64 frames at 48 kHz): how much shorter a gap may look than it was.
JITTER_S = 2 * 64 / 48000

CONFIG = """
[audio]
backend = "virtual"

[sources.mix]
channels = [1, 2]

[speakers.near]
outputs = [1, 2]
recall = {{ outboard = "dsp", program = 3, bank = 130 }}
[speakers.far]
outputs = [3, 4]
recall = {{ outboard = "dsp", program = 7 }}
[speakers.plain]
outputs = [3, 4]

[[outboard]]
name = "dsp"
midi_port = "{port}"
channel = 2
min_interval_ms = {interval}

[sequencing]
settle_ms = 0

[midi]
backend = "{backend}"

[osc]
listen = "127.0.0.1:0"
"""


class Dsp:
    """A JACK MIDI input standing in for a speaker processor: every message with the seconds
    since the one before, as JACK stamped their arrival."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=name)
        self.port.open_virtual_port(name)
        self.received: list[tuple[str, float]] = []

    def drain(self) -> list[tuple[str, float]]:
        while (event := self.port.get_message()) is not None:
            data, delta = event
            self.received.append((bytes(data).hex(" ").upper(), delta))
        return self.received

    def close(self) -> None:
        self.port.close_port()
        self.port.delete()


@pytest.fixture
def dsp(jack):
    device = Dsp(f"dsp-{uuid.uuid4().hex[:6]}")
    yield device
    device.close()


def test_a_selected_set_recalls_its_preset_bank_then_program_with_the_device_s_interval_respected(dsp):
    async def scenario():
        config = parse_config(CONFIG.format(port=dsp.name, interval=MIN_INTERVAL_MS, backend=BACKEND))
        async with running(config) as daemon:
            await until(lambda: len(dsp.drain()) == 3, "the start-up recall")
            daemon.controller.apply("speakers", "set", "far", origin="test")
            await until(lambda: len(dsp.drain()) == 4, "far's recall")
            daemon.controller.apply("speakers", "set", "plain", origin="test")  # no recall: nothing sent
            daemon.controller.apply("speakers", "set", "near", origin="test")
            await until(lambda: len(dsp.drain()) == 7, "near's recall again")
            await until(lambda: daemon.outboard.sequence is None, "the sequence to end")
            assert daemon.report()["sequence"]["recalled"] == {"dsp": {"program": 3, "bank": 130}}
        messages = [m for m, _ in dsp.received]
        # channel 2: CC 0 = 130 // 128, CC 32 = 130 % 128, then Program Change 3
        assert messages == ["B1 00 01", "B1 20 02", "C1 03", "C1 07", "B1 00 01", "B1 20 02", "C1 03"]
        gaps = [delta for _, delta in dsp.received[1:]]
        assert min(gaps) >= MIN_INTERVAL_MS / 1000.0 - JITTER_S, gaps
        print("\nrecall gaps (ms):", " ".join(f"{1000 * g:.1f}" for g in gaps))

    asyncio.run(asyncio.wait_for(scenario(), 120.0))


def test_a_missing_device_is_looked_for_off_the_event_loop_with_one_output_client_per_recall(dsp, monkeypatch):
    # every rtmidi client the daemon makes, with the thread that made it (opening one is a
    # jack_client_open: blocking, and the event loop must not wait for it)
    made: list[tuple[str, threading.Thread]] = []

    def counted(base):
        class Counted(base):
            def __init__(self, *args, **kwargs):  # rtmidi's clients are made in __cinit__
                made.append((base.__name__, threading.current_thread()))

        return Counted

    async def scenario():
        config = parse_config(CONFIG.format(port="no-such-dsp", interval=0.0, backend=BACKEND))
        async with running(config) as daemon:
            await until(lambda: daemon.outboard.sequence is None, "the start-up sequence")
            monkeypatch.setattr(rtmidi, "MidiOut", counted(rtmidi.MidiOut))
            monkeypatch.setattr(rtmidi, "MidiIn", counted(rtmidi.MidiIn))
            daemon.controller.apply("speakers", "set", "far", origin="test")
            await until(lambda: daemon.outboard.sequence is None and daemon.outboard.playing == "far", "far's sequence")
            assert daemon.report()["sequence"]["recalled"] == {"dsp": None}
        assert [kind for kind, _ in made] == ["MidiOut"], "one output client looked for the port"
        assert all(thread is not threading.main_thread() for _, thread in made), "opened on the event loop"

    asyncio.run(asyncio.wait_for(scenario(), 120.0))


RACK = """
[[outboard]]
name = "amp-near"
gpio = 5
active_high = false
[[outboard]]
name = "relay-near"
gpio = 17
active_high = false
"""


def test_a_preset_is_recalled_after_the_relays_have_settled_and_before_any_amplifier_comes_on(dsp):
    rack = Rack()
    arrived: dict[str, int] = {}  # output -> recall messages the DSP had received when it switched on

    def seen_by(name: str):
        def changed() -> None:  # on the loop's next turn after the pin changed: the sequence waits
            if rack.is_on(name) and name not in arrived:
                arrived[name] = len(dsp.drain())

        return changed

    async def scenario():
        text = CONFIG.format(port=dsp.name, interval=0.0, backend=BACKEND).replace(
            "[speakers.near]\n", '[speakers.near]\npower = ["amp-near"]\nrelays = ["relay-near"]\n'
        )
        text = text.replace("settle_ms = 0", "settle_ms = 100") + RACK
        text = text.replace("program = 3, bank = 130", "program = 3, bank = 130, settle_ms = 200")
        for name in ("relay-near", "amp-near"):
            rack.pin(name).changed = seen_by(name)
        async with running(parse_config(text)) as daemon:
            await until(lambda: daemon.outboard.sequence is None and "amp-near" in arrived, "the start-up sequence")
        assert arrived == {"relay-near": 0, "amp-near": 3}, "relay, then the recall (CC 0, CC 32, PC), then power"

    try:
        asyncio.run(asyncio.wait_for(scenario(), 120.0))
    finally:
        rack.close()
