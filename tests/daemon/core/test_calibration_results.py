"""Calibration results: the trims and delays they set in the path, the SPL they give the
volume, and how they are saved and restored (how outputs are measured:
tests/daemon/service/test_calibration_jack.py)."""

import json

import numpy as np
import pytest

from controlroom.daemon.config import parse_config
from controlroom.daemon.core.calibration import (
    ABORT_FADE_MS,
    Calibration,
    CalibrationError,
    OutputResult,
    solve_trims,
)
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.path import controls, emulation_profile, path_spec
from controlroom.daemon.core.targets import Vocabulary
from controlroom.dsp import calibration as analysis
from controlroom.dsp.control import CalibrationSignal, PathBuffers
from controlroom.dsp.path import render

CONFIG = """
[audio]
samplerate = 48000
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, {{ channel = 2, trim_db = -1.0, delay_ms = 1.0 }}]
sub = {{ output = 3, crossover_hz = 80.0 }}
trim_db = -3.0
delay_ms = 2.0
[speakers.crap]
outputs = [4]
[speakers.phone]
outputs = [4]
emulate = "phone"
[calibration]
mic = 3
{mic}
"""


def calibration(mic: str = "", **outputs: tuple[float, int, float]) -> Calibration:
    """A calibration of CONFIG with ``o<N>=(level_db, arrival, trim_db)`` results."""
    result = Calibration(parse_config(CONFIG.format(mic=mic)))
    for key, (level, arrival, trim) in outputs.items():
        result.outputs[int(key[1:])] = OutputResult(level, 60.0, arrival, 48000, trim)
    return result


def test_trims_bring_every_output_to_the_reference_and_a_boost_past_the_cap_is_refused():
    assert solve_trims({1: -30.0, 2: -24.5}, -30.0, 6.0) == {1: 0.0, 2: -5.5}
    assert solve_trims({1: -30.0}, -25.0, 6.0) == {1: 5.0}
    with pytest.raises(CalibrationError, match=r"output 2 needs \+7.0 dB to reach -25.0 dB \(max_boost_db is 6\)"):
        solve_trims({1: -30.0, 2: -32.0}, -25.0, 6.0)


def test_a_set_is_delayed_to_its_latest_arrival_sub_included_once_all_its_outputs_are_measured():
    partial = calibration(o1=(-30.0, 100, 0.0), o2=(-30.0, 148, 0.0))
    assert partial.delays_ms("studio") == {}
    full = calibration(o1=(-30.0, 100, 0.0), o2=(-30.0, 148, 0.0), o3=(-30.0, 220, 0.0))
    # output 2 has 1 ms of its own: the calibration adds only what is left
    assert full.delays_ms("studio") == pytest.approx({1: 2.5, 2: 0.5, 3: 0.0})
    # an own delay longer than the alignment asks for delays the other outputs as much more
    late = calibration(o1=(-30.0, 100, 0.0), o2=(-30.0, 100, 0.0), o3=(-30.0, 100, 0.0))
    assert late.delays_ms("studio") == pytest.approx({1: 1.0, 2: 0.0, 3: 1.0})


def test_calibrated_outputs_play_at_their_calibrated_trims_and_arrive_together_whatever_the_config_own():
    cal = calibration(o1=(-30.0, 100, -2.0), o2=(-30.0, 148, -3.0), o3=(-30.0, 124, 1.5), o4=(-30.0, 0, -4.0))
    studio, crap, phone = path_spec(cal.config, cal).sets
    # the set's -3 dB and output 2's -1 dB are superseded, not added
    assert [studio.trim_db + t for t in studio.output_trim_db] == pytest.approx([-2.0, -3.0])
    assert studio.trim_db + studio.sub.trim_db == pytest.approx(1.5)
    # each output's own delay and the calibration's land it with the latest, 2 ms (the set's) later
    at_mic = [a + 48 * d for a, d in zip((100, 148, 124), (*studio.output_delay_ms, studio.sub.delay_ms))]
    assert at_mic == pytest.approx([196.0, 196.0, 196.0])
    assert studio.delay_ms == 2.0
    assert crap.output_trim_db == (-4.0,) and crap.output_delay_ms == (0.0,)
    # an emulation keeps its loudness compensation on top of the calibrated trim
    compensation_db = emulation_profile(cal.config, "phone")[1]
    assert compensation_db != 0.0
    assert phone.trim_db + phone.output_trim_db[0] == pytest.approx(-4.0 + compensation_db)
    plain = path_spec(cal.config).sets[0]
    assert plain.output_trim_db == (0.0, -1.0) and plain.sub.delay_ms == 0.0


