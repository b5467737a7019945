"""Mapping files: the documented format (docs/surfaces.md), errors in the config's style, includes, presets,
and binding to a config's vocabulary."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from midikit import config, mapping

from controlroom.daemon import cli
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.errors import ConfigError
from controlroom.daemon.midi.mapping import Address, bind, load_surface_mapping, preset_names

DOCUMENTED_EXAMPLE = """
name = "Behringer X-Touch Mini (standard mode, layer A)"
[[control]]
midi = { type = "cc", channel = 11, control = 1 }   # channels 1-16
encoder = "relative-offset"   # absolute | relative-twos | relative-offset | relative-signed
target = "volume"
step_db = 0.5
feedback = { type = "cc", channel = 11, control = 1 }
[[control]]
midi = { type = "note", channel = 11, note = 8 }
target = "dim"
button = "toggle"             # toggle | momentary | press (send `value` on press)
feedback = { type = "note", channel = 11, note = 8 }
[[control]]
midi = { type = "note", channel = 11, note = 10 }
target = "speakers"
button = "press"
value = "crap"
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        mapping(text, source="m.toml")
    return caught.value.errors


def test_the_design_example_parses_into_typed_controls():
    m = mapping(DOCUMENTED_EXAMPLE)
    assert m.name == "Behringer X-Touch Mini (standard mode, layer A)"
    volume, dim, crap = m.controls
    assert volume.midi == Address("cc", 11, 1, 7)
    assert (volume.encoder, volume.step_db, volume.feedback.address) == (
        "relative-offset",
        0.5,
        Address("cc", 11, 1),
    )
    assert (dim.button, dim.feedback.on, dim.feedback.off) == ("toggle", 127, 0)
    assert (crap.button, crap.value) == ("press", "crap")


