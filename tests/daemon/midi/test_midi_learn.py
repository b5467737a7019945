"""MIDI learn without hardware: recognising a control from what it sent, and writing the
binding into mapping and config files with their comments kept."""

from __future__ import annotations

import pytest
from midikit import CONFIG_TOML, bend, cc, note, note_off, program

from controlroom.daemon.config import SurfaceConfig, load_config
from controlroom.daemon.errors import UsageError
from controlroom.daemon.midi.learn import Learned, add_control, control_fields, recognise, save
from controlroom.daemon.midi.mapping import Address, load_surface_mapping


def turn(channel: int, control: int, *values: int) -> list:
    return [cc(channel, control, v) for v in values]


@pytest.mark.parametrize(
    ("messages", "learned"),
    [
        ([note(11, 8), note_off(11, 8)], Learned(Address("note", 11, 8), button=True)),
        ([program(2, 4)], Learned(Address("program", 2, 4), button=True)),
        (turn(1, 32, 127, 0), Learned(Address("cc", 1, 32), button=True)),
        (turn(11, 1, 64, 65, 66, 67, 68, 67, 66), Learned(Address("cc", 11, 1), encoder="absolute")),
        (turn(11, 1, 1, 1, 2, 1, 127, 127, 126), Learned(Address("cc", 11, 1), encoder="relative-twos")),
        (turn(1, 16, 1, 1, 2, 65, 65, 66), Learned(Address("cc", 1, 16), encoder="relative-signed")),
        (turn(1, 16, 65, 65, 66, 63, 63, 62), Learned(Address("cc", 1, 16), encoder="relative-offset")),
        (
            turn(1, 7, 100, 5) + turn(1, 39, 3) + turn(1, 7, 101) + turn(1, 39, 0),
            Learned(Address("cc", 1, 7, 14), encoder="absolute"),
        ),
        (
            turn(3, 99, 2) + turn(3, 98, 44) + turn(3, 6, 10) + turn(3, 38, 3),
            Learned(Address("nrpn", 3, 300, 14), encoder="absolute"),
        ),
        (
            [note(1, 112), bend(9, 9000), bend(9, 9100), note(1, 112, 0)],
            Learned(Address("pitchbend", 9, None, 14), encoder="absolute", touch=Address("note", 1, 112)),
        ),
    ],
)
def test_a_control_is_recognised_from_what_it_sends(messages, learned):
    assert recognise(messages) == learned


def test_a_relative_encoder_turned_one_way_is_a_guess_and_says_so():
    learned = recognise(turn(1, 16, 1, 1, 1, 2))
    assert learned.encoder == "relative-twos"
    assert "relative-signed" in learned.note


def test_nothing_usable_is_none():
    assert recognise([]) is None


def test_a_button_on_volume_needs_a_value():
    with pytest.raises(UsageError, match="needs --value"):
        control_fields(Learned(Address("note", 1, 1), button=True), "volume", None, feedback=False)


def test_buttons_get_led_feedback_only_when_the_surface_has_an_output():
    learned = Learned(Address("note", 1, 1), button=True)
    assert dict(control_fields(learned, "mute", None, feedback=True))["feedback"] == {
        "type": "note",
        "channel": 1,
        "note": 1,
    }
    assert "feedback" not in dict(control_fields(learned, "mute", None, feedback=False))


USER_FILE = """\
# my desk
name = "Desk"   # shown in logs

[[control]]
midi = { type = "cc", channel = 1, control = 7 }  # the big fader
target = "volume"

[[control]]
midi = { type = "note", channel = 1, note = 5 }
target = "mono"
"""


def test_adding_a_control_keeps_comments_and_replaces_the_same_source():
    fields = control_fields(Learned(Address("note", 1, 5), button=True), "dim", None, feedback=False)
    text = add_control(USER_FILE, fields, Address("note", 1, 5))
    assert (
        text
        == """\
# my desk
name = "Desk"   # shown in logs

[[control]]
midi = { type = "cc", channel = 1, control = 7 }  # the big fader
target = "volume"

[[control]]
midi = { type = "note", channel = 1, note = 5 }
target = "dim"
button = "toggle"
"""
    )


def test_learning_on_a_preset_makes_a_user_file_that_includes_it(tmp_path):
    config_path = tmp_path / "controlroom.toml"
    config_path.write_text(
        CONFIG_TOML + '\n# the desk\n[[surfaces]]\nname = "desk"\ninput = "X-TOUCH"\n'
        'output = "X-TOUCH"\nmapping = "behringer-xtouch-mini"   # factory layout\n'
    )
    surface = load_config(config_path).surfaces[0]
    fields = control_fields(Learned(Address("note", 11, 16), button=True), "mono", None, feedback=True)
    written = save(config_path, tmp_path, surface, fields, Address("note", 11, 16))

    assert written == tmp_path / "desk.mapping.toml"
    config_text = config_path.read_text()
    assert 'mapping = "desk.mapping.toml"   # factory layout' in config_text and "# the desk" in config_text
    reloaded = load_config(config_path).surfaces[0]
    mapping = load_surface_mapping(reloaded, 0, str(config_path), tmp_path)
    assert mapping.name == "Behringer X-Touch Mini (standard mode, layer A)"
    assert [c.target for c in mapping.controls if c.midi == Address("note", 11, 16)] == ["mono"]


def test_learning_on_a_user_file_appends_to_it(tmp_path):
    (tmp_path / "desk.toml").write_text(USER_FILE)
    surface = SurfaceConfig("desk", "in", None, "desk.toml")
    fields = control_fields(Learned(Address("cc", 1, 16), encoder="relative-signed"), "volume", None, feedback=False)
    save(tmp_path / "unused.toml", tmp_path, surface, fields, Address("cc", 1, 16))
    text = (tmp_path / "desk.toml").read_text()
    assert text.startswith(USER_FILE)
    assert text.endswith(
        '\n[[control]]\nmidi = { type = "cc", channel = 1, control = 16 }\ntarget = "volume"\nencoder = "relative-signed"\n'
    )
