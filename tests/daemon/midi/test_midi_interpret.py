"""Interpreting MIDI: every source type, encoder encoding, pick-up, button mode and enum step,
against a real controller (config: volume -80..0 dB starting at -20; sets studio, consumer,
crap; sources mix, ref, tape; [ab] mix vs ref)."""

from __future__ import annotations

import pytest
from midikit import Rig, bend, cc, note, note_off, program

from controlroom.daemon.midi.interpret import Action, acceleration, coalesce, relative_ticks
from controlroom.daemon.midi.mapping import Control


@pytest.mark.parametrize(
    ("encoder", "value", "ticks"),
    [
        ("relative-twos", 1, 1),
        ("relative-twos", 3, 3),
        ("relative-twos", 127, -1),
        ("relative-twos", 125, -3),
        ("relative-offset", 65, 1),
        ("relative-offset", 67, 3),
        ("relative-offset", 63, -1),
        ("relative-offset", 61, -3),
        ("relative-offset", 64, 0),
        ("relative-signed", 1, 1),
        ("relative-signed", 3, 3),
        ("relative-signed", 65, -1),
        ("relative-signed", 67, -3),
    ],
)
def test_relative_encodings_decode_signed_ticks(encoder, value, ticks):
    assert relative_ticks(encoder, value) == ticks


ENCODER = """
[[control]]
midi = {{ type = "cc", channel = 2, control = 16 }}
target = "volume"
encoder = "{encoder}"
step_db = 0.5
"""


@pytest.mark.parametrize(
    ("encoder", "up", "down"),
    [("relative-twos", 1, 127), ("relative-offset", 65, 63), ("relative-signed", 1, 65)],
)
def test_relative_encoders_step_the_volume_by_step_db_per_tick(encoder, up, down):
    rig = Rig(ENCODER.format(encoder=encoder))
    rig.send(cc(2, 16, up), at=0.0)
    assert rig.state.volume == -19.5
    rig.send(cc(2, 16, down), at=1.0)
    rig.send(cc(2, 16, down), at=2.0)
    assert rig.state.volume == -20.5


def test_a_multi_tick_message_moves_as_far_as_its_ticks():
    rig = Rig(ENCODER.format(encoder="relative-signed"))
    rig.send(cc(2, 16, 68), at=0.0)  # Mackie V-Pot turned fast: 4 ticks counter-clockwise
    assert rig.state.volume == -22.0


def test_encoders_stop_at_the_volume_limits():
    rig = Rig(ENCODER.format(encoder="relative-twos"))
    for k in range(100):
        rig.send(cc(2, 16, 15), at=float(k))  # +7.5 dB per message
    assert rig.state.volume == 0.0


ACCELERATED = """
[[control]]
midi = { type = "cc", channel = 1, control = 16 }
target = "volume"
encoder = "relative-signed"
step_db = 0.25
acceleration = 3.0
"""


def test_slow_turning_moves_by_step_db():
    rig = Rig(ACCELERATED)
    for k in range(4):
        rig.send(cc(1, 16, 1), at=k * 0.5)
    assert rig.state.volume == -19.0


def test_fast_turning_moves_further_per_tick():
    rig = Rig(ACCELERATED)
    rig.send(cc(1, 16, 1), at=0.0)  # first tick: nothing to compare with, one step
    for k in range(1, 4):
        rig.send(cc(1, 16, 1), at=k * 0.01)  # 10 ms apart: the full (1 + 3) x step
    assert rig.state.volume == pytest.approx(-20.0 + 0.25 + 3 * 1.0)


@pytest.mark.parametrize(("interval", "factor"), [(1.0, 1.0), (0.1, 1.0), (0.06, 2.5), (0.02, 4.0), (0.001, 4.0)])
def test_acceleration_grows_linearly_between_slow_and_fast(interval, factor):
    control = Control(where="x", target="volume", midi=None, acceleration=3.0)
    assert acceleration(control, interval) == pytest.approx(factor)


