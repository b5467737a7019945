"""Insert round-trip measurement against known delays, gains, polarity, EQ and noise."""

import numpy as np
import pytest
from scipy import signal

from controlroom.dsp.alignment import measure_insert


def noise(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.1, 0.1, n)


@pytest.mark.parametrize("latency", [0, 1, 37, 255, 2399])
@pytest.mark.parametrize("gain_db", [-6.0, 0.0, 3.5])
def test_latency_is_exact_and_gain_within_a_hundredth_of_a_db(latency, gain_db):
    send = noise(24000)
    ret = np.zeros_like(send)
    ret[latency:] = 10 ** (gain_db / 20) * send[: len(send) - latency]
    m = measure_insert(send, ret, 2400)
    assert m.latency == latency
    assert m.gain_db == pytest.approx(gain_db, abs=0.01)


def test_an_eq_and_hiss_in_the_return_do_not_move_the_latency():
    send = noise(24000)
    b, a = signal.iirpeak(3000.0, 2.0, fs=48000)  # a resonant colour on top of the direct path
    coloured = send + 0.3 * signal.lfilter(b, a, send)
    ret = np.zeros_like(send)
    ret[101:] = 0.5 * coloured[:-101]
    ret += np.random.default_rng(9).normal(0, 0.002, len(ret))
    assert measure_insert(send, np.column_stack([ret, ret]), 2400).latency == 101


def test_an_inverted_return_is_found_with_its_gain():
    send = noise(12000)
    ret = np.zeros_like(send)
    ret[10:] = -send[:-10]
    m = measure_insert(send, ret, 100)
    assert (m.latency, round(m.gain_db, 3)) == (10, 0.0)


def test_an_unconnected_return_is_an_error():
    with pytest.raises(ValueError, match="connected"):
        measure_insert(noise(12000, 1), noise(12000, 2), 2400)
