"""The daemon's outputs to outboard gear: switches (a GPIO pin, an MQTT smart plug) and MIDI
devices that recall presets.

Only the sequencer (``sequencer``) drives them. A GPIO pin goes through gpiozero: it is driven to
its off level the moment it is opened (``initial_value=False`` with the entry's
``active_high``), so a relay board never sees a floating pin while the daemon owns it, and it
is left an input pulled towards its off level when the daemon lets it go (``GpioSwitch.close``).
Which pin factory gpiozero uses is its own choice (``GPIOZERO_PIN_FACTORY``; lgpio on a
Raspberry Pi); ``gpio_errors`` says, before anything opens, when there is none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import warnings
from typing import Any

import mido

from controlroom.daemon.config import Config, OutboardConfig
from controlroom.daemon.errors import PortError
from controlroom.daemon.midi.ports import Output, api_for

log = logging.getLogger("controlroom")

#: The pin factory that needs no hardware (tests, the demo).
MOCK_FACTORY = "mock"
INSTALL_HINT = (
    "install the lgpio pin factory on a Raspberry Pi (pip install 'controlroom[pi]', or apt install python3-lgpio), "
    f"or set GPIOZERO_PIN_FACTORY={MOCK_FACTORY} to run without GPIO hardware"
)


def gpio_errors(config: Config) -> list[str]:
    """One ``FILE: outboard[i].gpio: ...`` line per GPIO entry when gpiozero finds no pin
    factory on this machine (not a Raspberry Pi, lgpio not installed); none otherwise."""
    entries = [(i, e) for i, e in enumerate(config.outboard.values()) if e.kind == "gpio"]
    if not entries:
        return []
    from gpiozero import Device  # only a config with GPIO entries pays for it

    if Device.pin_factory is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # each factory tried says why it fell back
                # gpiozero has no public way to ask for the factory without opening a pin; its
                # private chooser is stable across 2.x (pyproject pins gpiozero < 3)
                Device.pin_factory = Device._default_pin_factory()
        except Exception as exc:
            factory = os.environ.get("GPIOZERO_PIN_FACTORY")
            why = f"pin factory {factory!r}: {exc}" if factory else "gpiozero found no pin factory"
            return [
                f"{config.source}: outboard[{i}].gpio: no GPIO on this machine for {e.name!r} ({why}); {INSTALL_HINT}"
                for i, e in entries
            ]
    return []


def mock_pins() -> bool:
    """Whether gpiozero's pins are mock pins (``GPIOZERO_PIN_FACTORY=mock``): nothing reaches
    real relays. Call it after ``gpio_errors`` has chosen the factory."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    return isinstance(Device.pin_factory, MockFactory)


