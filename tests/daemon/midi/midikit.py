"""Helpers for the MIDI tests: a config, mappings from TOML text, messages with 1-based
channels (as mapping files and devices count them), and a rig that runs an interpreter
against a real controller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mido

from controlroom.daemon.config import Config, parse_config
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.midi.interpret import Interpreter, Outcome
from controlroom.daemon.midi.mapping import Mapping, bind, parse_mapping

CONFIG_TOML = """
[audio]
backend = "virtual"

[monitor]
volume_db = -20.0
min_volume_db = -80.0
max_volume_db = 0.0
dim_db = -20.0

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]
[sources.tape]
channels = [5]

[speakers.studio]
outputs = [1, 2]
[speakers.consumer]
outputs = [3, 4]
[speakers.crap]
outputs = [5]

[ab]
a = "mix"
b = "ref"
match = "off"

[osc]
listen = "127.0.0.1:0"
"""


def config(extra: str = "") -> Config:
    return parse_config(CONFIG_TOML + extra, "test.toml")


def controller(extra: str = "") -> Controller:
    cfg = config(extra)
    return Controller(cfg, Vocabulary(cfg).initial())


def mapping(text: str, source: str = "test-mapping.toml", base_dir: Path = Path(".")) -> Mapping:
    return parse_mapping(text, source, base_dir)


def bound(text: str, vocabulary: Vocabulary | None = None) -> Mapping:
    result = bind(mapping(text), vocabulary or Vocabulary(config()))
    assert not result.errors, result.errors
    return result.mapping


def cc(channel: int, control: int, value: int) -> mido.Message:
    return mido.Message("control_change", channel=channel - 1, control=control, value=value)


def note(channel: int, number: int, velocity: int = 127) -> mido.Message:
    return mido.Message("note_on", channel=channel - 1, note=number, velocity=velocity)


def note_off(channel: int, number: int) -> mido.Message:
    return mido.Message("note_off", channel=channel - 1, note=number)


def bend(channel: int, value14: int) -> mido.Message:
    """Pitch bend with a 14-bit value 0..16383 (as faders send it)."""
    return mido.Message("pitchwheel", channel=channel - 1, pitch=value14 - 8192)


def program(channel: int, number: int) -> mido.Message:
    return mido.Message("program_change", channel=channel - 1, program=number)


class Rig:
    """An interpreter driving a real controller, as a surface does: actions applied with this
    surface as origin, every change reported back to the interpreter."""

    ORIGIN = "midi:test"

    def __init__(self, mapping_toml: str, extra_config: str = "") -> None:
        self.controller = controller(extra_config)
        self.mapping = bound(mapping_toml, self.controller.vocabulary)
        self.interpreter = Interpreter(self.mapping, self.controller.vocabulary)

    @property
    def state(self):
        return self.controller.state

    def send(self, message: mido.Message, at: float = 0.0) -> Outcome | None:
        outcome = self.interpreter.handle(message, self.controller.view(), at)
        for action in outcome.actions if outcome else ():
            changes = self.controller.apply(action.target, action.action, action.value, self.ORIGIN)
            self.interpreter.changed(changes, action.control)
        return outcome

    def elsewhere(self, target: str, value: Any) -> None:
        """A change from another origin (OSC, another surface)."""
        changes = self.controller.apply(target, "set", value, "osc")
        self.interpreter.changed(changes)