def test_defaults_follow_the_source_and_target():
    m = mapping("""
[[control]]
midi = { type = "note", channel = 1, note = 1 }
target = "mute"
[[control]]
midi = { type = "note", channel = 1, note = 2 }
target = "speakers"
[[control]]
midi = { type = "cc", channel = 1, control = 7 }
target = "volume"
[[control]]
midi = { type = "pitchbend", channel = 9 }
target = "volume"
""")
    assert [(c.encoder, c.button) for c in m.controls] == [
        (None, "toggle"),
        (None, "next"),
        ("absolute", None),
        ("absolute", None),
    ]
    assert m.controls[3].midi.bits == 14


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            '[[control]]\nmidi = { type = "cc", channel = 17, control = 1 }\ntarget = "volume"\n',
            "m.toml: control[0].midi.channel: 17 is out of range (expected a MIDI channel from 1 to 16)",
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 0, control = 1 }\ntarget = "volume"\n',
            "m.toml: control[0].midi.channel: 0 is out of range (expected a MIDI channel from 1 to 16)",
        ),
        (
            '[[control]]\nmidi = { type = "ccc", channel = 1, control = 1 }\ntarget = "volume"\n',
            "m.toml: control[0].midi.type: \"ccc\" is not a MIDI message type (did you mean 'cc'?)",
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 1, control = 128 }\ntarget = "volume"\n',
            "m.toml: control[0].midi.control: 128 is out of range (expected a controller number from 0 to 127)",
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 1, control = 40, bits = 14 }\ntarget = "volume"\n',
            (
                "m.toml: control[0].midi.control: 40 is out of range "
                "(expected a controller number of a 14-bit pair (MSB; LSB = MSB + 32) from 0 to 31)"
            ),
        ),
        (
            '[[control]]\nmidi = { type = "note", channel = 1, control = 3 }\ntarget = "dim"\n',
            "m.toml: control[0].midi.control: unknown key (expected one of: type, channel, note)",
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 1, control = 1 }\ntarget = "volum"\n',
            "m.toml: control[0].target: \"volum\" is not a target (did you mean 'volume'?)",
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 1, control = 1 }\ntarget = "volume"\nencodr = "absolute"\n',
            "m.toml: control[0].encodr: unknown key (did you mean 'encoder'?)",
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 1, control = 1 }\ntarget = "volume"\nencoder = "relative"\n',
            "m.toml: control[0].encoder: \"relative\" is not an encoder type (did you mean 'relative-twos'?)",
        ),
        (
            '[[control]]\ntarget = "volume"\n',
            "m.toml: control[0]: has neither midi nor feedback (expected a MIDI source in midi, an output in feedback, or both)",
        ),
        (
            '[[control]]\nmidi = { type = "note", channel = 1, note = 1 }\ntarget = "speakers"\nbutton = "press"\n',
            "m.toml: control[0].value: missing (expected the value a press sets)",
        ),
        (
            '[[control]]\nmidi = { type = "note", channel = 1, note = 1 }\ntarget = "dim"\nbutton = "next"\n',
            (
                'm.toml: control[0].button: "next" does not work on dim '
                "(expected a target that is a choice: solo, speakers, source, ab, match)"
            ),
        ),
        (
            '[[control]]\nmidi = { type = "note", channel = 1, note = 1 }\ntarget = "dim"\nencoder = "absolute"\n',
            "m.toml: control[0].encoder: does not apply to a note source (expected button)",
        ),
        (
            '[[control]]\nmidi = { type = "pitchbend", channel = 1 }\ntarget = "volume"\nencoder = "relative-twos"\n',
            (
                'm.toml: control[0].encoder: "relative-twos" does not apply to pitch bend (channel 1) '
                '(expected "absolute": relative encoders send 7-bit cc)'
            ),
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 1, control = 1 }\ntarget = "volume"\nacceleration = 2.0\n',
            (
                "m.toml: control[0].acceleration: does not apply to an absolute encoder on volume "
                "(expected acceleration only for relative volume encoders)"
            ),
        ),
        (
            '[[control]]\nmidi = { type = "note", channel = 1, note = 1 }\ntarget = "dim"\nbutton = "toggle"\nhold_ms = 300.0\n',
            "m.toml: control[0].hold_ms: does not apply to a toggle button on dim (expected hold_ms only for latch buttons)",
        ),
        (
            '[[control]]\nmidi = { type = "program", channel = 1, program = 1 }\ntarget = "dim"\nbutton = "momentary"\n',
            (
                'm.toml: control[0].button: "momentary" needs a release, which a program change has not '
                "(expected press, toggle, next, prev or step)"
            ),
        ),
        (
            '[[control]]\nmidi = { type = "note", channel = 1, note = 1 }\ntarget = "dim"\nbutton = "press"\nvalue = "loud"\n',
            'm.toml: control[0].value: "loud" is not a value of dim (expected true or false)',
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 1, control = 1 }\ntarget = "volume"\nmin_db = -10.0\nmax_db = -20.0\n',
            "m.toml: control[0].min_db: -10 is not below max_db -20 (expected a lower level)",
        ),
        (
            (
                '[[control]]\nmidi = { type = "cc", channel = 1, control = 1 }\ntarget = "volume"\n'
                'feedback = { type = "pitchbend", channel = 1, ring = "dot" }\n'
            ),
            'm.toml: control[0].feedback.ring: needs a 7-bit cc feedback (expected type = "cc")',
        ),
        (
            '[[lcd]]\noffset = 110\nwidth = 7\ntarget = "volume"\n',
            "m.toml: lcd[0].width: 7 runs past the LCD's end (expected at most 2 at offset 110)",
        ),
        (
            "[[lcd]]\noffset = 0\n",
            "m.toml: lcd[0]: needs one of target and text (expected a target to show or a fixed text)",
        ),
        (
            '[[lcd]]\noffset = 0\ntext = "Lautstärke"\n',
            'm.toml: lcd[0].text: "Lautstärke" has characters an LCD cannot show (expected printable ASCII text)',
        ),
        (
            '[[control]]\nmidi = { type = "cc", channel = 1, control = 1 }\n',
            (
                "m.toml: control[0].target: missing (expected a target: one of volume, dim, mute, mono, polarity, sub, "
                "blind, solo, speakers, source, ab, match, level)"
            ),
        ),
        (
            'name = "x"\n[[control]\n',
            "m.toml: line 2, column 10: invalid TOML (expected ']]' at the end of an array declaration)",
        ),
    ],
)
def test_every_mistake_is_named_in_the_config_error_style(text, line):
    assert line in errors(text)


def test_every_error_of_a_file_is_reported_at_once():
    found = errors("""
[[control]]
midi = { type = "cc", channel = 17, control = 1 }
target = "volume"
[[control]]
midi = { type = "note", channel = 1, note = 300 }
target = "mute"
colour = "red"
""")
    assert found == [
        "m.toml: control[0].midi.channel: 17 is out of range (expected a MIDI channel from 1 to 16)",
        (
            "m.toml: control[1].colour: unknown key (expected one of: midi, target, encoder, button, value, step_db, "
            "min_db, max_db, taper, acceleration, pickup, motorised, touch, hold_ms, feedback)"
        ),
        "m.toml: control[1].midi.note: 300 is out of range (expected a note number from 0 to 127)",
    ]


def test_an_output_only_control_needs_no_midi_source():
    m = mapping(
        '[[control]]\ntarget = "source"\nfeedback = { type = "program", channel = 1, values = { mix = 0, ref = 5 } }\n'
    )
    (control,) = m.controls
    assert control.midi is None and control.feedback.values == (("mix", 0), ("ref", 5))


# --- includes and presets -----------------------------------------------------------------------


