"""The PortAudio host on a real JACK dummy server: levels, statistics, GIL-freedom, device loss."""

from __future__ import annotations

import ctypes
import time

import numpy as np
import pytest
from enginekit import BLOCK_RATE, BLOCKSIZE, N_IN, N_OUT, SAMPLERATE, SINE, SINE_DB, copy_kernel, kernel_arrays
from jackutil import rms_db

from controlroom.daemon.engine import PortAudioHost, find_device
from controlroom.daemon.errors import EngineError

pytestmark = pytest.mark.jack


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def make_host() -> PortAudioHost:
    return PortAudioHost(copy_kernel, kernel_arrays(0.5), "system", SAMPLERATE, BLOCKSIZE, N_IN, N_OUT)


@pytest.fixture
def host(jack):
    host = make_host()
    yield host
    host.close()


def start_and_wire(host, jack):
    host.start()
    assert wait_until(lambda: host.running), host.stats()
    harness = jack.harness(N_IN, N_OUT)
    harness.play(1, SINE)
    harness.wire()
    return harness


def levels(harness) -> np.ndarray:
    # 9600 frames = 200 periods of 1 kHz: the RMS of a whole number of periods is exact.
    return rms_db(harness.record(9600, skip=4096))


def test_sine_passes_at_the_kernel_gain_and_other_outputs_are_silent(host, jack):
    harness = start_and_wire(host, jack)
    db = levels(harness)
    assert db[1] == pytest.approx(SINE_DB + 20 * np.log10(0.5), abs=0.1)
    assert np.all(db[[0, 2, 3]] < -120.0)


def test_changing_shared_changes_the_level(host, jack):
    harness = start_and_wire(host, jack)
    before = levels(harness)[1]
    host.arrays.shared[0] = 0.125
    after = levels(harness)[1]
    assert after - before == pytest.approx(-12.04, abs=0.1)


def test_statistics_grow_and_report_durations(host, jack):
    host.start()
    assert wait_until(lambda: host.stats()["callbacks"] > 100)
    first = host.stats()
    assert wait_until(lambda: host.stats()["callbacks"] > first["callbacks"] + 100)
    stats = host.stats()
    assert stats["backend"] == "portaudio" and stats["device"] == "system" and stats["running"]
    assert stats["frames"] == stats["callbacks"] * BLOCKSIZE
    # These VMs drop JACK deadlines at random: a delivered fraction, never zero xruns.
    assert stats["callbacks"] >= 0.5 * stats["expected_callbacks"]
    assert set(stats["xruns"]) == {
        "input_underflow",
        "input_overflow",
        "output_underflow",
        "output_overflow",
        "priming",
    }
    durations = stats["duration_us"]
    assert 0 < durations["p50"] <= durations["p99"] <= durations["max"]


def hold_gil_busy(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def hold_gil_blocked(seconds: float) -> None:
    # A PyDLL call keeps the GIL for its whole duration: no thread switch can happen.
    libc = ctypes.PyDLL(None)
    libc.usleep(int(seconds * 1e6))


@pytest.mark.parametrize("hold", [hold_gil_busy, hold_gil_blocked], ids=["busy-loop", "blocked-in-C"])
def test_callbacks_run_while_python_holds_the_gil(host, hold):
    host.start()
    assert wait_until(lambda: host.running)
    before = host.stats()
    hold(1.0)
    after = host.stats()
    delivered = after["callbacks"] - before["callbacks"]
    due = after["expected_callbacks"] - before["expected_callbacks"]
    assert due > 0.8 * BLOCK_RATE  # the stream clock advanced about a second
    assert delivered >= 0.5 * due, f"{delivered} of {due} callbacks while the GIL was held"


def test_losing_the_jack_server_stops_audio_and_reinitialise_brings_it_back(host, jack):
    host.start()
    assert wait_until(lambda: host.running)
    jack.kill()
    assert wait_until(lambda: not host.running)
    assert host.stats()["running"] is False
    with pytest.raises(EngineError, match="system"):
        host.reinitialise()
        host.start()  # the server is still down: no device
    jack.start()
    host.reinitialise()
    harness = start_and_wire(host, jack)
    assert levels(harness)[1] == pytest.approx(SINE_DB + 20 * np.log10(0.5), abs=0.1)


def test_retries_while_the_server_is_down_then_recover_with_a_new_host(host, jack):
    # As the daemon does it: close, reinitialise, and start a new host on fresh buffers.
    host.start()
    assert wait_until(lambda: host.running)
    jack.kill()
    assert wait_until(lambda: not host.running)
    current = host
    for _ in range(3):
        current.close()
        current.reinitialise()
        current = make_host()
        with pytest.raises(EngineError, match="no audio device matches 'system'"):
            current.start()
    jack.start()
    current.reinitialise()
    with make_host() as fresh:
        harness = start_and_wire(fresh, jack)
        assert levels(harness)[1] == pytest.approx(SINE_DB + 20 * np.log10(0.5), abs=0.1)


def test_find_device_lists_the_devices_when_none_matches(jack):
    with pytest.raises(EngineError) as error:
        find_device("no such interface", N_IN, N_OUT)
    assert "[0] system (JACK Audio Connection Kit, 8 in, 8 out)" in str(error.value)


def test_find_device_refuses_a_device_with_too_few_channels(jack):
    with pytest.raises(EngineError, match="too few channels for 2 in and 9 out"):
        find_device("SYSTEM", 2, 9)
    assert find_device("SYSTEM", 2, 8)["name"] == "system"
    assert find_device(0, 2, 8)["name"] == "system"
