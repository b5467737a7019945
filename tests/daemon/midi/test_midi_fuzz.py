"""Fuzzing the MIDI decoder and interpreter: any bytes from a port become messages or a drop
reason; any message under a real preset becomes actions the controller takes or refuses with
``TargetError``, the state staying within its limits."""

from __future__ import annotations

from pathlib import Path

from fuzzkit import STUDIO, fuzz
from hypothesis import given
from hypothesis import strategies as st

from controlroom.daemon.config import load_config
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.errors import TargetError
from controlroom.daemon.midi.interpret import Interpreter, coalesce
from controlroom.daemon.midi.mapping import bind, load_mapping, preset_names
from controlroom.daemon.midi.ports import decode

CONFIG = load_config(STUDIO)


@fuzz(300)
@given(
    preset=st.sampled_from(preset_names()),
    events=st.lists(st.tuples(st.floats(0, 1e6), st.binary(max_size=16)), max_size=30),
)
def test_any_bytes_from_a_surface_are_acted_on_within_the_limits_or_dropped(preset, events):
    vocabulary = Vocabulary(CONFIG)
    controller = Controller(CONFIG, vocabulary.initial())
    bound = bind(load_mapping(preset, Path.cwd(), "c.toml", "surfaces[0].mapping"), vocabulary)
    interpreter = Interpreter(bound.mapping, vocabulary)
    actions = []
    for now, data in sorted(events):
        messages, _ = decode(data)
        for message in messages:
            outcome = interpreter.handle(message, controller.view(), now)
            if outcome is not None:
                actions += outcome.actions
    for action in coalesce(actions, vocabulary.max_step_db):
        try:
            controller.apply(action.target, action.action, action.value)
        except TargetError:
            pass
        assert vocabulary.min_volume_db <= controller.state.volume <= vocabulary.max_volume_db
