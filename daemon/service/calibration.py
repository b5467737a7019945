"""Calibrating the speakers with a measurement mic on the running engine.

``ctl calibrate [SET ...]`` (OSC ``/controlroom/calibrate``) holds the program silent and plays
the test signal (``dsp.calibration``) on one output at a time: for a main speaker band-limited
pink noise at 500 Hz-2 kHz for its level, then at 100 Hz-10 kHz for its arrival time; for a
subwoofer its band below the crossover (30-80 Hz at 80 Hz) for both. Each burst fades in over
FADE_MS, plays at ``[calibration] noise_dbfs`` RMS (the limiter and ceiling hold for it too)
while the tap records the output and the mic in the same frames, and fades out. The room's own
noise is recorded first, with nothing playing, for the signal-to-noise check (and a mic that
hears not even that fails before any test signal plays).

Only when every output has been measured cleanly are trims and delays worked out
(``core.calibration``) and applied; a dead mic, a clipping mic, too little signal over the
room's noise, a speaker that would need more than ``max_boost_db``, a change of any target, a
reload, a stopping daemon or ``ctl calibrate stop`` ends the run with nothing applied: the
test signal fades out within ABORT_FADE_MS (mute and a stopping daemon silence it in the same
publish, ``Controller``) and the program plays again as before.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from controlroom.daemon.core.calibration import (
    ABORT_FADE_MS,
    CalibrationError,
    OutputResult,
    set_outputs,
    solve_trims,
)
from controlroom.daemon.service.measurement import EngineSession
from controlroom.daemon.service.runner import EngineRunner, until
from controlroom.dsp import calibration as analysis
from controlroom.dsp import layout
from controlroom.dsp.control import CalibrationSignal

log = logging.getLogger(__name__)

#: The test signal's fade in and out (ms): no click, and no sudden loud noise.
FADE_MS = 100.0
#: Seconds of each burst recorded once it has faded in: long enough to average the noise.
BURST_S = 1.0
#: Seconds of the room's noise recorded with nothing playing, and the seconds the program's
#: reverberation is given to die away first (a control room's RT60 is 0.2-0.4 s).
NOISE_S = 1.0
ROOM_DECAY_S = 0.5
#: Longest path from a speaker to the mic searched (m), and the speed of sound (m/s).
MAX_DISTANCE_M = 30.0
SPEED_OF_SOUND_M_S = 343.0
#: What the interface's own round trip may add to an arrival (s), at least: a USB interface
#: at a large buffer (four periods, when the blocks are longer, are allowed for instead).
INTERFACE_LATENCY_S = 0.05
#: Least normalised correlation between what an output sent and what the mic heard at its
#: arrival: below it the mic hears mostly something else (reflections, another source).
MIN_ARRIVAL_PEAK = 0.3
#: Least signal over the room's noise in the test band (dB) for a level to be trusted.
MIN_SNR_DB = 20.0
#: A mic whose room noise (broadband, dBFS RMS) is below this hears nothing: an interface's
#: own input noise with no mic, or a mic without phantom power, is about -100 dBFS; the
#: quietest room through a measurement mic at a usable gain reads well above it.
DEAD_MIC_DBFS = -95.0
#: Seconds of the calibrator's tone recorded by ``measure_mic``, and the band it is read in (Hz).
MIC_S = 2.0
CALIBRATOR_BAND = (250.0, 4000.0)
#: The least calibrator tone (dBFS in CALIBRATOR_BAND) ``measure_mic`` takes for one.
MIN_CALIBRATOR_DBFS = -70.0
#: A calibrator's tones (Hz: IEC 60942 class 1 and 2 calibrators play 1 kHz, some 250 Hz),
#: each read within a third of an octave, and the least share of CALIBRATOR_BAND's power the
#: tone must hold: room noise or speech is no calibrator.
CALIBRATOR_TONES_HZ = (1000.0, 250.0)
MIN_TONE_SHARE = 0.9
#: Seconds a stopped run is given to fade its test signal out and end (a generous bound).
END_TIMEOUT_S = 5.0
#: The origin of the changes a calibration's results make (``volume_spl_db``).
CALIBRATION_ORIGIN = "calibration"


@dataclass(frozen=True)
class Phase:
    """One burst of test signal: what it measures, and its band (Hz)."""

    name: str
    band: tuple[float, float]


MAIN_PHASES = (Phase("level", analysis.LEVEL_BAND), Phase("arrival", analysis.ARRIVAL_BAND))


def sub_phases(crossover_hz: float) -> tuple[Phase, ...]:
    """A subwoofer's one burst, in its band below ``crossover_hz`` (Hz)."""
    return (Phase("level and arrival", analysis.sub_band(crossover_hz)),)


