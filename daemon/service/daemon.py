"""The daemon: engine host, controller, OSC, state file and systemd, on one asyncio loop.

Life cycle: restore the state (capped at the start-up maximum) -> open the stream, ramping in
from silence -> READY -> serve until SIGTERM/SIGINT -> ramp to silence, stop, save, exit 0.
SIGHUP reloads the config: parameter-only changes apply without stopping audio, device
changes rebuild the stream, an invalid config is logged and the old one kept. When the
stream fails (interface unplugged, JACK server gone) the daemon stays up, reports
``engine.running = false`` and retries with backoff until the device is back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from controlroom.daemon.config import load_config
from controlroom.daemon.core import comparison, inserts, matching
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.inserts import InsertResult
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.errors import ConfigError, ControlroomError, EngineError
from controlroom.daemon.midi.surface import SurfaceManager
from controlroom.daemon.osc.server import OscServer
from controlroom.daemon.service import readout, statefile
from controlroom.daemon.service.loudness import LoudnessMonitor
from controlroom.daemon.service.notify import Notifier, watchdog_interval_s
from controlroom.dsp import layout
from controlroom.dsp.path import process

log = logging.getLogger("controlroom")

METER_POLL_S = 0.04  # 25 Hz
LOUDNESS_POLL_S = 0.1  # the BS.1770 meters step every 100 ms
SUPERVISE_S = 0.25  # how often the engine's health is checked
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)  # retry delays after a stream failure, then every 4 s
FADE_TIMEOUT_S = 1.0  # longest wait for the ramp to silence at shut-down
#: READY=1 goes to systemd once audio runs, or after this long without a device (s), so that
#: boot does not hang on an unplugged interface; the daemon keeps retrying either way.
READY_GRACE_S = 10.0


class Daemon:
    """One running controlroom. ``program``: a (frames, n_in) float32 loop for the virtual
    backend (None = silence); ``state_path``: None disables persistence (demo)."""

    def __init__(
        self,
        config,
        config_path: Path | None = None,
        *,
        state_path: Path | None | bool = True,
        program: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        if state_path is True:
            state_path = statefile.default_path(config.state.path)
        self.state_path = state_path or None
        self.program = program
        self.controller: Controller | None = None
        self.host = None
        self.osc: OscServer | None = None
        self.surfaces: SurfaceManager | None = None
        self.saver: statefile.Saver | None = None
        self.notifier = Notifier()
        self.latest_meters: dict[str, Any] = {}
        self.loudness: LoudnessMonitor | None = None
        self.latest_loudness: dict[str, Any] = {}
        self.restarts = 0
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._engine_lock = asyncio.Lock()
        self._heartbeat = time.monotonic()
        self._engine_error: str | None = None
        self._notified_ready = False

    # --- life cycle ----------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        try:
            await self.start()
            await self._stop.wait()
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    def stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        doc = statefile.load(self.state_path) if self.state_path is not None else {}
        state, match_db = self._restore_state(doc)
        abx_log = None if self.state_path is None else partial(comparison.append_log, comparison.log_path(self.state_path))
        self.controller = Controller(
            self.config, state, measure=self._window_lufs, match_db=match_db, abx_log=abx_log,
        )
        if "inserts" in doc:
            for warning in self.controller.inserts.restore(doc["inserts"]):
                log.warning("state file: %s", warning)
        self.controller.cap_startup_volume()
        if self.state_path is not None:
            self.saver = statefile.Saver(self.state_path, self._snapshot)
            self.controller.add_listener(lambda changes, origin: self.saver.changed())
        self.controller.add_listener(lambda changes, origin: "speakers" in changes and self._follow_speakers())
        self.osc = await self._start_osc(self.config.osc)
        await self._update_surfaces(self.config)
        await self._start_engine()
        self._tasks = [
            asyncio.create_task(self._supervise(), name="supervise"),
            asyncio.create_task(self._poll_meters(), name="meters"),
            asyncio.create_task(self._poll_loudness(), name="loudness"),
            asyncio.create_task(self._keep_watch(), name="watchdog"),
            asyncio.create_task(self._ready_after_grace(), name="ready"),
        ]
        if self.saver is not None:
            self.saver.changed()  # the capped start-up volume is the state now

    async def shutdown(self) -> None:
        self.notifier.stopping()
        for task in getattr(self, "_tasks", []):
            task.cancel()
        await asyncio.gather(*getattr(self, "_tasks", []), return_exceptions=True)
        if self.host is not None:
            await self._fade_out()
            await asyncio.to_thread(self._close_host)
        if self.saver is not None:
            await self.saver.flush()
        if self.surfaces is not None:
            self.surfaces.close()
        if self.osc is not None:
            self.osc.close()
        self.notifier.close()
        log.info("stopped")

    def _restore_state(self, doc: dict[str, Any]):
        """The targets and match offsets (dB) saved in ``doc``, or the config's defaults."""
        vocabulary = Vocabulary(self.config)
        if self.state_path is None:
            return vocabulary.initial(), {}
        state, warnings = vocabulary.restore(doc.get("targets", {}))
        cap = matching.max_boost_db(self.config)
        match_db, match_warnings = matching.restore_offsets(doc.get("match_db", {}), self.config.sources, cap)
        for w in warnings + match_warnings:
            log.warning("state file: %s", w)
        return state, match_db

    def _snapshot(self) -> dict[str, Any]:
        c = self.controller
        return {"targets": c.state.as_dict(), "match_db": dict(c.match_db), "inserts": c.inserts.as_dict()}

    async def measure_insert(self, name: str) -> InsertResult:
        """Measure outboard insert ``name`` (``inserts.measure``) and save the result."""
        result = await inserts.measure(self, name)
        if self.saver is not None:
            self.saver.changed()
        return result

    # --- the engine ------------------------------------------------------------------------------

    def _make_host(self):
        audio = self.config.audio
        buffers = self.controller.start_buffers()
        self.loudness = LoudnessMonitor(buffers, self.config, matching.window_s(self.config))
        self._follow_speakers()
        if audio.backend == "virtual":
            from controlroom.daemon.engine.virtual import VirtualHost

            return VirtualHost(
                process, buffers.arrays, audio.samplerate, audio.blocksize,
                audio.input_channels, audio.output_channels, program=self.program,
            )
        from controlroom.daemon.engine.portaudio import PortAudioHost

        return PortAudioHost(
            process, buffers.arrays, audio.device, audio.samplerate, audio.blocksize,
            audio.input_channels, audio.output_channels,
        )

    async def _start_engine(self) -> bool:
        """Open and start a stream on fresh buffers (ramping in from silence)."""
        async with self._engine_lock:
            try:
                self.host = self._make_host()
                await asyncio.to_thread(self.host.start)
            except (EngineError, OSError, RuntimeError) as exc:
                # a retry that fails the same way again is news to nobody
                level = logging.DEBUG if str(exc) == self._engine_error else logging.ERROR
                log.log(level, "audio engine not running: %s", exc)
                self._engine_error = str(exc)
                return False
            self._engine_error = None
            log.info("audio running: %s, %d Hz, %d frames", self.config.audio.backend,
                     self.config.audio.samplerate, self.config.audio.blocksize)
            if not self.ready.is_set():
                self.ready.set()
                self._notify_ready()
            return True

    def _close_host(self) -> None:
        host, self.host = self.host, None
        if host is None:
            return
        try:
            host.stop()
        except (EngineError, OSError, RuntimeError) as exc:
            log.debug("stopping the stream: %s", exc)
        host.close()

    def _notify_ready(self) -> None:
        if not self._notified_ready:
            self._notified_ready = True
            self.notifier.ready(self.status_line())

    async def _ready_after_grace(self) -> None:
        try:
            await asyncio.wait_for(self.ready.wait(), READY_GRACE_S)
        except TimeoutError:
            log.warning("no audio after %.0f s: reporting ready, still retrying", READY_GRACE_S)
            self._notify_ready()

    async def _fade_out(self) -> None:
        """Ramp to silence and wait (bounded) until the kernel's master gain reaches zero."""
        self.controller.fade_out()
        buffers = self.controller.buffers
        deadline = time.monotonic() + FADE_TIMEOUT_S
        while self.host is not None and self.host.running and time.monotonic() < deadline:
            if buffers.counters[layout.C_APPLIED] == buffers.counters[layout.C_SEQ] and buffers.state[layout.T_MASTER] == 0.0:
                return
            await asyncio.sleep(0.005)

    async def _restart_engine(self, reinitialise: bool) -> bool:
        host = self.host
        await asyncio.to_thread(self._close_host)
        if reinitialise and host is not None and hasattr(host, "reinitialise"):
            try:
                await asyncio.to_thread(host.reinitialise)
            except (OSError, RuntimeError) as exc:
                log.debug("re-initialising PortAudio: %s", exc)
        self.restarts += 1
        return await self._start_engine()

    async def _supervise(self) -> None:
        """Watch the stream; after a failure retry with backoff, state intact."""
        failures = 0
        was_running = self.host is not None and self.host.running
        while True:
            self._heartbeat = time.monotonic()
            await asyncio.sleep(SUPERVISE_S if failures == 0 else BACKOFF_S[min(failures, len(BACKOFF_S)) - 1])
            running = self.host is not None and self.host.running
            if running:
                was_running, failures = True, 0
                continue
            if was_running or failures == 0:
                log.warning("audio stopped (device gone or stream failed); retrying")
                was_running = False
            failures += 1
            if await self._restart_engine(reinitialise=True):
                await self._wait_running(2.0)
                if self.host is not None and self.host.running:
                    log.info("audio resumed after %d attempt(s)", failures)
                    was_running, failures = True, 0

    async def _wait_running(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (self.host is not None and self.host.running):
            await asyncio.sleep(0.02)

    async def reload(self) -> None:
        """SIGHUP: re-read the config; apply it without stopping audio where possible."""
        if self.config_path is None:
            log.warning("SIGHUP: running on the built-in default config; nothing to reload")
            return
        try:
            config = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("reload rejected: %s", line)
            log.error("reload rejected: keeping the running config")
            return
        except ControlroomError as exc:
            log.error("reload rejected: %s", exc)
            return
        old = self.config
        self.config = config
        rebuild = self.controller.reload(config)
        if self.saver is not None:
            self.saver.changed()  # the reload may have forgotten insert measurements
        if rebuild:
            log.info("reload: audio settings changed, rebuilding the stream")
            await self._fade_out()
            await self._restart_engine(reinitialise=config.audio.device != old.audio.device)
        else:
            log.info("reload: applied without interrupting audio")
        if config.osc != old.osc:
            self.osc.close()
            try:
                self.osc = await self._start_osc(config.osc)
            except ControlroomError as exc:
                log.error("reload: %s; OSC stays on %s:%d", exc, old.osc.host, old.osc.port)
                self.osc = await self._start_osc(old.osc)
        await self._update_surfaces(config)

    async def _update_surfaces(self, config) -> None:
        """Start the MIDI surfaces ``config`` names, or hand them a reloaded config (which also
        re-reads their mapping files)."""
        if self.surfaces is not None:
            await self.surfaces.reload(config.surfaces, config.midi)
        elif config.surfaces:
            config_dir = self.config_path.parent if self.config_path is not None else Path.cwd()
            self.surfaces = SurfaceManager(self.controller, config.surfaces, config.midi, config_dir)
            await self.surfaces.start()

    async def _start_osc(self, osc_config) -> OscServer:
        server = OscServer(self.controller, osc_config, self.report, measure_insert=self.measure_insert)
        await server.start()
        return server

    # --- meters, watchdog, report ------------------------------------------------------------

    async def _poll_meters(self) -> None:
        while True:
            await asyncio.sleep(METER_POLL_S)
            buffers = self.controller.buffers
            if buffers is None or self.host is None or not self.host.running:
                continue
            meters = readout.read(buffers, self.config)
            meters["loudness"] = self.latest_loudness
            self.latest_meters = meters
            self.osc.send_meters(self.controller.shown_meters(meters))

    async def _poll_loudness(self) -> None:
        while True:
            await asyncio.sleep(LOUDNESS_POLL_S)
            monitor = self.loudness
            if monitor is not None and self.host is not None and self.host.running:
                await asyncio.to_thread(monitor.drain)
                # the BS.1770 figures change every 100 ms: read them (histogram scans) once
                # per step here, not at every 25 Hz meter poll
                self.latest_loudness = monitor.report()

    def _window_lufs(self, source: str) -> float | None:
        """What matching compares: ``source``'s gated loudness (LUFS) over the matching window;
        None before the engine has measured any (a source added by a reload: until the
        stream is next rebuilt)."""
        monitor = self.loudness
        return monitor.window_lufs(source) if monitor is not None and source in monitor.sources else None

    def _follow_speakers(self) -> None:
        """Point the monitor-output loudness meter at the selected set's outputs."""
        if self.loudness is not None:
            self.loudness.follow_outputs(self.config.speakers[self.controller.state.speakers].outputs)

    async def _keep_watch(self) -> None:
        """WATCHDOG=1 while the engine is alive: running, or inside its retry cycle (a
        heartbeat from the supervisor within the longest backoff). A hung control loop or
        supervisor stops the pings and systemd restarts the service."""
        interval = watchdog_interval_s()
        while True:
            await asyncio.sleep(interval or 5.0)
            alive = time.monotonic() - self._heartbeat < BACKOFF_S[-1] + 2 * SUPERVISE_S + 1.0
            if interval and alive:
                self.notifier.watchdog()
            self.notifier.status(self.status_line())

    def engine_stats(self) -> dict[str, Any]:
        host = self.host
        stats = host.stats() if host is not None else {"backend": self.config.audio.backend, "running": False}
        buffers = self.controller.buffers
        c = buffers.counters if buffers is not None else np.zeros(layout.C_LEN, dtype=np.int64)
        stats.update(
            nonfinite_replaced=int(c[layout.C_NONFINITE]),
            limited_frames=int(c[layout.C_LIMITED]),
            clipped_samples=int(c[layout.C_CLIPPED]),
            restarts=self.restarts,
            dropped=dict(self.controller.dropped),
        )
        if self._engine_error:
            stats["error"] = self._engine_error
        return stats

    def report(self) -> dict[str, Any]:
        """``{"state", "engine", "meters"}`` as ``/controlroom/state`` and ``ctl status`` show it."""
        meters = self.controller.shown_meters(self.latest_meters)
        return {"state": self.controller.state_report(), "engine": self.engine_stats(), "meters": meters}

    def status_line(self) -> str:
        s = self.controller.view()  # the journal must not name a blind test's sources either
        running = self.host is not None and self.host.running
        flags = " ".join(k for k in ("dim", "mute", "mono") if s[k])
        return (f"{'running' if running else 'NO AUDIO'}: {s['source']} on {s['speakers']} at "
                f"{s['volume']:.1f} dB {flags}").strip()

