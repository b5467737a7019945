"""The engine runner: the one owner of the audio host's life cycle.

Only this module creates, starts, stops, reopens and closes the audio host (the PortAudio
stream or the virtual backend's thread), and it does so from one loop, one request at a time:

- a **reload** (SIGHUP) re-reads the config and applies it by how it differs from the running
  one (``config.diff``): parameters are published to the running kernel; a new device, rate,
  block size or channel count reopens the stream on fresh buffers. A reload asked for while one
  waits in the queue replaces it (the file is read once, when its turn comes);
- a **fade through silence**: every source fades out, a change is made (a jump in an insert's
  alignment delay, a blind test's switch), the sources fade back in;
- **device loss**: between requests the loop watches the stream; when audio stops unasked it
  closes the host and reopens it with a fresh device list, backing off from 0.5 s to 4 s;
- **stop** (SIGTERM): ramp to silence, close the host, end the loop.

The engine's state is one value, ``EngineState``, with ``reason`` saying why audio is not
running. See docs/design.md for how the runner sits in the service.
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controlroom.daemon.config import Config, diff
from controlroom.daemon.core import matching
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.errors import EngineError
from controlroom.daemon.service.loudness import LoudnessMonitor, compile_meters
from controlroom.dsp import layout
from controlroom.dsp.control import PathBuffers
from controlroom.dsp.path import process

log = logging.getLogger("controlroom")

#: How often the running stream's health is checked (s).
SUPERVISE_S = 0.5
#: Delays between attempts to reopen a lost device (s); then every last one.
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
#: Longest wait for the ramp to silence before the stream stops (s).
FADE_TIMEOUT_S = 1.0
#: Longest wait for the sources to fade out (s): a stalled engine fades nothing.
SILENCE_TIMEOUT_S = 1.0
#: Longest wait for a new stream's first callbacks (s); still none after that counts as a loss.
RESUME_TIMEOUT_S = 2.0
POLL_S = 0.005


class EngineState(enum.Enum):
    """Where the engine is in its life cycle."""

    STARTING = "starting"  # opening the stream
    RUNNING = "running"  # the stream is open and started (audio flows unless ``running`` says otherwise)
    WAITING = "waiting"  # no stream: the device is gone or would not open; retrying
    STOPPED = "stopped"  # shut down


#: Loads the config for a reload: the new config, or None when it was rejected (and said so).
ConfigLoader = Callable[[], Awaitable[Config | None]]
#: Called after a reload is applied to the engine: ``(old, new, changes)``.
ReloadHook = Callable[[Config, Config, Any], Awaitable[None]]


@dataclass
class _Silence:
    """A fade through silence: ``change`` is made once every source is silent; ``done`` (if
    any) learns how it went."""

    change: Callable[[], None]
    done: asyncio.Future | None = None


@dataclass
class _Queue:
    silences: deque[_Silence] = field(default_factory=deque)
    reload: ConfigLoader | None = None  # one pending reload at most: a newer one replaces it
    stop: bool = False


class EngineRunner:
    """Runs the audio engine of one daemon.

    Args:
        config: the running config; a reload replaces it.
        controller: the controller whose kernel buffers the engine plays (the runner gives it
            fresh buffers for every stream it opens).
        program: the virtual backend's input, (frames, inputs) float32 played in a loop; None
            plays silence.
        on_reload: awaited after a reload has been applied to the engine, with the old config,
            the new one and their ``diff``, so that the daemon restarts what else changed.
    """

    def __init__(
        self,
        config: Config,
        controller: Controller,
        *,
        program: np.ndarray | None = None,
        on_reload: ReloadHook | None = None,
    ) -> None:
        self.config = config
        self.controller = controller
        self.program = program
        self.on_reload = on_reload
        self.host = None
        self.loudness: LoudnessMonitor | None = None
        #: Set by every loudness monitor when something is asked of it (one event for all of
        #: them: the thread that drains them waits on it across reloads and reopened streams).
        self.loudness_wake = threading.Event()
        self.state = EngineState.STARTING
        self.reason: str | None = None  # why audio is not running
        self.restarts = 0  # streams opened after the first
        self.failed_starts = 0  # attempts to open a stream that failed
        self.ready = asyncio.Event()  # set once audio first runs
        self.tried = asyncio.Event()  # set once the first stream has opened or failed to
        self.heartbeat = time.monotonic()  # the loop's last turn: the systemd watchdog watches it
        self._queue = _Queue()
        self._wake = asyncio.Event()
        self._opened = 0
        self._failures = 0  # attempts since audio last ran
        self._due = 0.0  # time.monotonic() of the next attempt while WAITING
        self._last_error: str | None = None
        self._stopping = asyncio.Event()  # set by request_stop: an opening stream is not waited for
        self._left: list[threading.Thread] = []  # opening threads given up on a stop
        #: Awaited when the loop ends, in the silence of the last fade, before the stream closes
        #: (the outboard switches amplifiers off there when the daemon fails). Must not raise.
        self.before_close: Callable[[], Awaitable[None]] | None = None
        controller.fader = self.switch_through_silence
        _return_large_blocks()

    # --- requests: from any task or callback ------------------------------------------------

    def request_reload(self, load: ConfigLoader) -> None:
        """Reload with the config ``load()`` returns, when the loop gets to it."""
        self._queue.reload = load
        self._wake.set()

    def request_stop(self) -> None:
        """Ramp to silence, close the host and end ``run()``."""
        self._queue.stop = True
        self._stopping.set()
        self._wake.set()

    async def through_silence(self, change: Callable[[], None]) -> None:
        """Fade every source out, make ``change`` and fade back in: for changes the path cannot
        glide through, such as a jump in a source's alignment delay. Raises what ``change``
        raises, or EngineError when the engine stops first (``change`` is then not made)."""
        if self.state is EngineState.STOPPED or self._queue.stop:
            raise EngineError("the audio engine stopped")
        done = asyncio.get_running_loop().create_future()
        self._queue.silences.append(_Silence(change, done))
        self._wake.set()
        await done

    def switch_through_silence(self, release: Callable[[], None]) -> None:
        """The controller's switch through silence (a blind or ABX test): it already holds the
        sources silent; ``release`` lets them play again once every one has faded out."""
        self._queue.silences.append(_Silence(release))
        self._wake.set()

    async def wait_faded(self, source: str | None = None, timeout_s: float = SILENCE_TIMEOUT_S) -> bool:
        """Until ``source`` (None: every source) has faded out, at most ``timeout_s``; at once
        when no audio runs (nothing fades then). False: audio ran and it had not faded in time."""
        return await until(lambda: not self.running or self._faded(source), timeout_s)

    async def wait_played(self, frames: int, timeout_s: float) -> bool:
        """Until the engine has played ``frames`` more frames — counted by the kernel, so a late
        audio thread is waited for — at most ``timeout_s``; at once when no audio runs (or its
        stream is replaced). False: audio ran and had not played them in time."""
        buffers = self.controller.buffers
        if buffers is None or not self.running:
            return True
        start = int(buffers.counters[layout.C_FRAMES])

        def played() -> bool:
            return (
                self.controller.buffers is not buffers
                or not self.running
                or int(buffers.counters[layout.C_FRAMES]) - start >= frames
            )

        return await until(played, timeout_s)

    # --- observation --------------------------------------------------------------------------

    @property
    def abandoned(self) -> bool:
        """A stream's opening was given up on a stop or cancellation and its worker thread
        still runs (compiling the kernel on a first start): the process should leave without
        waiting for it (it closes what it opens itself)."""
        return any(thread.is_alive() for thread in self._left)

    @property
    def running(self) -> bool:
        """Audio is flowing."""
        return self.state is EngineState.RUNNING and self.host is not None and self.host.running

    def stats(self) -> dict[str, Any]:
        """The engine statistics of the state report (``docs/operations.md``)."""
        host = self.host
        stats = host.stats() if host is not None else {"backend": self.config.audio.backend, "running": False}
        c = self.controller.buffers.counters if self.controller.buffers is not None else None
        stats.update(
            running=self.running,
            state=self.state.value,
            nonfinite_replaced=int(c[layout.C_NONFINITE]) if c is not None else 0,
            limited_frames=int(c[layout.C_LIMITED]) if c is not None else 0,
            clipped_samples=int(c[layout.C_CLIPPED]) if c is not None else 0,
            restarts=self.restarts,
            failed_starts=self.failed_starts,
            dropped=dict(self.controller.dropped),
        )
        if self.reason:
            stats["error"] = self.reason
        return stats

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Open the stream, then serve requests and watch the stream until asked to stop.
        Whatever ends the loop (a stop, a cancellation, a bug), the host is closed."""
        try:
            await self._open(refresh=False)
            while True:
                self.heartbeat = time.monotonic()
                try:
                    # a timeout scope, not wait_for: no task of its own at every check
                    async with asyncio.timeout(self._next_check_s()):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                q = self._queue
                if q.stop:
                    break
                if q.silences:
                    await self._fade_through_silence(q.silences.popleft())
                elif q.reload is not None:
                    load, q.reload = q.reload, None
                    await self._reload(load)
                await self._supervise()
                if q.silences or q.reload is not None:
                    self._wake.set()
        finally:
            await self._shut_down()

    def _next_check_s(self) -> float:
        if self.state is EngineState.WAITING:
            return max(0.0, self._due - time.monotonic())
        return SUPERVISE_S

    def _back_off(self) -> None:
        """Wait 0.5, 1, 2, then 4 s after each attempt that failed since audio last ran."""
        self._due = time.monotonic() + BACKOFF_S[min(self._failures, len(BACKOFF_S) - 1)]

    async def _supervise(self) -> None:
        """Notice a lost stream; retry a waiting one once its backoff has passed."""
        if self.state is EngineState.RUNNING and not self.host.running:
            log.warning("audio stopped (device gone or stream failed); retrying")
            await self._close()
            self.state, self.reason = EngineState.WAITING, "the audio device stopped (unplugged, or its server quit)"
            self._failures = 0
            self._back_off()
        elif self.state is EngineState.WAITING and time.monotonic() >= self._due:
            await self._open(refresh=True)

    async def _open(self, refresh: bool) -> bool:
        """Open and start a stream on fresh buffers, ramping in from silence, and wait for its
        first callbacks; False (state WAITING, ``reason`` set, the next attempt scheduled) when
        it cannot. ``refresh``: read the device list afresh first (a device may have come back)."""
        retry = self.state is EngineState.WAITING
        self.state = EngineState.STARTING
        audio = self.config.audio
        buffers = self.controller.start_buffers()
        loudness = LoudnessMonitor(buffers, self.config, matching.window_s(self.config), self.loudness_wake)
        loudness.follow_outputs(self.config.speakers[self.controller.state.speakers].channels)
        opening = _Opening(self._start_host, buffers, refresh)
        try:
            host = await self._tend(opening.future, stoppable=True)
            # a stream that has not called back yet is starting, not lost; one that never does
            # is a failed start
            if not await until(lambda: host.running, RESUME_TIMEOUT_S):
                await self._tend(asyncio.ensure_future(asyncio.to_thread(_close_quietly, host)))
                raise EngineError(f"the {audio.backend} stream started but delivers no audio (device stalled?)")
        except (asyncio.CancelledError, _StopAsked) as exc:
            # A first start compiles the kernel for up to a minute in the worker thread, and a
            # stop or Ctrl-C must not wait for it: take the host if it is open already (the
            # shutdown that follows closes it), else leave the thread to close what it opens.
            host = opening.give_up()
            if host is not None:
                self.host = host
            else:
                self._left.append(opening.thread)
                self.controller.release_buffers()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return False  # stopped: run() ends
        except (EngineError, OSError, RuntimeError) as exc:
            self.controller.release_buffers()
            self.failed_starts += 1
            self._failures += 1
            self.state, self.reason = EngineState.WAITING, str(exc)
            # a retry that fails the same way again is news to nobody
            level = logging.DEBUG if str(exc) == self._last_error else logging.ERROR
            log.log(level, "audio engine not running: %s", exc)
            self._last_error = str(exc)
            self._back_off()
            return False
        finally:
            self.tried.set()
        self.host, self.loudness = host, loudness
        self.state, self.reason, self._last_error = EngineState.RUNNING, None, None
        self.restarts += 1 if self._opened else 0
        self._opened += 1
        log.info("audio running: %s, %d Hz, %d frames", audio.backend, audio.samplerate, audio.blocksize)
        if retry:
            log.info("audio resumed after %d attempt(s)", self._failures + 1)
        self._failures = 0
        self.ready.set()
        return True

    async def _tend(self, job: asyncio.Future, stoppable: bool = False) -> Any:
        """``job``'s result (work in a worker thread), keeping the heartbeat fresh meanwhile: a
        first start compiles the kernel for tens of seconds, and the watchdog must not mistake
        that for a hung loop. ``stoppable``: raise _StopAsked as soon as a stop is requested
        rather than wait for the job."""
        stopping = asyncio.ensure_future(self._stopping.wait()) if stoppable else None
        try:
            while not job.done():
                self.heartbeat = time.monotonic()
                if stopping is not None and stopping.done():
                    raise _StopAsked
                await asyncio.wait(
                    {job} if stopping is None else {job, stopping}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            if stopping is not None:
                stopping.cancel()
        return job.result()

    def _start_host(self, buffers: PathBuffers, refresh: bool):
        """Build and start a host on ``buffers`` (in a worker thread: compiling the kernels and
        opening a device take long, and a device may not answer). The host is closed again if
        it does not start."""
        audio = self.config.audio
        compile_meters(buffers)
        if audio.backend == "virtual":
            from controlroom.daemon.engine.virtual import VirtualHost

            host = VirtualHost(
                process,
                buffers.arrays,
                audio.samplerate,
                audio.blocksize,
                audio.input_channels,
                audio.output_channels,
                program=self.program,
            )
        else:
            from controlroom.daemon.engine.portaudio import PortAudioHost, refresh_devices

            if refresh:
                refresh_devices()
            host = PortAudioHost(
                process,
                buffers.arrays,
                audio.device,
                audio.samplerate,
                audio.blocksize,
                audio.input_channels,
                audio.output_channels,
            )
        try:
            host.start()
        except BaseException:
            _close_quietly(host)
            raise
        return host

    async def _close(self) -> None:
        """Stop and close the host (it gives up a stream whose device is gone); the buffers go
        with it."""
        host, self.host, self.loudness = self.host, None, None
        self.controller.release_buffers()
        if host is None:
            return
        closing = asyncio.ensure_future(asyncio.to_thread(_close_quietly, host))
        try:
            await self._tend(closing)
        except asyncio.CancelledError:
            await asyncio.wait({closing})  # the shutdown that follows must find it closed
            raise

    async def fade_out(self) -> None:
        """Ramp the master gain to silence and wait (bounded) until the kernel reaches it; it
        stays silent until the stream closes (the outboard's shutdown powers amplifiers down
        in that silence)."""
        self.controller.fade_out()
        buffers = self.controller.buffers

        def silent() -> bool:
            c = buffers.counters
            return c[layout.C_APPLIED] == c[layout.C_SEQ] and buffers.state[layout.T_MASTER] == 0.0

        if self.running:
            await until(silent, FADE_TIMEOUT_S)

    def _faded(self, source: str | None) -> bool:
        """The kernel runs the latest parameters and ``source`` (None: every source) has faded
        out (a source no longer configured has nothing to fade)."""
        b = self.controller.buffers
        if b is None:
            return True
        if b.counters[layout.C_APPLIED] != b.counters[layout.C_SEQ]:
            return False
        indices = [i for i, name in enumerate(self.config.sources) if source in (None, name)]
        return not any(b.state[layout.T_SOURCES + i * layout.TS_STRIDE + layout.TS_FADE] for i in indices)

    async def _fade_through_silence(self, silence: _Silence) -> None:
        controller, waiter = self.controller, silence.done
        if waiter is not None and waiter.cancelled():
            return  # nobody waits for it any more: nothing to change
        if waiter is not None:
            controller.hold_silence()  # a blind switch holds the sources itself
        made = False
        try:
            await self.wait_faded()
            if waiter is None or not waiter.cancelled():
                made = True
                silence.change()
        except Exception as exc:
            if waiter is None:
                raise
            if not waiter.done():
                waiter.set_exception(exc)
        finally:
            if waiter is None:
                if not made:
                    silence.change()  # a blind switch's release happens, faded or not
            else:
                controller.release_silence()
                if not waiter.done():
                    # made: it worked; not made: the runner was cancelled in the fade
                    waiter.set_result(None) if made else waiter.set_exception(EngineError("the audio engine stopped"))

    async def _reload(self, load: ConfigLoader) -> None:
        config = await load()
        if config is None:
            return
        old, changes = self.config, diff(self.config, config)
        reopen = changes.stream and self.state is not EngineState.WAITING
        if changes.stream and not reopen:
            log.info("reload: audio settings changed (%s); trying them now", ", ".join(changes.stream))
            self._failures, self._due = 0, 0.0
        if reopen:
            log.info("reload: audio settings changed (%s), reopening the stream", ", ".join(changes.stream))
            await self.fade_out()
            await self._close()
        self.config = config
        self.controller.reload(config)
        if reopen:
            await self._open(refresh=changes.device)
        elif self.state is not EngineState.WAITING:
            if changes.sources and self.controller.buffers is not None:
                # what the loudness meters and matching measure follows the sources
                self.loudness = LoudnessMonitor(
                    self.controller.buffers, config, matching.window_s(config), self.loudness_wake
                )
            self.follow_speakers()
            log.info("reload: applied without interrupting audio")
        if self.on_reload is not None:
            await self.on_reload(old, config, changes)

    def follow_speakers(self) -> None:
        """Point the monitor-output loudness meter at the selected set's outputs."""
        if self.loudness is not None:
            self.loudness.follow_outputs(self.config.speakers[self.controller.state.speakers].channels)

    async def _shut_down(self) -> None:
        """Ramp to silence, close the host, and let every waiting request go."""
        try:
            if self.host is not None:
                await self.fade_out()
        finally:
            if self.before_close is not None:
                await self.before_close()
            await self._close()
        self.state = EngineState.STOPPED
        q = self._queue
        while q.silences:
            silence = q.silences.popleft()
            if silence.done is None:
                silence.change()  # a blind switch's release: nothing fades any more
            elif not silence.done.done():
                silence.done.set_exception(EngineError("the audio engine stopped"))


class _StopAsked(Exception):
    """A stop was requested while a stream opened."""


class _Opening:
    """``start(*args)`` (which opens and returns a host) in a daemon thread, with ``future``
    resolved on the loop. Unlike ``asyncio.to_thread`` the thread can be given up: the process
    (and ``asyncio.run``'s executor shutdown) does not wait for it, and a host it opens after
    ``give_up`` it closes itself."""

    def __init__(self, start: Callable[..., Any], *args: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self.future: asyncio.Future = self._loop.create_future()
        self._lock = threading.Lock()  # hands the host over to exactly one of the two sides
        self._given_up = False
        self._outcome: tuple[Any, BaseException | None] | None = None
        self.thread = threading.Thread(target=self._work, args=(start, args), name="engine-open", daemon=True)
        self.thread.start()

    def _work(self, start: Callable[..., Any], args: tuple) -> None:
        try:
            outcome = (start(*args), None)
        except BaseException as exc:  # handed to the loop, like asyncio.to_thread does
            outcome = (None, exc)
        with self._lock:
            if self._given_up:
                if outcome[0] is not None:
                    _close_quietly(outcome[0])  # nobody else will
                return
            self._outcome = outcome
        try:
            self._loop.call_soon_threadsafe(self._settle)
        except RuntimeError:  # the loop closed meanwhile: give_up already took the host
            pass

    def _settle(self) -> None:
        if self.future.done():
            return
        host, error = self._outcome
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(host)

    def give_up(self) -> Any:
        """The host if the thread has opened it already (the caller closes it), else None: the
        thread then closes whatever it opens."""
        with self._lock:
            self._given_up = True
            if self._outcome is not None:
                return self._outcome[0]
            return None


async def until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` every ``POLL_S`` until it holds (True) or ``timeout_s`` has passed
    (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


def _close_quietly(host) -> None:
    try:
        host.close()
    except (EngineError, OSError, RuntimeError) as exc:
        log.debug("closing the audio host: %s", exc)


#: glibc's mallopt parameter, and the size from which allocations get pages of their own.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 128 * 1024


def _return_large_blocks() -> None:
    """Every stream gets fresh buffers (a delay-line state of a megabyte or more). glibc raises
    its mmap threshold each time such a block is freed, so the next ones come from the heap,
    which does not shrink: RSS would grow with every device loss. A fixed threshold keeps large
    blocks in pages of their own, given back when freed. Nothing on other C libraries."""
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        pass
