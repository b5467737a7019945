"""The calibration's signals and analysis against analytic oracles: scipy runs the test
signal's cascade, delays and gains are known by construction."""

import math

import numpy as np
import pytest
from scipy import signal

from controlroom.dsp import calibration as cal

FS = 48000


def sos(sections: np.ndarray) -> np.ndarray:
    """Our ``b0 b1 b2 a1 a2`` rows as scipy's second-order sections."""
    return np.hstack([sections[:, :3], np.ones((len(sections), 1)), sections[:, 3:]])


def played(band, rms_dbfs: float, frames: int, seed: int = 1) -> np.ndarray:
    """The test signal as the kernel makes it: uniform noise through the cascade, scaled."""
    sections = cal.test_sections(band, FS)
    noise = np.random.default_rng(seed).uniform(-1.0, 1.0, frames)
    return cal.test_gain(sections, FS, rms_dbfs) * signal.sosfilt(sos(sections), noise)


@pytest.mark.parametrize("band", [cal.LEVEL_BAND, cal.ARRIVAL_BAND, cal.sub_band(80.0)])
def test_the_test_signal_plays_at_its_rms_level(band):
    x = played(band, -20.0, FS * 20)[FS:]
    assert 20 * math.log10(np.sqrt(np.mean(x**2))) == pytest.approx(-20.0, abs=0.2)


@pytest.mark.parametrize("band", [cal.LEVEL_BAND, cal.ARRIVAL_BAND, cal.sub_band(80.0)])
def test_the_test_signal_is_pink_within_its_band_and_falls_away_outside(band):
    low, high = band
    freqs = np.geomspace(low * 1.5, high / 1.5, 12)
    _, h = signal.sosfreqz(sos(cal.test_sections(band, FS)), worN=freqs, fs=FS)
    db = 20 * np.log10(np.abs(h))
    slope = np.polyfit(np.log2(freqs), db, 1)[0]
    assert slope == pytest.approx(-3.01, abs=0.3)  # dB per octave: pink
    assert np.max(np.abs(db - np.polyval(np.polyfit(np.log2(freqs), db, 1), np.log2(freqs)))) < 0.5
    _, edges = signal.sosfreqz(sos(cal.test_sections(band, FS)), worN=[low / 4, min(high * 4, 23000)], fs=FS)
    inside = np.interp(np.log2(low * 1.5), np.log2(freqs), db)
    if high * 4 < 20000:
        assert np.all(20 * np.log10(np.abs(edges)) < inside - 20.0)
    else:
        assert 20 * np.log10(np.abs(edges[0])) < inside - 20.0


def test_band_power_reads_a_sine_inside_the_band_and_not_one_outside():
    t = np.arange(FS) / FS
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.5 * np.sin(2 * np.pi * 60 * t)
    assert cal.power_db(cal.band_power(tone, cal.LEVEL_BAND, FS)) == pytest.approx(
        20 * math.log10(0.5 / math.sqrt(2)), abs=0.01
    )
    assert cal.power_db(cal.band_power(tone, cal.sub_band(80.0), FS)) == pytest.approx(
        20 * math.log10(0.5 / math.sqrt(2)), abs=0.01
    )


@pytest.mark.parametrize(
    ("band", "sharpen"), [(cal.ARRIVAL_BAND, True), (cal.sub_band(80.0), False), (cal.sub_band(120.0), False)]
)
@pytest.mark.parametrize("delay", [0, 37, 263, 1201, 4800])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_arrival_is_found_to_the_sample_through_gain_and_room_noise(band, sharpen, delay, seed):
    x = played(band, -20.0, FS, seed)
    heard = np.concatenate([np.zeros(delay), 10 ** (-12.0 / 20) * x])[: len(x)]
    # white noise 30 dB under the heard signal's RMS, over the whole band
    heard += 10 ** (-62.0 / 20) * np.random.default_rng(seed + 10).standard_normal(len(x))
    found = cal.arrival(x, heard, 6000, sharpen)
    assert found.lag == delay and found.peak > 0.95


