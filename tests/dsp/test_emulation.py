"""Speaker emulation profiles (``dsp/emulation.py``), built-in and user-defined.

Oracles are independent of the package's filter design and of its loudness arithmetic:

- loudness compensation is measured end to end: pink noise rendered by the compiled path through
  a set with and without ``emulate`` (the set built from a config, as the daemon builds it), both
  outputs metered by ``dsp.bs1770.measure``;
- band limits are read from the table in the module docstring and rebuilt with
  ``scipy.signal.butter``; the character bands are transcribed here and rebuilt from the RBJ
  cookbook text (``pathkit.cookbook``); the profile's coefficients must match the product.

The pink noise is synthesised in the frequency domain with an exact 1/f power spectrum from
20 Hz to 20 kHz and random phases, so it is periodic: its second period through the path is
the steady state, and its spectrum holds no random fluctuation to blur the comparison.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest
from pathkit import FS, cookbook_sos, to_db
from scipy import signal

from controlroom.daemon.config import EmulationConfig, parse_config
from controlroom.daemon.core.path import path_spec
from controlroom.daemon.errors import ConfigError
from controlroom.dsp import emulation, profiles
from controlroom.dsp.bands import Biquad
from controlroom.dsp.biquad import coefficients
from controlroom.dsp.bs1770 import measure
from controlroom.dsp.control import Controls, PathBuffers, PathSpec
from controlroom.dsp.path import render

PROFILES = profiles.PROFILE_NAMES
#: One period of the pink noise: 2**19 frames, 10.9 s at 48 kHz.
PERIOD = 1 << 19
#: Level of the pink noise (dBFS RMS per channel): far below the limiter's ceiling even
#: through the loudest resonance.
PINK_DBFS = -30.0

#: The character bands of each profile, transcribed from the docstring table with their Qs:
#: (type, Hz, dB, Q). Shelves are the cookbook's slope 1, which is Q = 1/sqrt(2).
SHELF_Q = 1.0 / math.sqrt(2.0)
CHARACTER = {
    "phone": [("peak", 1800.0, 6.0, 1.4), ("peak", 4000.0, 3.0, 2.0)],
    "laptop": [("peak", 900.0, 4.0, 1.2), ("peak", 2500.0, -3.0, 2.0), ("peak", 5000.0, 3.0, 1.5)],
    "tv": [("peak", 400.0, -3.0, 1.0), ("peak", 2200.0, 3.0, 1.2)],
    "earbuds": [("lowshelf", 100.0, 4.0, SHELF_Q), ("peak", 3000.0, 5.0, 2.0)],
    "car": [
        ("lowshelf", 70.0, 6.0, SHELF_Q),
        ("peak", 120.0, 4.0, 1.5),
        ("peak", 2500.0, -3.0, 1.0),
        ("highshelf", 8000.0, -3.0, SHELF_Q),
    ],
    "cube": [("peak", 1000.0, 3.0, 0.8)],
    "bluetooth": [("peak", 150.0, 5.0, 1.5), ("peak", 3000.0, 2.0, 1.5)],
}

_ROW = re.compile(
    r"^\| (?P<name>\w+)\s+\|[^|]+\| (?P<mono>yes|no)\s+\| "
    r"(?P<hp>[\d.]+) (?P<hp_unit>k?Hz) (?P<hp_kind>LR4|BW2)\s+\| "
    r"(?P<lp>[\d.]+) (?P<lp_unit>k?Hz) (?P<lp_kind>LR4|BW2)\s+\|",
    re.MULTILINE,
)


def documented() -> dict[str, dict]:
    """The docstring table: name -> mono flag and (Hz, kind) of each band limit."""
    table = {}
    for m in _ROW.finditer(emulation.__doc__):
        hz = {side: float(m[side]) * (1000.0 if m[f"{side}_unit"] == "kHz" else 1.0) for side in ("hp", "lp")}
        table[m["name"]] = {
            "mono": m["mono"] == "yes",
            "highpass": (hz["hp"], m["hp_kind"]),
            "lowpass": (hz["lp"], m["lp_kind"]),
        }
    return table


DOCUMENTED = documented()


# --------------------------------------------------------------------------- helpers


def pink(seed: int) -> np.ndarray:
    """One period of pink noise, 20 Hz to 20 kHz, at PINK_DBFS RMS."""
    freqs = np.fft.rfftfreq(PERIOD, 1.0 / FS)
    band = (freqs >= 20.0) & (freqs <= 20000.0)
    spectrum = np.zeros(freqs.shape, dtype=complex)
    phases = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, band.sum())
    spectrum[band] = np.exp(1j * phases) / np.sqrt(freqs[band])
    x = np.fft.irfft(spectrum, PERIOD)
    return x * 10.0 ** (PINK_DBFS / 20.0) / np.sqrt(np.mean(x * x))


def config_text(sets: dict[str, str | None], extra: str = "", samplerate: int = FS) -> str:
    """A config with one source on inputs 1-2 and one set on outputs 1-2 per entry of ``sets``
    (name -> emulation profile or None)."""
    text = f'[audio]\nbackend = "virtual"\nsamplerate = {samplerate}\n[sources.mix]\nchannels = [1, 2]\n'
    for name, profile in sets.items():
        text += f"[speakers.{name}]\noutputs = [1, 2]\n" + (f'emulate = "{profile}"\n' if profile else "")
    return text + extra


def play(spec: PathSpec, speakers: int, x: np.ndarray) -> np.ndarray:
    """``x`` (frames, 2) through set ``speakers`` of ``spec`` at master 0 dB, fully settled."""
    buffers = PathBuffers(spec, Controls(speakers=speakers, master_db=0.0))
    buffers.settle()
    y = np.zeros((len(x), spec.n_out), dtype=np.float32)
    render(np.ascontiguousarray(x, dtype=np.float32), y, 1024, *buffers.arrays)
    return y.astype(float)


def loudness_change(spec: PathSpec, speakers: int, x: np.ndarray) -> float:
    """Integrated loudness (LU) of set ``speakers`` minus that of set 0 (flat) for one period
    of the periodic ``x``, measured on its second period (steady state)."""
    twice = np.concatenate([x, x])
    figures = [measure(play(spec, k, twice)[PERIOD:], FS).integrated_lufs for k in (0, speakers)]
    return figures[1] - figures[0]


def band_limits_sos(name: str, fs: float) -> np.ndarray:
    """The documented band limits of profile ``name`` as scipy Butterworth sections."""
    rows = []
    for side, btype in (("highpass", "highpass"), ("lowpass", "lowpass")):
        hz, kind = DOCUMENTED[name][side]
        sos = signal.butter(2, hz, btype, fs=fs, output="sos")
        rows += [sos, sos] if kind == "LR4" else [sos]
    return np.vstack(rows)


def character_sos(name: str, fs: float) -> np.ndarray:
    return cookbook_sos([(kind, f0, fs, gain_db, q) for kind, f0, gain_db, q in CHARACTER[name]])


def profile_sos(name: str, fs: float) -> np.ndarray:
    """The package profile's own coefficients as scipy sections ``[b0 b1 b2 1 a1 a2]``."""
    c = np.array([coefficients(band, fs) for band in profiles.PROFILES[name].bands])
    return np.column_stack([c[:, :3], np.ones(len(c)), c[:, 3:]])


