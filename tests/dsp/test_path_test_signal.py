"""The kernel's calibration test signal and the subwoofer's own delay: the test signal plays
on one output only, at its RMS level, fades in and out, and keeps to the ceiling; scipy runs the
same cascade as the oracle."""

import numpy as np
from pathkit import FS, rms, run, run_blocks, sine, stereo_spec, to_db
from scipy import signal

from controlroom.dsp import calibration as cal
from controlroom.dsp.control import CalibrationSignal, Controls, PathBuffers, SetSpec, SubSpec

N = FS * 2


def burst(output: int, band=cal.LEVEL_BAND, dbfs: float = -20.0, fade_ms: float = 100.0) -> CalibrationSignal:
    sections = cal.test_sections(band, FS)
    return CalibrationSignal(output, tuple(map(tuple, sections)), cal.test_gain(sections, FS, dbfs), fade_ms)


def test_the_test_signal_plays_on_its_output_alone_at_its_rms_level_over_the_programme_held_silent():
    x = np.zeros((N, 2), dtype=np.float32)
    x[:, 0] = x[:, 1] = sine(1000.0, N)
    controls = Controls(mute=True, calibration_signal=burst(3))
    y, _ = run(stereo_spec(n_out=4), controls, x)
    assert not np.any(y[:, [0, 1, 3]])
    assert abs(to_db(rms(y[FS // 2 :, 2])) + 20.0) < 0.3


def test_the_test_signal_is_the_cascade_of_its_sections_on_uniform_noise():
    """The spectrum of what plays has the shape scipy gives the same sections."""
    signal_ = burst(1, cal.ARRIVAL_BAND)
    y, _ = run(stereo_spec(), Controls(mute=True, calibration_signal=signal_), np.zeros((FS * 4, 2), np.float32))
    freqs, psd = signal.welch(y[FS // 2 :, 0].astype(float), FS, nperseg=8192)
    sos = np.hstack([np.array(signal_.sections)[:, :3], np.ones((8, 1)), np.array(signal_.sections)[:, 3:]])
    _, h = signal.sosfreqz(sos, worN=freqs, fs=FS)
    inside = (freqs > 200) & (freqs < 5000)
    expected = (signal_.gain**2) * np.abs(h[inside]) ** 2 * (1.0 / 3.0) * 2.0 / FS
    ratio_db = 10 * np.log10(psd[inside] / expected)
    assert abs(np.median(ratio_db)) < 0.3


def test_the_test_signal_fades_in_and_out_over_its_fade():
    spec = stereo_spec()
    buffers = PathBuffers(spec, Controls(mute=True))
    buffers.settle()
    playing = Controls(mute=True, calibration_signal=burst(1, fade_ms=100.0))
    quiet = Controls(
        mute=True, calibration_signal=CalibrationSignal(1, playing.calibration_signal.sections, 0.0, 100.0)
    )
    x = np.zeros((FS * 3, 2), np.float32)
    y = run_blocks(buffers, x, 64, {0: (spec, playing), FS * 2: (spec, quiet)})[:, 0]
    fade = FS // 10
    envelope = lambda part: np.max(np.abs(part))  # noqa: E731
    assert envelope(y[: fade // 10]) < 0.15 * envelope(y[fade : 2 * fade])  # rising
    assert envelope(y[FS * 2 + fade + 64 :]) == 0.0  # faded out, then silent
    assert envelope(y[FS * 2 : FS * 2 + fade // 10]) > 0.5 * envelope(y[fade : 2 * fade])  # falling, not cut


def test_the_test_signal_never_passes_the_ceiling():
    y, _ = run(
        stereo_spec(ceiling_dbfs=-6.0), Controls(mute=True, calibration_signal=burst(1, dbfs=+6.0)), np.zeros((N, 2))
    )
    assert np.max(np.abs(y[:, 0])) <= 10 ** (-6.0 / 20)


def test_a_subwoofer_has_its_own_delay_on_top_of_the_sets():
    spec = stereo_spec(n_out=3, sets=[SetSpec((1, 2), delay_ms=1.0, sub=SubSpec(3, 80.0, 0.0, delay_ms=2.0))])
    x = np.zeros((FS, 2), np.float32)
    x[1000, :] = 0.5
    y, _ = run(spec, Controls(master_db=0.0), x)
    onset = [int(np.argmax(np.abs(y[:, o]) > 0.0)) for o in range(3)]
    assert onset == [1000 + 48, 1000 + 48, 1000 + 48 + 96]