def test_the_kernel_plays_each_output_later_and_quieter_as_calibrated():
    cal = calibration(o1=(-30.0, 100, -6.0), o2=(-30.0, 196, 0.0), o3=(-30.0, 196, 0.0))
    config = cal.config
    state = Vocabulary(config).initial()
    Vocabulary(config).set(state, "volume", 0.0)
    Vocabulary(config).set(state, "sub", False)
    buffers = PathBuffers(path_spec(config, cal), controls(config, state))
    buffers.settle()
    x = np.zeros((4096, 3), dtype=np.float32)
    x[1000, :2] = 0.5
    y = np.zeros((4096, 4), dtype=np.float32)
    render(x, y, 64, *buffers.arrays)
    # output 1 is 96 samples earlier at the mic, output 2 has 1 ms of its own, the set 2 ms
    onsets = [int(np.argmax(np.abs(y[:, o]))) for o in (0, 1)]
    assert onsets[0] + 100 == onsets[1] + 196 and onsets[1] == 1000 + 96 + 48
    # at their calibrated trims, the set's and output 2's own left out
    assert np.max(np.abs(y[:, :2]), axis=0) == pytest.approx([0.5 * 10 ** (-6 / 20), 0.5], rel=1e-5)


def test_with_a_calibrated_mic_the_volume_reads_as_spl_at_the_listening_position():
    cal = calibration("mic_dbfs_at_94_db_spl = -20.0", o1=(-35.0, 0, -1.0), o2=(-34.0, 0, -1.0), o4=(-30.0, 0, 0.0))
    # output 1: -35 dBFS at the mic = 79 dB SPL, trimmed -1 dB; output 2: 80 dB SPL, trimmed -1 dB
    # (the config's own trims are superseded by the calibrated ones)
    expected = 10 * np.log10((10 ** (78.0 / 10) + 10 ** (79.0 / 10)) / 2)
    assert cal.set_spl_db("studio") == pytest.approx(expected)
    assert cal.set_spl_db("crap") == pytest.approx(84.0)
    # an emulation's loudness compensation is part of what it plays
    assert cal.set_spl_db("phone") == pytest.approx(84.0 + emulation_profile(cal.config, "phone")[1])
    controller = Controller(cal.config, Vocabulary(cal.config).initial())
    controller.calibration = cal
    controller.calibrated("calibration")
    assert controller.view()["volume_spl_db"] == pytest.approx(round(expected + controller.state.volume, 2))
    assert calibration(o1=(-35.0, 0, 0.0), o2=(-34.0, 0, 0.0)).set_spl_db("studio") is None


def test_results_are_saved_and_restored_and_garbage_is_left_out_with_a_warning():
    cal = calibration(o1=(-30.0, 100, -2.0), o2=(-31.5, 148, -0.5), o3=(-29.0, 130, -3.0))
    cal.reference_db = -32.0
    saved = cal.as_dict()
    assert saved["sets"]["studio"]["delay_ms"] == {"1": 2.0, "2": 0.0, "3": 1.375}  # output 2 has 1 ms of its own
    again = Calibration(cal.config)
    assert again.restore(saved) == []
    assert again.outputs == cal.outputs and again.reference_db == -32.0
    broken = {**saved, "outputs": {**saved["outputs"], "9": saved["outputs"]["1"], "x": {}, "2": {"trim_db": "a"}}}
    fresh = Calibration(cal.config)
    warnings = fresh.restore(broken)
    assert len(warnings) == 3 and set(fresh.outputs) == {1, 3}
    assert Calibration(cal.config).restore([1, 2]) != []


