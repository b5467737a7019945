"""The meter tap: the audio thread's copy of its inputs and outputs for the meters.

The kernel (``tap``) writes each block's inputs (as received) and outputs (as sent) into a
float32 ring inside the ``meters`` array, then publishes the frame count in
``counters[C_TAP_WRITE]``; a reader outside the audio thread (``read_tap``) copies out what is
new. The loudness meters thus cost the audio thread a copy, not a K-weighting and a 4x
oversampler per channel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from controlroom.dsp.layout import C_TAP_WRITE, M_TAP, TAP_FRAMES
from controlroom.dsp.pointers import memory_fence

JIT = dict(cache=True, nogil=True, error_model="numpy")


@njit(**JIT)
def tap(inp, out, meters, counters):
    """Copy the block's inputs and outputs into the meter tap ring (float32, as they came
    and went), then publish the new frame count."""
    frames, n_in = inp.shape
    n_out = out.shape[1]
    width = n_in + n_out
    if meters.shape[0] < M_TAP + tap_words(width):
        return  # built without a tap
    ring = meters[M_TAP : M_TAP + tap_words(width)].view(np.float32)
    row = counters[C_TAP_WRITE] % TAP_FRAMES
    done = 0
    while done < frames:
        n = min(frames - done, TAP_FRAMES - row)
        for i in range(n):
            at = (row + i) * width
            for c in range(n_in):
                ring[at + c] = inp[done + i, c]
            for c in range(n_out):
                ring[at + n_in + c] = out[done + i, c]
        done += n
        row = 0
    memory_fence()
    counters[C_TAP_WRITE] += frames


@njit(**JIT)
def tap_words(width):
    """float64 words holding TAP_FRAMES float32 rows of ``width`` samples."""
    return (TAP_FRAMES * width + 1) // 2


@njit(**JIT)
def read_tap(meters, counters, read, width, dst):
    """Copy the tap frames written since frame ``read`` into ``dst`` (frames, width) float32.

    Returns ``(frames copied, next read position, frames lost)``; frames are lost when the
    reader fell more than the ring's length behind.
    """
    write = counters[C_TAP_WRITE]
    memory_fence()
    lost = 0
    if write - read > TAP_FRAMES:
        lost = write - read - TAP_FRAMES
        read = write - TAP_FRAMES
    n = min(write - read, dst.shape[0])
    ring = meters[M_TAP : M_TAP + tap_words(width)].view(np.float32)
    for i in range(n):
        at = ((read + i) % TAP_FRAMES) * width
        for c in range(width):
            dst[i, c] = ring[at + c]
    return n, read + n, lost