class Switch:
    """An output that is on or off. ``on`` is what it was last told, ``changed`` when it
    last switched (``time.monotonic()`` s; -inf: never)."""

    def __init__(self, entry: OutboardConfig) -> None:
        self.entry = entry
        self.on = False
        self.changed = -float("inf")

    @property
    def name(self) -> str:
        return self.entry.name

    def set(self, on: bool) -> None:
        """Switch on or off (nothing is sent when it is so already: it was driven off at open)."""
        if on == self.on:
            return
        self._drive(on)
        log.info("outboard %s %s", self.name, "on" if on else "off")
        self.changed = time.monotonic()
        self.on = on

    def _drive(self, on: bool) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Let the hardware go (it stays in the state it was left in)."""


class GpioSwitch(Switch):
    """A GPIO pin (BCM number) through gpiozero, at its off level from the moment it opens, and
    an input pulled towards its off level (up for ``active_high = false``) once closed."""

    def __init__(self, entry: OutboardConfig) -> None:
        super().__init__(entry)
        from gpiozero import GPIOZeroError, OutputDevice

        try:
            self.device = OutputDevice(entry.gpio, active_high=entry.active_high, initial_value=False)
        except GPIOZeroError as exc:
            raise PortError(f"outboard {entry.name}: GPIO {entry.gpio} cannot be used: {exc}") from None

    def _drive(self, on: bool) -> None:
        self.device.value = on

    def close(self) -> None:
        """Let the pin go as an input pulled towards the off level (the Pi's ~50 kOhm pull).
        gpiozero's own release makes it an input without a pull (lgpio: ``PULL_NONE``), which
        a relay board may read as on. The pin is then taken out of the factory's table, so that
        gpiozero's clean-up at exit (it closes every pin it knows) does not float it again.
        What the kernel does with the line once the process has gone is its own: the
        ``config.txt`` line in docs/outboard.md holds the pins from boot."""
        from gpiozero import Device, GPIOZeroError

        pin = self.device.pin
        pull = "down" if self.entry.active_high else "up"
        self.device.close()
        try:
            pin.function = "input"
            pin.pull = pull
        except GPIOZeroError as exc:  # e.g. GPIO 2/3's fixed pull-ups, a pull-down wanted
            log.warning("outboard %s: GPIO %d left without a pull-%s: %s", self.name, self.entry.gpio, pull, exc)
            return
        factory = Device.pin_factory
        for key, known in list(getattr(factory, "pins", {}).items()):  # gpiozero < 3: PiFactory.pins
            if known is pin:
                del factory.pins[key]


class MqttSwitch(Switch):
    """A switch on the MQTT broker (a smart plug): ``payload_on``/``payload_off`` to its topic,
    sent through the daemon's MQTT connection (again after every reconnect)."""

    def __init__(self, entry: OutboardConfig, bridge) -> None:
        super().__init__(entry)
        self.bridge = bridge
        self._drive(False)  # a plug left on (a crash, a power cut) goes off with the daemon's start

    def _drive(self, on: bool) -> None:
        e = self.entry
        self.bridge.command(e.mqtt_topic, e.payload_on if on else e.payload_off)


class MidiDevice:
    """A MIDI output port (name substring) receiving preset recalls: Bank Select MSB (CC 0),
    LSB (CC 32) and Program Change, each at least ``min_interval_ms`` after the last message
    sent to the device. The port is looked for at each recall, so gear switched on after the
    daemon is found."""

    def __init__(self, entry: OutboardConfig, backend: str | None) -> None:
        self.entry = entry
        self.backend = backend
        self.port = None
        self.last: dict[str, Any] | None = None  # the last recall sent: {"program", "bank"}
        self._sent = -float("inf")  # time.monotonic() of the last message

    @property
    def name(self) -> str:
        return self.entry.name

    async def recall(self, program: int, bank: int | None) -> bool:
        """Send the recall; False (and logged) when the port cannot be found or used."""
        messages = []
        channel = self.entry.channel - 1
        if bank is not None:
            messages += [
                mido.Message("control_change", channel=channel, control=0, value=bank // 128),
                mido.Message("control_change", channel=channel, control=32, value=bank % 128),
            ]
        messages.append(mido.Message("program_change", channel=channel, program=program))
        try:
            port = await self._open()
            for message in messages:
                gap = self._sent + self.entry.min_interval_ms / 1000.0 - time.monotonic()
                if gap > 0:
                    await asyncio.sleep(gap)
                port.send(message)
                self._sent = time.monotonic()
        except PortError as exc:
            self._lost()
            log.warning("outboard %s: recall not sent: %s", self.name, exc)
            return False
        self.last = {"program": program, "bank": bank}
        log.info("outboard %s: recalled program %d%s", self.name, program, "" if bank is None else f" bank {bank}")
        return True

    async def _open(self) -> Output:
        """The port, opened in a worker thread: opening an rtmidi client (a JACK client, an ALSA
        sequencer connection) blocks, and a missing device is looked for at every recall."""
        if self.port is None:
            api, label = api_for(self.backend), f"outboard-{self.name}"
            opening = asyncio.ensure_future(asyncio.to_thread(Output.matching, api, self.entry.midi_port, label))
            try:
                self.port = await asyncio.shield(opening)
            except asyncio.CancelledError:  # a shutdown: the port the thread opens is closed then
                opening.add_done_callback(_close_opened)
                raise
        return self.port

    def _lost(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            threading.Thread(target=port.close, name="outboard-midi-close", daemon=True).start()

    def close(self) -> None:
        """Close the port (on the way out: the loop is ending, a blocking close is fine)."""
        if self.port is not None:
            port, self.port = self.port, None
            port.close()


def _close_opened(opening: asyncio.Future) -> None:
    """Close the port an abandoned opening made, once it has."""
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
