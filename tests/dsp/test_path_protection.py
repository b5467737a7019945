"""Specification tests for the monitor path's protection.

No sample ever leaves above the ceiling, whatever the EQ, trims or input; non-finite input
becomes 0 and is counted; the limiter leaves signals below the ceiling bit-exact; the output
meters report analytic values.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pathkit import FS, SKIP, frames, gain, noise, run, run_blocks, sine, square, stereo_spec

from controlroom.dsp import layout
from controlroom.dsp.bands import Biquad
from controlroom.dsp.control import Controls, PathBuffers, SetSpec, SourceSpec, SubSpec, float32_ceiling

CEILINGS = [0.0, -0.3, -1.0, -6.0, -12.0]


def out_ok(y, ceiling):
    """Every sample finite and within the float32 ceiling."""
    assert np.all(np.isfinite(y))
    assert float(np.max(np.abs(y))) <= ceiling


# --------------------------------------------------------------------------- property: the ceiling

PROTECT_SETS = [
    SetSpec((1, 2), sub=SubSpec(3)),
    SetSpec((4,)),
    SetSpec((5, 4), mono=True),
    SetSpec((1, 2)),
]
GAIN_TYPES = ["peak", "lowshelf", "highshelf"]

band = st.builds(
    Biquad,
    type=st.sampled_from(GAIN_TYPES),
    freq_hz=st.floats(20.0, 20_000.0),
    gain_db=st.floats(-24.0, 24.0),
    q=st.floats(0.3, 8.0),
)
trim = st.floats(-20.0, 20.0)
controls = st.builds(
    Controls,
    source=st.integers(0, 1),
    speakers=st.integers(0, len(PROTECT_SETS) - 1),
    master_db=st.floats(-20.0, 24.0),
    mute=st.just(False),  # mute would make the property trivial
    matrix=st.integers(0, 4),
    polarity=st.booleans(),
    sub=st.booleans(),
    match_db=st.tuples(trim, trim),
)


@st.composite
def protected_path(draw):
    sets = []
    for s in PROTECT_SETS:
        sub = None if s.sub is None else SubSpec(3, draw(st.floats(40.0, 200.0)), draw(trim))
        sets.append(SetSpec(s.outputs, draw(trim), 0.0, tuple(draw(st.lists(band, max_size=4))), sub, s.mono))
    spec = stereo_spec(
        n_in=4,
        n_out=5,
        sources=[SourceSpec((1, 2), draw(trim)), SourceSpec((3,), draw(trim))],
        sets=sets,
        ceiling_dbfs=draw(st.sampled_from(CEILINGS)),
    )
    return spec


def program_signal(kind, n, seed):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.uniform(-1.0, 1.0, (n, 4))
    if kind == "square":
        return np.stack([square(f, n, 1.0) for f in rng.uniform(20.0, 5000.0, 4)], axis=1)
    if kind == "sine":
        return np.stack([sine(f, n, 1.0) for f in rng.uniform(20.0, 20_000.0, 4)], axis=1)
    # a low square wave under full-scale noise: the worst case for shelves and a sub
    return 0.5 * rng.uniform(-1.0, 1.0, (n, 4)) + 0.5 * square(35.0, n, 1.0)[:, None]


def scatter_nonfinite(x, count, seed):
    """Write ``count`` NaN/+Inf/-Inf at distinct random (frame, channel) cells; returns the
    cells per channel."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(x.size, size=count, replace=False)
    values = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), size=count)
    rows, cols = np.unravel_index(cells, x.shape)
    x[rows, cols] = values
    return rows, cols


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=protected_path(),
    first=controls,
    second=controls,
    kind=st.sampled_from(["noise", "square", "sine", "mixed"]),
    seed=st.integers(0, 2**32 - 1),
    bad=st.integers(0, 40),
    blocksize=st.sampled_from([32, 100, 1024, 4096]),
)
def test_no_sample_leaves_above_the_ceiling_whatever_the_settings_and_input(
    spec, first, second, kind, seed, bad, blocksize
):
    n = FS // 5
    x = program_signal(kind, n, seed).astype(np.float32)
    rows, cols = scatter_nonfinite(x, bad, seed + 1)
    ceiling = float32_ceiling(spec.ceiling_dbfs)

    buffers = PathBuffers(spec, first)
    buffers.settle()
    # a mid-signal change of every control, not on a block boundary of `blocksize`
    y = run_blocks(buffers, x, blocksize, changes={n // 2 + 7: (spec, second)})
    out_ok(y, ceiling)
    assert buffers.counters[layout.C_CLIPPED] == 0, "the limiter let a sample through to the hard clip"
    # channel 4 belongs to no source: its non-finite samples are never read
    assert buffers.counters[layout.C_NONFINITE] == int(np.count_nonzero(cols < 3))

    # non-finite samples become 0: the same input with zeros there gives the same output
    clean = x.copy()
    clean[rows, cols] = 0.0
    reference = PathBuffers(spec, first)
    reference.settle()
    assert np.array_equal(run_blocks(reference, clean, blocksize, changes={n // 2 + 7: (spec, second)}), y)


@pytest.mark.parametrize("ceiling_dbfs", CEILINGS)
def test_extreme_boost_of_full_scale_square_stays_under_the_ceiling(ceiling_dbfs):
    eq = (Biquad("lowshelf", 100.0, 24.0), Biquad("peak", 1000.0, 24.0, 0.3), Biquad("highshelf", 8000.0, 24.0))
    spec = stereo_spec(
        n_out=3,
        sources=[SourceSpec((1, 2), 20.0)],
        sets=[SetSpec((1, 2), 20.0, eq=eq, sub=SubSpec(3, 120.0, 20.0))],
        ceiling_dbfs=ceiling_dbfs,
    )
    x = frames(square(50.0, FS, 1.0), -square(3000.0, FS, 1.0))
    y, buffers = run(spec, Controls(master_db=24.0, match_db=(20.0,)), x, blocksize=64)
    ceiling = float32_ceiling(ceiling_dbfs)
    out_ok(y, ceiling)
    # the limiter worked hard (~-150 dB of gain reduction), yet nothing needed the hard clip
    assert buffers.meters[layout.M_LIMITER_MIN] < gain(-100.0)
    assert buffers.counters[layout.C_CLIPPED] == 0
    # and the output is loud, not muted: the limiter holds it at the ceiling
    assert float(np.max(np.abs(y))) > ceiling * gain(-0.1)


# --------------------------------------------------------------------------- non-finite input


def test_non_finite_input_is_zeroed_and_counted_exactly():
    spec = stereo_spec(n_in=4, sources=[SourceSpec((1, 2)), SourceSpec((3,))])
    n = FS // 4
    x = frames(noise(n, 0.5, 1), noise(n, 0.5, 2), noise(n, 0.5, 3), noise(n, 0.5, 4))
    clean = x.copy()
    inserted = {
        0: ([10, 500, 501, 9000], np.nan),
        1: ([0, 777, n - 1], np.inf),
        2: ([64, 65], -np.inf),
        3: ([5, 6, 7, 8, 9], np.nan),
    }
    for ch, (positions, value) in inserted.items():
        x[positions, ch] = value
        clean[positions, ch] = 0.0
    for source in (0, 1):  # every source is read (and metered), heard or not
        y, buffers = run(spec, Controls(source=source, master_db=0.0), x, blocksize=64)
        assert buffers.counters[layout.C_NONFINITE] == 4 + 3 + 2  # input 4 belongs to no source
        reference, _ = run(spec, Controls(source=source, master_db=0.0), clean, blocksize=64)
        assert np.array_equal(y, reference)
        assert np.all(np.isfinite(y))


def test_an_all_nan_input_gives_exact_silence():
    spec = stereo_spec(n_out=3, sets=[SetSpec((1, 2), eq=(Biquad("peak", 100.0, 12.0),), sub=SubSpec(3))])
    x = np.full((4800, 2), np.nan, dtype=np.float32)
    y, buffers = run(spec, Controls(master_db=12.0), x)
    assert not np.any(y)
    assert buffers.counters[layout.C_NONFINITE] == x.size


# --------------------------------------------------------------------------- limiter


@pytest.mark.parametrize("ceiling_dbfs", [0.0, -0.3, -1.0, -6.0])
@pytest.mark.parametrize("kind", ["sine", "square"])
def test_a_signal_6db_over_the_ceiling_is_brought_under_it(ceiling_dbfs, kind):
    ceiling = float32_ceiling(ceiling_dbfs)
    amp = 2.0 * ceiling  # +6 dB
    wave = sine(1000.0, FS // 2, amp) if kind == "sine" else square(100.0, FS // 2, amp)
    spec = stereo_spec(ceiling_dbfs=ceiling_dbfs)
    y, buffers = run(spec, Controls(master_db=0.0), frames(wave, wave))
    out_ok(y, ceiling)
    # held at the ceiling, not pumped far below it
    assert float(np.max(np.abs(y[SKIP:]))) >= ceiling * (1.0 - 1e-6)
    assert buffers.counters[layout.C_LIMITED] > 0
    assert buffers.counters[layout.C_CLIPPED] == 0
    assert buffers.meters[layout.M_LIMITER_MIN] == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("ceiling_dbfs", [0.0, -0.3, -6.0])
@pytest.mark.parametrize("master_db", [0.0, -3.0, 6.0])
def test_a_signal_below_the_ceiling_passes_untouched(ceiling_dbfs, master_db):
    ceiling = float32_ceiling(ceiling_dbfs)
    amp = ceiling * gain(-0.05 - master_db)  # peaks 0.05 dB under the ceiling after the master
    n = FS // 2
    left = sine(1000.0, n, 0.5 * amp) + noise(n, 0.5 * amp, seed=21)
    right = square(60.0, n, amp)
    x = frames(left, right)
    y, buffers = run(stereo_spec(ceiling_dbfs=ceiling_dbfs), Controls(master_db=master_db), x)
    expected = (x.astype(float) * gain(master_db)).astype(np.float32)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6)
    assert buffers.counters[layout.C_LIMITED] == 0
    assert buffers.counters[layout.C_CLIPPED] == 0
    assert buffers.meters[layout.M_LIMITER_MIN] == 1.0


def test_the_limiter_is_linked_across_outputs_and_releases_afterwards():
    ceiling = float32_ceiling(-0.3)
    n = 3 * FS
    burst = np.zeros(n)
    burst[: FS // 2] = 1.0
    left = sine(500.0, n, 0.5) * (1.0 + 5.0 * burst)  # 3.0: +9.8 dB over the ceiling for 0.5 s
    right = square(80.0, n, 0.25)
    x = frames(left, right)
    y, _ = run(stereo_spec(), Controls(master_db=0.0), x, blocksize=128)
    out_ok(y, ceiling)
    # linked: the quiet right channel is turned down by the same gain as the loud left one
    loud = np.abs(x[: FS // 2, 0]) > 1e-3
    g_left = y[: FS // 2, 0][loud] / x[: FS // 2, 0][loud]
    g_right = y[: FS // 2, 1][loud] / x[: FS // 2, 1][loud]
    np.testing.assert_allclose(g_right, g_left, rtol=1e-5, atol=0)
    assert g_left.min() < gain(-8.0)
    # released: two seconds later (20 release time constants) the signal is untouched again
    tail = slice(FS // 2 + 2 * FS, n)
    np.testing.assert_allclose(y[tail], x[tail], rtol=0, atol=1e-6)


def test_once_released_the_limiter_rests_at_exactly_unity_gain():
    """After a burst over the ceiling has been released, the gain is 1 exactly, not a few ulps
    under it: the limiter counts nothing more and the output is the input bit for bit."""
    n = 4 * FS
    burst = FS // 2
    loud = 4.0 * sine(500.0, burst, 0.5)  # 2.0: 6 dB over full scale
    left = np.concatenate([loud, sine(500.0, n - burst, 0.5)])
    x = frames(left, square(80.0, n, 0.25))
    y, buffers = run(stereo_spec(), Controls(master_db=0.0), x, blocksize=64)
    assert buffers.state[layout.T_LIMITER] == 1.0
    # the burst and its release down to a billionth (some twenty time constants), then nothing
    assert burst < buffers.counters[layout.C_LIMITED] < burst + 3 * FS
    tail = slice(burst + 3 * FS, n)
    np.testing.assert_array_equal(y[tail], x[tail])


# --------------------------------------------------------------------------- meters


def meter_path(n_out=4):
    return stereo_spec(n_out=n_out, sets=[SetSpec((1, 2))])


@pytest.mark.parametrize("master_db", [0.0, -6.0, -20.0])
def test_output_meters_after_a_reset_hold_analytic_peak_and_sum_of_squares(master_db):
    spec = meter_path()
    buffers = PathBuffers(spec, Controls(master_db=master_db))
    buffers.settle()
    # something loud first, then a reset: the meters must forget it
    loud = frames(noise(4800, 0.9, seed=22), noise(4800, 0.9, seed=23))
    run_blocks(buffers, loud, 480)
    buffers.request_meter_reset()
    n = 4800  # 100 whole periods of 1 kHz, 60 of 600 Hz
    al, ar = 0.5, 0.25
    x = frames(sine(1000.0, n, al, phase=0.0), sine(600.0, n, ar, phase=np.pi / 2))
    run_blocks(buffers, x, n)
    m = buffers.meters
    g = gain(master_db)
    assert m[layout.M_FRAMES] == n
    # 48 samples per period at phase 0 include sin(pi/2) = 1 exactly; 600 Hz at pi/2 starts at its peak
    for o, a in ((0, al), (1, ar)):
        assert m[layout.M_OUTPUTS + o * layout.MS_STRIDE + layout.MS_PEAK] == pytest.approx(a * g, rel=1e-6)
        # sum of sin^2 over whole periods is n/2
        assert m[layout.M_OUTPUTS + o * layout.MS_STRIDE + layout.MS_SUMSQ] == pytest.approx(
            n * (a * g) ** 2 / 2, rel=1e-5
        )
    for o in (2, 3):
        assert m[layout.M_OUTPUTS + o * layout.MS_STRIDE + layout.MS_PEAK] == 0.0
        assert m[layout.M_OUTPUTS + o * layout.MS_STRIDE + layout.MS_SUMSQ] == 0.0
    assert m[layout.M_LIMITER_MIN] == 1.0


def test_output_meters_accumulate_until_the_next_reset():
    buffers = PathBuffers(meter_path(), Controls(master_db=0.0))
    buffers.settle()
    buffers.request_meter_reset()
    x = frames(sine(1000.0, 4800, 0.5), sine(1000.0, 4800, 0.5))
    run_blocks(buffers, x, 480)  # ten blocks
    m = buffers.meters
    assert m[layout.M_FRAMES] == 4800
    assert m[layout.M_OUTPUTS + layout.MS_SUMSQ] == pytest.approx(4800 * 0.25 / 2, rel=1e-5)
    buffers.request_meter_reset()
    run_blocks(buffers, frames(np.zeros(100), np.zeros(100)), 100)
    assert m[layout.M_FRAMES] == 100
    assert m[layout.M_OUTPUTS + layout.MS_PEAK] == 0.0 and m[layout.M_OUTPUTS + layout.MS_SUMSQ] == 0.0


@pytest.mark.parametrize("over_db", [1.0, 6.0, 12.0])
def test_limiter_min_gain_meter_reports_the_gain_reduction(over_db):
    spec = meter_path()
    ceiling = float32_ceiling(spec.ceiling_dbfs)
    buffers = PathBuffers(spec, Controls(master_db=0.0))
    buffers.settle()
    buffers.request_meter_reset()
    amp = ceiling * gain(over_db)
    x = frames(sine(1000.0, 4800, amp), sine(1000.0, 4800, 0.1))
    y = run_blocks(buffers, x, 4800)
    # the sampled sine's largest sample is exactly its amplitude (float32-rounded)
    peak = float(np.max(np.abs(x[:, 0])))
    assert buffers.meters[layout.M_LIMITER_MIN] == pytest.approx(ceiling / peak, rel=1e-9)
    assert buffers.meters[layout.M_LIMITER_MIN] < 1.0
    assert buffers.meters[layout.M_OUTPUTS + layout.MS_PEAK] == pytest.approx(float(np.max(np.abs(y[:, 0]))), rel=1e-7)
    assert buffers.meters[layout.M_OUTPUTS + layout.MS_PEAK] <= ceiling
