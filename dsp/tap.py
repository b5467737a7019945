"""The meter tap: the audio thread's copy of the channels the meters and measurements read.

A ``TapMap`` names the channels tapped: the inputs sources read (and the calibration mic),
the outputs speaker sets and inserts play. Each frame the kernel writes one row of them into
a float32 ring inside the ``meters`` array: a source's inputs as it reads them (``dsp/path.py``
reads each once per block, for the mix, the meters and the tap alike), the outputs as it
writes them, the few inputs no source reads here (``tap_inputs``); then it publishes the frame
count in ``counters[C_TAP_WRITE]``. A channel nothing uses costs nothing. The loudness meters
thus cost the audio thread a copy, not a K-weighting and a 4x oversampler per channel.

The map can change on a reload while the kernel runs: each map the control plane publishes
has a generation (``P_TAP_GEN``), and the kernel notes in ``counters`` the generation it
writes with and the first frame written so (``take_map``). A reader outside the audio thread
(``TapReader``, on ``read_tap``) reads frames under the map they were written with, and reports
frames of an earlier map as stale rather than read their columns wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from controlroom.dsp.layout import (
    C_TAP_FROM,
    C_TAP_GEN,
    C_TAP_WRITE,
    M_TAP,
    P_TAP_GEN,
    P_TAP_IN,
    TAP_FRAMES,
    TAP_PLANE,
)
from controlroom.dsp.pointers import memory_fence

JIT = dict(cache=True, nogil=True, error_model="numpy")


@dataclass(frozen=True)
class TapMap:
    """The channels a tap row carries, 1-based and ascending: ``inputs`` (as received), then
    ``outputs`` (as sent)."""

    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def width(self) -> int:
        """Columns per row."""
        return len(self.inputs) + len(self.outputs)

    def columns(self, inputs: tuple[int, ...] = (), outputs: tuple[int, ...] = ()) -> list[int]:
        """0-based columns of ``inputs`` then ``outputs`` (1-based channels), in the order given.
        Raises ValueError for a channel the tap does not carry."""
        missing = [f"input {c}" for c in inputs if c not in self.inputs]
        missing += [f"output {o}" for o in outputs if o not in self.outputs]
        if missing:
            raise ValueError(f"the tap does not carry {', '.join(missing)}")
        return [self.inputs.index(c) for c in inputs] + [len(self.inputs) + self.outputs.index(o) for o in outputs]


@njit(**JIT)
def tap_words(width):
    """float64 words holding the planes of ``width`` channels."""
    return (TAP_PLANE * width + 1) // 2


@njit(**JIT)
def tap_ring(meters, channels):
    """The ring as float32 samples: room for rows of every one of ``channels`` (n_in + n_out)."""
    return meters[M_TAP : M_TAP + tap_words(channels)].view(np.float32)


@njit(**JIT)
def take_map(p, counters):
    """At a block boundary: note the generation of the map in ``p`` if it is new, and the tap
    frame it starts at, before the first row written with it."""
    gen = int(p[P_TAP_GEN])
    if counters[C_TAP_GEN] != gen:
        counters[C_TAP_FROM] = counters[C_TAP_WRITE]
        memory_fence()  # a reader that sees the generation sees where it starts
        counters[C_TAP_GEN] = gen
        memory_fence()  # ... and rows of the new width only after it


@njit(**JIT)
def tap_inputs(inp, start, n, p, ring, row):
    """Copy the tapped inputs no source reads (``P_TAP_IN``) of frames ``start``..+``n`` into
    the ring from row ``row`` on."""
    for c in range(inp.shape[1]):
        col = int(p[P_TAP_IN + c])
        if col < 0:
            continue
        at = col * TAP_PLANE + row
        for i in range(n):
            ring[at + i] = inp[start + i, c]


@njit(**JIT)
def publish_frames(counters, frames):
    """Publish ``frames`` more rows, once they are all written."""
    memory_fence()
    counters[C_TAP_WRITE] += frames


@njit(**JIT)
def read_tap(meters, counters, read, gen, width, dst):
    """Copy the tap frames written with map generation ``gen`` (rows of ``width``) since frame
    ``read`` into ``dst`` (frames, width) float32.

    Returns ``(frames copied, tap frame of the first, next read position, frames lost, frames
    stale)``. Frames are lost when the reader fell more than the ring's length behind, stale
    when they were written with an earlier map; neither is copied. Nothing is copied or
    skipped while the kernel's generation is not ``gen``: the caller takes the new map first.
    """
    write = counters[C_TAP_WRITE]
    memory_fence()
    if counters[C_TAP_GEN] != gen:
        return 0, read, read, 0, 0
    memory_fence()
    lost = 0
    if write - read > TAP_FRAMES:
        lost = write - read - TAP_FRAMES
        read = write - TAP_FRAMES
    first = min(max(read, counters[C_TAP_FROM]), write)
    n = min(write - first, dst.shape[0])
    ring = tap_ring(meters, width)
    row = first % TAP_FRAMES
    done = 0
    while done < n:
        m = min(n - done, TAP_FRAMES - row)
        for c in range(width):
            at = c * TAP_PLANE + row
            for i in range(m):
                dst[done + i, c] = ring[at + i]
        done += m
        row = 0
    return n, first, first + n, lost, first - read


class TapReader:
    """Reads the tap of ``buffers`` (``PathBuffers``) outside the audio thread from tap frame
    ``start`` (default: the frames written from now on), under the map each frame was written
    with."""

    def __init__(self, buffers, start: int | None = None) -> None:
        self.buffers = buffers
        counters = buffers.counters
        self.read = int(counters[C_TAP_WRITE]) if start is None else start
        self.gen = int(counters[C_TAP_GEN])
        self.map: TapMap = buffers.tap_map(self.gen)
        self.lost = 0  # frames the reader fell too far behind for
        self.stale = 0  # frames written with a map the reader had not taken yet
        self._scratch = np.zeros(TAP_FRAMES * (buffers.spec.n_in + buffers.spec.n_out), np.float32)

    def take(self) -> tuple[np.ndarray, int]:
        """The frames written since the last call, (frames, ``self.map.width``) float32, valid
        until the next call, and the tap frame of its first row. ``self.map`` is the map they
        were written with: it changes when the kernel's does."""
        b = self.buffers
        gen = int(b.counters[C_TAP_GEN])
        if gen != self.gen:
            self.gen, self.map = gen, b.tap_map(gen)
        width = self.map.width
        dst = self._scratch[: TAP_FRAMES * width].reshape(TAP_FRAMES, width)
        n, first, self.read, lost, stale = read_tap(b.meters, b.counters, self.read, gen, width, dst)
        self.lost += lost
        self.stale += stale
        return dst[:n], first