@pytest.mark.parametrize("gap", [48, 240])
def test_the_arrival_is_the_direct_sound_not_a_weaker_reflection_close_behind(gap):
    x = played(cal.ARRIVAL_BAND, -20.0, FS)
    heard = 0.5 * np.roll(x, 120) + 0.35 * np.roll(x, 120 + gap)
    heard[:120] = 0.0
    assert cal.arrival(x, heard, 4800, sharpen=True).lag == 120


def test_a_mic_that_hears_something_else_than_the_output_has_no_clear_arrival():
    x = played(cal.ARRIVAL_BAND, -20.0, FS, 1)
    other = played(cal.ARRIVAL_BAND, -20.0, FS, 2)
    assert cal.arrival(x, other, 4800, sharpen=True).peak < 0.1


def test_a_recording_too_short_for_the_lags_is_refused():
    with pytest.raises(ValueError, match="too short"):
        cal.arrival(np.ones(100), np.ones(100), 80)


@pytest.mark.parametrize("band", [cal.LEVEL_BAND, cal.sub_band(80.0)])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_heard_level_is_the_sent_level_plus_the_rooms_gain_whatever_the_noise_burst(band, seed):
    """A second of 30-80 Hz noise strays by tenths of a dB from its nominal level: the level is
    read against what was sent, so the stray drops out."""
    x = played(band, -20.0, FS, seed)
    rng = np.random.default_rng(seed + 3)
    heard = np.concatenate([np.zeros(120), 10 ** (-6.0 / 20) * x])[:FS] + 10 ** (-70.0 / 20) * rng.standard_normal(FS)
    noise = 10 ** (-70.0 / 20) * rng.standard_normal(FS)
    level = cal.heard_level(x, heard, noise, 120, cal.listening_band(band), FS, -20.0)
    assert level.level_db == pytest.approx(-26.0, abs=0.05)
    wide = cal.listening_band(band)
    in_band_noise = -70.0 + 10 * math.log10((wide[1] - wide[0]) / (FS / 2))
    assert level.snr_db == pytest.approx(-26.0 - in_band_noise, abs=1.5)  # a second of narrow noise strays
    assert level.peak_dbfs == pytest.approx(cal.peak_dbfs(heard))


@pytest.mark.parametrize("band", [cal.LEVEL_BAND, cal.sub_band(80.0)])
def test_the_listening_band_reads_the_whole_test_signal_as_played(band):
    x = played(band, -20.0, FS * 10)[FS:]
    total = cal.power_db(float(np.mean(x**2)))
    assert cal.power_db(cal.band_power(x, cal.listening_band(band), FS)) == pytest.approx(total, abs=0.05)
    assert cal.power_db(cal.band_power(x, band, FS)) < total - 0.3  # the skirts do count


def test_a_silent_mic_has_no_level():
    x = played(cal.LEVEL_BAND, -20.0, FS)
    level = cal.heard_level(x, np.zeros(FS), np.zeros(FS), 0, cal.LEVEL_BAND, FS, -20.0)
    assert level.level_db == -math.inf and level.peak_dbfs == -math.inf


def test_spl_follows_the_calibrator_reading():
    assert cal.spl_db(-30.0, -26.0) == pytest.approx(90.0)
    assert cal.spl_db(-26.0, -26.0) == pytest.approx(94.0)


def test_alignment_delays_bring_every_output_to_the_latest():
    assert cal.alignment_delays({1: 168, 2: 301, 3: 250}) == {1: 133, 2: 0, 3: 51}


def test_the_power_mean_of_equal_levels_is_that_level():
    assert cal.power_mean_db([-20.0, -20.0]) == pytest.approx(-20.0)
    assert cal.power_mean_db([-20.0, -np.inf]) == pytest.approx(-20.0 - 10 * math.log10(2))