def test_without_acceleration_the_speed_does_not_matter():
    rig = Rig(ENCODER.format(encoder="relative-twos"))
    for k in range(4):
        rig.send(cc(2, 16, 1), at=k * 0.001)
    assert rig.state.volume == -18.0


FADER_14 = """
[[control]]
midi = { type = "cc", channel = 1, control = 7, bits = 14 }
target = "volume"
motorised = true
"""


def test_a_14_bit_pair_acts_on_the_lsb_with_the_latest_msb():
    rig = Rig(FADER_14)
    assert rig.send(cc(1, 7, 127)).actions == ()  # MSB alone: wait for the LSB
    assert rig.state.volume == -20.0
    rig.send(cc(1, 39, 127))
    assert rig.state.volume == 0.0
    rig.send(cc(1, 7, 64))
    rig.send(cc(1, 39, 0))
    assert rig.state.volume == pytest.approx(-80 + 80 * (64 << 7) / 16383, abs=0.01)


def test_a_14_bit_lsb_before_any_msb_does_nothing():
    rig = Rig(FADER_14)
    outcome = rig.send(cc(1, 39, 100))
    assert outcome is not None and outcome.actions == ()
    assert rig.state.volume == -20.0


def test_14_bit_resolution_reaches_hundredths_of_a_db():
    rig = Rig(FADER_14)
    positions = []
    for lsb in (0, 3, 6):  # 80 dB / 16383 steps: 0.0049 dB a step, 0.01 dB kept
        rig.send(cc(1, 7, 100))
        rig.send(cc(1, 39, lsb))
        positions.append(rig.state.volume)
    assert positions == sorted(set(positions))  # 7-bit would give one value


NRPN = """
[[control]]
midi = {{ type = "nrpn", channel = 3, parameter = 300, bits = {bits} }}
target = "volume"
motorised = true
step_db = 1.0
"""


def select(channel: int, parameter: int) -> list:
    return [cc(channel, 99, parameter >> 7), cc(channel, 98, parameter & 0x7F)]


def test_nrpn_14_bit_takes_its_value_from_data_entry_msb_and_lsb():
    rig = Rig(NRPN.format(bits=14))
    for message in select(3, 300) + [cc(3, 6, 127)]:
        rig.send(message)
    assert rig.state.volume == -20.0  # the MSB alone is not the value
    rig.send(cc(3, 38, 127))
    assert rig.state.volume == 0.0


def test_nrpn_7_bit_acts_on_data_entry_msb():
    rig = Rig(NRPN.format(bits=7))
    for message in select(3, 300) + [cc(3, 6, 0)]:
        rig.send(message)
    assert rig.state.volume == -80.0


def test_nrpn_increment_and_decrement_step_by_step_db():
    rig = Rig(NRPN.format(bits=14))
    for message in select(3, 300) + [cc(3, 96, 1), cc(3, 96, 1), cc(3, 97, 1)]:
        rig.send(message)
    assert rig.state.volume == -19.0


def test_nrpn_data_for_another_parameter_or_an_rpn_is_not_ours():
    rig = Rig(NRPN.format(bits=7))
    for message in select(3, 301):
        rig.send(message)
    assert rig.send(cc(3, 6, 0)) is None
    for message in select(3, 300) + [cc(3, 101, 0), cc(3, 100, 0)]:  # RPN 0 (pitch bend range)
        rig.send(message)
    assert rig.send(cc(3, 6, 0)) is None
    assert rig.state.volume == -20.0


PITCHBEND = """
[[control]]
midi = { type = "pitchbend", channel = 9 }
target = "volume"
motorised = true
"""


@pytest.mark.parametrize(("value14", "volume"), [(16383, 0.0), (0, -80.0), (8192, -80 + 80 * 8192 / 16383)])
def test_pitch_bend_faders_cover_the_volume_range(value14, volume):
    rig = Rig(PITCHBEND)
    rig.send(bend(9, value14))
    assert rig.state.volume == pytest.approx(volume, abs=0.01)