def test_an_include_comes_first_and_own_controls_replace_those_on_the_same_source(tmp_path):
    m = mapping(
        """
include = "behringer-xtouch-mini"
[[control]]
midi = { type = "note", channel = 11, note = 16 }
target = "mono"
""",
        source=str(tmp_path / "mine.toml"),
        base_dir=tmp_path,
    )
    preset = load_surface_mapping(_surface("behringer-xtouch-mini"), 0, "c.toml", tmp_path)
    assert m.name == preset.name
    assert len(m.controls) == len(preset.controls)
    assert m.controls[-1].target == "mono"
    assert [c.target for c in m.controls if c.midi == Address("note", 11, 16)] == ["mono"]


def test_includes_are_one_level_deep(tmp_path):
    (tmp_path / "inner.toml").write_text('include = "generic-8-knob"\n')
    with pytest.raises(ConfigError) as caught:
        mapping('include = "inner.toml"\n', source=str(tmp_path / "outer.toml"), base_dir=tmp_path)
    assert caught.value.errors == [
        f'{tmp_path / "inner.toml"}: include: "generic-8-knob" is in an included mapping (expected includes one level deep)'
    ]


def test_a_mapping_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "desk.toml").write_text(DOCUMENTED_EXAMPLE)
    m = load_surface_mapping(_surface("desk.toml"), 0, str(tmp_path / "c.toml"), tmp_path)
    assert len(m.controls) == 3


def test_a_mapping_that_is_neither_preset_nor_file_is_blamed_on_the_config(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_surface_mapping(_surface("xtouch-mini"), 2, "c.toml", tmp_path)
    (line,) = caught.value.errors
    assert line.startswith(
        'c.toml: surfaces[2].mapping: "xtouch-mini" is neither a preset nor a file (expected a preset name ('
    )


def test_the_presets_ship_as_package_data():
    assert set(preset_names()) == {
        "behringer-xtouch-mini",
        "korg-nanokontrol2",
        "mackie-control",
        "generic-8-knob",
    }
    assert all((resources.files("controlroom.mappings") / f"{n}.toml").is_file() for n in preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_binds_to_a_config(name):
    m = load_surface_mapping(_surface(name), 0, "c.toml", Path("."))
    result = bind(m, Vocabulary(config()))
    assert result.errors == ()
    assert result.mapping.controls


# --- binding to a config ------------------------------------------------------------------------


def test_binding_turns_indices_into_names_and_leaves_indices_beyond_the_choices_unused():
    m = mapping("""
[[control]]
midi = { type = "note", channel = 1, note = 1 }
target = "speakers"
value = 2
[[control]]
midi = { type = "note", channel = 1, note = 2 }
target = "speakers"
value = 7
""")
    result = bind(m, Vocabulary(config()))
    assert [c.value for c in result.mapping.controls] == ["crap"]
    assert result.unused == ("test-mapping.toml: control[1]: unused (speakers index 7 out of range (expected 0 to 2))",)


def test_binding_rejects_names_and_levels_the_config_does_not_have():
    m = mapping("""
[[control]]
midi = { type = "note", channel = 1, note = 1 }
target = "speakers"
value = "nearfield"
[[control]]
midi = { type = "note", channel = 1, note = 2 }
target = "volume"
value = 6.0
[[control]]
target = "source"
feedback = { type = "program", channel = 1, values = { mixx = 1 } }
""")
    result = bind(m, Vocabulary(config()))
    assert result.errors == (
        "test-mapping.toml: control[0].value: speakers 'nearfield' unknown (expected one of studio, consumer, crap)",
        "test-mapping.toml: control[1].value: volume 6 dB out of range (expected -80 to 0 dB)",
        "test-mapping.toml: control[2].feedback.values.mixx: is not a source choice (expected one of mix, ref, tape)",
    )
    assert result.mapping.controls == ()


# --- controlroom check -------------------------------------------------------------------------


def test_check_validates_every_surface_mapping(tmp_path, capsys):
    (tmp_path / "desk.toml").write_text(
        '[[control]]\nmidi = { type = "cc", channel = 17, control = 1 }\ntarget = "volume"\n'
    )
    path = tmp_path / "c.toml"
    path.write_text(_config_with_surfaces("desk.toml", "generic-8-knob"))
    assert cli.main(["check", "-c", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path / 'desk.toml'}: control[0].midi.channel: 17 is out of range (expected a MIDI channel from 1 to 16)",
    ]


def test_check_lists_each_surface_when_all_is_well(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(_config_with_surfaces("mackie-control", "generic-8-knob"))
    assert cli.main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("  surface s0: Mackie Control") and "unused" in out[1]
    assert out[2] == "  surface s1: Generic 8-knob controller (CC 70-77, channel 1) (8 controls)"


def _surface(mapping_spec: str):
    from controlroom.daemon.config import SurfaceConfig

    return SurfaceConfig("s", "in", None, mapping_spec)


def _config_with_surfaces(*mappings: str) -> str:
    from midikit import CONFIG_TOML

    return CONFIG_TOML + "".join(
        f'[[surfaces]]\nname = "s{i}"\ninput = "port {i}"\nmapping = "{spec}"\n' for i, spec in enumerate(mappings)
    )
