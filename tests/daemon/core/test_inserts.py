"""[inserts]: the config's send/return pairs become sends in the path and a source to compare;
a measurement lines the dry source up with the return and matches their loudness (how it is
measured: tests/daemon/service/test_measurement.py)."""

import numpy as np
import pytest
from insertkit import CONFIG, measured

from controlroom.daemon.config import parse_config
from controlroom.daemon.core.controller import NO_SOURCE, Controller
from controlroom.daemon.core.inserts import Inserts
from controlroom.daemon.core.path import controls, path_spec
from controlroom.daemon.core.targets import Vocabulary
from controlroom.dsp.control import PathBuffers
from controlroom.dsp.path import render


def test_the_return_is_a_source_and_the_channel_counts_include_sends_and_returns():
    config = parse_config(CONFIG)
    assert list(config.sources) == ["mix", "comp"]
    assert config.sources["comp"].channels == (5, 6)
    assert (config.audio.input_channels, config.audio.output_channels) == (6, 8)


def test_the_source_is_sent_after_its_trim_and_the_return_can_be_heard():
    config = parse_config(CONFIG)
    vocabulary = Vocabulary(config)
    state = vocabulary.initial()
    vocabulary.set(state, "volume", 0.0)
    vocabulary.set(state, "ab", "b")
    x = np.zeros((2048, 6), dtype=np.float32)
    x[:, 0], x[:, 1], x[:, 4], x[:, 5] = 0.5, 0.4, 0.3, 0.2
    buffers = PathBuffers(path_spec(config), controls(config, state))
    buffers.settle()
    y = np.zeros((2048, 8), dtype=np.float32)
    render(x, y, 64, *buffers.arrays)
    half = 10 ** (-6 / 20)
    np.testing.assert_allclose(y[-1], [0.3, 0.2, 0, 0, 0, 0, 0.5 * half, 0.4 * half], atol=1e-6)


# --- what a measurement sets in the path ---------------------------------------------------------

TWO_INSERTS = (
    CONFIG
    + """
[inserts.tape]
send = [9]
return = [7]
source = "mix"
"""
)


def inserts_with(text: str, **latencies: int) -> Inserts:
    config = parse_config(text)
    inserts = Inserts(config)
    inserts.results.update({name: measured(config, name, latency) for name, latency in latencies.items()})
    return inserts


def test_the_dry_source_waits_for_its_return_and_the_return_is_raised_by_the_inserts_loss():
    config = parse_config(CONFIG)
    inserts = Inserts(config)
    inserts.results["comp"] = measured(config, "comp", 225, -4.0)
    assert inserts.delay_samples() == {"mix": 225, "comp": 0}
    assert inserts.offset_db() == {"comp": 4.0}


def test_with_two_inserts_on_one_source_the_quicker_return_waits_for_the_slower():
    inserts = inserts_with(TWO_INSERTS, comp=225, tape=1000)
    assert inserts.delay_samples() == {"mix": 1000, "comp": 775, "tape": 0}


def test_the_compensating_boost_is_capped_like_matching_and_together_with_it():
    config = parse_config(CONFIG + "max_boost_db = 3.0\n")
    inserts = Inserts(config)
    inserts.results["comp"] = measured(config, "comp", 10, -12.0)
    assert inserts.offset_db() == {"comp": 3.0}
    state = Vocabulary(config).initial()
    # a match offset that also raises the return leaves the insert less room under the cap
    assert controls(config, state, {"comp": 2.0}, inserts).offset_db == (0.0, 1.0)
    assert controls(config, state, {"comp": -4.0}, inserts).offset_db == (0.0, 3.0)
    inserts.results["comp"] = measured(config, "comp", 10, +5.0)  # a louder insert is always brought down
    assert inserts.offset_db() == {"comp": -5.0}


def test_the_controls_carry_delays_offsets_and_the_insert_being_measured():
    config = parse_config(TWO_INSERTS)
    inserts = Inserts(config)
    inserts.results["tape"] = measured(config, "tape", 300, -2.5)
    inserts.measuring = "comp"
    c = controls(config, Vocabulary(config).initial(), {}, inserts)
    assert list(config.sources) == ["mix", "comp", "tape"]
    assert c.delay_samples == (300, 0, 0)
    assert c.offset_db == (0.0, 0.0, 2.5)
    assert c.measuring == 0


def test_a_silenced_return_is_off_the_speakers_and_comes_back_after():
    config = parse_config(CONFIG)
    controller = Controller(config, Vocabulary(config).initial())
    controller.apply("source", "set", "comp")
    controller.inserts.silenced = "comp"
    assert controller._controls().source == NO_SOURCE
    controller.inserts.silenced = None
    assert controller._controls().source == 1


def test_switching_between_a_measured_inserts_dry_source_and_return_crossfades_at_equal_gain():
    config = parse_config(TWO_INSERTS + "[sources.ref]\nchannels = [3, 4]\n")
    controller = Controller(config, Vocabulary(config).initial())
    controller.apply("source", "set", "comp")
    assert not controller._controls().coherent_switch  # not measured: not aligned either
    controller.inserts.results.update(comp=measured(config, "comp", 225), tape=measured(config, "tape", 300))
    for heard, new, coherent in [
        ("comp", "mix", True),
        ("mix", "tape", True),
        ("tape", "comp", True),
        ("comp", "ref", False),
        ("ref", "mix", False),
    ]:
        assert controller.state.source == heard
        controller.apply("source", "set", new)
        assert controller._controls().coherent_switch == coherent, (heard, new)