class Calibrator:
    """Runs calibrations on one daemon's engine, one at a time.

    ``saved()`` is called after results were applied or reset (the state file keeps them),
    ``stepped()`` when a run starts, moves to the next output or ends (the state report's
    ``calibrating`` changed, with no target changing).
    """

    def __init__(
        self,
        runner: EngineRunner,
        saved: Callable[[], None] = lambda: None,
        stepped: Callable[[], None] = lambda: None,
    ) -> None:
        self.runner = runner
        self.saved = saved
        self.stepped = stepped
        self._stop_reason: str | None = None
        self._runs: set[asyncio.Task] = set()

    @property
    def running(self) -> bool:
        return self.runner.controller.calibration.progress is not None

    def stop(self, reason: str = "stopped") -> bool:
        """Abort the calibration in progress (True), or nothing runs (False)."""
        if not self.running:
            return False
        if self._stop_reason is None:
            self._stop_reason = reason
        return True

    def start(
        self,
        sets: list[str],
        progress: Callable[[str], None] = lambda line: None,
        finished: Callable[[dict[str, Any]], None] = lambda report: None,
        failed: Callable[[str], None] = lambda message: None,
    ) -> None:
        """Run ``calibrate(sets, progress)`` in the background (a surface's request):
        ``finished(report)`` once the results are applied, ``failed(message)`` (logged here)
        when it cannot be done, fails or is stopped."""

        async def run() -> None:
            try:
                report = await self.calibrate(sets, progress)
            except CalibrationError as exc:
                log.warning("calibration: %s", exc)
                failed(str(exc))
                return
            finished(report)

        task = asyncio.get_running_loop().create_task(run())
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def end(self, reason: str) -> None:
        """Stop the calibration in progress, if any, and wait until it has ended: its test
        signal faded out and nothing applied (before the daemon stops or reloads)."""
        if self.stop(reason) and not await until(lambda: not self.running, END_TIMEOUT_S):
            log.warning("calibration: the run did not end within %g s of its stop (%s)", END_TIMEOUT_S, reason)

    def reset(self) -> None:
        """Remove every calibration result (refused while a calibration runs)."""
        if self.running:
            raise CalibrationError("a calibration is running (stop it first: ctl calibrate stop)")
        controller = self.runner.controller
        controller.calibration.reset()
        controller.calibrated(CALIBRATION_ORIGIN)
        self.saved()
        log.info("calibration reset: the speakers play with the config's trims and delays only")

    def _check_stop(self) -> None:
        if self._stop_reason is not None:
            raise CalibrationError(f"calibration stopped ({self._stop_reason}); nothing applied")

    async def calibrate(self, sets: list[str], progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
        """Calibrate the outputs of speaker sets ``sets`` (all when empty), report each step to
        ``progress``, apply the results and return the ``calibration`` report with ``measured``
        (the outputs measured in this run, with the seconds each took).

        Raises CalibrationError (nothing applied) when it cannot be done or was stopped.
        """
        runner = self.runner
        config, controller = runner.config, runner.controller
        cal = config.calibration
        if cal is None:
            raise CalibrationError("no [calibration] section in the config (it names the mic's input)")
        names = list(sets) or list(config.speakers)
        unknown = [n for n in names if n not in config.speakers]
        if unknown:
            raise CalibrationError(
                f"no speaker set {', '.join(unknown)} (expected one of {', '.join(config.speakers)})"
            )
        outputs = _outputs(config, names)
        # the filters and gains of the run's test signals: tenths of a second off the event loop
        signals = await asyncio.to_thread(_test_signals, config, {p for _, phases in outputs for p in phases})
        if self.running:
            raise CalibrationError("a calibration is running already")
        if runner.config is not config:
            raise CalibrationError("the config was reloaded: calibrate again")
        if controller.inserts.busy is not None:
            raise CalibrationError(f"insert {controller.inserts.busy} is being measured")
        if controller.state.mute:
            raise CalibrationError("the monitor is muted: unmute first (the test signal would play through the mute)")
        engine = EngineSession(runner, CalibrationError, self._check_stop)
        self._stop_reason = None
        controller.calibration.progress = {"sets": names, "output": None, "step": 0, "of": len(outputs)}
        self.stepped()

        def stop_on_change(changes: dict[str, Any], origin: str) -> None:
            if origin != CALIBRATION_ORIGIN:  # not the results of this very run
                self.stop(f"{', '.join(changes)} changed")

        controller.add_listener(stop_on_change)
        controller.hold_silence()
        measured: dict[int, tuple[analysis.OutputLevel, int, float]] = {}
        try:
            await runner.wait_faded()
            progress(f"room noise: recording {NOISE_S:g} s with nothing playing")
            # once the program's last sound has crossed the room to the mic and died away
            quiet = engine.tap_frame() + _max_arrival(config) + round(ROOM_DECAY_S * config.audio.samplerate)
            noise = await engine.record(round(NOISE_S * config.audio.samplerate), quiet, (cal.mic,))
            _check_mic(cal, noise[:, 0])
            for step, (output, phases) in enumerate(outputs, start=1):
                sub = phases != MAIN_PHASES
                controller.calibration.progress = {**controller.calibration.progress, "output": output, "step": step}
                self.stepped()
                started = time.monotonic()
                recordings = []
                for phase in phases:
                    progress(
                        f"output {output} ({step}/{len(outputs)}{', subwoofer' if sub else ''}): {phase.name}, "
                        f"pink noise {phase.band[0]:g}-{phase.band[1]:g} Hz at {cal.noise_dbfs:g} dBFS"
                    )
                    recordings.append(await self._burst(engine, replace(signals[phase.band], output=output)))
                level, arrival = await asyncio.to_thread(_analyse, config, output, phases, noise, recordings)
                measured[output] = (level, arrival, time.monotonic() - started)
                progress(f"output {output}: {level.level_db:.1f} dBFS at the mic, arrives after {arrival} samples")
            self._check_stop()  # a change that came in the last step still counts
            # applied while the program is still held silent: a delay that jumps carries
            # only silence across
            self._apply(config, measured)
        finally:
            await self._silence_test_signal(engine)
            controller.remove_listener(stop_on_change)
            controller.calibration.progress = None
            controller.release_silence()
            self.stepped()
        report = controller.calibration.as_dict()
        report["measured"] = {
            str(o): {**report["outputs"][str(o)], "duration_s": round(seconds, 2)}
            for o, (_, _, seconds) in measured.items()
        }
        return report

    def _apply(self, config, measured: dict[int, tuple[analysis.OutputLevel, int, float]]) -> None:
        """Trims and delays from ``measured`` (output -> level, arrival, seconds) under
        ``config`` (the one the run started with), checked, then applied and saved; raises
        CalibrationError (nothing applied) when they cannot be."""
        controller = self.runner.controller
        if self.runner.config is not config:
            raise CalibrationError("the config was reloaded during the calibration: calibrate again; nothing applied")
        cal, calibration = config.calibration, controller.calibration
        levels = {o: level.level_db for o, (level, _, _) in measured.items()}
        target = None
        if cal.mic_dbfs_at_94_db_spl is not None:
            reference = cal.target_spl_db - analysis.CALIBRATOR_SPL_DB + cal.mic_dbfs_at_94_db_spl
            target = f"target_spl_db {cal.target_spl_db:g} dB SPL"
        elif calibration.reference_db is not None and set(calibration.outputs) - set(measured):
            reference = calibration.reference_db  # the outputs not measured now stay matched
            target = f"the level the other calibrated outputs play at ({reference:.1f} dBFS at the mic)"
        else:
            reference = min(levels.values())
        trims = solve_trims(levels, reference, cal.max_boost_db, target)
        rate = config.audio.samplerate
        results = {
            o: OutputResult(round(level.level_db, 2), round(level.snr_db, 1), arrival, rate, trims[o])
            for o, (level, arrival, _) in measured.items()
        }
        previous = dict(calibration.outputs), calibration.reference_db
        calibration.outputs.update(results)
        calibration.reference_db = reference
        try:
            _check_delays(config, calibration)
        except CalibrationError:
            calibration.outputs, calibration.reference_db = previous
            raise
        controller.calibrated(CALIBRATION_ORIGIN)
        self.saved()
        for o, r in sorted(results.items()):
            log.info(
                "calibrated output %d: %.1f dBFS at the mic (SNR %.0f dB), trim %+.2f dB, arrival %d samples",
                o,
                r.level_db,
                r.snr_db,
                r.trim_db,
                r.arrival,
            )

    async def _burst(self, engine: EngineSession, playing: CalibrationSignal) -> np.ndarray:
        """Fade the test signal ``playing`` in, record BURST_S of the mic and the output from
        the tap, fade it out; the recording (frames, 2): the mic, then the output."""
        controller = self.runner.controller
        signal = replace(playing, gain=0.0)
        controller.calibration_signal = signal
        controller.publish()
        await engine.until(engine.applied, "the engine to take the test signal")
        controller.calibration_signal = playing
        controller.publish()
        await engine.until(
            lambda: engine.applied() and _test_gain(engine) == playing.gain, "the test signal to fade in"
        )
        config = engine.runner.config
        recording = await engine.record(
            round(BURST_S * config.audio.samplerate), engine.tap_frame(), (config.calibration.mic,), (playing.output,)
        )
        controller.calibration_signal = signal  # gain 0: fades out
        controller.publish()
        await engine.until(lambda: engine.applied() and _test_gain(engine) == 0.0, "the test signal to fade out")
        return recording

    async def _silence_test_signal(self, engine: EngineSession) -> None:
        """Fade the test signal out within ABORT_FADE_MS (if one plays) and remove it."""
        controller = self.runner.controller
        signal = controller.calibration_signal
        if signal is None:
            return
        controller.calibration_signal = replace(signal, gain=0.0, fade_ms=ABORT_FADE_MS)
        controller.publish()
        if controller.buffers is engine.buffers and self.runner.running:
            quiet = EngineSession(self.runner, CalibrationError)  # not stoppable: this is the stop
            try:
                await quiet.until(lambda: quiet.applied() and _test_gain(quiet) == 0.0, "the test signal to stop")
            except CalibrationError as exc:
                log.debug("calibration: %s", exc)
        controller.calibration_signal = None
        controller.publish()

    async def measure_mic(self) -> float:
        """What the mic reads (dBFS RMS, CALIBRATOR_BAND) with a 94 dB SPL calibrator on it:
        the config's ``mic_dbfs_at_94_db_spl``. Raises CalibrationError when the mic clips or
        hears nothing."""
        config = self.runner.config
        cal = config.calibration
        if cal is None:
            raise CalibrationError("no [calibration] section in the config (it names the mic's input)")
        if self.running:
            raise CalibrationError("a calibration is running")
        engine = EngineSession(self.runner, CalibrationError)
        rate = config.audio.samplerate
        recording = await engine.record(round(MIC_S * rate), engine.tap_frame(), (cal.mic,))
        mic = recording[:, 0]
        peak = analysis.peak_dbfs(mic)
        if peak >= analysis.CLIP_DBFS:
            raise CalibrationError(f"the mic (input {cal.mic}) clips at {peak:.1f} dBFS: turn its preamp down")
        power = analysis.band_power(mic, CALIBRATOR_BAND, rate)
        level = analysis.power_db(power)
        if level < MIN_CALIBRATOR_DBFS:
            raise CalibrationError(f"no calibrator tone at the mic (input {cal.mic}): is it on, and the mic live?")
        third = 2.0 ** (1.0 / 6.0)
        tone = max(analysis.band_power(mic, (f / third, f * third), rate) for f in CALIBRATOR_TONES_HZ)
        if tone < MIN_TONE_SHARE * power:
            raise CalibrationError(
                f"no calibrator tone at the mic (input {cal.mic}): it hears {level:.1f} dBFS, of which a 1 kHz "
                f"or 250 Hz tone is only {100.0 * tone / power:.0f}% (needs {100.0 * MIN_TONE_SHARE:g}%): "
                "is the calibrator on and seated on the mic?"
            )
        return round(level, 2)


def _test_gain(engine: EngineSession) -> float:
    """The test signal's gain as the kernel plays it now, once its ramp has ended (else NaN)."""
    state = engine.buffers.state
    return state[layout.T_TEST_GAIN] if state[layout.T_TEST_GAIN + 2] == 0.0 else math.nan


def _test_signals(config, phases: set[Phase]) -> dict[tuple[float, float], CalibrationSignal]:
    """Band (Hz) -> the test signal that plays in it at ``noise_dbfs`` (output 0: set per
    burst), for each of ``phases``."""
    rate, dbfs = config.audio.samplerate, config.calibration.noise_dbfs
    signals = {}
    for phase in phases:
        sections = analysis.test_sections(phase.band, rate)
        gain = analysis.test_gain(sections, rate, dbfs)
        signals[phase.band] = CalibrationSignal(0, tuple(map(tuple, sections)), gain, FADE_MS)
    return signals


def _check_mic(cal, noise: np.ndarray) -> None:
    """Refuse a mic (its recording of the room's ``noise``) that hears nothing at all, before
    any test signal plays."""
    if not np.all(np.isfinite(noise)):
        raise CalibrationError(f"the mic (input {cal.mic}) delivered non-finite samples; nothing applied")
    floor = analysis.power_db(float(np.mean(np.square(noise, dtype=float))))
    if floor < DEAD_MIC_DBFS:
        raise CalibrationError(
            f"no signal at the mic (input {cal.mic}): it hears nothing, not even the room ({floor:.0f} dBFS): "
            "is it plugged in, phantom power on, the right input in mic? nothing applied"
        )


def _outputs(config, names: list[str]) -> list[tuple[int, tuple[Phase, ...]]]:
    """The outputs of speaker sets ``names`` in order, each once, with its bursts: a main
    speaker's, or a subwoofer's below the crossover of the first of those sets it serves."""
    crossovers: dict[int, float] = {}
    for name in names:
        sub = config.speakers[name].sub
        if sub is not None:
            crossovers.setdefault(sub.output, sub.crossover_hz)
    seen: dict[int, tuple[Phase, ...]] = {}
    for name in names:
        for output in set_outputs(config, name):
            sub = output in crossovers and output not in config.speakers[name].channels
            seen.setdefault(output, sub_phases(crossovers[output]) if sub else MAIN_PHASES)
    return list(seen.items())


def _analyse(
    config, output: int, phases: tuple[Phase, ...], noise: np.ndarray, recordings: list[np.ndarray]
) -> tuple[analysis.OutputLevel, int]:
    """Output ``output``'s level and arrival (samples) from the tap recordings of its bursts
    (``phases``; the mic, then the output) and of the room's ``noise`` (the mic); raises CalibrationError naming the output when the mic is dead, clips or
    hears too little over the noise."""
    cal, rate = config.calibration, config.audio.samplerate
    mic, sent = 0, 1
    for recording in recordings:
        heard = recording[:, mic]
        if not np.all(np.isfinite(heard)):
            raise CalibrationError(f"output {output}: the mic (input {cal.mic}) delivered non-finite samples")
        peak = analysis.peak_dbfs(heard)
        if peak >= analysis.CLIP_DBFS:
            raise CalibrationError(
                f"output {output}: the mic (input {cal.mic}) clips at {peak:.1f} dBFS "
                "(turn the mic preamp down); nothing applied"
            )
    last = recordings[-1]
    max_lag = _max_arrival(config)
    found = analysis.arrival(last[:, sent], last[:, mic], max_lag, sharpen=phases == MAIN_PHASES)
    arrival = found.lag
    levels = [
        analysis.heard_level(
            recording[:, sent],
            recording[:, mic],
            noise[:, mic],
            arrival,
            analysis.listening_band(phase.band),
            rate,
            cal.noise_dbfs,
        )
        for phase, recording in zip(phases, recordings, strict=True)
    ]
    for level in levels:
        if not level.snr_db >= MIN_SNR_DB:
            margin = f"only {level.snr_db:.1f} dB" if 0.0 < level.snr_db < math.inf else "not"
            raise CalibrationError(
                f"output {output}: the test signal is {margin} over the room's noise at the mic "
                f"(needs {MIN_SNR_DB:g} dB): is the speaker on, and the room quiet? nothing applied"
            )
    if found.peak < MIN_ARRIVAL_PEAK or arrival >= max_lag:
        raise CalibrationError(
            f"output {output}: no clear arrival at the mic (correlation {found.peak:.2f} at {arrival} samples, "
            f"needs {MIN_ARRIVAL_PEAK:g} within {max_lag}): is the mic in the open at the listening position, "
            "with nothing between it and the speaker? nothing applied"
        )
    return levels[0], arrival


def _max_arrival(config) -> int:
    """The longest arrival (samples) searched for: 30 m of air and the interface's latency."""
    audio = config.audio
    latency_s = max(INTERFACE_LATENCY_S, 4 * audio.blocksize / audio.samplerate)
    return round((MAX_DISTANCE_M / SPEED_OF_SOUND_M_S + latency_s) * audio.samplerate)


def _check_delays(config, calibration) -> None:
    """Refuse alignment delays the path cannot make (with the sets' own delays)."""
    for name, s in config.speakers.items():
        for output, delay in calibration.delays_ms(name).items():
            own = next((o.delay_ms for o in s.outputs if o.channel == output), 0.0)
            if s.delay_ms + own + delay > layout.MAX_DELAY_MS:
                raise CalibrationError(
                    f"set {name}: output {output} would need {delay:.1f} ms of delay on top of "
                    f"{s.delay_ms + own:g} ms (at most {layout.MAX_DELAY_MS:g} ms in all); nothing applied"
                )
