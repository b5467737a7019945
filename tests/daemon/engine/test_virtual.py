"""The virtual host: a self-clocked, GIL-free thread running the kernel on a program loop."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import time

import numpy as np
import pytest
from enginekit import BLOCK_RATE, BLOCKSIZE, N_IN, N_OUT, SAMPLERATE, SINE, SINE_DB, copy_kernel, kernel_arrays
from jackutil import rms_db

from controlroom.daemon.engine import VirtualHost
from controlroom.dsp import layout


def program() -> np.ndarray:
    loop = np.zeros((SINE.shape[0], N_IN), dtype=np.float32)
    loop[:, 0] = SINE
    return loop


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def host():
    host = VirtualHost(
        copy_kernel,
        kernel_arrays(0.5),
        SAMPLERATE,
        BLOCKSIZE,
        N_IN,
        N_OUT,
        program=program(),
        tap_frames=SAMPLERATE,
    )
    yield host
    host.close()


def settled_output(host, frames: int = 9600) -> np.ndarray:
    written = host.stats()["frames"]
    assert wait_until(lambda: host.stats()["frames"] >= written + frames + 4 * BLOCKSIZE)
    return host.latest_output(frames)


def test_program_passes_at_the_kernel_gain_and_other_outputs_are_silent(host):
    host.start()
    db = rms_db(settled_output(host))
    assert db[1] == pytest.approx(SINE_DB + 20 * np.log10(0.5), abs=0.1)
    assert np.all(np.isneginf(db[[0, 2, 3]]))


def test_changing_shared_changes_the_level(host):
    host.start()
    before = rms_db(settled_output(host))[1]
    host.arrays.shared[0] = 0.125
    after = rms_db(settled_output(host))[1]
    assert after - before == pytest.approx(-12.04, abs=0.1)


def test_without_a_program_the_input_is_silent():
    host = VirtualHost(copy_kernel, kernel_arrays(1.0), SAMPLERATE, BLOCKSIZE, N_IN, N_OUT, tap_frames=4096)
    with host:
        host.start()
        assert np.all(settled_output(host, 2048) == 0.0)


def test_runs_at_the_block_rate_and_reports_statistics(host):
    host.start()
    assert wait_until(lambda: host.running)
    begun = time.monotonic()
    before = host.stats()["callbacks"]
    time.sleep(1.0)
    stats = host.stats()
    elapsed = time.monotonic() - begun
    assert stats["backend"] == "virtual" and stats["running"]
    assert stats["callbacks"] - before <= elapsed * BLOCK_RATE + 2  # never faster than real time
    assert stats["callbacks"] >= 0.5 * stats["expected_callbacks"]
    assert stats["frames"] == stats["callbacks"] * BLOCKSIZE
    durations = stats["duration_us"]
    assert 0 < durations["p50"] <= durations["p99"] <= durations["max"]


def test_blocks_run_while_python_holds_the_gil(host):
    host.start()
    assert wait_until(lambda: host.running)
    before = host.stats()
    ctypes.PyDLL(None).usleep(1_000_000)  # holds the GIL for the whole second
    after = host.stats()
    delivered = after["callbacks"] - before["callbacks"]
    assert delivered >= 0.5 * BLOCK_RATE, f"{delivered} blocks while the GIL was held"


def test_stop_ends_the_thread_and_start_restarts_the_statistics(host):
    host.start()
    assert wait_until(lambda: host.stats()["callbacks"] > 50)
    host.stop()
    assert not host.running
    stopped_at = host.stats()["callbacks"]
    time.sleep(0.05)
    assert host.stats()["callbacks"] == stopped_at
    host.start()
    assert wait_until(lambda: host.running)
    assert host.stats()["callbacks"] < stopped_at


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((64, 2), dtype=np.float64), "float32"),
        (np.zeros((64, 3), dtype=np.float32), "float32"),
        (np.zeros((64, 4), dtype=np.float32)[:, ::2], "C-contiguous"),
        (np.zeros((0, 2), dtype=np.float32), "not empty"),
    ],
)
def test_a_program_of_the_wrong_shape_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        VirtualHost(copy_kernel, kernel_arrays(1.0), SAMPLERATE, BLOCKSIZE, N_IN, N_OUT, program=bad)


def test_kernel_arrays_of_the_wrong_type_are_refused():
    arrays = kernel_arrays(1.0)._replace(counters=np.zeros(layout.C_LEN, dtype=np.int32))
    with pytest.raises(ValueError, match="counters"):
        VirtualHost(copy_kernel, arrays, SAMPLERATE, BLOCKSIZE, N_IN, N_OUT)
    with pytest.raises(ValueError, match="host needs"):
        VirtualHost(copy_kernel, kernel_arrays(1.0), SAMPLERATE, BLOCKSIZE, N_IN, N_OUT, host_base=layout.C_LEN - 8)


def test_the_virtual_host_loads_no_audio_library():
    # importing sounddevice initialises PortAudio: every host API probed, a JACK client opened
    # (and a JACK server dying meanwhile can abort the process) — not for a host with no hardware
    code = (
        "import sys; from controlroom.daemon.engine import VirtualHost, KernelArrays; "
        "print(sorted(m for m in ('sounddevice', 'controlroom.daemon.engine.library') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
