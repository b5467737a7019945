"""Insert round-trip measurement against known delays, gains, polarity, EQ and noise.

The gain oracle is independent of the code (``loudnessoracle``): scipy's ``freqz`` of the known
EQ, weighted by the K-weighting filters as BS.1770-4 publishes them for 48 kHz, integrated over
20 Hz to 20 kHz on a log axis (pink noise: equal power per octave).
"""

import numpy as np
import pytest
from loudnessoracle import FS, outboard_eq, pink_k_gain_db
from scipy import signal

from controlroom.dsp.alignment import measure_insert, transfer_function


def noise(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.1, 0.1, n)


@pytest.mark.parametrize("latency", [0, 1, 37, 255, 2399])
@pytest.mark.parametrize("gain_db", [-6.0, 0.0, 3.5])
def test_latency_is_exact_and_a_plain_gain_within_a_hundredth_of_a_db(latency, gain_db):
    send = noise(24000)
    ret = np.zeros_like(send)
    ret[latency:] = 10 ** (gain_db / 20) * send[: len(send) - latency]
    m = measure_insert(send, ret, 2400, FS)
    assert m.latency == latency
    assert m.gain_db == pytest.approx(gain_db, abs=0.01)
    assert m.coherence > 0.99 and not m.inverted


def test_an_eq_and_hiss_leave_the_latency_exact_and_the_gain_is_the_loudness_change():
    b, a = outboard_eq()
    send = noise(26400)
    ret = np.zeros_like(send)
    ret[101:] = 10 ** (-3.0 / 20) * signal.lfilter(b, a, send)[:-101]
    ret += np.random.default_rng(9).normal(0, 0.002, len(ret))  # hiss, 30 dB below the noise
    m = measure_insert(send, np.column_stack([ret, ret]), 2400, FS)
    assert m.latency == 101
    expected = pink_k_gain_db(b, a) - 3.0
    assert abs(expected + 3.0) > 1.0  # the EQ itself moves the loudness: the test can fail
    assert m.gain_db == pytest.approx(expected, abs=0.1)


def test_an_inverted_return_is_found_with_its_gain_and_reported():
    send = noise(12000)
    ret = np.zeros_like(send)
    ret[10:] = -send[:-10]
    m = measure_insert(send, ret, 100, FS)
    assert (m.latency, round(m.gain_db, 3), m.inverted) == (10, 0.0, True)


def test_an_unconnected_return_is_an_error():
    with pytest.raises(ValueError, match="connected"):
        measure_insert(noise(12000, 1), noise(12000, 2), 2400, FS)


def test_a_silent_send_or_a_short_recording_is_an_error():
    with pytest.raises(ValueError, match="silent"):
        measure_insert(np.zeros(12000), noise(12000), 2400, FS)
    with pytest.raises(ValueError, match="at least"):
        measure_insert(noise(4000), noise(4000), 2400, FS)


def test_the_response_is_welchs_cross_spectrum_over_the_send_spectrum():
    b, a = outboard_eq()
    x = noise(40000)
    y = signal.lfilter(b, a, x)
    freqs, response, coherence = transfer_function(x, y, FS)
    f, pxy = signal.csd(x, y, fs=FS, window="hann", nperseg=4096, noverlap=2048, detrend=False)
    _, pxx = signal.welch(x, fs=FS, window="hann", nperseg=4096, noverlap=2048, detrend=False)
    np.testing.assert_allclose(freqs, f)
    np.testing.assert_allclose(response[1:-1], (pxy / pxx)[1:-1], rtol=1e-6)
    assert coherence > 0.99


def test_a_non_finite_recording_is_an_error_not_a_nan_gain():
    send = noise(12000)
    ret = send.copy()
    ret[5000] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        measure_insert(send, ret, 2400, FS)


def test_a_return_later_than_the_path_can_align_says_so():
    send = noise(24000)
    ret = np.zeros_like(send)
    ret[3000:] = send[:-3000]
    with pytest.raises(ValueError, match="3000 samples late, beyond the 2400"):
        measure_insert(send, ret, 2400, FS)