def test_matching_compares_what_enters_the_bus_trim_and_insert_gain_included():
    config = parse_config(CONFIG + 'match = "auto"\n')
    measurements = {"mix": -20.0, "comp": -23.0}  # before trim: mix is trimmed by -6 dB
    controller = Controller(config, Vocabulary(config).initial(), measure=measurements.get)
    controller.inserts.results["comp"] = measured(config, "comp", 100, -3.0)  # compensated by +3 dB
    controller.apply("ab", "set", "b")
    # heard: mix at -20 - 6 = -26; comp enters at -23 + 3 = -20: matched 6 dB down
    assert controller.match_db["comp"] == pytest.approx(-6.0)


def test_matching_ignores_the_return_of_an_insert_being_measured():
    config = parse_config(CONFIG + 'match = "auto"\n')
    measurements = {"mix": -20.0, "comp": -5.0}  # comp's meter has heard the noise
    controller = Controller(config, Vocabulary(config).initial(), measure=measurements.get)
    controller.inserts.busy = "comp"
    controller.apply("ab", "set", "b")
    assert controller.match_db["comp"] == 0.0  # kept, not matched to the noise


def test_matching_counts_the_insert_compensation_the_path_really_applies():
    config = parse_config(CONFIG + 'match = "auto"\nmax_boost_db = 6.0\n')
    measurements = {"mix": -8.0, "comp": -22.0}  # mix is trimmed by -6 dB: -14 on the bus
    controller = Controller(config, Vocabulary(config).initial(), measure=measurements.get)
    controller.inserts.results["comp"] = measured(config, "comp", 100, -8.0)  # wants +8, capped at +6
    controller.apply("ab", "set", "b")
    # comp would need +8 + 2 to reach -14: match +2, and the two together capped at +6
    assert controller.match_db["comp"] == pytest.approx(2.0)
    assert controls(config, controller.state, controller.match_db, controller.inserts).offset_db == (0.0, 4.0)
    controller.apply("ab", "set", "a")
    # comp was heard at -22 + 4 + 2 = -16, so mix (-14) comes in 2 dB down
    assert controller.match_db["mix"] == pytest.approx(-2.0)


def saved_entry(**changes):
    entry = {
        "latency": 225,
        "gain_db": -4.0,
        "coherence": 0.99,
        "inverted": True,
        "samplerate": 48000,
        "blocksize": 64,
        "send": [9],
        "returns": [7],
        "source": "mix",
        "latency_ms": 4.688,
    }
    return {**entry, **changes}


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({}, None),
        ({"samplerate": 96000}, "96000 Hz"),
        ({"blocksize": 256}, "256 frames"),
        ({"returns": [8]}, "has changed"),
        ({"source": "comp"}, "has changed"),
        ({"latency": -1}, "whole number"),
        ({"latency": 10**6}, "out of range"),
        ({"latency": 1.5}, "whole number"),
        ({"latency": True}, "whole number"),
        ({"samplerate": float("inf")}, "whole number"),
        ({"gain_db": float("nan")}, "out of range"),
        ({"gain_db": 10**400}, "too large"),
        ({"coherence": 1.5}, "out of range"),
        ({"inverted": "no"}, "wrong type"),
        ({"send": "9"}, "not a list"),
        ({"send": [True]}, "not a list"),
    ],
)
def test_a_saved_measurement_is_restored_only_when_sound_and_still_fitting_the_config(changes, reason):
    config = parse_config(TWO_INSERTS)
    inserts = Inserts(config)
    warnings = inserts.restore({"tape": saved_entry(**changes)})
    if reason is None:
        assert warnings == [] and inserts.as_dict() == {"tape": saved_entry()}
    else:
        [warning] = warnings
        assert inserts.results == {} and "'tape'" in warning and reason in warning, warning


def test_unknown_missing_or_shapeless_saved_measurements_are_warned_about():
    inserts = Inserts(parse_config(TWO_INSERTS))
    entry = saved_entry()
    del entry["blocksize"]
    warnings = inserts.restore({"gone": saved_entry(), "tape": entry, "comp": "225 samples"})
    assert inserts.results == {} and len(warnings) == 3
    assert inserts.restore([1, 2]) != []


def test_a_reload_forgets_the_measurements_it_makes_wrong_and_says_so():
    inserts = inserts_with(TWO_INSERTS, comp=225, tape=1000)
    [warning] = inserts.reload(parse_config(TWO_INSERTS.replace("return = [7]", "return = [8]")))
    assert list(inserts.results) == ["comp"] and "'tape'" in warning
    faster = TWO_INSERTS.replace("[sources.mix]", "[audio]\nsamplerate = 96000\n[sources.mix]")
    assert len(inserts.reload(parse_config(faster))) == 1
    assert inserts.results == {}
