"""The pointer table: the kernel's arrays described as raw addresses for a ``@cfunc`` callback.

PortAudio hands its callback one ``void *userData``. It points at an int64 array holding the
address and shape of each kernel array; the compiled callback rebuilds the arrays from it with
``numba.carray``, touching no Python object. ``PointerTable`` keeps the arrays alive for as long
as the table may be used.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from controlroom.dsp import layout

# Slots of the table (int64 each).
T_SHARED, T_SHARED_LEN = 0, 1
T_PARAMS, T_PARAMS_ROWS, T_PARAMS_COLS = 2, 3, 4
T_STATE, T_STATE_LEN = 5, 6
T_METERS, T_METERS_LEN = 7, 8
T_COUNTERS, T_COUNTERS_LEN = 9, 10
T_N_IN, T_N_OUT = 11, 12  # channels of the interleaved input and output buffers
T_HOST_BASE = 13  # first counters index owned by the host
T_DETACHED = 14  # nonzero: the stream was given up; play silence and ask PortAudio to stop
TABLE_LEN = 15


class KernelArrays(NamedTuple):
    """The preallocated arrays a kernel ``process(inp, out, *arrays)`` works on, in call order."""

    shared: np.ndarray  # float64[P]
    params: np.ndarray  # float64[2, P]
    state: np.ndarray  # float64[S]
    meters: np.ndarray  # float64[M]
    counters: np.ndarray  # int64[C]


_EXPECTED = {
    "shared": (np.float64, 1),
    "params": (np.float64, 2),
    "state": (np.float64, 1),
    "meters": (np.float64, 1),
    "counters": (np.int64, 1),
}


def check_arrays(arrays: KernelArrays | tuple) -> KernelArrays:
    """``arrays`` as ``KernelArrays``, or ValueError when one has the wrong type or layout.

    The callback reads the memory in place, so a copy (wrong dtype, strided view) would
    silently disconnect it from the control plane: refuse instead of converting.
    """
    arrays = KernelArrays(*arrays)
    for name, (dtype, ndim) in _EXPECTED.items():
        array = getattr(arrays, name)
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != ndim:
            raise ValueError(f"{name}: expected a {ndim}-d {np.dtype(dtype).name} numpy array")
        if not array.flags.c_contiguous or not array.flags.writeable:
            raise ValueError(f"{name}: must be C-contiguous and writeable")
    return arrays


def host_base_for(counters: np.ndarray, host_base: int, host_len: int) -> int:
    """``host_base`` checked: the host's ``host_len`` counters fit after it in ``counters``."""
    if not 0 <= host_base <= len(counters) - host_len:
        raise ValueError(
            f"counters: the host needs {host_len} slots from index {host_base}, but only {len(counters)} exist"
        )
    return host_base


class PointerTable:
    """The int64 pointer table for ``arrays`` with ``n_in``/``n_out`` interleaved channels."""

    def __init__(self, arrays: KernelArrays | tuple, n_in: int, n_out: int, host_base: int = layout.HOST_BASE) -> None:
        self.arrays = check_arrays(arrays)
        table = np.zeros(TABLE_LEN, dtype=np.int64)
        a = self.arrays
        table[T_SHARED], table[T_SHARED_LEN] = a.shared.ctypes.data, a.shared.shape[0]
        table[T_PARAMS] = a.params.ctypes.data
        table[T_PARAMS_ROWS], table[T_PARAMS_COLS] = a.params.shape
        table[T_STATE], table[T_STATE_LEN] = a.state.ctypes.data, a.state.shape[0]
        table[T_METERS], table[T_METERS_LEN] = a.meters.ctypes.data, a.meters.shape[0]
        table[T_COUNTERS], table[T_COUNTERS_LEN] = a.counters.ctypes.data, a.counters.shape[0]
        table[T_N_IN], table[T_N_OUT] = n_in, n_out
        table[T_HOST_BASE] = host_base
        self.table = table

    @property
    def address(self) -> int:
        """The address of the table: the callback's ``userData``."""
        return self.table.ctypes.data

    def detach(self) -> None:
        """Cut the callback off the kernel's arrays, should its abandoned stream ever run
        again (a stalled audio server that resumes), so that it cannot race a new stream."""
        self.table[T_DETACHED] = 1
