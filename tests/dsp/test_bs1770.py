"""Specification tests for ``controlroom.dsp.bs1770`` and ``controlroom.dsp.truepeak``.

Oracles, none of them this code's own output: EBU Tech 3341 / 3342 test signals synthesised
from sines with their published expected figures; the closed-form loudness of sines through
BS.1770-4's published 48 kHz K-weighting coefficients (evaluated by scipy); a plain
whole-buffer numpy implementation of BS.1770 gating; analytic inter-sample peaks of sines;
and ffmpeg's ``ebur128`` filter on program-like signals. ffmpeg is required (CI installs it).
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
from loudnessoracle import HIGHPASS_48K, SHELF_48K, k_gain_48k
from scipy import signal

from controlroom.dsp import bs1770
from controlroom.dsp.bs1770 import (
    k_weighting,
    measure,
    meter_process,
    meter_reset,
    new_meter,
    read_meter,
)
from controlroom.dsp.truepeak import interpolator, oversampling

SR = 48_000

LU = 0.1  # Tech 3341: momentary, short-term, integrated
LRA_LU = 1.0  # Tech 3342
TP_OVER, TP_UNDER = 0.2, 0.4  # Tech 3341 true-peak tolerance, dB


# --------------------------------------------------------------------------- signals


def sine(dbfs: float, seconds: float, freq: float = 1000.0, sr: int = SR, phase: float = 0.0) -> np.ndarray:
    """A sine of peak level ``dbfs``; the phase runs on across concatenations of equal freq."""
    n = int(round(seconds * sr))
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * np.arange(n) / sr + phase)


def steps(levels_and_seconds, freq: float = 1000.0, sr: int = SR) -> np.ndarray:
    """Concatenated 1 kHz sine segments ``[(dbfs, seconds), ...]`` with continuous phase."""
    parts, start = [], 0
    for dbfs, seconds in levels_and_seconds:
        n = int(round(seconds * sr))
        t = (start + np.arange(n)) / sr
        parts.append(10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t))
        start += n
    return np.concatenate(parts)


def faded(x: np.ndarray, sr: int = SR, seconds: float = 0.01) -> np.ndarray:
    """``x`` with a raised-cosine fade-in, so that no start-up step adds its own overshoot."""
    n = int(sr * seconds)
    x = x.copy()
    x[:n] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
    return x


def stereo(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x], axis=1)


def sine_loudness(channel_dbfs: list[float], weights: list[float], freq: float = 1000.0) -> float:
    """Closed-form loudness (LUFS) of steady sines, per BS.1770's formula."""
    power = sum(g * 10 ** (level / 10) / 2 for level, g in zip(channel_dbfs, weights))
    return -0.691 + 10 * math.log10(power * k_gain_48k(freq))


# --------------------------------------------------------------------------- K-weighting


