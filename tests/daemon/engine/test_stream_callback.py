"""The compiled PortAudio callback, called directly through its C address (no audio device)."""

from __future__ import annotations

import ctypes

import numpy as np
from numba import njit

from controlroom.daemon.engine import KernelArrays, stats
from controlroom.daemon.engine.callback import PA_ABORT, PA_CONTINUE, make_callback
from controlroom.daemon.engine.table import PointerTable
from controlroom.dsp import layout

N_IN, N_OUT, FRAMES = 2, 3, 64
PA_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
)


@njit(cache=True, nogil=True)
def mixing_kernel(inp, out, shared, params, state, meters, counters):
    """out[:, k] = shared[k] * (in 1 + in 2); counts its calls in state[0]."""
    for i in range(inp.shape[0]):
        for k in range(out.shape[1]):
            out[i, k] = shared[k] * (inp[i, 0] + inp[i, 1])
    state[0] += 1.0


def setup():
    arrays = KernelArrays(
        shared=np.array([1.0, 0.5, 0.0]),
        params=np.zeros((2, 3)),
        state=np.zeros(4),
        meters=np.zeros(2),
        counters=np.zeros(layout.C_LEN, dtype=np.int64),
    )
    table = PointerTable(arrays, N_IN, N_OUT)
    callback = PA_CALLBACK(make_callback(mixing_kernel).address)
    inp = np.full((FRAMES, N_IN), 0.25, dtype=np.float32)
    out = np.full((FRAMES, N_OUT), 9.0, dtype=np.float32)
    time_info = np.array([0.0, 2.5, 2.6])  # adc, current, dac (s)
    return arrays, table, callback, inp, out, time_info


def call(callback, inp, out, time_info, flags, table):
    return callback(inp.ctypes.data, out.ctypes.data, FRAMES, time_info.ctypes.data, flags, table.address)


def test_the_callback_runs_the_kernel_on_the_tables_arrays_and_keeps_statistics():
    arrays, table, callback, inp, out, time_info = setup()
    assert call(callback, inp, out, time_info, 0x4, table) == PA_CONTINUE
    np.testing.assert_array_equal(out, np.tile(np.float32([0.5, 0.25, 0.0]), (FRAMES, 1)))
    assert arrays.state[0] == 1.0
    host = arrays.counters[layout.HOST_BASE :]
    assert host[stats.H_CALLBACKS] == 1 and host[stats.H_FRAMES] == FRAMES
    assert host[stats.H_OUTPUT_UNDERFLOW] == 1
    assert host[stats.H_STREAM_FIRST] == host[stats.H_STREAM_LAST] == 2_500_000_000
    assert host[stats.H_LAST_CALLBACK] > 0 and host[stats.H_HISTOGRAM :].sum() == 1


def test_a_detached_table_gets_silence_and_an_abort():
    arrays, table, callback, inp, out, time_info = setup()
    table.detach()
    assert call(callback, inp, out, time_info, 0, table) == PA_ABORT
    assert np.all(out == 0.0)
    assert arrays.state[0] == 0.0 and arrays.counters[layout.HOST_BASE + stats.H_CALLBACKS] == 0


def test_one_compiled_callback_per_kernel():
    assert make_callback(mixing_kernel) is make_callback(mixing_kernel)


@njit(cache=True, nogil=True)
def counting_kernel(inp, out, shared, params, state, meters, counters):
    """Writes the number of input channels and frames it was given."""
    out[:, 0] = inp.shape[1]
    out[:, 1] = inp.shape[0]


def test_an_output_only_stream_gets_an_empty_input():
    arrays, _, _, _, out, time_info = setup()
    table = PointerTable(arrays, 0, N_OUT)
    callback = PA_CALLBACK(make_callback(counting_kernel).address)
    assert callback(None, out.ctypes.data, FRAMES, time_info.ctypes.data, 0, table.address) == PA_CONTINUE
    assert np.all(out[:, 0] == 0) and np.all(out[:, 1] == FRAMES)
