"""The daemon: controller, engine runner, OSC, MIDI surfaces, state file and systemd, on one loop.

Life cycle: restore the state (capped at the start-up maximum) -> outboard outputs driven off
-> open the stream, ramping in from silence (with outboard gear: held silent until its start-up
sequence has powered the amplifiers) -> READY -> serve until SIGTERM/SIGINT -> ramp to
silence, amplifiers off, close, save, exit 0.
SIGHUP asks the engine runner to reload (``runner``). The service's tasks (the runner, meters,
loudness, watchdog) run in one task group: a task that fails is logged, the others stop, the
state is saved and ``run()`` returns 1, so that systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from controlroom.daemon.config import Changes, Config, load_config
from controlroom.daemon.core import comparison, matching
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.inserts import InsertResult
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.errors import ConfigError, ControlroomError, PortError
from controlroom.daemon.midi.surface import SurfaceManager
from controlroom.daemon.osc.server import OscServer
from controlroom.daemon.service import measurement, readout, statefile
from controlroom.daemon.service.calibration import Calibrator
from controlroom.daemon.service.notify import Notifier, watchdog_interval_s
from controlroom.daemon.service.runner import BACKOFF_S, EngineRunner

log = logging.getLogger("controlroom")

METER_POLL_S = 0.04  # 25 Hz, while OSC receivers get meters
#: How often the meters are read while no OSC receiver gets them (s); the web remote, MQTT
#: and state reports read them when they ask (``shown_meters``).
METER_IDLE_S = 1.0
#: The loudness meters are drained at every 100 ms step, and their figures worked out, while
#: something asked for the meters within this long (s); else seldom (``LoudnessMonitor.period_s``),
#: with the figures once a second (the journal's status, the next report).
LOUDNESS_WANTED_S = 2.0
LOUDNESS_REPORT_S = 1.0
#: READY=1 goes to systemd once audio runs, or after this long without a device (s), so that
#: boot does not hang on an unplugged interface; the runner keeps retrying either way.
READY_GRACE_S = 10.0
#: The watchdog is fed while the runner's loop turned within this long (s): its longest wait
#: is a backoff step, then a stream's opening (PortAudio calls time out after 2 s each).
HEARTBEAT_LIMIT_S = BACKOFF_S[-1] + 6.0
#: Longest wait on the way out for the MQTT switches' "off" to reach the broker (s).
MQTT_GOODBYE_S = 2.0


class _Stopped(Exception):
    """Ends the service's task group on SIGTERM/SIGINT (not an error)."""