def test_k_weighting_at_48k_is_the_published_table():
    kw = k_weighting(48_000)
    np.testing.assert_allclose(kw[0], SHELF_48K[0] + SHELF_48K[1][1:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(kw[1], HIGHPASS_48K[0] + HIGHPASS_48K[1][1:], rtol=0, atol=1e-9)


@pytest.mark.parametrize("sr", [44_100, 88_200, 96_000, 192_000])
def test_k_weighting_at_other_rates_matches_the_48k_response(sr):
    freqs = np.geomspace(20.0, 12_000.0, 60)
    kw = k_weighting(sr)
    _, a = signal.freqz(kw[0, :3], [1, *kw[0, 3:]], worN=freqs, fs=sr)
    _, b = signal.freqz(kw[1, :3], [1, *kw[1, 3:]], worN=freqs, fs=sr)
    ours = 20 * np.log10(abs(a * b))
    reference = np.array([10 * math.log10(k_gain_48k(f)) for f in freqs])
    # the bilinear transform warps differently near each rate's Nyquist; below 12 kHz it is tiny
    np.testing.assert_allclose(ours, reference, atol=0.05)


# --------------------------------------------------------------------------- EBU Tech 3341


@pytest.mark.parametrize("dbfs", [-23.0, -33.0])
def test_3341_cases_1_2_steady_sine(dbfs):
    m = measure(stereo(sine(dbfs, 20.0)), SR)
    for value in (m.integrated_lufs, m.momentary_lufs, m.short_term_lufs, m.momentary_max_lufs, m.short_term_max_lufs):
        assert value == pytest.approx(dbfs, abs=LU)


@pytest.mark.parametrize(
    "program",
    [
        [(-36, 10), (-23, 60), (-36, 10)],  # case 3: relative gate
        [(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)],  # case 4: both gates
        [(-26, 20), (-20, 20.1), (-26, 20)],  # case 5
    ],
)
def test_3341_cases_3_4_5_gating(program):
    assert measure(stereo(steps(program)), SR).integrated_lufs == pytest.approx(-23.0, abs=LU)


def test_3341_case_9_short_term_is_constant():
    # 1.34 s at -20 dBFS then 1.66 s at -30 dBFS, repeated: every 3 s window reads -23 LUFS
    x = stereo(steps([(-20, 1.34), (-30, 1.66)] * 7))
    state = new_meter(2, SR)
    readings = []
    for start in range(0, len(x), 4800):
        meter_process(state, x[start : start + 4800])
        readings.append(bs1770.short_term_lufs(state))
    settled = np.array(readings[31:])  # after the first full 3 s window (plus the filter's settling)
    assert np.all(abs(settled + 23.0) <= LU), (settled.min(), settled.max())


def test_3341_case_12_momentary_is_constant():
    x = stereo(steps([(-20, 0.18), (-30, 0.22)] * 50))
    state = new_meter(2, SR)
    readings = []
    for start in range(0, len(x), 4800):
        meter_process(state, x[start : start + 4800])
        readings.append(bs1770.momentary_lufs(state))
    settled = np.array(readings[5:])
    assert np.all(abs(settled + 23.0) <= LU), (settled.min(), settled.max())


def test_3341_max_momentary_and_short_term_of_a_burst():
    # a 3 s burst at -20 dBFS in silence: max S reads the burst, max M too
    x = stereo(steps([(-100, 2.0), (-20, 3.0), (-100, 4.0)]))
    m = measure(x, SR)
    assert m.short_term_max_lufs == pytest.approx(-20.0, abs=LU)
    assert m.momentary_max_lufs == pytest.approx(-20.0, abs=LU)


@pytest.mark.parametrize("sr", [44_100, 48_000])
@pytest.mark.parametrize(
    "fraction,phase_deg",
    [(1 / 4, 45.0), (1 / 6, 60.0), (1 / 8, 67.5), (1 / 4, 0.0)],  # Tech 3341 cases 15-18 (and 0°)
)
@pytest.mark.parametrize("dbtp", [-6.0, 0.0])
def test_3341_true_peak_of_sines(sr, fraction, phase_deg, dbtp):
    x = faded(sine(dbtp, 1.0, freq=sr * fraction, sr=sr, phase=math.radians(phase_deg)), sr)
    m = measure(stereo(x), sr)
    assert dbtp - TP_UNDER <= m.true_peak_dbtp <= dbtp + TP_OVER
    assert m.sample_peak_dbfs == pytest.approx(20 * math.log10(np.abs(x).max()), abs=1e-6)


@pytest.mark.parametrize("sr", [44_100, 48_000, 96_000])
def test_true_peak_of_random_sines_is_their_amplitude(sr):
    rng = np.random.default_rng(sr)
    for _ in range(12):
        freq = rng.uniform(100.0, 10_000.0)
        dbtp = rng.uniform(-20.0, 0.0)
        x = faded(sine(dbtp, 0.5, freq=freq, sr=sr, phase=rng.uniform(0, 2 * np.pi)), sr)
        tp = measure(x, sr).true_peak_dbtp
        assert dbtp - TP_UNDER <= tp <= dbtp + TP_OVER, (freq, dbtp, tp)


def test_true_peak_interpolator_phases_reproduce_a_band_limited_signal():
    # upsampling a low sine by the interpolator's phases must land on the sine between samples
    factor = 4
    phases = interpolator(factor)
    n = np.arange(400)
    x = np.sin(2 * np.pi * 0.01 * n)
    for p in range(1, factor):
        y = np.convolve(x, phases[p - 1])[: len(x)]
        # phase p of output n sits p/factor after input sample n - TAPS/2
        expected = np.sin(2 * np.pi * 0.01 * (n - 6 + p / factor))
        np.testing.assert_allclose(y[20:380], expected[20:380], atol=2e-3)


def test_oversampling_factor_follows_annex_2():
    assert [oversampling(sr) for sr in (44_100, 48_000, 88_200, 96_000, 192_000)] == [4, 4, 4, 2, 1]


# --------------------------------------------------------------------------- EBU Tech 3342


@pytest.mark.parametrize(
    "program,lra",
    [
        ([(-20, 20), (-30, 20)], 10.0),
        ([(-20, 20), (-15, 20)], 5.0),
        ([(-40, 20), (-20, 20)], 20.0),
        ([(-50, 20), (-35, 20), (-20, 20), (-35, 20), (-50, 20)], 15.0),
    ],
)
def test_3342_loudness_range(program, lra):
    assert measure(stereo(steps(program)), SR).loudness_range_lu == pytest.approx(lra, abs=LRA_LU)


# --------------------------------------------------------------------------- channels


def test_six_channels_ignore_lfe_and_weigh_surrounds():
    levels = [-30.0, -28.0, -26.0, -6.0, -29.0, -31.0]  # L R C LFE Ls Rs; LFE loud on purpose
    x = np.stack([sine(level, 10.0) for level in levels], axis=1)
    expected = sine_loudness(levels, [1, 1, 1, 0, 10**0.15, 10**0.15])
    m = measure(x, SR)
    assert m.integrated_lufs == pytest.approx(expected, abs=0.02)
    # the surrounds weigh +1.5 dB: the same sine in Ls alone reads 1.5 LU above L alone
    alone = [measure(np.pad(sine(-20, 10.0)[:, None], ((0, 0), (ch, 5 - ch))), SR).integrated_lufs for ch in (0, 4)]
    assert alone[1] - alone[0] == pytest.approx(1.5, abs=0.01)


def test_mono_counts_once_and_other_counts_weigh_one():
    mono = measure(sine(-20.0, 10.0), SR).integrated_lufs
    assert mono == pytest.approx(sine_loudness([-20.0], [1.0]), abs=0.02)
    four = measure(np.stack([sine(-20.0, 10.0)] * 4, axis=1), SR).integrated_lufs
    assert four == pytest.approx(mono + 10 * math.log10(4), abs=0.01)


def test_correlation():
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(SR * 2) * 0.1
    state = new_meter(2, SR)
    meter_process(state, np.stack([noise, noise], axis=1))
    assert bs1770.correlation(state) == pytest.approx(1.0, abs=1e-9)
    meter_process(state, np.stack([noise, -noise], axis=1))
    assert bs1770.correlation(state) == pytest.approx(-1.0, abs=1e-9)
    meter_process(state, rng.standard_normal((SR * 2, 2)))
    assert abs(bs1770.correlation(state)) < 0.05
    meter_process(state, np.zeros((SR, 2)))
    assert bs1770.correlation(state) == 0.0


# --------------------------------------------------------------------------- gating oracle


def reference_meter(x: np.ndarray, weights) -> tuple[float, float]:
    """Whole-buffer BS.1770-4 integrated loudness and Tech 3342 LRA, plain numpy, 48 kHz."""
    y = signal.lfilter(*HIGHPASS_48K, signal.lfilter(*SHELF_48K, x, axis=0), axis=0)
    step = SR // 10
    sq = np.concatenate([np.zeros((1, y.shape[1])), np.cumsum(y**2, axis=0)])

    def windows(length):
        starts = np.arange(0, len(y) - length + 1, step)
        z = (sq[starts + length] - sq[starts]) / length
        return z @ np.asarray(weights)

    def lufs(power):
        return -0.691 + 10 * np.log10(power)

    z = windows(4 * step)
    z = z[lufs(z) > -70]
    gate = lufs(z.mean()) - 10
    integrated = lufs(z[lufs(z) > gate].mean())

    s = windows(30 * step)
    s = s[lufs(s) > -70]
    s = np.sort(lufs(s[lufs(s) > lufs(s.mean()) - 20]))
    lra = s[round((len(s) - 1) * 0.95)] - s[round((len(s) - 1) * 0.10)]
    return integrated, lra


def test_histogram_gating_matches_a_whole_buffer_reference():
    rng = np.random.default_rng(7)
    segments = [
        rng.standard_normal((int(SR * rng.uniform(0.3, 4.0)), 2)) * 10 ** (rng.uniform(-50, -10) / 20)
        for _ in range(40)
    ]
    x = np.concatenate(segments)
    integrated, lra = reference_meter(x, [1.0, 1.0])
    m = measure(x, SR)
    assert m.integrated_lufs == pytest.approx(integrated, abs=0.01)
    assert m.loudness_range_lu == pytest.approx(lra, abs=0.03)


# --------------------------------------------------------------------------- streaming, reset, silence


def program(sr: int, channels: int, seconds: float, seed: int) -> np.ndarray:
    """Noise bursts and tones at changing levels: program-like material."""
    rng = np.random.default_rng(seed)
    out, t = [], 0
    while t < seconds * sr:
        n = int(sr * rng.uniform(0.2, 3.0))
        level = 10 ** (rng.uniform(-45.0, -8.0) / 20)
        if rng.random() < 0.5:
            part = signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal((n, channels)), axis=0) * 0.3
        else:
            freq = rng.uniform(60.0, 8000.0)
            part = np.sin(2 * np.pi * freq * np.arange(n) / sr + rng.uniform(0, 6, channels)[:, None]).T
        if rng.random() < 0.15:
            part *= 0.0
        out.append(part * level)
        t += n
    return np.concatenate(out)[: int(seconds * sr)]


FIGURES = (
    "integrated_lufs",
    "loudness_range_lu",
    "true_peak_dbtp",
    "sample_peak_dbfs",
    "momentary_max_lufs",
    "short_term_max_lufs",
)


def test_streaming_in_small_blocks_equals_offline():
    x = program(SR, 2, 12.0, seed=11).astype(np.float32)
    small, big = measure(x, SR, blocksize=64), measure(x, SR, blocksize=65536)
    odd = measure(x, SR, blocksize=4801)
    for a in (small, odd):
        for field in FIGURES:
            assert getattr(a, field) == pytest.approx(getattr(big, field), abs=0.01), field


@pytest.mark.parametrize(
    "live",
    [[0], [0, 1], [0, 1, 2], [1, 2], [0, 2]],
    ids=["mono", "stereo", "three channels", "the first of a pair silent throughout", "the second"],
)
def test_digital_silence_is_metered_exactly_like_the_quietest_noise(live):
    # Meters skip digital silence once their filters have come to rest (an idle rack costs
    # nothing). Noise at 1e-300 takes the full path and weighs nothing: every figure must be
    # the same, around the silence, as the programme comes back, and against the reference.
    rng = np.random.default_rng(5)
    channels = max(live) + 1
    loud = np.zeros((2 * SR, channels))
    loud[:, live] = rng.standard_normal((2 * SR, len(live))) * 0.1
    x = np.concatenate([loud, np.zeros((3 * SR, channels)), loud[::-1]])
    quietest = np.where(x == 0.0, 1e-300, x)
    for end in (4 * SR, 5 * SR + 2400, len(x)):  # in the silence, just after, at the end
        silent, noisy = measure(x[:end], SR, blocksize=64), measure(quietest[:end], SR, blocksize=64)
        for field in (*FIGURES, "momentary_lufs", "short_term_lufs", "correlation"):
            assert getattr(silent, field) == pytest.approx(getattr(noisy, field), abs=1e-9), (end, field)
    integrated, lra = reference_meter(x, [1.0] * channels)
    assert silent.integrated_lufs == pytest.approx(integrated, abs=0.01)
    assert silent.loudness_range_lu == pytest.approx(lra, abs=0.03)


def test_strided_views_of_wider_buffers_meter_like_a_copy():
    # the live kernel meters a source's columns of the interleaved input, or rows of its buses
    x = program(SR, 2, 5.0, seed=12)
    wide = np.zeros((len(x), 5), dtype=np.float32)
    wide[:, 2:4] = x
    buses = np.ascontiguousarray(wide.T)  # (channels, frames)
    reference = measure(wide[:, 2:4].copy(), SR, blocksize=64)
    for view in (wide[:, 2:4], buses[2:4].T):
        state = new_meter(2, SR)
        for start in range(0, len(x), 64):
            meter_process(state, view[start : start + 64])
        # to the last few bits: a strided and a contiguous loop may sum in another order
        # (the compiled code vectorises them differently, and that can depend on alignment)
        for key, expected in dataclasses.asdict(reference).items():
            got = getattr(read_meter(state), key)
            assert got == (pytest.approx(expected, rel=1e-12) if isinstance(expected, float) else expected), key


def test_reset_forgets_everything():
    loud = stereo(sine(-10.0, 5.0))
    quiet = stereo(sine(-30.0, 5.0))
    state = new_meter(2, SR)
    meter_process(state, loud)
    meter_reset(state)
    meter_process(state, quiet)
    assert read_meter(state) == measure(quiet, SR)


def test_silence_reads_none_and_minus_infinity():
    m = measure(np.zeros((SR * 5, 2), dtype=np.float32), SR)
    assert m.integrated_lufs is None and m.loudness_range_lu is None
    for value in (m.true_peak_dbtp, m.sample_peak_dbfs, m.momentary_max_lufs, m.short_term_max_lufs, m.momentary_lufs):
        assert value == -math.inf


def test_too_short_for_a_gating_block_has_no_integrated_loudness():
    m = measure(stereo(sine(-20.0, 0.3)), SR)
    assert m.integrated_lufs is None and m.loudness_range_lu is None
    assert m.sample_peak_dbfs == pytest.approx(-20.0, abs=0.01)


def test_silence_after_a_loud_passage_flushes_the_filter_states():
    state = new_meter(2, SR)
    meter_process(state, stereo(sine(0.0, 1.0, freq=30.0)))
    meter_process(state, np.zeros((SR * 20, 2)))
    for ch in range(2):
        at = bs1770.CHANNEL_BASE + ch * bs1770.CH_STRIDE + bs1770.CH_KW_STATE
        assert np.all(state[at : at + 4] == 0.0)  # exactly zero: no denormal tail


def test_non_finite_samples_are_metered_as_silence_and_counted():
    x = stereo(sine(-20.0, 5.0))
    dirty = x.copy()
    dirty[1000:1010, 0] = np.nan
    dirty[2000, 1] = np.inf
    clean = x.copy()
    clean[1000:1010, 0] = 0.0
    clean[2000, 1] = 0.0
    state = new_meter(2, SR)
    meter_process(state, dirty)
    m = read_meter(state)
    assert m.nonfinite_samples == 11
    reference = measure(clean, SR)
    assert m.integrated_lufs == pytest.approx(reference.integrated_lufs, abs=1e-9)
    assert m.true_peak_dbtp == pytest.approx(reference.true_peak_dbtp, abs=1e-9)


def test_a_meter_fed_a_wider_block_meters_the_columns_it_was_given_and_keeps_them_over_a_reset():
    wide = program(SR, 4, 5.0, seed=9).astype(np.float32)
    wide[:, 0] = 0.9  # loud where the meter must not look
    own = np.ascontiguousarray(wide[:, [3, 1]])
    state = new_meter(2, SR)
    bs1770.set_columns(state, [3, 1])
    for _ in range(2):  # before and after a reset
        reference = new_meter(2, SR)
        for start in range(0, wide.shape[0], 4800):
            meter_process(state, wide[start : start + 4800])
            meter_process(reference, own[start : start + 4800])
        assert read_meter(state) == read_meter(reference)
        meter_reset(state)


def test_meter_state_is_fixed_size():
    state = new_meter(2, SR)
    size = state.nbytes
    meter_process(state, program(SR, 2, 30.0, seed=5))
    assert state.nbytes == size == bs1770.meter_length(2) * 8


# --------------------------------------------------------------------------- ffmpeg's ebur128


def ffmpeg_ebur128(path) -> dict:
    """ffmpeg's figures: I and LRA from the last metadata frame (3 decimals), peaks from the Summary."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is required for these tests (Debian package ffmpeg)"
    run = subprocess.run(
        [
            ffmpeg,
            "-nostats",
            "-hide_banner",
            "-i",
            str(path),
            "-af",
            "ebur128=peak=true+sample:metadata=1,ametadata=print:file=-",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    meta = {}
    for key, value in re.findall(r"lavfi\.r128\.(I|LRA)=(-?[\d.]+)", run.stdout):
        meta[key] = float(value)  # the last frame's value wins
    summary = run.stderr[run.stderr.rindex("Summary:") :]
    return {
        "I": meta["I"],
        "LRA": meta["LRA"],
        "sample_peak": float(re.search(r"Sample peak:\s+Peak:\s+(-?[\d.]+|-inf)", summary).group(1)),
        "true_peak": float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf)", summary).group(1)),
    }


def five_one(sr: int, seconds: float, seed: int) -> np.ndarray:
    """L R C LFE Ls Rs of different material; a loud LFE that must not count."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([program(sr, 3, seconds, seed), program(sr, 3, seconds, seed + 1)], axis=1) * 0.7
    x[:, 3] = 0.5 * np.sin(2 * np.pi * 50.0 * np.arange(len(x)) / sr) * (rng.random() + 0.5)
    return x


PROGRAMS = {
    "stereo-48k": lambda: (program(48_000, 2, 30.0, seed=1), 48_000),
    "mono-44k": lambda: (program(44_100, 1, 25.0, seed=2), 44_100),
    "5.1-48k": lambda: (five_one(48_000, 20.0, seed=3), 48_000),
    "stereo-44k-wide": lambda: (program(44_100, 2, 30.0, seed=4) * np.array([1.0, -0.5]), 44_100),
    "stereo-96k": lambda: (program(96_000, 2, 30.0, seed=5), 96_000),
    "stereo-48k-hot": lambda: (np.tanh(program(48_000, 2, 20.0, seed=6) * 3.0), 48_000),  # soft-clipped
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_agrees_with_ffmpeg_ebur128(name, tmp_path):
    x, sr = PROGRAMS[name]()
    path = tmp_path / f"{name}.wav"
    soundfile.write(path, x.astype(np.float32), sr, subtype="FLOAT")
    data, _ = soundfile.read(path, dtype="float32", always_2d=True)
    ours = measure(data, sr)
    theirs = ffmpeg_ebur128(path)
    assert ours.integrated_lufs == pytest.approx(theirs["I"], abs=0.1)
    assert ours.loudness_range_lu == pytest.approx(theirs["LRA"], abs=0.5)
    # ffmpeg prints peaks to 0.1 dB
    assert ours.sample_peak_dbfs == pytest.approx(theirs["sample_peak"], abs=0.05 + 1e-3)
    assert ours.true_peak_dbtp == pytest.approx(theirs["true_peak"], abs=0.3)