def level_db(sos: np.ndarray, freqs, fs: float) -> np.ndarray:
    _, h = signal.sosfreqz(sos, worN=np.asarray(freqs, dtype=float), fs=fs)
    return 20.0 * np.log10(np.abs(h))


def band_limit_db(name: str, freqs, fs: float) -> np.ndarray:
    """The profile's response with its (independently built) character bands divided out."""
    return level_db(profile_sos(name, fs), freqs, fs) - level_db(character_sos(name, fs), freqs, fs)


# --------------------------------------------------------------------------- the table


def test_the_docstring_table_lists_every_profile_with_its_mono_flag():
    assert list(DOCUMENTED) == list(PROFILES)
    assert {name: DOCUMENTED[name]["mono"] for name in PROFILES} == {
        name: p.mono for name, p in profiles.PROFILES.items()
    }


@pytest.mark.parametrize("name", PROFILES)
def test_a_profile_is_exactly_its_documented_band_limits_and_character(name):
    freqs = np.geomspace(20.0, 20000.0, 400)
    oracle = np.vstack([band_limits_sos(name, FS), character_sos(name, FS)])
    np.testing.assert_allclose(level_db(profile_sos(name, FS), freqs, FS), level_db(oracle, freqs, FS), atol=0.01)


@pytest.mark.parametrize("name", PROFILES)
def test_the_band_limits_sit_at_their_documented_corners(name):
    """-6 dB at an LR4 corner, -3 dB at a BW2 corner, relative to the (flat) band-limit passband."""
    corner_db = {"LR4": -6.02, "BW2": -3.01}
    (hp, hp_kind), (lp, lp_kind) = DOCUMENTED[name]["highpass"], DOCUMENTED[name]["lowpass"]
    passband = band_limit_db(name, [math.sqrt(hp * lp)], FS)[0]
    corners = band_limit_db(name, [hp, lp], FS) - passband
    assert abs(passband) < 0.05
    assert corners[0] == pytest.approx(corner_db[hp_kind], abs=0.05)
    assert corners[1] == pytest.approx(corner_db[lp_kind], abs=0.05)


