"""Measuring an outboard insert's round trip on the running engine.

``/controlroom/insert/measure NAME`` plays white noise out of the insert's sends for
MEASURE_S, records the sends and the return from the kernel's tap (both in the same frames, so
the interface's own latency counts too), and finds the latency to the sample and the gain
(``dsp.alignment``); the result goes to the insert's bookkeeping (``core.inserts``).

The noise never reaches the speakers or the loudness matching: the return is faded out before
the noise starts and faded back in only once the noise in it has died away (the gear's latency
and its own tail), and its meters start afresh then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from controlroom.daemon.core.inserts import (
    MAX_GAIN_DB,
    InsertError,
    InsertResult,
    alignment_delays,
    check,
    max_latency,
)
from controlroom.daemon.errors import EngineError
from controlroom.daemon.osc.protocol import MEASURE_TIMEOUT_S
from controlroom.daemon.service.loudness import TapOverrun
from controlroom.daemon.service.runner import EngineRunner, until
from controlroom.dsp import layout
from controlroom.dsp.alignment import measure_insert

log = logging.getLogger(__name__)

#: Longest wait (s) for each step of a measurement (the engine may stall or stop meanwhile):
#: the four steps together fit in what the protocol gives a measurement to answer.
STEP_TIMEOUT_S = MEASURE_TIMEOUT_S / 4
#: Length of the measurement noise (s): long enough to average out hiss, short enough to wait.
MEASURE_S = 0.5
#: The return is back on the speakers once the noise in it has fallen this far (dB) ...
TAIL_DROP_DB = 60.0
#: ... or this long (s) after the noise stopped (hiss that never falls, a long reverb).
TAIL_MAX_S = 2.0


def analyse(config, name: str, recording: np.ndarray) -> InsertResult:
    """The insert's latency and gain from a tap recording that starts with the noise: its
    return inputs, then its first send output (``_record_noise``)."""
    audio, insert = config.audio, config.inserts[name]
    try:
        m = measure_insert(recording[:, -1], recording[:, :-1], max_latency(audio.samplerate), audio.samplerate)
    except ValueError as exc:
        raise InsertError(f"insert {name}: {exc}") from None
    if not abs(m.gain_db) <= MAX_GAIN_DB:
        raise InsertError(
            f"insert {name}: a gain of {m.gain_db:+.1f} dB (expected at most {MAX_GAIN_DB:g} dB either way)"
        )
    return InsertResult(
        m.latency,
        round(m.gain_db, 2),
        round(m.coherence, 3),
        m.inverted,
        audio.samplerate,
        audio.blocksize,
        insert.send,
        insert.returns,
        insert.source,
    )


async def measure(runner: EngineRunner, name: str) -> InsertResult:
    """Measure insert ``name`` on the running engine and apply the result.

    Raises ``InsertError`` when the insert cannot be measured (unknown, already being
    measured, no audio, no clear return, the engine restarted or the config reloaded
    meanwhile); the previous measurement then stays in force.
    """
    config, controller = runner.config, runner.controller
    check(config, name)
    inserts = controller.inserts
    if inserts.busy is not None:
        raise InsertError(f"insert {inserts.busy} is being measured")
    if controller.calibration.progress is not None:
        raise InsertError("the speakers are being calibrated")
    inserts.busy = name  # one at a time: set before the first await
    try:
        recording = await _record_noise(EngineSession(runner), name)
        result = await asyncio.to_thread(analyse, config, name, recording)

        def apply() -> None:
            if runner.config is not config:
                raise InsertError("the config was reloaded during the measurement: measure again")
            inserts.results[name] = result

        if alignment_delays({**inserts.results, name: result}) != inserts.delay_samples():
            # a delay line that jumps clicks: the sources fade out and back in around the change
            try:
                await runner.through_silence(apply)
            except EngineError:
                raise InsertError("the audio engine stopped during the measurement: measure again") from None
        else:
            apply()
            controller.publish()
    finally:
        inserts.busy = None
    log.info(
        "insert %s: latency %d samples (%.2f ms), gain %+.2f dB%s",
        name,
        result.latency,
        result.latency_ms,
        result.gain_db,
        ", polarity inverted" if result.inverted else "",
    )
    return result


async def _record_noise(engine: EngineSession, name: str) -> np.ndarray:
    """Play the noise through insert ``name`` and record the tap from its first frame on.

    The return is faded out first, and faded back in, its meters restarted, only once the
    noise has stopped and died away in the return (the gear's latency and any tail of its
    own) and every frame that carried it has been metered.
    """
    runner = engine.runner
    controller, inserts = runner.controller, runner.controller.inserts
    rate = runner.config.audio.samplerate
    insert = runner.config.inserts[name]
    returns = tuple(insert.returns)
    inserts.silenced = name
    level = 0.0
    try:
        controller.publish()
        await runner.wait_faded(name)
        inserts.measuring = name
        controller.publish()
        await engine.until(engine.applied, "the engine to take the measurement")
        recording = await engine.record(
            int(MEASURE_S * rate) + max_latency(rate), engine.tap_frame(), returns, insert.send[:1]
        )
        level = _rms(recording[:, :-1])
        return recording
    finally:
        inserts.measuring = None
        controller.publish()
        try:
            await engine.until(engine.applied, "the engine to stop the noise")
            await _wait_for_the_tail(engine, returns, level, rate)
        except InsertError as exc:  # the measurement failed already, or cannot finish cleanly
            log.debug("insert %s: %s", name, exc)
        finally:
            for monitor in {engine.monitor, runner.loudness} - {None}:
                monitor.reset_source(name)
            inserts.silenced = None
            controller.publish()


async def _wait_for_the_tail(engine: EngineSession, returns: tuple[int, ...], level: float, rate: int) -> None:
    """Until the return (inputs ``returns``) has fallen TAIL_DROP_DB below ``level``
    (its RMS during the noise), at most TAIL_MAX_S after the noise stopped."""
    chunk = rate // 20
    position = engine.tap_frame()
    floor = level * 10.0 ** (-TAIL_DROP_DB / 20.0)
    for _ in range(round(TAIL_MAX_S * rate / chunk)):
        block = await engine.record(chunk, position, returns)
        position += chunk
        if _rms(block) <= floor:
            return


def _rms(block: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))) if block.size else 0.0


class EngineSession:
    """The audio engine a measurement started on: its buffers and tap reader. Every wait
    fails with ``error`` (an exception class taking a message) once that engine has stopped or
    been replaced (a device loss, a reload that rebuilds the stream), or with what ``abort()``
    raises (it is called at every poll)."""

    def __init__(
        self, runner: EngineRunner, error: type[Exception] = InsertError, abort: Callable[[], None] = lambda: None
    ) -> None:
        if runner.loudness is None or not runner.running:
            raise error("audio is not running")
        self.runner = runner
        self.buffers = runner.controller.buffers
        self.monitor = runner.loudness
        self.error = error
        self.abort = abort

    def applied(self) -> bool:
        """The kernel runs the latest published parameters."""
        return self.buffers.counters[layout.C_APPLIED] == self.buffers.counters[layout.C_SEQ]

    def tap_frame(self) -> int:
        """Frames the kernel has written into the tap so far."""
        return int(self.buffers.counters[layout.C_TAP_WRITE])

    def check(self) -> None:
        self.abort()
        r = self.runner
        if r.controller.buffers is not self.buffers or r.loudness is not self.monitor or not r.running:
            raise self.error("the audio engine stopped or restarted during the measurement: measure again")

    async def until(self, condition: Callable[[], bool], what: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
        """Until ``condition`` holds; the error naming ``what`` after ``timeout_s``, or as soon
        as the engine stopped or was replaced."""

        def settled() -> bool:
            self.check()
            return condition()

        if not await until(settled, timeout_s):
            raise self.error(f"no audio while waiting for {what}")

    async def record(
        self, frames: int, start: int, inputs: tuple[int, ...] = (), outputs: tuple[int, ...] = ()
    ) -> np.ndarray:
        """``frames`` frames of ``inputs`` then ``outputs`` (1-based channels) from tap frame
        ``start``."""
        recording = self.monitor.record(frames, start, inputs, outputs)
        try:
            # a long recording takes its own length on top of a step's allowance
            await self.until(
                recording.done, "the recording", STEP_TIMEOUT_S + frames / self.runner.config.audio.samplerate
            )
            return recording.result()
        except TapOverrun:
            raise self.error("the meters fell behind and lost audio: measure again") from None
        finally:
            recording.cancel()
