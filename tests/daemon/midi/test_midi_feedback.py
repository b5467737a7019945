"""Feedback: the exact bytes a surface receives for a state, and only what changed."""

from __future__ import annotations

import pytest
from midikit import bound, controller

from controlroom.daemon.midi.feedback import Feedback, lcd_text, ring_value
from controlroom.daemon.midi.taper import ChoiceScale, LevelScale, SwitchScale

MCU = """
[[control]]
midi = { type = "pitchbend", channel = 9 }
target = "volume"
motorised = true
feedback = { type = "pitchbend", channel = 9 }
[[control]]
midi = { type = "cc", channel = 1, control = 16 }
target = "volume"
encoder = "relative-signed"
feedback = { type = "cc", channel = 1, control = 48, ring = "wrap" }
[[control]]
midi = { type = "note", channel = 1, note = 54 }
target = "dim"
button = "latch"
feedback = { type = "note", channel = 1, note = 54 }
[[control]]
midi = { type = "note", channel = 1, note = 24 }
target = "speakers"
value = "studio"
feedback = { type = "note", channel = 1, note = 24 }
[[control]]
midi = { type = "note", channel = 1, note = 25 }
target = "speakers"
value = "crap"
feedback = { type = "note", channel = 1, note = 25 }
[[lcd]]
offset = 0
text = "Volume"
[[lcd]]
offset = 56
width = 7
target = "volume"
"""


def rendered(mapping_text: str, **state) -> tuple[Feedback, list[str]]:
    c = controller()
    for target, value in state.items():
        c.apply(target, "set", value)
    feedback = Feedback(bound(mapping_text, c.vocabulary), c.vocabulary)
    return feedback, [m.hex() for m in feedback.render(c.view())]


def test_a_mackie_surface_gets_fader_ring_leds_and_lcd_as_bytes():
    _, sent = rendered(MCU, volume=0.0, speakers="crap")
    assert sent == [
        "E8 7F 7F",  # master fader fully up
        "B0 30 2B",  # ring: wrap mode (2 << 4), LED 11
        "90 36 00",  # F1 (dim) dark
        "90 18 00",  # SELECT 1 (studio) dark
        "90 19 7F",  # SELECT 2 (crap) lit
        "F0 00 00 66 14 12 00 56 6F 6C 75 6D 65 20 F7",  # "Volume " at offset 0
        "F0 00 00 66 14 12 38 30 2E 30 64 42 20 20 F7",  # "0.0dB  " at offset 56
    ]


def test_the_fader_goes_down_with_the_volume():
    _, sent = rendered(MCU, volume=-80.0)
    assert sent[0] == "E8 00 00"


@pytest.mark.parametrize(
    ("mode", "position", "value"),
    [("dot", 0.0, 0x01), ("boost-cut", 0.5, 0x16), ("wrap", 1.0, 0x2B), ("spread", 0.3, 0x34)],
)
def test_mackie_ring_values_put_the_mode_in_bits_5_4_and_the_led_in_bits_3_0(mode, position, value):
    assert ring_value(mode, position) == value


@pytest.mark.parametrize(
    ("target", "value", "width", "text"),
    [
        ("volume", -20.0, 7, "-20.0dB"),
        ("volume", -5.5, 7, "-5.5dB "),
        ("volume", -120.0, 7, "-120.0 "),
        ("speakers", "consumer", 7, "consume"),
        ("mute", True, 4, "on  "),
    ],
)
def test_lcd_text_fits_its_width(target, value, width, text):
    assert lcd_text(target, value, width) == text


def test_only_what_changed_is_sent_again():
    c = controller()
    feedback = Feedback(bound(MCU, c.vocabulary), c.vocabulary)
    feedback.render(c.view())
    changes = c.apply("dim", "set", True)
    assert [m.hex() for m in feedback.render(c.view(), changes)] == ["90 36 7F"]
    assert feedback.render(c.view(), changes) == []


def test_after_a_reset_everything_is_sent_again():
    c = controller()
    feedback = Feedback(bound(MCU, c.vocabulary), c.vocabulary)
    first = feedback.render(c.view())
    feedback.reset()
    assert feedback.render(c.view()) == first