@pytest.mark.parametrize("name", PROFILES)
def test_the_band_limits_fall_at_their_documented_slopes(name):
    """Far from the corners the stop bands fall at 24 (LR4) or 12 (BW2) dB/octave. The low-pass
    is checked at a rate high enough (3.072 MHz) for the bilinear transform's warping near
    Nyquist not to steepen it."""
    slope = {"LR4": 24.0, "BW2": 12.0}
    (hp, hp_kind), (lp, lp_kind) = DOCUMENTED[name]["highpass"], DOCUMENTED[name]["lowpass"]
    below = band_limit_db(name, [hp / 16.0, hp / 8.0], FS)
    assert below[1] - below[0] == pytest.approx(slope[hp_kind], abs=0.2)
    fast = 64 * FS
    above = band_limit_db(name, [lp * 4.0, lp * 8.0], fast)
    assert above[0] - above[1] == pytest.approx(slope[lp_kind], abs=0.2)


# --------------------------------------------------------------------------- the path


@pytest.fixture(scope="module")
def profile_spec() -> PathSpec:
    """Set 0 flat, then one set per built-in profile, all on outputs 1-2, built as the daemon does."""
    return path_spec(parse_config(config_text({"flat": None} | {name: name for name in PROFILES})))


@pytest.mark.parametrize("name", PROFILES)
def test_the_path_plays_the_profile_with_its_compensation(profile_spec, name):
    """An impulse on both inputs through the set: its spectrum is the oracle cascade plus the
    profile's compensation gain."""
    x = np.zeros((FS, 2))
    x[0] = 0.01
    y = play(profile_spec, PROFILES.index(name) + 1, x)
    freqs = np.array([100.0, 300.0, 1000.0, 3000.0, 10000.0])
    n = np.arange(FS)
    measured = [to_db(abs(np.sum(y[:, 0] * np.exp(-2j * np.pi * f * n / FS))) / 0.01) for f in freqs]
    oracle = level_db(np.vstack([band_limits_sos(name, FS), character_sos(name, FS)]), freqs, FS)
    np.testing.assert_allclose(measured, oracle + emulation.compensation_db(profiles.PROFILES[name]), atol=0.02)


def _correlated_pink() -> np.ndarray:
    x = pink(1)
    return np.stack([x, x], axis=1)


def _uncorrelated_pink() -> np.ndarray:
    return np.stack([pink(2), pink(3)], axis=1)


@pytest.fixture(scope="module")
def correlated_changes(profile_spec) -> dict[str, float]:
    x = _correlated_pink()
    return {name: loudness_change(profile_spec, k + 1, x) for k, name in enumerate(PROFILES)}


@pytest.mark.parametrize("name", PROFILES)
def test_compensation_keeps_the_loudness_of_pink_noise_identical_on_l_and_r(correlated_changes, name):
    """The documented target: pink noise identical on both channels (mono-compatible content)."""
    assert abs(correlated_changes[name]) <= 0.5


def test_uncorrelated_pink_noise_loses_3_db_through_mono_profiles_only(profile_spec):
    """Stereo profiles filter each channel alone, so decorrelation changes nothing; a mono
    profile plays (L+R)/2, which halves the power of uncorrelated channels (-3.01 dB)."""
    x = _uncorrelated_pink()
    for k, name in enumerate(PROFILES):
        expected = -3.01 if profiles.PROFILES[name].mono else 0.0
        assert loudness_change(profile_spec, k + 1, x) == pytest.approx(expected, abs=0.5), name