def test_a_large_cut_is_refused_past_max_cut_db_and_one_within_it_survives_a_restart():
    with pytest.raises(
        CalibrationError, match=r"output 2 needs -42.0 dB .* \(at most -40 dB\).*turn that amplifier down"
    ):
        solve_trims({1: -30.0, 2: 12.0}, -30.0, 6.0)
    cal = calibration(o1=(-30.0, 100, 0.0), o4=(8.0, 120, -38.0))
    cal.reference_db = -30.0
    again = Calibration(cal.config)
    assert again.restore(cal.as_dict()) == []
    assert again.outputs[4].trim_db == -38.0


def test_saved_results_that_are_not_finite_or_negative_are_left_out_and_an_unbounded_snr_saves_as_null():
    cal = calibration(o1=(-30.0, 100, 0.0), o2=(-31.0, 120, -1.0))
    cal.outputs[1] = OutputResult(-30.0, float("inf"), 100, 48000, 0.0)
    saved = cal.as_dict()
    assert saved["outputs"]["1"]["snr_db"] is None
    assert "Infinity" not in json.dumps(saved) and "NaN" not in json.dumps(saved)
    restored = Calibration(cal.config)
    assert restored.restore(json.loads(json.dumps({**saved, "reference_db": -30.0}))) == []
    assert restored.outputs == cal.outputs
    entry = saved["outputs"]["2"]
    for bad in ({"trim_db": float("nan")}, {"trim_db": float("inf")}, {"level_db": float("-inf")}, {"arrival": -5}):
        fresh = Calibration(cal.config)
        assert len(fresh.restore({"outputs": {"2": {**entry, **bad}}})) == 1 and fresh.outputs == {}
    for reference in (float("nan"), float("inf"), True, "x"):
        fresh = Calibration(cal.config)
        assert len(fresh.restore({**saved, "reference_db": reference})) == 1 and fresh.reference_db is None
    with pytest.raises(CalibrationError, match="not all finite"):
        solve_trims({1: -30.0}, float("nan"), 6.0)


def playing(controller: Controller, frames: int) -> np.ndarray:
    """What the kernel on ``controller``'s buffers plays over ``frames`` frames (silent input)."""
    config = controller.config
    y = np.zeros((frames, config.audio.output_channels), dtype=np.float32)
    render(np.zeros((frames, config.audio.input_channels), np.float32), y, 64, *controller.buffers.arrays)
    return y


def test_mute_a_stop_and_a_new_stream_silence_the_test_signal_at_once():
    config = parse_config(CONFIG.format(mic=""))
    sections = analysis.test_sections(analysis.LEVEL_BAND, 48000)
    noise = CalibrationSignal(4, tuple(map(tuple, sections)), analysis.test_gain(sections, 48000, -20.0), 100.0)
    fade = round(ABORT_FADE_MS * 48)

    def sounding() -> Controller:
        controller = Controller(config, Vocabulary(config).initial())
        controller.start_buffers()
        controller.calibration_signal = noise
        controller.publish()
        assert np.all(np.abs(playing(controller, 9600)[4800:, 3]).reshape(-1, 480).max(axis=1) > 0.0)
        return controller

    muted = sounding()
    muted.apply("mute", "set", True)
    out = playing(muted, 4800)[:, 3]
    assert np.max(np.abs(out[: fade // 4])) > 0.0 and not np.any(out[fade + 64 :])  # fades, then silent

    stopping = sounding()
    stopping.fade_out()
    out = playing(stopping, 4800)[:, 3]
    assert np.max(np.abs(out[: fade // 4])) > 0.0 and not np.any(out[fade + 64 :])

    lost = sounding()
    lost.release_buffers()  # the device is gone; its stream reopens on fresh buffers
    lost.start_buffers()
    assert not np.any(playing(lost, 9600))
