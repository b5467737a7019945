"""Specification tests for the monitor path: what each stage does to real signals.

Levels are measured on the steady state (after SKIP) with a least-squares sine fit and
compared with dB arithmetic; filters with ``scipy.signal`` (freqz / sosfreqz / sosfilt) of
coefficients computed here from the RBJ cookbook or ``scipy.signal.butter``. Every path is
settled first, so ``render`` starts fully applied.
"""

from __future__ import annotations

import numpy as np
import pytest
from pathkit import (
    FS,
    SKIP,
    amplitude,
    amplitudes,
    cookbook,
    cookbook_sos,
    frames,
    gain,
    lr4_sos,
    noise,
    rms,
    run,
    run_blocks,
    sine,
    sos_gain,
    stereo_spec,
    to_db,
)
from scipy import signal

from controlroom.dsp import layout
from controlroom.dsp.bands import Biquad
from controlroom.dsp.control import Controls, PathBuffers, SetSpec, SourceSpec, SubSpec
from controlroom.dsp.path import process

N = FS // 2  # half a second per rendered signal
LEVEL_DB = 0.01
#: float32 output of float64 maths: one rounding, relative to signals below 1
WAVE_TOL = 1e-6


def two_sines(n=N, fl=997.0, fr=1499.0, al=0.2, ar=0.1):
    return frames(sine(fl, n, al), sine(fr, n, ar, phase=1.0))


def level_db(y, freq, ref_amp):
    return to_db(amplitude(y[SKIP:], freq) / ref_amp)


# --------------------------------------------------------------------------- master, trims, match


@pytest.mark.parametrize(
    "master_db",
    [0.0, -6.0, -20.0, -37.5, -80.0, 6.0, 12.0, -10.0 - 20.0],
    ids=["0", "-6", "-20", "-37.5", "-80", "+6", "+12", "vol-10+dim-20"],
)
def test_master_gain_sets_the_level_of_both_channels(master_db):
    y, _ = run(stereo_spec(), Controls(master_db=master_db), two_sines())
    assert level_db(y[:, 0], 997.0, 0.2) == pytest.approx(master_db, abs=LEVEL_DB)
    assert level_db(y[:, 1], 1499.0, 0.1) == pytest.approx(master_db, abs=LEVEL_DB)
    # and no crosstalk between the channels
    assert amplitude(y[SKIP:, 0], 1499.0, others=(997.0,)) < 1e-6 * gain(master_db)
    assert amplitude(y[SKIP:, 1], 997.0, others=(1499.0,)) < 1e-6 * gain(master_db)


@pytest.mark.parametrize("master_db", [0.0, -20.0, 12.0])
def test_mute_is_exact_silence_on_every_output(master_db):
    spec = stereo_spec(n_out=4, sets=[SetSpec((1, 2), eq=(Biquad("peak", 100.0, 6.0),), sub=SubSpec(3))])
    x = frames(noise(N, 0.9, seed=1), noise(N, 0.9, seed=2))
    y, _ = run(spec, Controls(master_db=master_db, mute=True), x)
    assert not np.any(y)


@pytest.mark.parametrize(
    "source_trim, set_trim, match, master_db",
    [
        (-6.0, 0.0, 0.0, 0.0),
        (4.5, 0.0, 0.0, -6.0),
        (0.0, -3.25, 0.0, 0.0),
        (0.0, 7.0, 0.0, -10.0),
        (0.0, 0.0, -2.7, 0.0),
        (0.0, 0.0, 3.0, -6.0),
        (-4.0, 2.5, -1.5, -3.0),
        (20.0, -20.0, 0.0, 0.0),
    ],
)
def test_source_trim_set_trim_and_match_gain_add_in_db(source_trim, set_trim, match, master_db):
    spec = stereo_spec(sources=[SourceSpec((1, 2), trim_db=source_trim)], sets=[SetSpec((1, 2), trim_db=set_trim)])
    y, _ = run(spec, Controls(master_db=master_db, match_db=(match,)), two_sines())
    expected = source_trim + set_trim + match + master_db
    assert level_db(y[:, 0], 997.0, 0.2) == pytest.approx(expected, abs=LEVEL_DB)
    assert level_db(y[:, 1], 1499.0, 0.1) == pytest.approx(expected, abs=LEVEL_DB)


