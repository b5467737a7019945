"""The PortAudio host: the kernel runs in a GIL-free ``@cfunc`` stream callback.

The stream is opened with PortAudio's own ``Pa_OpenStream`` (through sounddevice's cffi
declarations) so that its callback is the compiled C function of ``callback.make_callback``.
The host keeps its statistics in ``counters[host_base:]`` (``stats``).

Device loss: when the stream stops delivering callbacks without being asked to, ``running``
turns false. The stream and its PortAudio instance are then given up rather than closed (see
``library``); ``reinitialise()`` + ``start()`` open the device again from a fresh device list.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from controlroom.daemon.engine import library, stats
from controlroom.daemon.engine.callback import make_callback
from controlroom.daemon.engine.devices import find_device
from controlroom.daemon.engine.table import KernelArrays, PointerTable, check_arrays, host_base_for
from controlroom.daemon.errors import EngineError
from controlroom.dsp import layout

#: Seconds without a callback after which audio no longer counts as flowing.
STALL_TIMEOUT_S = 0.5

PA_FLOAT32 = 0x1
PA_NO_FLAG = 0

#: Pointer tables and stream handles of given-up streams: PortAudio may still hold them.
_given_up: list[object] = []
#: Seconds after which a detached stream's callback can no longer be inside a block that began
#: before the detach (a block takes milliseconds): its kernel arrays may then be freed.
RETIRE_AFTER_S = 5.0
#: Kernel arrays of given-up streams, with the monotonic time at which they may be freed. The
#: arrays are the bulk of a stream's memory (delay lines, filter states): keeping them for good
#: would cost megabytes per device loss.
_retired: list[tuple[float, KernelArrays]] = []
#: Hosts with an open stream: one dropped without close() keeps its callback, pointer table
#: and arrays alive (its stream still runs) instead of having them freed under the callback.
_open_hosts: set[PortAudioHost] = set()


def refresh_devices() -> None:
    """Read the device list afresh (a device or JACK server may have come back), on a new
    PortAudio instance if the current one was given up. No stream may be open."""
    library.renew()


class PortAudioHost:
    """Runs ``kernel`` on a full-duplex PortAudio stream.

    ``kernel``: njit ``process(inp, out, shared, params, state, meters, counters)``.
    ``arrays``: the five kernel arrays (``KernelArrays`` or a tuple in that order), shared
    with the control plane. ``device``: name substring, index, or None for the default.
    ``samplerate`` in Hz; ``blocksize`` in frames per callback; ``n_in``/``n_out``: channels
    of the interleaved buffers (interface channel k is column k-1); ``latency``: "low", "high"
    or seconds, PortAudio's suggested latency. ``host_base``: first counters index the host
    owns (the kernel owns those below).
    """

    backend = "portaudio"

    def __init__(
        self,
        kernel: Callable,
        arrays: KernelArrays | tuple,
        device: str | int | None,
        samplerate: float,
        blocksize: int,
        n_in: int,
        n_out: int,
        latency: str | float = "low",
        host_base: int = layout.HOST_BASE,
    ) -> None:
        if blocksize <= 0:
            raise ValueError("blocksize: must be a positive number of frames")
        if latency not in ("low", "high") and not isinstance(latency, (int, float)):
            raise ValueError("latency: expected 'low', 'high' or seconds")
        self.arrays = check_arrays(arrays)
        self.host_base = host_base_for(self.arrays.counters, host_base, stats.HOST_LEN)
        self.device = device
        self.samplerate = float(samplerate)
        self.blocksize = int(blocksize)
        self.n_in = int(n_in)
        self.n_out = int(n_out)
        self.latency = latency
        self.device_name: str | None = None  # of the open stream
        self._callback = make_callback(kernel)
        self._library: library.PortAudioLibrary | None = None
        self._table: PointerTable | None = None
        self._stream = None  # PaStream *, while open
        self._started_ns = 0  # CLOCK_MONOTONIC at start(); 0 while stopped

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the stream if needed (finding the device in the current device list) and
        start it; the host statistics restart from zero. Audio flows (``running``) from the
        first callback on. EngineError when no device fits or the stream does not start."""
        if self._started_ns:
            return
        if self._stream is None:
            self._open()
        stats.reset(self.arrays.counters, self.host_base)
        self._started_ns = time.monotonic_ns()
        self._call(self._library.lib.Pa_StartStream, "cannot start the audio stream")

    def stop(self) -> None:
        """Stop the stream after the buffers queued so far have played; it stays open. Ramp
        the output to silence first. A stream that lost its device is given up instead."""
        if not self._started_ns:
            return
        if self._lost():
            self._give_up()
            return
        self._started_ns = 0
        self._call(self._library.lib.Pa_StopStream, "cannot stop the audio stream")

    def close(self) -> None:
        """Stop and close the stream (or give it up if its device is gone)."""
        self.stop()
        if self._stream is not None:
            self._call(self._library.lib.Pa_CloseStream, "cannot close the audio stream")
            self._library.stream_gone()
            _open_hosts.discard(self)
            self._stream = self._table = None
            self.device_name = None

    def reinitialise(self) -> None:
        """Close the stream and get a PortAudio instance with a fresh device list, so that a
        device (or JACK server) that came back is found. The next ``start()`` reopens it.
        No other stream of this process may be open on the same PortAudio instance."""
        self.close()
        refresh_devices()

    def __enter__(self) -> PortAudioHost:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- observation -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Audio is flowing: the stream is started and active, and a callback ran within the
        last ``STALL_TIMEOUT_S``. False once the device (or JACK server) went away."""
        if not self._started_ns or self._library.lib.Pa_IsStreamActive(self._stream) != 1:
            return False
        last = int(self.arrays.counters[self.host_base + stats.H_LAST_CALLBACK])
        return last > 0 and time.monotonic_ns() - last < STALL_TIMEOUT_S * 1e9

    def stats(self) -> dict:
        """Engine statistics of the current stream: ``backend``, ``device``, ``running``,
        ``callbacks``, ``expected_callbacks`` (from the stream clock), ``frames``, ``xruns``
        by kind (PortAudio status flags seen; JACK reports an xrun as output underflow plus
        input overflow) and ``duration_us`` p50/p99/max of the callbacks."""
        summary = stats.summarise(self.arrays.counters, self.host_base, self.samplerate, self.blocksize)
        return {"backend": self.backend, "device": self.device_name, "running": self.running, **summary}

    # -- internals ---------------------------------------------------------------------------

    def _open(self) -> None:
        _free_retired()
        # The instance counts the stream as open from here on, so that no renew() terminates
        # or abandons it under Pa_OpenStream (PortAudio is not thread-safe).
        instance = library.reserve()
        try:
            with instance.lock:
                device = find_device(self.device, self.n_in, self.n_out, instance)
                table = PointerTable(self.arrays, self.n_in, self.n_out, self.host_base)
                handle = library.ffi.new("PaStream **")
                error = library.call_with_timeout(
                    instance.lib.Pa_OpenStream,
                    handle,
                    self._parameters(device, "input", self.n_in),
                    self._parameters(device, "output", self.n_out),
                    self.samplerate,
                    self.blocksize,
                    PA_NO_FLAG,
                    library.ffi.cast("PaStreamCallback *", self._callback.address),
                    library.ffi.cast("void *", table.address),
                )
        except BaseException:
            instance.stream_gone()
            raise
        if error is None:
            _retire(table)
            _given_up.extend((handle, self._callback))  # Pa_OpenStream may yet finish
            instance.given_up += 1
            instance.abandon()
            raise EngineError(f"audio device {device['name']!r} does not answer")
        if error < 0:
            instance.stream_gone()
            # A JACK server that died under Pa_OpenStream leaves a client that must never be
            # called again (Pa_Terminate would abort): abandon its instance at once.
            library.lost_if_dead(instance)
            raise EngineError(
                f"cannot open audio device {device['name']!r} at {self.samplerate:g} Hz, "
                f"{self.blocksize} frames, {self.n_in} in, {self.n_out} out: "
                f"{instance.error_text(error)}"
            )
        self._library, self._table, self._stream = instance, table, handle[0]
        instance.request_realtime(handle[0], device)
        _open_hosts.add(self)
        self.device_name = device["name"]

    def _parameters(self, device: dict, kind: str, channels: int):
        if channels == 0:
            return library.ffi.NULL
        if isinstance(self.latency, str):
            latency = device[f"default_{self.latency}_{kind}_latency"]
        else:
            latency = float(self.latency)
        parameters = library.ffi.new("PaStreamParameters *")
        parameters.device = device["index"]
        parameters.channelCount = channels
        parameters.sampleFormat = PA_FLOAT32
        parameters.suggestedLatency = latency
        parameters.hostApiSpecificStreamInfo = library.ffi.NULL
        return parameters

    def _call(self, function: Callable[..., int], message: str) -> None:
        """``function(stream)``, or EngineError. A stream that PortAudio refuses or that
        hangs (its audio thread is gone) is given up: closing it could hang or abort."""
        with self._library.lock:
            error = library.call_with_timeout(function, self._stream)
        if error is None or error < 0:
            reason = "the audio device does not answer" if error is None else self._library.error_text(error)
            self._give_up()
            raise EngineError(f"{message}: {reason}")

    def _lost(self) -> bool:
        if self._library.lib.Pa_IsStreamActive(self._stream) != 1:
            return True
        last = int(self.arrays.counters[self.host_base + stats.H_LAST_CALLBACK])
        return time.monotonic_ns() - max(last, self._started_ns) > STALL_TIMEOUT_S * 1e9

    def _give_up(self) -> None:
        """Abandon the stream and its PortAudio instance (see ``library``) without another
        call into either."""
        _retire(self._table)
        _given_up.append(self._stream)
        self._library.stream_gone(given_up=True)
        self._library.abandon()
        _given_up.append(self._callback)
        _open_hosts.discard(self)
        self._stream = self._table = None
        self._started_ns = 0


def _retire(table: PointerTable) -> None:
    """Detach ``table`` (the callback then touches nothing but the table itself) and keep it
    for good; keep its kernel arrays only until ``RETIRE_AFTER_S`` has passed."""
    table.detach()
    _given_up.append(table.table)
    _retired.append((time.monotonic() + RETIRE_AFTER_S, table.arrays))
    table.arrays = None


def _free_retired() -> None:
    """Let go of the retired kernel arrays whose time has come."""
    now = time.monotonic()
    _retired[:] = [(due, arrays) for due, arrays in _retired if due > now]
