"""The controller: the one place where targets change and the engine hears of it.

Every origin (OSC, MIDI surfaces, MQTT, the state file at start-up) calls ``apply``. A change is
validated by the vocabulary, published to the kernel through the seqlock and announced to every
listener (feedback to surfaces and OSC subscribers, the state saver) with its origin.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from controlroom.daemon import monitor
from controlroom.daemon.targets import ENUM_TARGETS, MonitorState, TargetError, Vocabulary
from controlroom.dsp.control import STARTUP_RAMP_MS, PathBuffers

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any], str], None]
ACTIONS = ("set", "toggle", "step", "next", "prev")


class Controller:
    """Targets, their validation, and the path parameters they produce.

    ``state`` is what the user asked for. What the engine plays may differ for the volume at
    start-up (capped at ``startup_max_volume_db`` and ramped in from silence): the cap is a
    change of ``volume`` like any other, so every surface shows it.
    """

    def __init__(self, config, state: MonitorState) -> None:
        self.config = config
        self.vocabulary = Vocabulary(config)
        self.state = state
        self.spec = monitor.path_spec(config)
        self.match_db: dict[str, float] = {}
        self.listeners: list[Listener] = []
        self.dropped: Counter[str] = Counter()
        self.buffers: PathBuffers | None = None

    # --- engine side -----------------------------------------------------------------------

    def start_buffers(self) -> PathBuffers:
        """Fresh kernel buffers that start silent and ramp in to the current state."""
        self.buffers = PathBuffers(self.spec, self._controls(), master_ramp_ms=STARTUP_RAMP_MS)
        return self.buffers

    def cap_startup_volume(self) -> None:
        """Apply the start-up cap (DESIGN §3): never come back louder than the cap."""
        cap = self.config.monitor.startup_max_volume_db
        if self.state.volume > cap:
            log.info("start-up volume capped at %.1f dB (saved %.1f dB)", cap, self.state.volume)
            self.state.volume = cap

    def ramp_in(self) -> None:
        """Ramp the master gain in from silence over the start-up time (after a (re)start)."""
        if self.buffers is not None:
            self.buffers.update(self.spec, self._controls(), master_ramp_ms=STARTUP_RAMP_MS)

    def fade_out(self) -> None:
        """Ramp to silence (before the stream stops); the state keeps its values."""
        if self.buffers is not None:
            silent = self._controls()
            silent.mute = True
            self.buffers.update(self.spec, silent)

    def _controls(self):
        return monitor.controls(self.config, self.state, self.match_db)

    def _publish(self) -> None:
        if self.buffers is not None:
            self.buffers.update(self.spec, self._controls())

    # --- control side ----------------------------------------------------------------------

    def apply(self, target: str, action: str = "set", value: Any = None, origin: str = "") -> dict[str, Any]:
        """Change ``target`` by ``action`` (set/toggle/step/next/prev); returns what changed.

        Raises ``TargetError`` (state untouched) for anything invalid.
        """
        v = self.vocabulary
        if action == "set":
            changes = v.set(self.state, target, value)
        elif action == "toggle":
            changes = v.toggle(self.state, target)
        elif action == "step":
            changes = v.step(self.state, target, value)
        elif action in ("next", "prev"):
            if target not in ENUM_TARGETS:
                raise TargetError(f"{target} has no next/prev (expected one of {', '.join(ENUM_TARGETS)})")
            changes = v.step(self.state, target, 1 if action == "next" else -1)
        else:
            raise TargetError(f"unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
        if changes:
            self._publish()
            self._announce(changes, origin)
        return changes

    def drop(self, reason: str) -> None:
        """Count a control message that was dropped (bad address, type, value, sender...)."""
        self.dropped[reason] += 1

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _announce(self, changes: dict[str, Any], origin: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(changes, origin)
            except Exception:  # a broken listener must not stop the others or the caller
                log.exception("state listener %r failed", listener)

    def announce_all(self, origin: str = "restore") -> None:
        """Tell every listener the whole state (start-up, reconnects)."""
        self._announce(self.state.as_dict(), origin)

    # --- reload ------------------------------------------------------------------------------

    def reload(self, config) -> bool:
        """Adopt a new config. Returns True when the stream must be rebuilt (device, rate,
        channel counts or backend changed); parameter-only changes apply at once."""
        old = self.config
        rebuild = (old.audio != config.audio)
        self.config = config
        self.vocabulary = Vocabulary(config)
        restored, warnings = self.vocabulary.restore(self.state.as_dict())
        for w in warnings:
            log.warning("after reload: %s", w)
        changes = {k: v for k, v in restored.as_dict().items() if self.state.as_dict()[k] != v}
        self.state = restored
        self.match_db = {k: v for k, v in self.match_db.items() if k in config.sources}
        self.spec = monitor.path_spec(config)
        if not rebuild:
            self._publish()
        if changes:
            self._announce(changes, "reload")
        return rebuild