@pytest.mark.parametrize("selected", [0, 1, 2])
def test_match_gain_and_trim_belong_to_their_source(selected):
    trims = (-3.0, 2.0, 0.0)
    matches = (-1.25, 0.0, 4.0)
    spec = stereo_spec(
        n_in=6,
        sources=[SourceSpec((1, 2), trims[0]), SourceSpec((3, 4), trims[1]), SourceSpec((5, 6), trims[2])],
    )
    freqs = (500.0, 700.0, 1100.0)
    x = frames(*[sine(f, N, 0.2, phase=0.3 * i) for f in freqs for i in range(2)])
    y, _ = run(spec, Controls(source=selected, master_db=-2.0, match_db=matches), x)
    for ch in range(2):
        for s, f in enumerate(freqs):
            a = amplitudes(y[SKIP:, ch], (f, *[o for o in freqs if o != f]))[0]
            if s == selected:
                assert to_db(a / 0.2) == pytest.approx(trims[s] + matches[s] - 2.0, abs=LEVEL_DB)
            else:
                assert a < 1e-6  # unselected sources are not heard


# --------------------------------------------------------------------------- matrix


def program(n=N):
    """Two unrelated channels, so every mix of them is distinguishable."""
    return sine(440.0, n, 0.4), sine(660.0, n, 0.3, phase=0.7) + sine(90.0, n, 0.1)


@pytest.mark.parametrize(
    "matrix, polarity, expect_l, expect_r",
    [
        (layout.MATRIX_STEREO, False, lambda l, r: l, lambda l, r: r),
        (layout.MATRIX_MONO, False, lambda l, r: (l + r) / 2, lambda l, r: (l + r) / 2),
        (layout.MATRIX_LEFT, False, lambda l, r: l, lambda l, r: l),
        (layout.MATRIX_RIGHT, False, lambda l, r: r, lambda l, r: r),
        (layout.MATRIX_SIDE, False, lambda l, r: (l - r) / 2, lambda l, r: (l - r) / 2),
        (layout.MATRIX_STEREO, True, lambda l, r: -l, lambda l, r: r),
        (layout.MATRIX_MONO, True, lambda l, r: (-l + r) / 2, lambda l, r: (-l + r) / 2),
    ],
    ids=["stereo", "mono", "left", "right", "side", "polarity", "mono+polarity"],
)
@pytest.mark.parametrize("master_db", [0.0, -9.0])
def test_matrix_modes_sample_for_sample(matrix, polarity, expect_l, expect_r, master_db):
    left, right = program()
    y, _ = run(stereo_spec(), Controls(master_db=master_db, matrix=matrix, polarity=polarity), frames(left, right))
    g = gain(master_db)
    np.testing.assert_allclose(y[:, 0], g * expect_l(left, right), rtol=0, atol=WAVE_TOL)
    np.testing.assert_allclose(y[:, 1], g * expect_r(left, right), rtol=0, atol=WAVE_TOL)


def test_polarity_at_unity_gain_is_an_exact_sign_flip_of_the_left_channel():
    x = frames(noise(N, 0.9, seed=3), noise(N, 0.9, seed=4))
    y, _ = run(stereo_spec(), Controls(master_db=0.0, polarity=True), x)
    assert np.array_equal(y[:, 0], -x[:, 0])
    assert np.array_equal(y[:, 1], x[:, 1])


@pytest.mark.parametrize("master_db", [0.0, -20.0, 12.0])
def test_side_of_an_identical_pair_is_silence(master_db):
    s = sine(1000.0, N, 0.25) + noise(N, 0.25, seed=5)
    y, _ = run(stereo_spec(), Controls(master_db=master_db, matrix=layout.MATRIX_SIDE), frames(s, s))
    peak = np.max(np.abs(y))
    assert peak == 0.0 or to_db(peak) < -120.0


@pytest.mark.parametrize(
    "matrix, polarity, expect_l, expect_r",
    [
        (layout.MATRIX_STEREO, False, 1.0, 1.0),
        (layout.MATRIX_MONO, False, 1.0, 1.0),
        (layout.MATRIX_LEFT, False, 1.0, 1.0),
        (layout.MATRIX_RIGHT, False, 1.0, 1.0),
        (layout.MATRIX_SIDE, False, 0.0, 0.0),
        (layout.MATRIX_STEREO, True, -1.0, 1.0),
    ],
    ids=["stereo", "mono", "left", "right", "side", "polarity"],
)
def test_a_mono_source_feeds_both_sides(matrix, polarity, expect_l, expect_r):
    spec = stereo_spec(n_in=3, sources=[SourceSpec((3,))])
    x = frames(noise(N, 0.9, seed=6), noise(N, 0.9, seed=7), sine(300.0, N, 0.5) + noise(N, 0.2, seed=8))
    y, _ = run(spec, Controls(master_db=-4.0, matrix=matrix, polarity=polarity), x)
    m = gain(-4.0) * x[:, 2].astype(float)
    np.testing.assert_allclose(y[:, 0], expect_l * m, rtol=0, atol=WAVE_TOL)
    np.testing.assert_allclose(y[:, 1], expect_r * m, rtol=0, atol=WAVE_TOL)


