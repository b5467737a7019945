"""The controller: the one place where targets change and the engine hears of it.

Every origin (OSC, MIDI surfaces, the state file at start-up) calls ``apply``. A change is
validated by the vocabulary, published to the kernel through the seqlock and announced to every
listener (feedback to surfaces and OSC subscribers, the state saver) with its origin.

Listeners get the differences of ``view()``: the targets, ``match_db`` (only the offsets that
moved, source -> dB) and ``volume_spl_db`` when the selected set is calibrated with a calibrated
mic or ``[monitor] reference_spl_db`` is set; while a
blind or ABX test runs, labels instead of the compared sources' names (``comparison``). Keys a
listener does not know it should ignore.

Switching the heard source matches its loudness (``matching``); during a blind or ABX test
every switch goes out and back in through silence, so that it sounds the same whichever source
a label stands for and whether or not the source actually changes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from controlroom.daemon.core import matching, path
from controlroom.daemon.core.calibration import ABORT_FADE_MS, Calibration
from controlroom.daemon.core.comparison import LABELLED_TARGETS, Comparison
from controlroom.daemon.core.inserts import Inserts
from controlroom.daemon.core.targets import ENUM_TARGETS, MonitorState, Vocabulary
from controlroom.daemon.errors import TargetError
from controlroom.dsp.control import STARTUP_RAMP_MS, PathBuffers

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any], str], None]
#: Told ``(old set, new set)`` when the selected speaker set changes, before it is published.
SpeakersHook = Callable[[str, str], None]
ACTIONS = ("set", "toggle", "step", "next", "prev")
#: A source index no source has: the kernel fades every source out (the way through silence).
NO_SOURCE = -1
#: Switches through silence: ``fader(release)`` calls ``release`` once every source has faded
#: out (the engine runner does; with no engine nothing fades, and it is called at once).
Fader = Callable[[Callable[[], None]], None]


class Controller:
    """Targets, their validation, and the path parameters they produce.

    ``state`` is what the user asked for. What the engine plays may differ for the volume at
    start-up (capped at ``startup_max_volume_db`` and ramped in from silence): the cap is a
    change of ``volume`` like any other, so every surface shows it.

    ``measure(source)`` is the source's loudness (LUFS, None when unknown) before its trim and
    gains, from which matching works out what is heard; ``match_db`` the saved offsets (dB) to
    start from; ``abx_log(record)`` receives each ABX answer (None: not logged). ``inserts``
    holds the outboard inserts' measurements and what they set in the path.
    """

    def __init__(
        self,
        config,
        state: MonitorState,
        *,
        measure: matching.Measure = matching.no_measurement,
        match_db: dict[str, float] | None = None,
        abx_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.vocabulary = Vocabulary(config)
        state.blind = False  # a restart ends a blind test: its assignment is never saved
        self.state = state
        self.calibration = Calibration(config)
        self.spec = path.path_spec(config, self.calibration)
        self.measure = measure
        saved = match_db if match_db is not None and state.match != "off" else {}
        self.match_db: dict[str, float] = {name: saved.get(name, 0.0) for name in config.sources}
        self.abx_log = abx_log
        self.inserts = Inserts(config)
        self._coherent_switch = False
        self.comparison = Comparison(self)
        self.listeners: list[Listener] = []
        self.dropped: Counter[str] = Counter()
        self.buffers: PathBuffers | None = None
        self.fader: Fader = lambda release: release()
        self.calibration_signal = None  # what a calibration plays (dsp.control.CalibrationSignal), if anything
        self._silence_holds = 0  # fades through silence in progress: no source plays while > 0
        self._switching = False  # a blind or ABX switch is fading through silence
        self._stopping = False
        #: The outboard sequencer's: it may keep the path on the old set (``routed``) and hold
        #: the sources silent while relays and presets change.
        self.speakers_hook: SpeakersHook | None = None
        #: A speaker set the path plays while the state already names another; None: the state's.
        self.routed: str | None = None

    # --- engine side -----------------------------------------------------------------------

    def start_buffers(self) -> PathBuffers:
        """Fresh kernel buffers that start silent and ramp in to the current state."""
        self._stopping = False
        self.buffers = PathBuffers(self.spec, self._controls(), master_ramp_ms=STARTUP_RAMP_MS)
        return self.buffers

    def release_buffers(self) -> None:
        """Forget the kernel buffers: their stream is closed (nothing is published until the
        next ``start_buffers``). A calibration's test signal goes with them: a reopened stream
        never plays it again."""
        self.buffers = None
        self.calibration_signal = None

    def cap_startup_volume(self) -> None:
        """Apply the start-up cap: never come back louder than ``startup_max_volume_db``."""
        cap = self.config.monitor.startup_max_volume_db
        if self.state.volume > cap:
            log.info("start-up volume capped at %.1f dB (saved %.1f dB)", cap, self.state.volume)
            self.state.volume = cap

    def fade_out(self) -> None:
        """Ramp to silence (before the stream stops) and stay muted, whatever is published
        until the next ``start_buffers``; the state keeps its values."""
        self._stopping = True
        self.publish()

    def calibrated(self, origin: str) -> None:
        """The calibration's results changed: rebuild the path with them, publish, and announce
        what moved in the view (``volume_spl_db``)."""
        before = self.view()
        self.spec = path.path_spec(self.config, self.calibration)
        self.publish()
        changes = _difference(before, self.view())
        if changes:
            self._announce(changes, origin)

    def _controls(self):
        controls = path.controls(self.config, self.state, self.match_db, self.inserts)
        controls.coherent_switch = self._coherent_switch
        controls.calibration_signal = self.calibration_signal
        if self.calibration_signal is not None and (self._stopping or self.state.mute):
            # the test signal is added after the master gain: mute and a stop silence it here,
            # in the same publish (the calibration then ends, as any control action ends it)
            controls.calibration_signal = replace(self.calibration_signal, gain=0.0, fade_ms=ABORT_FADE_MS)
        controls.mute |= self._stopping
        if self.routed in self.config.speakers:
            controls.speakers = list(self.config.speakers).index(self.routed)
        if self._silence_holds or self.state.source == self.inserts.silenced:
            # the return of an insert being measured carries its noise: not for the speakers
            controls.source = NO_SOURCE
        return controls

    def publish(self) -> None:
        """Send the path parameters of the current state to the kernel (the controller does
        this on every change; an insert measurement calls it when it moves the alignment)."""
        if self.buffers is not None:
            self.buffers.update(self.spec, self._controls())

    # --- control side ----------------------------------------------------------------------

    def apply(self, target: str, action: str = "set", value: Any = None, origin: str = "") -> dict[str, Any]:
        """Change ``target`` by ``action`` (set/toggle/step/next/prev); returns what changed.

        Raises ``TargetError`` (state untouched) for anything invalid.
        """
        before, heard, speakers = self.view(), self.state.source, self.state.speakers
        if self.comparison.concealment is not None and target in LABELLED_TARGETS:
            self.comparison.choose(self.comparison.labelled_choice(target, action, value))
        else:
            self._change(target, action, value)
        self._speakers_moved(speakers, asked=target == "speakers")
        return self._commit(before, heard, origin)

    def _change(self, target: str, action: str, value: Any) -> None:
        if target == "blind" and self.comparison.abx_running:
            raise TargetError("an ABX test is running (stop it first: abx/stop)")
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
        if "blind" in changes:
            self.comparison.start_blind() if changes["blind"] else self.comparison.end_blind()
        if changes.get("match") == "off":
            self.match_db = dict.fromkeys(self.match_db, 0.0)

    def _speakers_moved(self, old: str, asked: bool = False) -> None:
        """Tell the outboard hook of a new set, and of a set selected again (``asked``: after
        a failed sequence, selecting the set once more is how its outboard gear is retried)."""
        if (asked or self.state.speakers != old) and self.speakers_hook is not None:
            self.speakers_hook(old, self.state.speakers)

    def _commit(self, before: dict[str, Any], heard: str, origin: str) -> dict[str, Any]:
        """Match the loudness of a newly heard source (``heard`` played until now), publish,
        and announce how the view moved from ``before``; returns that."""
        new = self.state.source
        if new != heard:
            self._coherent_switch = self.inserts.aligned(heard, new)
            if self.state.match == "auto":
                cap = matching.max_boost_db(self.config)
                entering = lambda source: self._entering_bus(source, heard=source == heard)  # noqa: E731
                offset = matching.switch_offset(entering, self.match_db, heard, new, cap)
                if offset is not None:
                    self.match_db[new] = offset
        self.publish()
        changes = _difference(before, self.view())
        if changes:
            self._announce(changes, origin)
        return changes

    def _entering_bus(self, source: str, heard: bool) -> float | None:
        """``source``'s loudness (LUFS) as it enters the monitor bus before matching: measured,
        plus its trim and its insert compensation — as the path applied it while the source
        was ``heard`` (shared with the match offset under one boost cap), else in full (the
        cap then applies to the new match offset and compensation together). None while
        unknown, and for the return of an insert being measured (its meter heard the noise)."""
        lufs = self.measure(source) if source != self.inserts.busy else None
        if lufs is None:
            return None
        if heard:
            compensation = path.insert_offsets(self.config, self.match_db, self.inserts)
        else:
            compensation = self.inserts.offset_db()
        return lufs + self.config.sources[source].trim_db + compensation.get(source, 0.0)

    def view(self) -> dict[str, Any]:
        """The state as it is shown: targets, ``match_db`` (source -> dB), ``volume_spl_db``
        (dB SPL of the volume setting; only with ``reference_spl_db``), and labels for the
        compared sources while a blind or ABX test runs."""
        view = self.state.as_dict()
        view["match_db"] = dict(self.match_db)
        reference = self.calibration.set_spl_db(self.state.speakers)
        if reference is None:
            reference = self.config.monitor.reference_spl_db
        if reference is not None:
            view["volume_spl_db"] = round(reference + self.state.volume, 2)
        concealment = self.comparison.concealment
        return concealment.conceal(view) if concealment is not None else view

    def state_report(self) -> dict[str, Any]:
        """The state report's ``state`` object: ``view()``, ``abx`` (the current or last ABX
        test, None before the first), ``blind_mapping`` (the last blind test's labels ->
        sources once revealed; None while one runs or before the first), ``inserts`` (insert
        name -> its measurement) and ``measuring`` (the insert being measured, or None)."""
        report = self.view()
        report.update(self.comparison.report())
        report["inserts"] = self.inserts.as_dict()
        report["measuring"] = self.inserts.busy
        report["calibration"] = self.calibration.as_dict()
        report["calibrating"] = self.calibration.progress
        return report

    def shown_meters(self, meters: dict[str, Any]) -> dict[str, Any]:
        """``meters`` as they may be shown: without the compared sources' own readings while a
        blind or ABX test runs."""
        concealment = self.comparison.concealment
        return concealment.conceal_meters(meters) if concealment is not None else meters

    def _silence_sources(self) -> None:
        """Fade every source out now and the selected one in once all are silent (a later
        switch during the fade only changes which one that is)."""
        if self.buffers is None or self._switching:
            return
        self._switching = True
        self.hold_silence()  # before the caller publishes: the fade-out starts with the switch

        def release() -> None:
            self._switching = False
            self.release_silence()

        self.fader(release)

    def hold_silence(self) -> None:
        """Keep every source silent until the matching ``release_silence`` (holds count)."""
        self._silence_holds += 1
        self.publish()

    def release_silence(self) -> None:
        """End one hold; the selected source fades in once none is left."""
        self._silence_holds -= 1
        self.publish()

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
        """Tell every listener the whole view (start-up, reconnects)."""
        self._announce(self.view(), origin)

    # --- reload ------------------------------------------------------------------------------

    def reload(self, config) -> None:
        """Adopt a new config and publish its parameters (to the running kernel, if there is
        one: when the stream is reopened, the runner releases the buffers first)."""
        old = self.config
        before = self.view()
        if _pair(config) != _pair(old):
            self.comparison.end_tests()
        self.config = config
        self.vocabulary = Vocabulary(config)
        restored, warnings = self.vocabulary.restore(self.state.as_dict())
        for w in warnings:
            log.warning("after reload: %s", w)
        speakers, self.state = self.state.speakers, restored
        self.match_db = {name: self.match_db.get(name, 0.0) for name in config.sources}
        for w in self.inserts.reload(config):
            log.warning("after reload: %s", w)
        for w in self.calibration.reload(config):
            log.warning("after reload: %s", w)
        # the daemon ends a calibration before a reload; what it played may not fit the new outputs
        self.calibration_signal = None
        self.spec = path.path_spec(config, self.calibration)
        self._speakers_moved(speakers)
        self.publish()
        changes = _difference(before, self.view())
        if changes:
            self._announce(changes, "reload")


def _pair(config) -> tuple[str, str] | None:
    return (config.ab.a, config.ab.b) if config.ab is not None else None


def _difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The entries of view ``after`` that differ from ``before``; ``match_db`` by source."""
    changes: dict[str, Any] = {}
    for key, value in after.items():
        if key == "match_db":
            moved = {name: db for name, db in value.items() if before["match_db"].get(name) != db}
            if moved:
                changes[key] = moved
        elif before.get(key) != value:
            changes[key] = value
    return changes