def test_messages_on_other_channels_are_not_ours():
    rig = Rig(PITCHBEND)
    assert rig.send(bend(8, 16383)) is None
    assert rig.state.volume == -20.0


# --- pick-up ------------------------------------------------------------------------------------

KNOB = """
[[control]]
midi = { type = "cc", channel = 1, control = 70 }
target = "volume"
"""
# linear in dB over -80..0: position p is -80 + 80 p dB; -20 dB sits at 95.25 / 127


def test_a_knob_far_from_the_volume_does_not_jump_it():
    rig = Rig(KNOB)
    rig.send(cc(1, 70, 127))
    assert rig.state.volume == -20.0


def test_a_knob_takes_over_when_it_crosses_the_volume_from_below():
    rig = Rig(KNOB)
    for value in (80, 90, 94):
        rig.send(cc(1, 70, value))
        assert rig.state.volume == -20.0
    rig.send(cc(1, 70, 97))  # crossed 95.25
    assert rig.state.volume == pytest.approx(-80 + 80 * 97 / 127, abs=0.01)
    rig.send(cc(1, 70, 60))  # engaged: follows anywhere now
    assert rig.state.volume == pytest.approx(-80 + 80 * 60 / 127, abs=0.01)


def test_a_knob_takes_over_when_it_crosses_the_volume_from_above():
    rig = Rig(KNOB)
    for value in (127, 110, 100):
        rig.send(cc(1, 70, value))
    assert rig.state.volume == -20.0
    rig.send(cc(1, 70, 90))
    assert rig.state.volume == pytest.approx(-80 + 80 * 90 / 127, abs=0.01)


def test_a_knob_takes_over_when_it_reaches_the_volume_within_a_step():
    rig = Rig(KNOB)
    rig.send(cc(1, 70, 95))  # first message, 0.25 steps from -20 dB
    assert rig.state.volume == pytest.approx(-80 + 80 * 95 / 127, abs=0.01)


def test_a_change_from_elsewhere_makes_the_knob_pick_up_again():
    rig = Rig(KNOB)
    rig.send(cc(1, 70, 95))
    rig.elsewhere("volume", -60.0)
    rig.send(cc(1, 70, 100))
    assert rig.state.volume == -60.0
    rig.send(cc(1, 70, 30))  # crossed -60 dB (31.75) on the way down
    assert rig.state.volume == pytest.approx(-80 + 80 * 30 / 127, abs=0.01)


def test_two_knobs_on_one_target_each_pick_up_after_the_other_moved_it():
    rig = Rig(KNOB + KNOB.replace("control = 70", "control = 71"))
    rig.send(cc(1, 70, 95))
    rig.send(cc(1, 70, 120))
    rig.send(cc(1, 71, 10))  # the other knob has not reached -4.9 dB
    assert rig.state.volume == pytest.approx(-80 + 80 * 120 / 127, abs=0.01)
    rig.send(cc(1, 70, 110))  # the first one still holds the volume
    assert rig.state.volume == pytest.approx(-80 + 80 * 110 / 127, abs=0.01)


@pytest.mark.parametrize(
    "extra", ["motorised = true", 'feedback = { type = "cc", channel = 1, control = 70 }', "pickup = false"]
)
def test_motorised_controls_with_feedback_or_without_pickup_act_at_once(extra):
    rig = Rig(KNOB + extra + "\n")
    rig.send(cc(1, 70, 127))
    assert rig.state.volume == 0.0


def test_a_knob_on_a_choice_picks_up_in_the_current_zone():
    rig = Rig('[[control]]\nmidi = { type = "cc", channel = 1, control = 71 }\ntarget = "speakers"\n')
    rig.send(cc(1, 71, 127))  # zone of crap; studio is playing
    assert rig.state.speakers == "studio"
    rig.send(cc(1, 71, 20))  # studio's zone: picked up
    rig.send(cc(1, 71, 64))
    assert rig.state.speakers == "consumer"