# --------------------------------------------------------------------------- set shapes, selection


def test_a_one_output_set_plays_the_mono_sum():
    left, right = program()
    spec = stereo_spec(n_out=3, sets=[SetSpec((2,), trim_db=-1.5)])
    y, _ = run(spec, Controls(master_db=-3.0), frames(left, right))
    np.testing.assert_allclose(y[:, 1], gain(-4.5) * (left + right) / 2, rtol=0, atol=WAVE_TOL)
    assert not np.any(y[:, [0, 2]])


def test_a_mono_set_plays_the_mono_sum_on_both_outputs():
    left, right = program()
    spec = stereo_spec(n_out=2, sets=[SetSpec((1, 2), mono=True)])
    y, _ = run(spec, Controls(master_db=-3.0), frames(left, right))
    for ch in range(2):
        np.testing.assert_allclose(y[:, ch], gain(-3.0) * (left + right) / 2, rtol=0, atol=WAVE_TOL)


MULTI = dict(
    n_in=2,
    n_out=8,
    sets=[
        SetSpec((1, 2), trim_db=-1.0, delay_ms=3.0, eq=(Biquad("peak", 2000.0, 4.0, 1.0),), sub=SubSpec(3, 80.0)),
        SetSpec((4, 5), trim_db=2.0),
        SetSpec((6,), eq=(Biquad("highpass", 300.0),)),
        SetSpec((8, 7), mono=True, delay_ms=1.0),
    ],
)
SET_OUTPUTS = [{0, 1, 2}, {3, 4}, {5}, {6, 7}]


@pytest.mark.parametrize("selected", range(4))
def test_only_the_selected_set_plays_every_other_output_is_exact_zero(selected):
    spec = stereo_spec(**MULTI)
    x = frames(sine(60.0, N, 0.5) + noise(N, 0.4, seed=9), sine(90.0, N, 0.5) + noise(N, 0.4, seed=10))
    y, _ = run(spec, Controls(speakers=selected, master_db=0.0), x)
    for o in range(8):
        if o in SET_OUTPUTS[selected]:
            assert rms(y[SKIP:, o]) > 0.05, f"output {o + 1} silent"
        else:
            assert not np.any(y[:, o]), f"output {o + 1} not silent"


