"""The PortAudio stream callback: a numba ``@cfunc`` that runs a kernel with no GIL.

``make_callback(kernel)`` compiles, for one njit kernel ``process(inp, out, shared, params,
state, meters, counters)``, a C function with PortAudio's ``PaStreamCallback`` signature.
``userData`` is a ``PointerTable`` address; the callback rebuilds the kernel's arrays from it,
calls the kernel, and keeps the host statistics (``stats.record_block``). It touches no Python
object, so a busy or blocked interpreter cannot delay it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import carray, cfunc, types

from controlroom.daemon.engine import clock, stats
from controlroom.daemon.engine import table as pointer_table
from controlroom.daemon.engine.binding import bind_kernel
from controlroom.daemon.engine.clock import monotonic_ns
from controlroom.daemon.engine.stats import record_block
from controlroom.daemon.engine.table import (
    T_COUNTERS,
    T_COUNTERS_LEN,
    T_DETACHED,
    T_HOST_BASE,
    T_METERS,
    T_METERS_LEN,
    T_N_IN,
    T_N_OUT,
    T_PARAMS,
    T_PARAMS_COLS,
    T_PARAMS_ROWS,
    T_SHARED,
    T_SHARED_LEN,
    T_STATE,
    T_STATE_LEN,
    TABLE_LEN,
)
from controlroom.dsp import pointers
from controlroom.dsp.pointers import float32_pointer, float64_pointer, int64_pointer

PA_CONTINUE = 0
PA_ABORT = 2

#: int PaStreamCallback(const void *input, void *output, unsigned long frameCount,
#:     const PaStreamCallbackTimeInfo *timeInfo, PaStreamCallbackFlags statusFlags, void *userData)
#: Pointers are taken as intp (passed in the same registers on LP64) so that the intrinsics of
#: dsp/pointers.py can type them; unsigned long is 64-bit on Linux x86_64/aarch64.
CALLBACK_SIGNATURE = types.int32(types.intp, types.intp, types.uint64, types.intp, types.uint64, types.intp)

#: PaStreamCallbackTimeInfo: inputBufferAdcTime, currentTime, outputBufferDacTime (s)
_TIME_INFO_LEN = 3
_CURRENT_TIME = 1

#: Bound per kernel by ``bind_kernel``.
_KERNEL: Callable

_callbacks: dict[Callable, object] = {}


def make_callback(kernel: Callable):
    """The compiled ``@cfunc`` callback for njit ``kernel`` (``.address`` is the C pointer).

    Compiled once per kernel and process; numba's cache keeps the machine code across runs.
    """
    if kernel not in _callbacks:
        python_function = bind_kernel(_callback, kernel, (clock, stats, pointer_table, pointers))
        _callbacks[kernel] = cfunc(CALLBACK_SIGNATURE, nogil=True, cache=True)(python_function)
    return _callbacks[kernel]


def _callback(input_buffer, output_buffer, frame_count, time_info, status_flags, user_data):
    start = monotonic_ns()
    table = carray(int64_pointer(user_data), (TABLE_LEN,))
    frames = np.int64(frame_count)
    out = carray(float32_pointer(output_buffer), (frames, table[T_N_OUT]))
    if table[T_DETACHED] != 0:
        out[:] = 0.0
        return PA_ABORT
    inp = carray(float32_pointer(input_buffer), (frames, table[T_N_IN]))
    shared = carray(float64_pointer(table[T_SHARED]), (table[T_SHARED_LEN],))
    params = carray(float64_pointer(table[T_PARAMS]), (table[T_PARAMS_ROWS], table[T_PARAMS_COLS]))
    state = carray(float64_pointer(table[T_STATE]), (table[T_STATE_LEN],))
    meters = carray(float64_pointer(table[T_METERS]), (table[T_METERS_LEN],))
    counters = carray(int64_pointer(table[T_COUNTERS]), (table[T_COUNTERS_LEN],))
    _KERNEL(inp, out, shared, params, state, meters, counters)  # noqa: F821 (bound by bind_kernel)
    times = carray(float64_pointer(time_info), (_TIME_INFO_LEN,))
    stream_ns = np.int64(times[_CURRENT_TIME] * 1e9)
    record_block(
        counters,
        table[T_HOST_BASE],
        frames,
        np.int64(status_flags),
        start,
        monotonic_ns(),
        stream_ns,
    )
    return PA_CONTINUE
