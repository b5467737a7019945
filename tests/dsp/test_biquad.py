"""Specification tests for ``controlroom.dsp.biquad``.

Every expectation comes from an oracle independent of the code under test: closed forms of
the RBJ Audio-EQ-Cookbook prototypes (which the bilinear transform, pre-warped at f0, maps
exactly: DC -> DC, Nyquist -> infinity, f0 -> s = j), the analytic bilinear Butterworth
magnitude, and scipy's own filter designs and response evaluators.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from controlroom.dsp.bands import FILTER_TYPES, Biquad
from controlroom.dsp.biquad import IDENTITY, cascade_response, coefficients, design, linkwitz_riley4

RATES = (44_100.0, 48_000.0, 96_000.0)
F0S = (100.0, 1_000.0, 8_000.0)
SQRT_HALF = 1.0 / math.sqrt(2.0)


# --------------------------------------------------------------------------- helpers


def response(c: np.ndarray, freqs_hz, fs: float) -> np.ndarray:
    """Complex response of one section via scipy (the independent evaluator)."""
    _, h = signal.freqz(c[:3], [1.0, c[3], c[4]], worN=np.atleast_1d(np.asarray(freqs_hz, float)), fs=fs)
    return h


def db(h) -> np.ndarray:
    return 20.0 * np.log10(np.abs(h))


def warped_ratio(f, f0, fs):
    """Analog frequency normalised to the pre-warped f0: tan(pi f/fs) / tan(pi f0/fs)."""
    return np.tan(np.pi * np.asarray(f, float) / fs) / math.tan(math.pi * f0 / fs)


def band_edges(f0: float, q: float, fs: float) -> tuple[float, float]:
    """-3 dB edges of the cookbook band-pass/notch (analog Q definition, bilinear-warped).

    Analog prototype s/Q / (s^2 + s/Q + 1) is -3 dB where |W - 1/W| = 1/Q, i.e.
    W = sqrt(1 + 1/(4Q^2)) -/+ 1/(2Q); map back with f = fs/pi * atan(W tan(pi f0/fs)).
    """
    half = 1.0 / (2.0 * q)
    root = math.sqrt(1.0 + half * half)
    t0 = math.tan(math.pi * f0 / fs)
    return tuple(fs / math.pi * math.atan(w * t0) for w in (root - half, root + half))


grid = pytest.mark.parametrize("fs", RATES)
freqs = pytest.mark.parametrize("f0", F0S)


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("kind", FILTER_TYPES)
def test_returns_five_finite_float64_coefficients_and_is_stable(kind):
    for fs in RATES:
        for f0 in (20.0, 1_000.0, 0.45 * fs):
            c = design(kind, f0, fs, gain_db=6.0, q=1.3)
            assert c.shape == (5,) and c.dtype == np.float64
            assert np.all(np.isfinite(c))
            # poles inside the unit circle: |a2| < 1 and |a1| < 1 + a2 (Jury)
            assert abs(c[4]) < 1.0 and abs(c[3]) < 1.0 + c[4], (fs, f0)


# --------------------------------------------------------------------------- peak


@grid
@freqs
@pytest.mark.parametrize("gain_db", (-15.0, -3.0, 0.5, 6.0, 12.0))
def test_peak_gain_at_f0_and_unity_at_dc_and_nyquist(fs, f0, gain_db):
    for q in (0.3, SQRT_HALF, 4.0):
        c = design("peak", f0, fs, gain_db=gain_db, q=q)
        g_f0, g_dc, g_ny = db(response(c, [f0, 0.0, fs / 2.0], fs))
        assert g_f0 == pytest.approx(gain_db, abs=1e-9), q
        assert g_dc == pytest.approx(0.0, abs=1e-9), q
        assert g_ny == pytest.approx(0.0, abs=1e-9), q


@grid
@pytest.mark.parametrize("gain_db", (-9.0, 9.0))
def test_peak_extreme_is_at_f0(fs, gain_db):
    f0 = 2_000.0
    c = design("peak", f0, fs, gain_db=gain_db, q=2.0)
    f = np.linspace(20.0, 0.45 * fs, 4001)
    g = db(response(c, f, fs))
    # nothing beyond the peak gain; the extreme sits at f0 (within the grid spacing)
    assert np.max(np.abs(g)) <= abs(gain_db) + 1e-9
    assert abs(f[np.argmax(np.abs(g))] - f0) <= f[1] - f[0]


def test_peak_at_zero_gain_is_flat():
    c = design("peak", 1_000.0, 48_000.0, gain_db=0.0, q=3.0)
    np.testing.assert_allclose(c[:3], [1.0, c[3], c[4]], rtol=1e-15)  # numerator == denominator


# --------------------------------------------------------------------------- shelves


@grid
@freqs
@pytest.mark.parametrize("kind", ("lowshelf", "highshelf"))
@pytest.mark.parametrize("shape", ({}, {"slope": 0.5}, {"q": 2.0}), ids=("default", "slope", "q"))
def test_shelf_plateaus_at_dc_and_nyquist_and_half_gain_at_f0(fs, f0, kind, shape):
    # prototype A(s^2 + sqrt(A)/Q s + A)/(A s^2 + sqrt(A)/Q s + 1): A^2 at s=0, 1 at s=inf,
    # |.| = A at s=j; the high shelf swaps the plateaus
    for gain_db in (-12.0, -4.5, 3.0, 12.0):
        c = design(kind, f0, fs, gain_db=gain_db, **shape)
        g_dc, g_f0, g_ny = db(response(c, [0.0, f0, fs / 2.0], fs))
        low_side, high_side = (gain_db, 0.0) if kind == "lowshelf" else (0.0, gain_db)
        assert g_dc == pytest.approx(low_side, abs=1e-9), gain_db
        assert g_f0 == pytest.approx(gain_db / 2.0, abs=1e-9), gain_db
        assert g_ny == pytest.approx(high_side, abs=1e-9), gain_db


@grid
@pytest.mark.parametrize("gain_db", (-12.0, 12.0))
def test_shelf_plateaus_far_from_f0(fs, gain_db):
    # two decades away from f0 a 2nd-order shelf is on its plateau within a few hundredths of a dB
    lo = design("lowshelf", 1_000.0, fs, gain_db=gain_db)
    hi = design("highshelf", 200.0, fs, gain_db=gain_db)
    np.testing.assert_allclose(db(response(lo, [10.0, 15.0], fs)), gain_db, atol=0.02)
    np.testing.assert_allclose(db(response(lo, [15_000.0, 20_000.0], fs)), 0.0, atol=0.02)
    np.testing.assert_allclose(db(response(hi, [2.0, 5.0], fs)), 0.0, atol=0.02)
    np.testing.assert_allclose(db(response(hi, [20_000.0], fs)), gain_db, atol=0.02)


@grid
@pytest.mark.parametrize("kind", ("lowshelf", "highshelf"))
@pytest.mark.parametrize("gain_db", (-12.0, 12.0))
def test_shelf_with_slope_up_to_one_is_monotonic(fs, kind, gain_db):
    for slope in (None, 1.0, 0.5):
        c = design(kind, 1_000.0, fs, gain_db=gain_db, slope=slope)
        g = db(response(c, np.linspace(0.0, fs / 2.0, 4001), fs))
        # low shelf runs from gain_db to 0, high shelf from 0 to gain_db; no overshoot either way
        direction = -np.sign(gain_db) if kind == "lowshelf" else np.sign(gain_db)
        assert np.all(direction * np.diff(g) >= -1e-9), slope
        assert g.max() <= max(gain_db, 0.0) + 1e-9, slope
        assert g.min() >= min(gain_db, 0.0) - 1e-9, slope


@pytest.mark.parametrize("kind", ("lowshelf", "highshelf"))
def test_shelf_slope_above_one_overshoots(kind):
    """Counter-check that the monotonicity test above can fail: S > 1 gives a bump."""
    fs = 48_000.0
    c = design(kind, 1_000.0, fs, gain_db=12.0, slope=3.0)
    g = db(response(c, np.linspace(0.0, fs / 2.0, 4001), fs))
    assert g.max() > 12.0 + 0.1 or g.min() < -0.1


@grid
@pytest.mark.parametrize("kind", ("lowshelf", "highshelf"))
@pytest.mark.parametrize("slope", (0.3, 0.7, 1.0, 2.0))
def test_shelf_slope_maps_to_cookbook_q(fs, kind, slope):
    # cookbook: 1/Q = sqrt((A + 1/A)(1/S - 1) + 2), A = 10^(gain_db/40); S = 1 <=> Q = 1/sqrt(2)
    for gain_db in (-10.0, 4.0, 15.0):
        a = 10.0 ** (gain_db / 40.0)
        q = 1.0 / math.sqrt((a + 1.0 / a) * (1.0 / slope - 1.0) + 2.0)
        np.testing.assert_allclose(
            design(kind, 1_500.0, fs, gain_db=gain_db, slope=slope),
            design(kind, 1_500.0, fs, gain_db=gain_db, q=q),
            rtol=1e-12,
            atol=1e-15,
        )


@pytest.mark.parametrize("kind", ("lowshelf", "highshelf"))
def test_shelf_without_q_or_slope_is_slope_one(kind):
    np.testing.assert_allclose(
        design(kind, 1_000.0, 48_000.0, gain_db=6.0),
        design(kind, 1_000.0, 48_000.0, gain_db=6.0, q=SQRT_HALF),
        rtol=1e-12,
    )


# --------------------------------------------------------------------------- low/high-pass


@grid
@freqs
@pytest.mark.parametrize("kind", ("lowpass", "highpass"))
def test_butterworth_minus_3db_at_f0_and_analytic_magnitude(fs, f0, kind):
    c = design(kind, f0, fs, q=SQRT_HALF)
    assert db(response(c, f0, fs))[0] == pytest.approx(-10.0 * math.log10(2.0), abs=1e-9)
    f = np.geomspace(10.0, 0.49 * fs, 200)
    r = warped_ratio(f, f0, fs)
    expected = 1.0 / np.sqrt(1.0 + (r if kind == "lowpass" else 1.0 / r) ** 4)
    np.testing.assert_allclose(np.abs(response(c, f, fs)), expected, rtol=1e-7, atol=1e-12)


@grid
@freqs
@pytest.mark.parametrize("kind", ("lowpass", "highpass"))
def test_butterworth_equals_scipy_butter(fs, f0, kind):
    # both are the bilinear transform of the 2nd-order Butterworth, pre-warped to f0
    b, a = signal.butter(2, f0, btype=kind, fs=fs)
    c = design(kind, f0, fs)  # default q is Butterworth
    np.testing.assert_allclose(c[:3], b / a[0], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(c[3:], a[1:] / a[0], rtol=1e-9, atol=1e-15)


@grid
@freqs
@pytest.mark.parametrize("kind", ("lowpass", "highpass"))
def test_pass_filters_gain_q_at_f0_and_unity_in_passband(fs, f0, kind):
    # prototype 1/(s^2 + s/Q + 1) (or s^2/...) has |H(j)| = Q; DC / Nyquist are exact
    for q in (0.5, 1.0, 3.0, 10.0):
        c = design(kind, f0, fs, q=q)
        h_f0, h_dc, h_ny = np.abs(response(c, [f0, 0.0, fs / 2.0], fs))
        assert h_f0 == pytest.approx(q, rel=1e-9), q
        h_pass, h_stop = (h_dc, h_ny) if kind == "lowpass" else (h_ny, h_dc)
        assert h_pass == pytest.approx(1.0, abs=1e-9), q
        assert h_stop < 1e-12, q


# --------------------------------------------------------------------------- band-pass / notch


@grid
@freqs
def test_bandpass_unity_at_f0_and_minus_3db_at_band_edges(fs, f0):
    for q in (0.5, SQRT_HALF, 2.0, 8.0):
        c = design("bandpass", f0, fs, q=q)
        lo, hi = band_edges(f0, q, fs)
        g_f0, g_lo, g_hi, g_dc, g_ny = db(response(c, [f0, lo, hi, 1e-6, fs / 2.0 - 1e-6], fs))
        assert g_f0 == pytest.approx(0.0, abs=1e-9), q
        assert g_lo == pytest.approx(-10.0 * math.log10(2.0), abs=1e-7), q
        assert g_hi == pytest.approx(-10.0 * math.log10(2.0), abs=1e-7), q
        assert g_dc < -80.0 and g_ny < -80.0, q


@grid
@freqs
def test_notch_null_at_f0_unity_far_away_and_minus_3db_at_band_edges(fs, f0):
    for q in (0.5, 2.0, 8.0):
        c = design("notch", f0, fs, q=q)
        lo, hi = band_edges(f0, q, fs)
        h_f0, h_dc, h_ny, h_lo, h_hi = np.abs(response(c, [f0, 0.0, fs / 2.0, lo, hi], fs))
        assert h_f0 < 1e-9, q  # deeper than -180 dB
        assert h_dc == pytest.approx(1.0, abs=1e-9), q
        assert h_ny == pytest.approx(1.0, abs=1e-9), q
        assert h_lo == pytest.approx(SQRT_HALF, abs=1e-8), q
        assert h_hi == pytest.approx(SQRT_HALF, abs=1e-8), q


def _scipy_q(f0, q, fs):
    """Q for scipy's iirnotch/iirpeak that reproduces the cookbook's alpha.

    scipy uses beta = tan(pi f0 / (fs Q')), the cookbook alpha = sin(2 pi f0/fs) / (2Q); the
    structures are otherwise identical, so the designs match iff beta == alpha.
    """
    alpha = math.sin(2.0 * math.pi * f0 / fs) / (2.0 * q)
    return math.pi * f0 / (fs * math.atan(alpha))


@grid
@freqs
@pytest.mark.parametrize(("kind", "scipy_design"), (("notch", signal.iirnotch), ("bandpass", signal.iirpeak)))
def test_notch_and_bandpass_match_scipy_after_q_mapping(fs, f0, kind, scipy_design):
    # With the same Q the two are NOT equal (scipy's Q is defined on the digital -3 dB
    # bandwidth w0/Q, the cookbook's on the analog prototype); with the mapped Q they are.
    for q in (0.7, 2.0, 8.0):
        b, a = scipy_design(f0, _scipy_q(f0, q, fs), fs)
        c = design(kind, f0, fs, q=q)
        np.testing.assert_allclose(c[:3], b / a[0], rtol=1e-9, atol=1e-15, err_msg=f"q={q}")
        np.testing.assert_allclose(c[3:], a[1:] / a[0], rtol=1e-9, atol=1e-15, err_msg=f"q={q}")


def test_scipy_iirnotch_with_same_q_is_not_the_cookbook_notch():
    """Documents why the plain equivalence is not asserted."""
    b, a = signal.iirnotch(1_000.0, 2.0, 48_000.0)
    c = design("notch", 1_000.0, 48_000.0, q=2.0)
    assert not np.allclose(c[3:], a[1:] / a[0], rtol=1e-6)


# --------------------------------------------------------------------------- all-pass


@grid
@freqs
@pytest.mark.parametrize("q", (0.3, 5.0))
def test_allpass_unit_magnitude_and_minus_180_at_f0(fs, f0, q):
    c = design("allpass", f0, fs, q=q)
    f = np.linspace(0.0, fs / 2.0, 1001)
    np.testing.assert_allclose(np.abs(response(c, f, fs)), 1.0, atol=1e-12)
    # phase runs 0 -> -180 deg at f0 -> -360 deg at Nyquist
    f_to_f0 = np.linspace(0.0, f0, 2001)
    phase = np.degrees(np.unwrap(np.angle(response(c, f_to_f0, fs))))
    assert phase[0] == pytest.approx(0.0, abs=1e-9)
    assert phase[-1] == pytest.approx(-180.0, abs=1e-6)
    assert np.all(np.diff(phase) <= 1e-9)
    h_f0 = response(c, f0, fs)[0]
    assert h_f0.real == pytest.approx(-1.0, abs=1e-9) and abs(h_f0.imag) < 1e-7


# --------------------------------------------------------------------------- Linkwitz-Riley


LR_CASES = [(fs, fc) for fs in RATES for fc in (80.0, 1_000.0, 4_000.0)]
lr = pytest.mark.parametrize(("fs", "fc"), LR_CASES)


@lr
def test_lr4_shape(fs, fc):
    low, high = linkwitz_riley4(fc, fs)
    assert low.shape == (2, 5) and high.shape == (2, 5)


@lr
def test_lr4_sum_is_allpass(fs, fc):
    low, high = linkwitz_riley4(fc, fs)
    f = np.geomspace(10.0, 0.45 * fs, 400)
    total = _sos_response(low, f, fs) + _sos_response(high, f, fs)
    assert np.max(np.abs(db(total))) < 0.01


@lr
def test_lr4_each_side_minus_6db_at_crossover_and_in_phase(fs, fc):
    low, high = linkwitz_riley4(fc, fs)
    assert db(_sos_response(low, [fc], fs))[0] == pytest.approx(-6.0206, abs=0.01)
    assert db(_sos_response(high, [fc], fs))[0] == pytest.approx(-6.0206, abs=0.01)
    # LR4 outputs are in phase at every frequency: H_low / H_high = 1/s^4 is real positive
    f = np.geomspace(10.0, 0.45 * fs, 200)
    ratio = _sos_response(low, f, fs) / _sos_response(high, f, fs)
    np.testing.assert_allclose(np.angle(ratio), 0.0, atol=1e-6)


@lr
@pytest.mark.parametrize("side", ("lowpass", "highpass"))
def test_lr4_is_scipy_butterworth_squared(fs, fc, side):
    low, high = linkwitz_riley4(fc, fs)
    sections = low if side == "lowpass" else high
    b, a = signal.butter(2, fc, btype=side, fs=fs)
    for section in sections:
        np.testing.assert_allclose(section[:3], b / a[0], rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(section[3:], a[1:] / a[0], rtol=1e-9, atol=1e-15)
    # and as a whole: magnitude is the analytic bilinear Butterworth magnitude squared
    f = np.geomspace(10.0, 0.49 * fs, 300)
    r = warped_ratio(f, fc, fs)
    expected = 1.0 / (1.0 + (r if side == "lowpass" else 1.0 / r) ** 4)
    np.testing.assert_allclose(np.abs(_sos_response(sections, f, fs)), expected, rtol=1e-7, atol=1e-14)


@grid
def test_lr4_slopes_are_24_db_per_octave(fs):
    fc = 100.0  # low enough that warping is negligible at 8-16 fc
    low, high = linkwitz_riley4(fc, fs)
    g_low = db(_sos_response(low, [8 * fc, 16 * fc], fs))
    g_high = db(_sos_response(high, [fc / 8, fc / 16], fs))
    assert g_low[0] == pytest.approx(-72.0, abs=2.0)
    assert g_high[0] == pytest.approx(-72.0, abs=2.0)
    assert g_low[0] - g_low[1] == pytest.approx(24.0, abs=0.5)
    assert g_high[0] - g_high[1] == pytest.approx(24.0, abs=0.5)


def _sos_response(sections, f, fs):
    sos = np.column_stack([sections[:, :3], np.ones(len(sections)), sections[:, 3:]])
    _, h = signal.sosfreqz(sos, worN=np.asarray(f, float), fs=fs)
    return h


# --------------------------------------------------------------------------- cascade_response


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("fs", RATES)
def test_cascade_response_matches_scipy_sosfreqz(seed, fs):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    sections = []
    for _ in range(n):
        kind = FILTER_TYPES[int(rng.integers(len(FILTER_TYPES)))]
        f0, gain_db, q = rng.uniform(20.0, 0.45 * fs), rng.uniform(-15.0, 15.0), rng.uniform(0.2, 10.0)
        sections.append(design(kind, float(f0), fs, gain_db=float(gain_db), q=float(q)))
    sections.append(rng.normal(size=5) * 0.5)  # arbitrary coefficients: evaluation only
    sections = np.array(sections)
    f = np.concatenate([[0.0, fs / 2.0], rng.uniform(0.0, fs / 2.0, 64)])
    expected = _sos_response(sections, f, fs)
    np.testing.assert_allclose(cascade_response(sections, f, fs), expected, rtol=1e-9, atol=1e-12)


def test_cascade_response_single_section_and_identity():
    fs = 48_000.0
    f = np.array([0.0, 100.0, 1_000.0, 20_000.0])
    c = design("peak", 1_000.0, fs, gain_db=6.0, q=1.0)
    np.testing.assert_allclose(cascade_response(c, f, fs), response(c, f, fs), rtol=1e-12)
    np.testing.assert_allclose(cascade_response(IDENTITY, f, fs), 1.0)
    np.testing.assert_allclose(cascade_response(np.stack([IDENTITY, IDENTITY]), f, fs), 1.0)


# --------------------------------------------------------------------------- Biquad dataclass


def test_biquad_defaults_are_butterworth_and_slope_one():
    fs = 48_000.0
    b, a = signal.butter(2, 2_000.0, fs=fs)
    c = coefficients(Biquad("lowpass", 2_000.0), fs)
    np.testing.assert_allclose(c, np.concatenate([b, a[1:]]) / a[0], rtol=1e-9)
    shelf = coefficients(Biquad("lowshelf", 300.0, gain_db=9.0), fs)
    assert db(response(shelf, [0.0, 300.0, fs / 2.0], fs)) == pytest.approx([9.0, 4.5, 0.0], abs=1e-9)


def test_biquad_passes_every_field():
    fs = 96_000.0
    c = coefficients(Biquad("peak", 5_000.0, gain_db=-7.0, q=3.0), fs)
    assert db(response(c, 5_000.0, fs))[0] == pytest.approx(-7.0, abs=1e-9)
    s = coefficients(Biquad("highshelf", 5_000.0, gain_db=6.0, slope=0.5), fs)
    q = 1.0 / math.sqrt((10**0.15 + 10**-0.15) * (1.0 / 0.5 - 1.0) + 2.0)  # cookbook S -> Q
    np.testing.assert_allclose(s, design("highshelf", 5_000.0, fs, 6.0, q=q), rtol=1e-12)
    with pytest.raises(ValueError, match="slope"):
        coefficients(Biquad("peak", 1_000.0, slope=1.0), fs)


def test_biquad_is_frozen():
    band = Biquad("peak", 1_000.0)
    with pytest.raises(AttributeError):
        band.freq_hz = 2_000.0  # type: ignore[misc]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"type": "lowpas"}, "type"),
        ({"type": "Peak"}, "type"),
        ({"freq_hz": 24_000.0}, "freq_hz"),  # == Nyquist
        ({"freq_hz": 30_000.0}, "freq_hz"),
        ({"freq_hz": 0.0}, "freq_hz"),
        ({"freq_hz": -100.0}, "freq_hz"),
        ({"freq_hz": float("nan")}, "freq_hz"),
        ({"q": 0.0}, "q"),
        ({"q": -1.0}, "q"),
        ({"q": float("nan")}, "q"),
        ({"type": "peak", "slope": 1.0}, "slope"),
        ({"type": "lowpass", "slope": 1.0}, "slope"),
        ({"type": "lowshelf", "slope": 0.0}, "slope"),
        ({"type": "highshelf", "slope": -0.5}, "slope"),
        ({"type": "lowshelf", "q": 1.0, "slope": 1.0}, "q.*slope|slope.*q"),
        ({"type": "highshelf", "q": 1.0, "slope": 1.0}, "q.*slope|slope.*q"),
    ],
)
def test_invalid_parameters_raise_value_error_naming_the_parameter(kwargs, names):
    args = {"type": "peak", "freq_hz": 1_000.0, "samplerate": 48_000.0, "gain_db": 3.0} | kwargs
    with pytest.raises(ValueError, match=names):
        design(**args)


@pytest.mark.parametrize("kind", ("lowshelf", "highshelf"))
def test_too_steep_shelf_slope_names_slope(kind):
    # at +12 dB the cookbook's alpha is real only for S <= 1 / (1 - 2/(A + 1/A)) ~= 5.02
    try:
        design(kind, 1_000.0, 48_000.0, gain_db=12.0, slope=6.0)
    except ValueError as exc:
        assert "slope" in str(exc), str(exc)
    else:
        raise AssertionError("no ValueError for an unrealisable slope")