@pytest.mark.parametrize("blocksize", [64, 1000, 3000])
def test_every_output_sample_is_written_and_every_output_bus_left_clear(blocksize):
    """A host's output buffer holds whatever it last held (PortAudio does not clear it): every
    sample is written, silent outputs included, and no bus carries anything into the next block,
    while sets switch and drain through their delays."""
    spec = stereo_spec(**MULTI)
    x = frames(noise(N, 0.4, seed=9), noise(N, 0.4, seed=10))
    buffers = PathBuffers(spec, Controls(master_db=0.0))
    buffers.settle()
    shared, params, state, meters, counters = buffers.arrays
    switches = {N // 4: 1, N // 2: 3, 3 * N // 4: 0}
    for start in range(0, N, blocksize):
        for at, selected in switches.items():
            if start <= at < start + blocksize:
                buffers.update(spec, Controls(speakers=selected, master_db=0.0))
        block = np.ascontiguousarray(x[start : start + blocksize])
        out = np.full((block.shape[0], spec.n_out), np.nan, dtype=np.float32)
        process(block, out, shared, params, state, meters, counters)
        assert np.all(np.isfinite(out)), f"unwritten output samples in the block at {start}"
        assert not np.any(state[layout.T_OUT : layout.T_OUT + spec.n_out * layout.CHUNK]), (
            f"a bus kept samples after {start}"
        )
        assert not np.any(state[layout.T_TOUCHED : layout.T_TOUCHED + spec.n_out])


def test_set_outputs_are_routed_to_the_configured_channels_in_order():
    """Set (8, 7): its left lane goes to output 8, its right lane to output 7."""
    spec = stereo_spec(n_out=8, sets=[SetSpec((8, 7))])
    left, right = program()
    y, _ = run(spec, Controls(master_db=0.0), frames(left, right))
    np.testing.assert_allclose(y[:, 7], left, rtol=0, atol=WAVE_TOL)
    np.testing.assert_allclose(y[:, 6], right, rtol=0, atol=WAVE_TOL)
    assert not np.any(y[:, :6])


# --------------------------------------------------------------------------- bass management

XO = 80.0
HP = lr4_sos(XO, FS, "high")
LP = lr4_sos(XO, FS, "low")


def sub_spec(set_trim=0.0, sub_trim=0.0, **set_kw):
    return stereo_spec(n_out=3, sets=[SetSpec((1, 2), trim_db=set_trim, sub=SubSpec(3, XO, sub_trim), **set_kw)])


@pytest.mark.parametrize("freq", [40.0, 60.0, 120.0])
def test_sub_on_mains_get_lr4_highpass_and_sub_lr4_lowpass_of_left_plus_right(freq):
    al, ar, phi = 0.4, 0.3, 0.9
    x = frames(sine(freq, N, al), sine(freq, N, ar, phase=phi))
    y, _ = run(sub_spec(), Controls(master_db=0.0, sub=True), x)
    hp, lp = abs(sos_gain(HP, freq, FS)), abs(sos_gain(LP, freq, FS))
    assert level_db(y[:, 0], freq, al) == pytest.approx(to_db(hp), abs=LEVEL_DB)
    assert level_db(y[:, 1], freq, ar) == pytest.approx(to_db(hp), abs=LEVEL_DB)
    sum_amp = abs(al + ar * np.exp(1j * phi))
    assert level_db(y[:, 2], freq, sum_amp) == pytest.approx(to_db(lp), abs=LEVEL_DB)


def test_sub_on_a_40hz_tone_is_on_the_sub_and_strongly_attenuated_on_the_mains():
    x = frames(sine(40.0, N, 0.4), sine(40.0, N, 0.4))
    y, _ = run(sub_spec(), Controls(master_db=0.0, sub=True), x)
    assert level_db(y[:, 0], 40.0, 0.4) < -20.0
    assert level_db(y[:, 1], 40.0, 0.4) < -20.0
    assert level_db(y[:, 2], 40.0, 0.8) > -1.0  # L+R, LR4 low-pass at half the crossover


def test_sub_on_a_1khz_tone_is_on_the_mains_and_not_on_the_sub():
    x = frames(sine(1000.0, N, 0.4), sine(1000.0, N, 0.3, phase=0.4))
    y, _ = run(sub_spec(), Controls(master_db=0.0, sub=True), x)
    hp = abs(sos_gain(HP, 1000.0, FS))
    assert level_db(y[:, 0], 1000.0, 0.4) == pytest.approx(to_db(hp), abs=LEVEL_DB)
    assert level_db(y[:, 1], 1000.0, 0.3) == pytest.approx(to_db(hp), abs=LEVEL_DB)
    assert level_db(y[:, 2], 1000.0, 0.7) < -80.0


def test_sub_on_waveforms_match_scipy_sosfilt_of_the_lr4_sections():
    left, right = noise(N, 0.2, seed=11), noise(N, 0.2, seed=12)
    x = frames(left, right)
    y, _ = run(sub_spec(set_trim=-2.0), Controls(master_db=-1.0, sub=True), x)
    g = gain(-3.0)
    xl, xr = x[:, 0].astype(float), x[:, 1].astype(float)
    np.testing.assert_allclose(y[:, 0], g * signal.sosfilt(HP, xl), rtol=0, atol=1e-5)
    np.testing.assert_allclose(y[:, 1], g * signal.sosfilt(HP, xr), rtol=0, atol=1e-5)
    np.testing.assert_allclose(y[:, 2], g * signal.sosfilt(LP, xl + xr), rtol=0, atol=1e-5)


@pytest.mark.parametrize("freq", [40.0, 1000.0])
def test_sub_off_mains_are_full_range_and_the_sub_is_silent(freq):
    x = frames(sine(freq, N, 0.4), sine(freq, N, 0.3, phase=0.4))
    y, _ = run(sub_spec(), Controls(master_db=0.0, sub=False), x)
    assert level_db(y[:, 0], freq, 0.4) == pytest.approx(0.0, abs=LEVEL_DB)
    assert level_db(y[:, 1], freq, 0.3) == pytest.approx(0.0, abs=LEVEL_DB)
    assert not np.any(y[:, 2])


@pytest.mark.parametrize("set_trim, sub_trim", [(0.0, -6.0), (0.0, 4.5), (-3.0, 0.0), (-3.0, 2.0)])
def test_sub_trim_and_set_trim_set_the_sub_level(set_trim, sub_trim):
    x = frames(sine(40.0, N, 0.2), sine(40.0, N, 0.2))
    y, _ = run(sub_spec(set_trim, sub_trim), Controls(master_db=-2.0, sub=True), x)
    lp = abs(sos_gain(LP, 40.0, FS))
    assert level_db(y[:, 2], 40.0, 0.4) == pytest.approx(to_db(lp) + set_trim + sub_trim - 2.0, abs=LEVEL_DB)
    # the sub trim does not touch the mains
    hp = abs(sos_gain(HP, 40.0, FS))
    assert level_db(y[:, 0], 40.0, 0.2) == pytest.approx(to_db(hp) + set_trim - 2.0, abs=LEVEL_DB)


@pytest.mark.parametrize(
    "set_spec",
    [
        SetSpec((1, 2), sub=SubSpec(3, XO)),
        SetSpec((1, 2), mono=True, sub=SubSpec(3, XO)),
        SetSpec((1,), sub=SubSpec(3, XO)),
    ],
    ids=["stereo", "mono-set", "one-output"],
)
@pytest.mark.parametrize("freq", [30.0, 80.0, 300.0])
def test_bass_management_sums_flat_with_the_mains(set_spec, freq):
    """Mains (high-passed) plus sub reproduce, in level, what the mains play with the sub
    off: an LR4 pair sums to an all-pass, so the sub must carry the low-pass of exactly the
    signal the set's mains play, whatever the set's shape."""
    spec = stereo_spec(n_out=3, sets=[set_spec])
    x = frames(sine(freq, N, 0.3), sine(freq, N, 0.2, phase=0.5))
    on, _ = run(spec, Controls(master_db=0.0, sub=True), x)
    off, _ = run(spec, Controls(master_db=0.0, sub=False), x)
    assert amplitude(on[SKIP:].astype(float).sum(axis=1), freq) == pytest.approx(
        amplitude(off[SKIP:].astype(float).sum(axis=1), freq),
        rel=0.006,  # 0.05 dB
    )


# --------------------------------------------------------------------------- EQ


@pytest.mark.parametrize(
    "fs, f0, gain_db, q",
    [
        (48_000, 1000.0, 6.0, 1.0),
        (48_000, 100.0, 12.0, 4.0),
        (48_000, 8000.0, -9.0, 0.7),
        (48_000, 250.0, -18.0, 2.0),
        (44_100, 3000.0, 9.0, 1.4),
        (96_000, 40.0, 8.0, 0.5),
    ],
)
def test_peak_band_levels_match_the_cookbook_response(fs, f0, gain_db, q):
    spec = stereo_spec(samplerate=fs, sets=[SetSpec((1, 2), eq=(Biquad("peak", f0, gain_db, q),))])
    b, a = cookbook("peak", f0, fs, gain_db, q)
    n = fs  # one second: a 40 Hz, Q 0.5 band rings out well inside the skipped part
    for f in (f0, f0 * 1.3, max(20.0, f0 / 8.0), min(0.45 * fs, f0 * 8.0)):
        amp = 0.5 * gain(-max(gain_db, 0.0))
        x = frames(sine(f, n, amp, fs=fs), sine(f, n, amp, phase=1.0, fs=fs))
        y, _ = run(spec, Controls(master_db=0.0), x)
        _, h = signal.freqz(b, a, worN=[f], fs=fs)
        expected = to_db(abs(h[0]))
        for ch in range(2):
            measured = to_db(amplitude(y[fs // 5 :, ch], f, fs) / amp)
            assert measured == pytest.approx(expected, abs=0.05), f"{f} Hz, channel {ch + 1}"
    # the peak really is at f0 and has the configured gain
    assert to_db(abs(signal.freqz(b, a, worN=[f0], fs=fs)[1][0])) == pytest.approx(gain_db, abs=1e-9)


EQ_CASES = {
    "peak": [("peak", 1000.0, 6.0, 1.0)],
    "peak+lowshelf": [("peak", 2500.0, -6.0, 2.0), ("lowshelf", 120.0, 4.0, 0.7)],
    "three bands": [("peak", 500.0, 3.0, 1.2), ("lowshelf", 80.0, -5.0, 0.7), ("highshelf", 9000.0, 2.0, 0.9)],
    "four bands": [
        ("highpass", 30.0, 0.0, 0.7),
        ("peak", 3000.0, -4.0, 3.0),
        ("highshelf", 6000.0, 3.0, 0.7),
        ("lowpass", 18000.0, 0.0, 0.7),
    ],
}


@pytest.mark.parametrize("bands", EQ_CASES.values(), ids=[k.replace(" ", "-") for k in EQ_CASES])
@pytest.mark.parametrize("shape", ["stereo", "one-output"])
def test_eq_waveform_matches_scipy_sosfilt_on_noise(bands, shape):
    eq = tuple(Biquad(kind, f0, g, q) for kind, f0, g, q in bands)
    outputs = (1, 2) if shape == "stereo" else (1,)
    spec = stereo_spec(sets=[SetSpec(outputs, trim_db=-1.0, eq=eq)])
    x = frames(noise(N, 0.1, seed=13), noise(N, 0.1, seed=14))
    y, _ = run(spec, Controls(master_db=-2.0), x, blocksize=512)
    sos = cookbook_sos([(kind, f0, FS, g, q) for kind, f0, g, q in bands])
    g = gain(-3.0)
    xl, xr = x[:, 0].astype(float), x[:, 1].astype(float)
    if shape == "stereo":
        np.testing.assert_allclose(y[:, 0], g * signal.sosfilt(sos, xl), rtol=0, atol=1e-5)
        np.testing.assert_allclose(y[:, 1], g * signal.sosfilt(sos, xr), rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(y[:, 0], g * signal.sosfilt(sos, (xl + xr) / 2), rtol=0, atol=1e-5)
        assert not np.any(y[:, 1])


# --------------------------------------------------------------------------- delay


def delay_samples(delay_ms, fs=FS):
    return round(delay_ms * fs / 1000.0)


def impulses(n, positions, amp=0.5):
    x = np.zeros(n)
    x[list(positions)] = amp
    return x


@pytest.mark.parametrize("delay_ms", [0.02, 0.5, 7.3, 21.0, 50.0])
@pytest.mark.parametrize("blocksize", [16, 100, 1024, 4096])
def test_delay_moves_an_impulse_by_exactly_the_rounded_sample_count(delay_ms, blocksize):
    d = delay_samples(delay_ms)
    n = FS
    # impulses at block edges, mid-block and far apart, so the ring buffer wraps many times
    positions = [0, 1, 15, 16, 1023, 1024, 4095, 4096, 10_000, 23_456, 40_000, n - d - 1]
    spec = stereo_spec(sets=[SetSpec((1, 2), delay_ms=delay_ms)])
    x = frames(impulses(n, positions), impulses(n, positions, -0.25))
    y, _ = run(spec, Controls(master_db=0.0), x, blocksize=blocksize)
    for ch, amp in ((0, 0.5), (1, -0.25)):
        hits = np.flatnonzero(y[:, ch])
        assert list(hits) == [p + d for p in positions]
        assert np.all(y[hits, ch] == amp)


@pytest.mark.parametrize("fs", [44_100, 48_000, 96_000, 192_000])
@pytest.mark.parametrize("delay_ms", [1.0, 12.34, 50.0])
def test_delay_is_an_exact_shift_of_noise_at_any_rate(fs, delay_ms):
    d = delay_samples(delay_ms, fs)
    n = fs // 2
    spec = stereo_spec(samplerate=fs, sets=[SetSpec((1, 2), delay_ms=delay_ms)])
    x = frames(noise(n, 0.9, seed=15), noise(n, 0.9, seed=16))
    y, _ = run(spec, Controls(master_db=0.0), x, blocksize=333)
    assert not np.any(y[:d])
    assert np.array_equal(y[d:], x[: n - d])


def test_delay_shifts_the_whole_set_including_eq_and_sub():
    d = delay_samples(9.5)
    eq = (Biquad("peak", 1500.0, 5.0, 1.0), Biquad("lowshelf", 200.0, -3.0))
    spec_dry = stereo_spec(n_out=3, sets=[SetSpec((1, 2), eq=eq, sub=SubSpec(3, 90.0, -2.0))])
    spec_wet = stereo_spec(n_out=3, sets=[SetSpec((1, 2), eq=eq, sub=SubSpec(3, 90.0, -2.0), delay_ms=9.5)])
    x = frames(noise(N, 0.3, seed=17) + sine(50.0, N, 0.3), noise(N, 0.3, seed=18))
    dry, _ = run(spec_dry, Controls(master_db=-1.0), x)
    wet, _ = run(spec_wet, Controls(master_db=-1.0), x)
    assert not np.any(wet[:d])
    np.testing.assert_allclose(wet[d:], dry[:-d], rtol=0, atol=1e-7)


# --------------------------------------------------------------------------- per-output trim and delay


@pytest.mark.parametrize("blocksize", [16, 333, 4096])
def test_each_output_gets_its_own_trim_and_delay_on_top_of_the_sets(blocksize):
    """An asymmetric room: the right speaker 0.4 m nearer (1.2 ms) and 1.5 dB hotter. Each
    output is its input shifted by the set's delay plus its own (whole samples) and scaled by
    the set's trim times its own."""
    n = FS // 2
    spec = stereo_spec(
        sets=[SetSpec((1, 2), trim_db=-2.0, delay_ms=3.0, output_trim_db=(0.0, -1.5), output_delay_ms=(0.0, 1.2))]
    )
    x = frames(noise(n, 0.5, seed=41), noise(n, 0.5, seed=42))
    y, _ = run(spec, Controls(master_db=0.0), x, blocksize=blocksize)
    for ch, trim_db, delay_ms in ((0, -2.0, 3.0), (1, -3.5, 4.2)):
        d = delay_samples(delay_ms)
        assert not np.any(y[:d, ch])
        np.testing.assert_allclose(y[d:, ch], gain(trim_db) * x[: n - d, ch].astype(float), rtol=0, atol=1e-6)


def test_an_output_delay_keeps_the_sub_with_the_set():
    """The sub follows the set's delay, not an output's own: the sub output of a set whose
    outputs carry their own delays is the sub of the same set without them."""
    sub = SubSpec(3, 90.0)
    plain = stereo_spec(n_out=3, sets=[SetSpec((1, 2), delay_ms=2.0, sub=sub)])
    own = stereo_spec(n_out=3, sets=[SetSpec((1, 2), delay_ms=2.0, sub=sub, output_delay_ms=(5.0, 0.7))])
    x = frames(noise(N, 0.3, seed=43) + sine(50.0, N, 0.3), noise(N, 0.3, seed=44))
    expected, _ = run(plain, Controls(master_db=0.0), x)
    got, _ = run(own, Controls(master_db=0.0), x)
    np.testing.assert_array_equal(got[:, 2], expected[:, 2])
    d = delay_samples(5.0)
    np.testing.assert_allclose(got[d:, 0], expected[:-d, 0], rtol=0, atol=1e-7)


def test_a_set_switched_away_plays_out_its_longest_output_delay():
    """A faded-out set drains for as long as its longest output's delay: the delayed output
    plays the end of the fade exactly its delay later than the other, not cut short."""
    n = FS // 4
    spec = stereo_spec(n_out=4, sets=[SetSpec((1, 2), output_delay_ms=(0.0, 20.0)), SetSpec((3, 4))])
    buffers = PathBuffers(spec, Controls(master_db=0.0))
    buffers.settle()
    x = frames(np.full(n, 0.5), np.full(n, 0.5))
    y = run_blocks(buffers, x, 64, changes={n // 2: (spec, Controls(master_db=0.0, speakers=1))})
    last = [np.flatnonzero(y[:, ch])[-1] for ch in (0, 1)]
    assert n // 2 < last[0] < n - delay_samples(20.0)
    assert last[1] == last[0] + delay_samples(20.0)


def test_output_delays_beyond_50ms_together_with_the_sets_are_refused():
    with pytest.raises(ValueError):
        stereo_spec(sets=[SetSpec((1, 2), delay_ms=40.0, output_delay_ms=(0.0, 10.5))])


def test_delay_longer_than_50ms_is_refused():
    """Delay up to 50 ms; the ring buffers hold no more. A longer delay must be
    refused where the path is described, like every other limit of PathSpec."""
    with pytest.raises(ValueError):
        stereo_spec(sets=[SetSpec((1, 2), delay_ms=layout.MAX_DELAY_MS + 10.0)])