def test_refresh_resends_an_unchanged_led_and_assume_sends_nothing_but_remembers():
    c = controller()
    feedback = Feedback(bound(MCU, c.vocabulary), c.vocabulary)
    feedback.render(c.view())
    assert [m.hex() for m in feedback.render(c.view(), (), refresh={2})] == ["90 36 00"]
    changes = c.apply("volume", "set", 0.0)
    sent = [m.hex() for m in feedback.render(c.view(), changes, assume={0})]
    assert "E8 7F 7F" not in sent and "B0 30 2B" in sent
    assert feedback.render(c.view(), changes) == []  # the fader already shows it


def test_custom_on_and_off_values_light_leds():
    _, sent = rendered(
        """
[[control]]
midi = { type = "note", channel = 1, note = 3 }
target = "mute"
feedback = { type = "note", channel = 1, note = 3, on = 1, off = 0 }
""",
        mute=True,
    )
    assert sent == ["90 03 01"]


def test_a_next_button_lights_away_from_the_first_choice():
    text = '[[control]]\nmidi = { type = "note", channel = 1, note = 3 }\ntarget = "solo"\nbutton = "next"\nfeedback = { type = "note", channel = 1, note = 3 }\n'
    assert rendered(text)[1] == ["90 03 00"]
    assert rendered(text, solo="side")[1] == ["90 03 7F"]


def test_14_bit_cc_feedback_sends_msb_then_lsb():
    _, sent = rendered(
        """
[[control]]
midi = { type = "cc", channel = 2, control = 7, bits = 14 }
target = "volume"
feedback = { type = "cc", channel = 2, control = 7, bits = 14 }
""",
        volume=0.0,
    )
    assert sent == ["B1 07 7F", "B1 27 7F"]


def test_outboard_gear_gets_a_program_change_for_each_source():
    c = controller()
    text = (
        '[[control]]\ntarget = "source"\nfeedback = { type = "program", channel = 3, values = { mix = 0, ref = 5 } }\n'
    )
    feedback = Feedback(bound(text, c.vocabulary), c.vocabulary)
    assert [m.hex() for m in feedback.render(c.view())] == ["C2 00"]

    def select(source: str) -> list[str]:
        changes = c.apply("source", "set", source)
        return [m.hex() for m in feedback.render(c.view(), changes)]

    assert select("ref") == ["C2 05"]
    assert select("tape") == []  # tape has no program
    assert select("mix") == ["C2 00"]


def test_program_feedback_without_values_sends_the_choice_index():
    _, sent = rendered(
        '[[control]]\ntarget = "speakers"\nfeedback = { type = "program", channel = 1 }\n', speakers="crap"
    )
    assert sent == ["C0 02"]


def test_a_cc_to_outboard_gear_maps_a_switch_through_values():
    _, sent = rendered(
        '[[control]]\ntarget = "mute"\nfeedback = { type = "cc", channel = 1, control = 20, values = { on = 100, off = 3 } }\n',
        mute=True,
    )
    assert sent == ["B0 14 64"]


def test_a_blind_test_shows_labels_and_no_source_leds():
    c = controller()
    text = """
[[control]]
midi = { type = "note", channel = 1, note = 0 }
target = "source"
value = "mix"
feedback = { type = "note", channel = 1, note = 0 }
[[control]]
midi = { type = "cc", channel = 1, control = 18 }
target = "source"
encoder = "relative-signed"
feedback = { type = "cc", channel = 1, control = 50, ring = "dot" }
[[lcd]]
offset = 70
width = 7
target = "source"
"""
    feedback = Feedback(bound(text, c.vocabulary), c.vocabulary)
    c.apply("blind", "set", True)
    view = c.view()
    assert view["source"] in ("x", "y")
    sent = [m.hex() for m in feedback.render(view)]
    assert sent == ["90 00 00", "F0 00 00 66 14 12 46 " + f"{ord(view['source']):02X} 20 20 20 20 20 20 F7"]


def test_scales_map_positions_to_values_and_back():
    audio = LevelScale(-80.0, 0.0, "audio")
    assert (audio.value(0.0), audio.value(0.5), audio.value(1.0)) == (-80.0, -20.0, 0.0)
    assert audio.position(-20.0) == pytest.approx(0.5)
    linear = LevelScale(-80.0, 0.0)
    assert (linear.value(0.25), linear.position(-60.0)) == (-60.0, 0.25)
    choices = ChoiceScale(("a", "b", "c"))
    assert [choices.value(p) for p in (0.0, 0.34, 0.67, 1.0)] == ["a", "b", "c", "c"]
    assert choices.position("b") == 0.5 and choices.position("x") is None
    assert (SwitchScale().value(0.49), SwitchScale().value(0.5)) == (False, True)
