"""Outboard inserts in the kernel: sends, measurement noise, the dry source's alignment delay."""

from __future__ import annotations

import numpy as np
import pytest

from controlroom.dsp import layout
from controlroom.dsp.control import (
    Controls,
    InsertSpec,
    PathBuffers,
    PathSpec,
    SetSpec,
    SourceSpec,
    db_to_gain,
    float32_ceiling,
)
from controlroom.dsp.path import render

FS = 48000


def spec(**kw) -> PathSpec:
    base = dict(
        samplerate=FS,
        n_in=6,
        n_out=8,
        sources=(SourceSpec((1, 2), trim_db=-3.0), SourceSpec((3, 4)), SourceSpec((5, 6))),
        sets=(SetSpec((1, 2)),),
        inserts=(InsertSpec(source=0, sends=(7, 8)),),
    )
    base.update(kw)
    return PathSpec(**base)


def run(s: PathSpec, controls: Controls, x: np.ndarray, blocksize: int = 64) -> np.ndarray:
    buffers = PathBuffers(s, controls)
    buffers.settle()
    y = np.zeros((x.shape[0], s.n_out), dtype=np.float32)
    render(x, y, blocksize, *buffers.arrays)
    return y


def program(frames: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((frames, 6))).astype(np.float32)


def test_the_send_carries_the_source_after_its_trim_whatever_the_monitor_does():
    x = program(4096)
    for controls in (Controls(master_db=-40.0), Controls(mute=True), Controls(source=1, master_db=0.0)):
        y = run(spec(), controls, x)
        trim = db_to_gain(-3.0)
        np.testing.assert_allclose(y[:, 6], x[:, 0] * trim, atol=1e-7)
        np.testing.assert_allclose(y[:, 7], x[:, 1] * trim, atol=1e-7)


def test_a_one_output_send_carries_the_mono_sum():
    x = program(2048)
    y = run(spec(inserts=(InsertSpec(0, (7,)),)), Controls(), x)
    np.testing.assert_allclose(y[:, 6], db_to_gain(-3.0) * 0.5 * (x[:, 0] + x[:, 1]), atol=1e-7)
    assert not y[:, 7].any()


def test_sends_stay_out_of_the_speakers_limiter_but_never_exceed_the_ceiling():
    x = program(8192)
    y = run(spec(), Controls(master_db=24.0), x)  # the speakers are driven far into the limiter
    ceiling = float32_ceiling(-0.3)
    assert np.abs(y).max() <= ceiling
    sent = np.clip(x[:, 0] * db_to_gain(-3.0), -ceiling, ceiling)
    np.testing.assert_allclose(y[:, 6], sent, atol=1e-7)  # untouched by the speakers' gain reduction


def test_measuring_plays_uniform_noise_at_the_measurement_level_on_both_sends():
    x = program(48000)
    y = run(spec(inserts=(InsertSpec(0, (7, 8), measure_dbfs=-20.0),)), Controls(measuring=0), x)
    level = db_to_gain(-20.0)
    noise = y[:, 6].astype(float)
    np.testing.assert_array_equal(y[:, 6], y[:, 7])
    assert np.abs(noise).max() <= level
    # uniform in [-level, level): RMS level / sqrt(3), mean ~0, no correlation with the programme
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(level / np.sqrt(3), rel=0.02)
    assert abs(np.mean(noise)) < 0.01 * level
    assert abs(np.corrcoef(noise, x[:, 0])[0, 1]) < 0.02
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.02  # white


@pytest.mark.parametrize("delay", [1, 63, 64, 1000, 2399])
@pytest.mark.parametrize("blocksize", [32, 256])
def test_a_source_delay_shifts_the_dry_source_by_exactly_that_many_samples(delay, blocksize):
    x = program(6000)
    y = run(spec(), Controls(master_db=0.0, delay_samples=(delay,)), x, blocksize)
    trim = db_to_gain(-3.0)
    np.testing.assert_allclose(y[delay:, 0], x[:-delay, 0] * trim, atol=1e-6)
    assert not y[:delay, 0].any()
    # the send is not delayed: the outboard hears the source at once
    np.testing.assert_allclose(y[:, 6], x[:, 0] * trim, atol=1e-7)


def test_the_delay_is_capped_at_the_alignment_range():
    cap = layout.delay_capacity(FS) - layout.CHUNK - 1
    x = np.zeros((cap + 200, 6), dtype=np.float32)
    x[0, 0] = 0.5
    y = run(spec(), Controls(master_db=0.0, delay_samples=(10 * cap,)), x, 1024)
    assert np.flatnonzero(y[:, 0]).tolist() == [cap]
