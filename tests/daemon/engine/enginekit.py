"""What the host tests share: a minimal kernel of the monitor path's signature and its arrays."""

from __future__ import annotations

import numpy as np
from jackutil import rms_db, sine
from numba import njit

from controlroom.daemon.engine import KernelArrays
from controlroom.dsp import layout

SAMPLERATE = 48000
BLOCKSIZE = 64
N_IN, N_OUT = 2, 4
BLOCK_RATE = SAMPLERATE / BLOCKSIZE  # callbacks per second
SINE = sine(1000.0, 0.5)
SINE_DB = float(rms_db(SINE[:, None])[0])


@njit(cache=True, nogil=True)
def copy_kernel(inp, out, shared, params, state, meters, counters):
    """Input channel 1 -> output channel 2 times ``shared[0]``; every other output silent."""
    out[:] = 0.0
    gain = shared[0]
    for i in range(inp.shape[0]):
        out[i, 1] = inp[i, 0] * gain


def kernel_arrays(gain: float) -> KernelArrays:
    return KernelArrays(
        shared=np.array([gain]),
        params=np.zeros((2, 1)),
        state=np.zeros(1),
        meters=np.zeros(1),
        counters=np.zeros(layout.C_LEN, dtype=np.int64),
    )