@pytest.mark.parametrize("name", PROFILES)
def test_mono_profiles_play_identical_channels_and_stereo_profiles_keep_them_apart(profile_spec, name):
    k = PROFILES.index(name) + 1
    noise = np.random.default_rng(4).uniform(-0.1, 0.1, (FS // 2, 2))
    left_only = noise * [1.0, 0.0]
    y, y_left = play(profile_spec, k, noise), play(profile_spec, k, left_only)
    if profiles.PROFILES[name].mono:
        assert np.array_equal(y[:, 0], y[:, 1])
        assert np.array_equal(y_left[:, 0], y_left[:, 1]) and np.any(y_left[:, 1])
    else:
        assert abs(np.corrcoef(y[:, 0], y[:, 1])[0, 1]) < 0.1
        assert np.any(y_left[:, 0]) and not np.any(y_left[:, 1])


# --------------------------------------------------------------------------- user-defined profiles

RADIO = """
[emulations.radio]
eq = [
    { type = "highpass", freq_hz = 300.0, q = 0.9 },
    { type = "lowpass", freq_hz = 3500.0 },
    { type = "peak", freq_hz = 1200.0, gain_db = 3.0, q = 1.0 },
]
mono = true
[emulations.wide]
eq = [{ type = "highshelf", freq_hz = 6000.0, gain_db = -6.0 }]
"""


def test_a_user_profile_is_parsed_and_played_like_a_built_in():
    config = parse_config(config_text({"flat": None, "radio": "radio", "wide": "wide", "tv": "tv"}, RADIO))
    radio_eq = (Biquad("highpass", 300.0, q=0.9), Biquad("lowpass", 3500.0), Biquad("peak", 1200.0, 3.0, q=1.0))
    assert config.emulations == {
        "radio": EmulationConfig("radio", radio_eq, True),
        "wide": EmulationConfig("wide", (Biquad("highshelf", 6000.0, -6.0),), False),
    }
    sets = path_spec(config).sets
    assert (sets[1].eq, sets[1].mono) == (radio_eq, True)
    assert (sets[2].mono, sets[3].eq) == (False, profiles.PROFILES["tv"].bands)
    assert sets[1].trim_db == pytest.approx(emulation.loudness_compensation_db(radio_eq, FS))
    assert sets[1].trim_db > 2.0  # a telephone-band profile needs real make-up gain


def test_a_user_profile_is_loudness_compensated_end_to_end():
    spec = path_spec(parse_config(config_text({"flat": None, "radio": "radio", "wide": "wide"}, RADIO)))
    x = _correlated_pink()
    assert abs(loudness_change(spec, 1, x)) <= 0.5
    assert abs(loudness_change(spec, 2, x)) <= 0.5


def test_a_user_profile_may_use_bands_above_the_reference_rate_s_nyquist():
    extra = '[emulations.air]\neq = [{ type = "highshelf", freq_hz = 30000.0, gain_db = 3.0 }]\n'
    spec = path_spec(parse_config(config_text({"air": "air"}, extra, samplerate=96000)))
    assert spec.sets[0].trim_db == pytest.approx(0.0, abs=0.1)  # the shelf is above the audio band


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "e.toml")
    return caught.value.errors


def test_user_profile_errors_are_all_reported_at_once_with_hints():
    bands = ", ".join(['{ type = "peak", freq_hz = 1000.0 }'] * 9)
    extra = f"""
[emulations.radio]
eq = [{{ type = "peak", freq_hz = 30000.0, gain_db = 3.0 }}]
mnoo = true
[emulations.phone]
mono = true
[emulations.Loud]
eq = [{bands}]
[emulations.flat]
mono = "yes"
"""
    errors = errors_of(config_text({"a": "radoi", "b": "radio"}, extra))
    assert errors == [
        "e.toml: emulations.radio.mnoo: unknown key (did you mean 'mono'?)",
        (
            "e.toml: emulations.radio.eq[0].freq_hz: 30000.0 is at or above Nyquist "
            "(expected a number > 0.0 and < 24000.0 Hz at samplerate 48000)"
        ),
        'e.toml: emulations.phone: "phone" is a built-in emulation profile (expected a name of its own)',
        (
            'e.toml: emulations.Loud: "Loud" is not a valid name '
            "(expected a name of lower-case letters, digits, '-' and '_', starting with a letter or digit)"
        ),
        (
            'e.toml: emulations.Loud.eq: [{ type = "peak", freq_hz = 1000.0 },... has 9 entries '
            "(expected a list of up to 8 EQ bands (inline tables))"
        ),
        'e.toml: emulations.flat.mono: "yes" is a string (expected true or false)',
        "e.toml: speakers.a.emulate: \"radoi\" is not an emulation profile (did you mean 'radio'?)",
    ]


def test_controlroom_check_reports_a_misspelt_user_profile_without_a_traceback(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(config_text({"a": "radoi"}, RADIO))
    result = subprocess.run(
        [sys.executable, "-m", "controlroom", "check", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert (
        result.stderr == f"{path}: speakers.a.emulate: \"radoi\" is not an emulation profile (did you mean 'radio'?)\n"
    )


def test_every_built_in_profile_fits_beside_a_full_set_eq():
    from controlroom.daemon.config.model import MAX_EMULATION_BANDS

    assert max(len(p.bands) for p in profiles.PROFILES.values()) <= MAX_EMULATION_BANDS