class Daemon:
    """One running controlroom.

    Args:
        config: the validated config.
        config_path: the file it came from (SIGHUP re-reads it); None for the built-in default
            and the demo (nothing to re-read).
        state_path: where the state is saved; True for the configured or default place, None
            or False for nowhere (the demo).
        program: the virtual backend's input, (frames, inputs) float32 played in a loop; None
            plays silence.
        config_dir: where the surfaces' relative mapping paths start; default: the config
            file's directory, else the current one.
        announce: called once SIGTERM and SIGINT stop the daemon, before anything else starts
            (the command line says there that a first start compiles the engine: a Ctrl-C
            after that line is a stop, exit 0).
    """

    def __init__(
        self,
        config: Config,
        config_path: Path | None = None,
        *,
        state_path: Path | None | bool = True,
        program: np.ndarray | None = None,
        config_dir: Path | None = None,
        announce: Callable[[], object] | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        if state_path is True:
            state_path = statefile.default_path(config.state.path)
        self.state_path = state_path or None
        self.program = program
        if config_dir is None:
            config_dir = config_path.parent if config_path is not None else Path.cwd()
        self.config_dir = config_dir
        self.announce = announce
        self.controller: Controller | None = None
        self.runner: EngineRunner | None = None
        self.calibrator: Calibrator | None = None
        self.osc: OscServer | None = None
        self.surfaces: SurfaceManager | None = None
        self.mqtt = None  # an MqttBridge when the config has [mqtt]
        self.web = None  # a WebServer when the config has [web]
        self.outboard = None  # the Outboard sequencer when the config has [[outboard]] entries
        self.saver: statefile.Saver | None = None
        self.notifier = Notifier()
        self.latest_meters: dict[str, Any] = {}
        self._meters_read = -math.inf  # time.monotonic() of latest_meters
        self.latest_loudness: dict[str, Any] = {}  # replaced whole by the loudness thread
        self._loudness_asked = -math.inf  # time.monotonic() when meters were last shown
        self.ready = asyncio.Event()  # audio ran, or the grace period is over
        self._stop = asyncio.Event()

    # --- life cycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT (0) or until a task of the service fails (1)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        if self.announce is not None:
            self.announce()
        try:
            await self.start()
            return await self._serve()
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _serve(self) -> int:
        status = 0
        try:
            async with asyncio.TaskGroup() as tasks:
                engine = tasks.create_task(_logged("engine", self.runner.run()), name="engine")
                for name, job in self._jobs():
                    tasks.create_task(_logged(name, job), name=name)
                tasks.create_task(self._until_stopped(engine), name="stop")
        except* _Stopped:
            pass
        except* Exception:
            status = 1  # each failure was logged where it happened
        return status

    def stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        """Restore the state, build the controller and the engine runner, start OSC and the
        surfaces. The stream opens when the runner runs (``run``)."""
        doc = statefile.load(self.state_path) if self.state_path is not None else {}
        state, match_db, warnings = self._restore_state(doc)
        abx_log = None
        if self.state_path is not None:
            abx_log = partial(comparison.append_log, comparison.log_path(self.state_path))
        self.controller = Controller(self.config, state, measure=self._window_lufs, match_db=match_db, abx_log=abx_log)
        if "inserts" in doc:
            warnings += self.controller.inserts.restore(doc["inserts"])
        if "calibration" in doc:
            warnings += self.controller.calibration.restore(doc["calibration"])
            self.controller.calibrated("restore")
        if self.state_path is not None:
            statefile.warn_ignored(self.state_path, warnings)
        self.controller.cap_startup_volume()
        self.runner = EngineRunner(self.config, self.controller, program=self.program, on_reload=self._reloaded)
        self.calibrator = Calibrator(self.runner, saved=self._calibrated, stepped=self._calibrating)
        if self.state_path is not None:
            self.saver = statefile.Saver(self.state_path, self._snapshot)
            self.controller.add_listener(lambda changes, origin: self.saver.changed())
            self.saver.changed()  # the capped start-up volume is the state now
        self.controller.add_listener(lambda changes, origin: "speakers" in changes and self.runner.follow_speakers())
        if self.config.mqtt is not None:
            from controlroom.daemon.mqtt import MqttBridge  # aiomqtt only for a config that asks

            self.mqtt = MqttBridge(
                self.controller, self.config, self.state_report, self.shown_meters, calibrator=self.calibrator
            )
        if self.config.outboard:
            from controlroom.daemon.outboard import Outboard  # gpiozero only for a config that asks

            # before the stream opens: the pins are driven off, the sources held silent
            self.outboard = Outboard(self.config, self.controller, self.runner, self.mqtt)
            # a daemon that fails switches amplifiers off in the runner's last fade, before the
            # stream closes (the shutdown sequence has done so already on SIGTERM)
            self.runner.before_close = self.outboard.power_down_faded
        self.osc = await self._start_osc(self.config)
        if self.config.web is not None:
            from controlroom.daemon.web import WebServer  # aiohttp only for a config that asks

            self.web = WebServer(
                self.controller,
                self.config,
                self.state_report,
                self.shown_meters,
                self.runner.stats,
                measure_insert=self.measure_insert,
                reset_loudness=self.reset_loudness,
                calibrator=self.calibrator,
            )
            await self.web.start()
        self.surfaces = SurfaceManager(self.controller, self.config.surfaces, self.config.midi, self.config_dir)
        await self.surfaces.start()

    def _jobs(self):
        jobs = [
            ("meters", self._poll_meters()),
            ("loudness", self._poll_loudness()),
            ("watchdog", self._keep_watch()),
            ("surfaces", self.surfaces.watch()),
            ("ready", self._ready_after_grace()),
        ]
        if self.mqtt is not None:
            jobs.append(("mqtt", self.mqtt.run()))
        if self.web is not None:
            jobs.append(("web", self.web.watch()))
        if self.outboard is not None:
            jobs.append(("outboard", self.outboard.start_up()))
        return jobs

    async def _until_stopped(self, engine: asyncio.Task) -> None:
        """On SIGTERM/SIGINT: let the runner ramp to silence and close the stream, then end the
        other tasks."""
        await self._stop.wait()
        self.notifier.stopping()
        # its test signal fades out and nothing is applied before amplifiers power down
        await self.calibrator.end("the daemon stops")
        if self.outboard is not None:
            await self.outboard.power_down()  # amplifiers off while the interface still plays silence
            if self.mqtt is not None:
                await self.mqtt.drained(MQTT_GOODBYE_S)
        self.runner.request_stop()
        await engine
        raise _Stopped

    async def shutdown(self) -> None:
        """Close what ``start`` opened and save the state. The runner closed the stream on its
        way out (whether it was asked to stop or cancelled)."""
        self.notifier.stopping()
        if self.saver is not None:
            await self.saver.flush()
        if self.surfaces is not None:
            self.surfaces.close()
        if self.osc is not None:
            self.osc.close()
        if self.web is not None:
            await self.web.close()
        if self.outboard is not None:
            self.outboard.close()
        self.notifier.close()
        log.info("stopped")

    def _restore_state(self, doc: dict[str, Any]):
        """The targets and match offsets (dB) saved in ``doc``, or the config's defaults, and a
        warning per entry that could not be used."""
        vocabulary = Vocabulary(self.config)
        if self.state_path is None:
            return vocabulary.initial(), {}, []
        state, warnings = vocabulary.restore(doc.get("targets", {}))
        cap = matching.max_boost_db(self.config)
        match_db, match_warnings = matching.restore_offsets(doc.get("match_db", {}), self.config.sources, cap)
        return state, match_db, warnings + match_warnings

    def _snapshot(self) -> dict[str, Any]:
        c = self.controller
        return {
            "targets": c.state.as_dict(),
            "match_db": dict(c.match_db),
            "inserts": c.inserts.as_dict(),
            "calibration": c.calibration.as_dict(),
        }

    def _calibrated(self) -> None:
        """Calibration results were applied or removed: save them, and tell MQTT."""
        if self.saver is not None:
            self.saver.changed()
        self._calibrating()

    def _calibrating(self) -> None:
        """A calibration's progress moved (no target changed: the listeners do not hear it)."""
        if self.mqtt is not None:
            self.mqtt.state_changed()

    async def measure_insert(self, name: str) -> InsertResult:
        """Measure outboard insert ``name`` (``service.measurement``) and save the result."""
        result = await measurement.measure(self.runner, name)
        if self.saver is not None:
            self.saver.changed()
        return result

    # --- reload ----------------------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: ask the runner to reload the config file (it reads it when its turn comes)."""
        if self.config_path is None:
            log.warning("SIGHUP: no config file to re-read (the built-in default, or the demo); nothing to reload")
        elif self.runner is None:
            log.warning("SIGHUP while starting: the config just read is the file's; nothing to reload")
        else:
            self.runner.request_reload(self._read_config)

    async def _read_config(self) -> Config | None:
        """The config file for a reload, with any calibration ended before it is applied (its
        test signal and results belong to the old config); None when it is rejected."""
        try:
            config = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("reload rejected: %s", line)
            log.error("reload rejected: keeping the running config")
            return None
        await self.calibrator.end("the config was reloaded")
        return config

    async def _reloaded(self, old: Config, new: Config, changes: Changes) -> None:
        """The runner applied ``new``: restart what else changed."""
        self.config = new
        if self.saver is not None:
            self.saver.changed()  # the reload may have forgotten insert measurements
        if changes.osc:
            self.osc.close()
            for config in (new, old):
                try:
                    self.osc = await self._start_osc(config)
                    break
                except PortError as exc:
                    log.error("reload: %s", exc)
            else:
                log.error("reload: OSC is off until a reload can bind it")
        # the surfaces re-read their mapping files on every reload
        await self.surfaces.reload(new.surfaces, new.midi)
        if self.mqtt is not None:
            self.mqtt.reload(new)
        elif new.mqtt is not None:
            log.warning("reload: [mqtt] takes effect when the daemon restarts")
        if self.web is not None:
            self.web.reload(new)
        elif new.web is not None:
            log.warning("reload: [web] takes effect when the daemon restarts")
        if _outboard_setup(new) != _outboard_setup(old):
            log.warning(
                "reload: [[outboard]], [sequencing] and the sets' power, relays and recall take effect when the daemon restarts"
            )

    async def _start_osc(self, config: Config) -> OscServer:
        server = OscServer(
            self.controller,
            config.osc,
            self.report,
            measure_insert=self.measure_insert,
            reset_loudness=self.reset_loudness,
            switch_outboard=self.outboard.switch_by_hand if self.outboard is not None else None,
            calibrator=self.calibrator,
        )
        await server.start()
        return server

    # --- meters, watchdog, report ------------------------------------------------------------

    async def _poll_meters(self) -> None:
        # Only OSC pushes meters: without a receiver they are read seldom here (reports, the
        # web remote and MQTT read them when they ask), so an idle daemon hardly wakes.
        while True:
            sending = self.osc.sends_meters
            await asyncio.sleep(METER_POLL_S if sending else METER_IDLE_S)
            meters = self.current_meters()
            if sending:
                self._watch_loudness()
                self.osc.send_meters(self.controller.shown_meters(meters))

    def _watch_loudness(self) -> None:
        """Someone reads the meters: the loudness figures are worked out at every step from
        now on (``LOUDNESS_WANTED_S``), the first time at once rather than at an idle turn."""
        now = time.monotonic()
        if now - self._loudness_asked >= LOUDNESS_WANTED_S:
            self.runner.loudness_wake.set()
        self._loudness_asked = now

    def current_meters(self) -> dict[str, Any]:
        """The meters over the time since the previous reading (read again when that is at
        least ``METER_POLL_S`` ago, so that each reading covers some audio); the last ones
        while the engine does not run."""
        buffers = self.controller.buffers
        now = time.monotonic()
        if buffers is not None and self.runner.running and now - self._meters_read >= METER_POLL_S:
            self._meters_read = now
            self.latest_meters = readout.read(buffers, self.config)
        if self.latest_meters:
            self.latest_meters["loudness"] = self.latest_loudness
        return self.latest_meters

    async def _poll_loudness(self) -> None:
        # A thread of its own drains the tap, so that the event loop does not wake ten times
        # a second for it; it ends (within a step) when this job is cancelled.
        stop = threading.Event()
        try:
            await asyncio.to_thread(self._drain_loudness, stop)
        finally:
            stop.set()
            self.runner.loudness_wake.set()

    def _drain_loudness(self, stop: threading.Event) -> None:
        """The loudness thread: meter what the kernel tapped, every step while someone watches
        or waits for a recording, less often otherwise (``LoudnessMonitor.period_s``), and at
        once when something is asked of the meters (``runner.loudness_wake``). It reads
        ``runner.loudness`` (replaced whole on the loop, None while no stream is open; its
        arrays outlive a drain begun before) and never touches the stream itself."""
        wake, reported = self.runner.loudness_wake, -math.inf
        while not stop.is_set():
            monitor = self.runner.loudness
            watched = time.monotonic() - self._loudness_asked < LOUDNESS_WANTED_S
            wake.wait(monitor.period_s(watched) if monitor is not None else LOUDNESS_REPORT_S)
            wake.clear()  # before the drain, which takes up every request queued until now
            monitor = self.runner.loudness
            if monitor is None or stop.is_set():
                continue
            monitor.drain()
            # the BS.1770 figures (histogram scans) are read while someone looks, else seldom
            now = time.monotonic()
            if now - self._loudness_asked < LOUDNESS_WANTED_S or now - reported >= LOUDNESS_REPORT_S:
                self.latest_loudness, reported = monitor.report(), now

    def _window_lufs(self, source: str) -> float | None:
        """What matching compares: ``source``'s gated loudness (LUFS) over the matching window;
        None before the engine has measured any."""
        monitor = self.runner.loudness if self.runner is not None else None
        return monitor.window_lufs(source) if monitor is not None and source in monitor.sources else None

    async def _ready_after_grace(self) -> None:
        """READY=1 once audio runs, or ``READY_GRACE_S`` after the first stream failed to open
        (not while the kernel still compiles on a first start: that is start-up, not a missing
        device)."""
        await self.runner.tried.wait()
        try:
            await asyncio.wait_for(self.runner.ready.wait(), READY_GRACE_S)
        except TimeoutError:
            log.warning("no audio after %.0f s: reporting ready, still retrying", READY_GRACE_S)
        self.ready.set()
        self.notifier.ready(self.status_line())

    async def _keep_watch(self) -> None:
        """WATCHDOG=1 while the engine runner's loop turns (it runs, or retries a lost device).
        A hung control loop or runner stops the pings, and systemd restarts the service."""
        interval = watchdog_interval_s()
        while True:
            await asyncio.sleep(interval or 5.0)
            if interval and time.monotonic() - self.runner.heartbeat < HEARTBEAT_LIMIT_S:
                self.notifier.watchdog()
            self.notifier.status(self.status_line())

    @property
    def host(self):
        """The audio host now running, if any (the runner owns it)."""
        return self.runner.host if self.runner is not None else None

    @property
    def loudness(self):
        """The loudness meters of the running engine, if any."""
        return self.runner.loudness if self.runner is not None else None

    def reset_loudness(self) -> None:
        """Restart integrated loudness and LRA (monitor and sources) at the meters' next drain;
        nothing to restart while no engine runs."""
        if self.loudness is not None:
            self.loudness.reset_integrated()

    def report(self) -> dict[str, Any]:
        """``{"state", "engine", "meters", "surfaces"}`` (and ``mqtt`` with ``[mqtt]``, ``web`` with
        ``[web]``, ``outboard`` and ``sequence`` with ``[[outboard]]``) as ``/controlroom/state``
        and ``ctl status`` show it."""
        report = {
            "state": self.state_report(),
            "engine": self.runner.stats(),
            "meters": self.shown_meters(),
            "surfaces": self.surfaces.status(),
        }
        if self.mqtt is not None:
            report["mqtt"] = self.mqtt.status()
        if self.web is not None:
            report["web"] = self.web.status()
        if self.outboard is not None:
            report["outboard"] = self.outboard.status()
            report["sequence"] = self.outboard.sequence_status()
        return report

    def state_report(self) -> dict[str, Any]:
        """The report's ``state``: the controller's, and what level matching can do."""
        return {**self.controller.state_report(), "matching": self.matching_status()}

    def shown_meters(self) -> dict[str, Any]:
        """The report's ``meters``, as they may be shown (a blind test conceals sources)."""
        self._watch_loudness()
        return self.controller.shown_meters(self.current_meters())

    def matching_status(self) -> dict[str, Any]:
        """What level matching can do now (``matching.status``) for the compared sources."""
        monitor = self.loudness
        windows = {
            name: (monitor.window_lufs(name), monitor.window_filled_s(name))
            if monitor is not None and name in monitor.sources
            else (None, 0.0)
            for name in matching.compared(self.config)
        }
        return matching.status(self.controller.state.match, windows, matching.window_s(self.config))

    def status_line(self) -> str:
        s = self.controller.view()  # the journal must not name a blind test's sources either
        flags = " ".join(k for k in ("dim", "mute", "mono") if s[k])
        return (
            f"{'running' if self.runner.running else 'NO AUDIO'}: {s['source']} on {s['speakers']} at "
            f"{s['volume']:.1f} dB {flags}"
        ).strip()


def _outboard_setup(config: Config) -> tuple:
    """What the outboard sequencer was built from (a reload changing it needs a restart)."""
    sets = tuple((name, s.power, s.relays, s.recall) for name, s in config.speakers.items())
    return config.outboard, config.sequencing, sets


async def _logged(name: str, job) -> None:
    """Run a service task; a failure is logged (once, here) before it ends the service."""
    try:
        await job
    except (asyncio.CancelledError, _Stopped):
        raise
    except ControlroomError as exc:
        log.critical("%s failed: %s; stopping", name, exc)
        raise
    except Exception:
        log.critical("%s failed; stopping", name, exc_info=True)
        raise