# --- taper and range ----------------------------------------------------------------------------


def test_an_audio_taper_puts_half_travel_a_quarter_range_below_the_top():
    rig = Rig(PITCHBEND + 'taper = "audio"\n')
    rig.send(bend(9, 8192))
    assert rig.state.volume == pytest.approx(-20.0, abs=0.01)


def test_a_control_range_beyond_max_volume_is_held_within_it():
    rig = Rig(PITCHBEND + "min_db = -40.0\nmax_db = 12.0\n")
    rig.send(bend(9, 16383))
    assert rig.state.volume == 0.0
    rig.send(bend(9, 0))
    assert rig.state.volume == -40.0


# --- buttons ------------------------------------------------------------------------------------

BUTTON = """
[[control]]
midi = {{ type = "note", channel = 11, note = 8 }}
target = "{target}"
button = "{mode}"
{extra}
"""


def test_toggle_switches_on_press_and_ignores_release():
    rig = Rig(BUTTON.format(target="mute", mode="toggle", extra=""))
    rig.send(note(11, 8))
    rig.send(note_off(11, 8))
    assert rig.state.mute is True
    rig.send(note(11, 8))
    rig.send(note(11, 8, velocity=0))  # note on with velocity 0 is a release too
    assert rig.state.mute is False


def test_momentary_holds_a_switch_while_pressed():
    rig = Rig(BUTTON.format(target="dim", mode="momentary", extra=""))
    rig.send(note(11, 8))
    assert rig.state.dim is True
    rig.send(note_off(11, 8), at=5.0)
    assert rig.state.dim is False


def test_momentary_restores_what_was_there_before():
    rig = Rig(BUTTON.format(target="speakers", mode="momentary", extra='value = "crap"'))
    rig.elsewhere("speakers", "consumer")
    rig.send(note(11, 8))
    assert rig.state.speakers == "crap"
    rig.send(note_off(11, 8))
    assert rig.state.speakers == "consumer"


def test_press_sets_its_value_and_release_does_nothing():
    rig = Rig(BUTTON.format(target="speakers", mode="press", extra="value = 2"))  # the third set
    rig.send(note(11, 8))
    rig.send(note_off(11, 8))
    assert rig.state.speakers == "crap"


LATCH = BUTTON.format(target="dim", mode="latch", extra="hold_ms = 400.0")


def test_latch_short_press_toggles_and_stays():
    rig = Rig(LATCH)
    rig.send(note(11, 8), at=10.0)
    rig.send(note_off(11, 8), at=10.2)
    assert rig.state.dim is True
    rig.send(note(11, 8), at=11.0)
    rig.send(note_off(11, 8), at=11.1)
    assert rig.state.dim is False


def test_latch_long_hold_is_momentary():
    rig = Rig(LATCH)
    rig.send(note(11, 8), at=10.0)
    assert rig.state.dim is True
    rig.send(note_off(11, 8), at=10.4)
    assert rig.state.dim is False


def test_latch_hold_threshold_defaults_to_half_a_second():
    rig = Rig(BUTTON.format(target="dim", mode="latch", extra=""))
    rig.send(note(11, 8), at=0.0)
    rig.send(note_off(11, 8), at=0.45)
    assert rig.state.dim is True
    rig.send(note(11, 8), at=1.0)
    rig.send(note_off(11, 8), at=1.5)
    assert rig.state.dim is True  # toggled off on press, held: back on at release


def test_a_release_without_a_press_is_ignored():
    rig = Rig(BUTTON.format(target="dim", mode="momentary", extra=""))
    rig.elsewhere("dim", True)
    rig.send(note_off(11, 8))
    assert rig.state.dim is True


