"""The ``virtual`` host: no hardware, a self-clocked thread calls the kernel at the block rate.

For ``controlroom demo`` and tests. The whole loop — input from a program loop, the kernel,
an output tap, statistics, and a sleep until the next block deadline on CLOCK_MONOTONIC — is
one njit(nogil=True) function, so it runs beside the asyncio loop without taking the GIL, like
the PortAudio callback does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
from numba import njit

from controlroom.daemon.engine import clock, stats
from controlroom.daemon.engine.binding import bind_kernel
from controlroom.daemon.engine.clock import monotonic_ns, sleep_until_ns
from controlroom.daemon.engine.stats import H_OUTPUT_UNDERFLOW, H_STOP, record_block
from controlroom.daemon.engine.table import KernelArrays, check_arrays, host_base_for
from controlroom.dsp import layout

#: Seconds without a block after which audio no longer counts as flowing.
STALL_TIMEOUT_S = 0.5
#: Seconds ``stop()`` waits for the thread (it checks its stop flag once per block).
JOIN_TIMEOUT_S = 2.0
_OUTPUT_UNDERFLOW_FLAG = 1 << (H_OUTPUT_UNDERFLOW - stats.H_INPUT_UNDERFLOW)

#: Bound per kernel by ``bind_kernel``.
_KERNEL: Callable

_loops: dict[Callable, Callable] = {}


class VirtualHost:
    """Runs ``kernel`` in a thread at the block rate, with no audio device.

    ``program``: float32 (frames, n_in), C-contiguous: the input, read cyclically from its
    first frame; the caller may rewrite it while the host runs. None: silence.
    ``tap_frames``: length of ``output``, a float32 (tap_frames, n_out) ring the host writes
    the kernel's output into (frame k of the stream lands in row k % tap_frames); 0: no tap.
    Other arguments as for ``PortAudioHost``. A block that starts more than one period late
    counts as an output underflow, and the schedule restarts from it rather than catching up.
    """

    backend = "virtual"

    def __init__(
        self,
        kernel: Callable,
        arrays: KernelArrays | tuple,
        samplerate: float,
        blocksize: int,
        n_in: int,
        n_out: int,
        program: np.ndarray | None = None,
        tap_frames: int = 0,
        host_base: int = layout.HOST_BASE,
    ) -> None:
        if blocksize <= 0:
            raise ValueError("blocksize: must be a positive number of frames")
        self.arrays = check_arrays(arrays)
        self.host_base = host_base_for(self.arrays.counters, host_base, stats.HOST_LEN)
        self.samplerate = float(samplerate)
        self.blocksize = int(blocksize)
        if program is None:
            program = np.zeros((self.blocksize, n_in), dtype=np.float32)
        if program.dtype != np.float32 or program.ndim != 2 or program.shape[1] != n_in:
            raise ValueError(f"program: expected a float32 (frames, {n_in}) array")
        if not program.flags.c_contiguous or program.shape[0] == 0:
            raise ValueError("program: must be C-contiguous and not empty")
        self.program = program
        self.output = np.zeros((max(tap_frames, 1), n_out), dtype=np.float32)
        self._tap = tap_frames > 0
        self._input = np.zeros((self.blocksize, n_in), dtype=np.float32)
        self._block = np.zeros((self.blocksize, n_out), dtype=np.float32)
        self._loop = _loop_for(kernel)
        self._thread: threading.Thread | None = None
        self._compile()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; the host statistics restart from zero."""
        if self._thread is not None and self._thread.is_alive():
            return
        stats.reset(self.arrays.counters, self.host_base)
        self._thread = threading.Thread(
            target=self._loop, args=self._arguments(), name="controlroom-virtual", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current block (RuntimeError if it does not end)."""
        if self._thread is None:
            return
        counters = self.arrays.counters
        counters[self.host_base + H_STOP] = 1
        self._thread.join(JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError("the virtual host's thread did not stop")
        counters[self.host_base + H_STOP] = 0
        self._thread = None

    def close(self) -> None:
        """Stop; nothing else is held."""
        self.stop()

    def reinitialise(self) -> None:
        """Stop, so that the next ``start()`` begins afresh (there is no device to find)."""
        self.stop()

    def __enter__(self) -> VirtualHost:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- observation -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """The thread runs and processed a block within the last ``STALL_TIMEOUT_S``."""
        if self._thread is None or not self._thread.is_alive():
            return False
        last = int(self.arrays.counters[self.host_base + stats.H_LAST_CALLBACK])
        return last > 0 and time.monotonic_ns() - last < STALL_TIMEOUT_S * 1e9

    def stats(self) -> dict:
        """As ``PortAudioHost.stats()``; the stream clock is CLOCK_MONOTONIC since start and
        ``xruns.output_underflow`` counts blocks that started more than a period late."""
        summary = stats.summarise(self.arrays.counters, self.host_base, self.samplerate, self.blocksize)
        return {"backend": self.backend, "device": None, "running": self.running, **summary}

    def latest_output(self, frames: int) -> np.ndarray:
        """A copy of the last ``frames`` frames written to the tap (at most ``tap_frames``
        minus one block, so that the block being written is not among them)."""
        ring = self.output.shape[0]
        if not self._tap or frames > ring - self.blocksize:
            raise ValueError(f"frames: at most {ring - self.blocksize} with this tap")
        end = int(self.arrays.counters[self.host_base + stats.H_FRAMES])
        rows = np.arange(end - frames, end) % ring
        return self.output[rows].copy()

    # -- internals ---------------------------------------------------------------------------

    def _arguments(self) -> tuple:
        period_ns = self.blocksize * 1e9 / self.samplerate
        return (
            self.program,
            self._input,
            self._block,
            self.output,
            self._tap,
            *self.arrays,
            self.host_base,
            period_ns,
        )

    def _compile(self) -> None:
        # With the stop flag raised the loop returns at once: compiled now, start() is instant.
        counters = self.arrays.counters
        counters[self.host_base + H_STOP] = 1
        self._loop(*self._arguments())
        counters[self.host_base + H_STOP] = 0


def _loop_for(kernel: Callable) -> Callable:
    if kernel not in _loops:
        _loops[kernel] = njit(cache=True, nogil=True)(bind_kernel(_run_blocks, kernel, (clock, stats)))
    return _loops[kernel]


def _run_blocks(program, inp, out, tap, tapping, shared, params, state, meters, counters, base, period_ns):
    """Process blocks until ``counters[base + H_STOP]`` is set, one per ``period_ns``."""
    frames_total = program.shape[0]
    blocksize = inp.shape[0]
    ring = tap.shape[0]
    position = 0
    begun = monotonic_ns()
    origin = begun  # of the block schedule; moved when the thread fell behind
    index = 0
    while counters[base + H_STOP] == 0:
        for i in range(blocksize):
            inp[i, :] = program[position]
            position += 1
            if position == frames_total:
                position = 0
        start = monotonic_ns()
        _KERNEL(inp, out, shared, params, state, meters, counters)  # noqa: F821 (bound by bind_kernel)
        end = monotonic_ns()
        if tapping:
            written = counters[base + stats.H_FRAMES]
            for i in range(blocksize):
                tap[(written + i) % ring, :] = out[i]
        deadline = origin + np.int64(index * period_ns)
        flags = 0
        if start - deadline > period_ns:
            flags = _OUTPUT_UNDERFLOW_FLAG
            origin = start
            index = 0
        record_block(counters, base, blocksize, flags, start, end, start - begun)
        index += 1
        sleep_until_ns(origin + np.int64(index * period_ns))