def test_cc_buttons_press_on_nonzero_and_release_on_zero():
    rig = Rig('[[control]]\nmidi = { type = "cc", channel = 1, control = 32 }\ntarget = "dim"\nbutton = "momentary"\n')
    rig.send(cc(1, 32, 127))
    assert rig.state.dim is True
    rig.send(cc(1, 32, 0))
    assert rig.state.dim is False


def test_program_changes_press_a_button():
    rig = Rig(
        '[[control]]\nmidi = { type = "program", channel = 16, program = 5 }\ntarget = "source"\nvalue = "tape"\n'
    )
    rig.send(program(16, 5))
    assert rig.state.source == "tape"
    assert rig.send(program(16, 6)) is None


def test_a_step_button_moves_the_volume():
    rig = Rig(BUTTON.format(target="volume", mode="step", extra="step_db = -3.0"))
    rig.send(note(11, 8))
    assert rig.state.volume == -23.0


def test_buttons_with_feedback_ask_for_their_led_again():
    rig = Rig(BUTTON.format(target="mute", mode="toggle", extra='feedback = { type = "note", channel = 11, note = 8 }'))
    assert rig.send(note(11, 8)).refresh == (0,)
    assert rig.send(note_off(11, 8)).refresh == (0,)


# --- enum targets -------------------------------------------------------------------------------


def test_next_and_prev_buttons_step_through_the_choices_and_wrap():
    rig = Rig(
        BUTTON.format(target="speakers", mode="next", extra="")
        + BUTTON.format(target="speakers", mode="prev", extra="").replace("note = 8", "note = 9")
    )
    rig.send(note(11, 8))
    assert rig.state.speakers == "consumer"
    rig.send(note(11, 9))
    rig.send(note(11, 9))
    assert rig.state.speakers == "crap"


def test_a_relative_encoder_steps_a_choice_by_its_ticks():
    rig = Rig(
        '[[control]]\nmidi = { type = "cc", channel = 1, control = 17 }\ntarget = "solo"\nencoder = "relative-signed"\n'
    )
    rig.send(cc(1, 17, 2))
    assert rig.state.solo == "right"
    rig.send(cc(1, 17, 65))
    assert rig.state.solo == "left"


def test_the_ab_button_also_switches_the_source():
    rig = Rig(BUTTON.format(target="ab", mode="next", extra=""))
    rig.send(note(11, 8))
    assert (rig.state.ab, rig.state.source) == ("b", "ref")


# --- touch --------------------------------------------------------------------------------------

TOUCHED = (
    PITCHBEND + 'touch = { type = "note", channel = 1, note = 112 }\nfeedback = { type = "pitchbend", channel = 9 }\n'
)


def test_touch_notes_mark_the_fader_touched_and_a_release_refreshes_it():
    rig = Rig(TOUCHED)
    assert rig.send(note(1, 112)).actions == ()
    assert rig.interpreter.touched(0)
    outcome = rig.send(note(1, 112, velocity=0))
    assert not rig.interpreter.touched(0)
    assert outcome.refresh == (0,)


# --- merging a burst ----------------------------------------------------------------------------


def test_coalescing_keeps_the_last_position_and_adds_up_steps():
    actions = [
        Action(0, "volume", "set", -30.0, continuous=True),
        Action(0, "volume", "set", -29.0, continuous=True),
        Action(1, "volume", "step", 0.5, continuous=True),
        Action(1, "volume", "step", 1.5, continuous=True),
        Action(2, "mute", "toggle"),
        Action(2, "mute", "toggle"),
        Action(0, "volume", "set", -28.0, continuous=True),
    ]
    assert coalesce(actions) == [
        Action(0, "volume", "set", -29.0, continuous=True),
        Action(1, "volume", "step", 2.0, continuous=True),
        Action(2, "mute", "toggle"),
        Action(2, "mute", "toggle"),
        Action(0, "volume", "set", -28.0, continuous=True),
    ]
