"""The outboard sequencer: the one owner of the daemon's outputs to outboard gear.

Every change to relays, amplifier power and presets happens in a **sequence**, and one sequence
runs at a time:

- **start-up**: the outputs were driven off when they opened; once audio runs (an interface
  that is missing keeps everything off until it is there), with every source held silent, the
  selected set's relays close, ``settle_ms`` passes, its preset is recalled, then the
  amplifiers come on one after another, ``on_delay_ms`` apart, and only then does the
  programme fade in;
- **switch** (a new speaker set whose relays, preset or — with ``power_policy = "selected"`` —
  amplifiers differ): the path fades to silence while it keeps playing the old set, amplifiers
  the new set does not use go off, relays switch break-before-make, ``settle_ms`` passes, the
  preset is recalled, the new set's amplifiers come on in order, the path moves to the new set
  and fades in. A switch asked for while a sequence runs waits its turn, and only the latest
  one asked for runs: a storm of switches ends in the last set asked for;
- **manual** (``/controlroom/outboard/<name>``): one output by hand, a relay through silence;
  refused while another sequence runs, and for a relay that is not the playing set's (two
  relays would be closed at once);
- **shutdown** (SIGTERM): the path fades to silence, the amplifiers go off (last on, first
  off), then everything else. Each output is tried even when one fails: one broken pin must not
  leave the others on.

Silence is waited for, never assumed: when the sources do not fade out or the engine does not
play the tail in time while audio runs, the sequence fails (path kept silent) and no relay moves.
The wiring (``[[outboard]]``, ``[sequencing]``, the sets' ``power``, ``relays``, ``recall``) is
the config's at start; how long a set sounds after its fade (delays, calibration included), the
crossfade and the block size are the running path's, so a reload cannot shorten the wait.

A set change that touches nothing outside (same relays, no preset, same power) is an ordinary
crossfade and no sequence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from controlroom.daemon.config import Config
from controlroom.daemon.core.targets import parse_bool
from controlroom.daemon.errors import EngineError, TargetError
from controlroom.daemon.outboard.outputs import GpioSwitch, MidiDevice, MqttSwitch, Switch

log = logging.getLogger("controlroom")

#: A relay's contacts take a few ms to open: what break-before-make leaves between the two (ms).
BREAK_MS = 20.0
#: Time for EQ tails and the last blocks on their way out after the sources have faded (ms).
TAIL_MS = 20.0
#: Longest wait for the engine to play a given stretch of frames, or for the sources to fade,
#: beyond the stretch or the fade itself (s): a stalled engine fails the sequence, never stalls it.
FRAMES_TIMEOUT_S = 2.0


class Outboard:
    """The outputs of one daemon to outboard gear, and their sequences (module docstring).

    Args:
        config: the config at start: its ``[[outboard]]`` entries, sets' ``power``,
            ``relays``, ``recall`` and ``[sequencing]`` (a reload that changes them takes effect
            at the next start).
        controller: the controller; the sequencer holds its sources silent and keeps its path
            on the old set while a sequence runs. Its path (``spec``) says how long a set sounds
            after its fade.
        runner: the engine runner: whether audio runs, the fade to silence, the block size.
        mqtt: the MQTT bridge, for MQTT switches (the config has ``[mqtt]`` when it has them).
    """

    def __init__(self, config: Config, controller, runner, mqtt=None) -> None:
        self.config = config
        self.controller = controller
        self.runner = runner
        self.switches: dict[str, Switch] = {}
        self.devices: dict[str, MidiDevice] = {}
        try:
            for name, entry in config.outboard.items():
                if entry.kind == "gpio":
                    self.switches[name] = GpioSwitch(entry)
                elif entry.kind == "mqtt":
                    self.switches[name] = MqttSwitch(entry, mqtt)
                else:
                    self.devices[name] = MidiDevice(entry, config.midi.backend)
        except BaseException:
            self.close()
            raise
        powered = {name for s in config.speakers.values() for name in s.power}
        #: the amplifiers, in the order they come on ([[outboard]] order)
        self.amps = [name for name in config.outboard if name in powered]
        self.relays = {name for s in config.speakers.values() for name in s.relays}
        self.playing: str | None = None  # the set the outputs are set up for (None before start-up)
        self.wanted = controller.state.speakers
        self.sequence: dict[str, Any] | None = None  # the running sequence, as reported
        self.error: str | None = None  # why the last sequence failed (the path stays silent)
        self._task: asyncio.Task | None = None
        self._started = False  # the start-up sequence has begun
        self._held = False
        self._closing = False
        controller.speakers_hook = self._speakers_changed
        self._hold()  # the engine opens silent: nothing plays before the amplifiers are on

    # --- the report ------------------------------------------------------------------------------

    def status(self) -> dict[str, str]:
        """The report's ``outboard``: each switch's name -> ``on``/``off``."""
        return {name: "on" if switch.on else "off" for name, switch in self.switches.items()}

    def sequence_status(self) -> dict[str, Any]:
        """The report's ``sequence``: the running one (``kind``, ``to``, ``step``), or ``kind``
        idle; ``error``: why the last one failed, while the path is kept silent for it;
        ``recalled``: each MIDI device's last recall."""
        status = dict(self.sequence) if self.sequence is not None else {"kind": "idle"}
        if self.error is not None:
            status["error"] = self.error
        status["recalled"] = {name: device.last for name, device in self.devices.items()}
        return status

    # --- sequences -------------------------------------------------------------------------------

    async def start_up(self) -> None:
        """The start-up sequence, once audio runs (a service task): amplifiers do not come on
        for an interface that is not there, nor before its stream has started (in silence)."""
        await self.runner.ready.wait()
        if self._closing:
            return  # stopped while the stream opened: nothing is to come on any more
        self._task = asyncio.current_task()
        self._started = True
        await self._work("start-up")

    def _speakers_changed(self, old: str, new: str) -> None:
        """The controller's hook, before a new set is published (or the same one selected
        again): keep the path on ``old`` and silent while a sequence sets the outside up for
        ``new``. Selecting the playing set again does nothing; after a failed sequence it
        retries it."""
        self.wanted = new
        if self._closing or not self._started:
            return  # shutting down, or the start-up sequence is still to run: the path is silent
        if old == new and (self._task is not None or self.playing == new):
            return
        if self._task is None:
            if not self._needs_sequence(self.playing, new):
                self.playing = new
                return
            self.controller.routed = old
            self._begin("switch")
        elif self.controller.routed is None:
            self.controller.routed = old

    def _needs_sequence(self, old: str | None, new: str) -> bool:
        a, b = self.config.speakers.get(old), self.config.speakers.get(new)
        if a is None or b is None:
            return a is not b
        if b.recall is not None or set(a.relays) != set(b.relays):
            return True
        return self.config.sequencing.power_policy == "selected" and set(a.power) != set(b.power)

    def _begin(self, kind: str, action=None, output: str | None = None) -> None:
        """Start a sequence now: the sources fade out from this moment. ``action``: what a
        manual sequence does in silence to ``output``."""
        self._hold()
        self._step(kind, output or self.wanted, "fade out")
        self._task = asyncio.get_running_loop().create_task(self._work(kind, action, output))

    async def _work(self, kind: str, action=None, output: str | None = None) -> None:
        """Run sequences until the outside matches the selected set, then let the path play it.
        The report's ``to`` is the set, or the ``output`` of a manual sequence."""
        try:
            self._step(kind, output or self.wanted, "fade out")
            await self._silent()
            if action is not None:
                await action()
            while not self._closing:  # a shutdown abandons the sequence
                while self.playing != self.wanted:
                    await self._switch_to(kind, self.wanted)
                    kind, output = "switch", None
                self._step(kind, output or self.wanted, "fade in")
                self.controller.routed = None
                self.controller.publish()
                # the sets' crossfade, silent (a late engine only delays the fade-in)
                await self._frames(self.controller.spec.crossfade_ms + self._tail_ms())
                if self.playing == self.wanted:
                    break
            self.error = None
            self._release()
        except Exception as exc:
            # e.g. a GPIO pin that failed: the outside is in an unknown state, so the path stays
            # silent; the next set switch runs a sequence again
            log.error(
                "outboard: the %s sequence failed (%s); silent until its set or another is selected",
                kind,
                exc,
                exc_info=True,
            )
            self.error = f"{kind}: {exc}"
            self.playing = None  # the outside matches no set: any switch sets it up afresh
            self.controller.routed = None
            self.controller.publish()
        finally:
            self._task = None
            self.sequence = None

    async def _switch_to(self, kind: str, name: str) -> None:
        """Set the outside up for speaker set ``name`` (the path is silent)."""
        sets, policy = self.config.speakers, self.config.sequencing.power_policy
        new = sets.get(name)
        relays = set(new.relays) if new is not None else set()
        powered = set(self.amps) if policy == "always" else set(new.power) if new is not None else set()
        self.playing = None  # until the end: a sequence overtaken halfway leaves the outside matching no set
        self._step(kind, name, "amplifiers off")
        for amp in reversed(self.amps):
            if amp not in powered:
                self.switches[amp].set(False)
        self._step(kind, name, "relays")
        opening = [r for r in sorted(self.relays) if self.switches[r].on and r not in relays]
        closing = [r for r in sorted(relays) if not self.switches[r].on]
        for relay in opening:
            self.switches[relay].set(False)
        if opening and closing:
            await asyncio.sleep(BREAK_MS / 1000.0)
        for relay in closing:
            self.switches[relay].set(True)
        if opening or closing:
            self._step(kind, name, "settle")
            await asyncio.sleep(self.config.sequencing.settle_ms / 1000.0)
        if self.wanted != name:
            return  # superseded: the newest set asked for is set up next, from here
        if new is not None and new.recall is not None:
            self._step(kind, name, "recall")
            r = new.recall
            if await self.devices[r.outboard].recall(r.program, r.bank):
                await asyncio.sleep(r.settle_ms / 1000.0)
            if self.wanted != name:
                return
        self._step(kind, name, "amplifiers on")
        if await self._power_up([amp for amp in self.amps if amp in powered], name):
            self.playing = name

    async def _power_up(self, amps: list[str], name: str) -> bool:
        """Switch ``amps`` on in order, each ``on_delay_ms`` after the one before, and none
        sooner than ``on_delay_ms`` after it last went off (a storm of switches must not
        power-cycle an amplifier); False, with the rest left off, once a switch to another set
        than ``name`` overtakes it."""
        delay = self.config.sequencing.on_delay_ms / 1000.0
        previous = None
        for amp in amps:
            switch = self.switches[amp]
            if switch.on:
                continue
            due = switch.changed + delay
            if previous is not None:
                due = max(due, previous + delay)
            while (wait := due - time.monotonic()) > 0:  # a timer may fire a hair early
                await asyncio.sleep(wait)
            if self.wanted != name:
                return False
            switch.set(True)
            previous = switch.changed
        return True

    def switch_by_hand(self, name: str, value: Any) -> None:
        """Switch output ``name`` on or off by hand (OSC); a relay through silence. Raises
        TargetError for an unknown output or value, and while a sequence runs."""
        switch = self.switches.get(name)
        if switch is None:
            known = ", ".join(self.switches) or "none defined"
            raise TargetError(f"no outboard switch {name!r} (expected one of {known})")
        on = parse_bool(value)
        if self._task is not None or self._closing or not self._started:
            what = self.sequence["kind"] if self.sequence is not None else "shutdown" if self._closing else "start-up"
            raise TargetError(f"the {what} sequence is running (switch {name} by hand once it has finished)")
        if on == switch.on:
            return  # as asked already: no fade, no sequence
        playing = self.config.speakers.get(self.playing)
        if on and name in self.relays and (playing is None or name not in playing.relays):
            if playing is None:  # after a failed sequence: the relays are in no known state
                raise TargetError(f"no set is set up outside (select {name}'s set rather than switching it by hand)")
            raise TargetError(
                f"{name} is not a relay of the playing set {self.playing} (select its set: only one set's relays close)"
            )
        if name not in self.relays:
            switch.set(on)
            return

        async def flip() -> None:
            self._step("manual", name, "relays")
            switch.set(on)
            await asyncio.sleep(self.config.sequencing.settle_ms / 1000.0)

        self._begin("manual", flip, name)

    async def power_down(self) -> None:
        """The shutdown sequence (SIGTERM): fade to silence, amplifiers off last-on first-off,
        then every other output. A running sequence is abandoned. Never raises: an output that
        fails is logged and the others are still switched off (``error`` names it)."""
        self._abandon()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            await asyncio.gather(task, return_exceptions=True)
        self._step("shutdown", None, "fade out")
        try:
            await self.runner.fade_out()
            if not await self._frames(self._tail_ms()):
                log.warning("outboard: the engine did not play the tail in time; switching off")
        except Exception:
            log.error("outboard: the fade before switching off failed; switching off", exc_info=True)
        finally:
            self._all_off()

    async def power_down_faded(self) -> None:
        """The runner's last step before its stream closes (the runner has faded to silence):
        once the sets' tails have played, everything off. On SIGTERM ``power_down`` did it
        already; this is for a daemon that fails. Never raises."""
        self._abandon()
        if any(s.on for s in self.switches.values()):
            try:
                await self._frames(self._tail_ms())
            finally:
                self.switch_off()

    def switch_off(self) -> None:
        """Abandon any sequence and switch everything off now, amplifiers first. Never raises."""
        self._abandon()
        if any(s.on for s in self.switches.values()):
            log.warning("outboard: switching off (the daemon is stopping without the shutdown sequence)")
            self._all_off()

    def _abandon(self) -> None:
        """No sequence may switch anything any more: the running one is cancelled."""
        self._closing = True
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()

    def _all_off(self) -> None:
        """Amplifiers off (last on, first off), then the rest; each one tried, whatever the
        others do. The outputs that failed stay in ``error``."""
        failed = []
        amps = [self.switches[amp] for amp in reversed(self.amps)]
        rest = [switch for switch in self.switches.values() if switch not in amps]
        for step, switches in (("amplifiers off", amps), ("everything else off", rest)):
            self._step("shutdown", None, step)
            for switch in switches:
                try:
                    switch.set(False)
                except Exception as exc:
                    log.error("outboard %s: could not be switched off: %s", switch.name, exc)
                    failed.append(f"{switch.name}: {exc}")
        if failed:
            self.error = "shutdown: " + "; ".join(failed)
        self.sequence = None

    def close(self) -> None:
        """Switch everything off (amplifiers first) if nothing did yet, and let the hardware go
        (pins as inputs pulled towards their off level). Never raises."""
        self.switch_off()
        for output in [*self.switches.values(), *self.devices.values()]:
            try:
                output.close()
            except Exception as exc:
                log.error("outboard %s: closing: %s", output.name, exc)
        self.sequence = None

    # --- silence ---------------------------------------------------------------------------------

    def _hold(self) -> None:
        if not self._held:
            self._held = True
            self.controller.hold_silence()

    def _release(self) -> None:
        if self._held:
            self._held = False
            self.controller.release_silence()

    async def _silent(self) -> None:
        """Until the held sources have faded out and their tails have left the outputs; raises
        EngineError (nothing may be switched) when audio runs and either does not happen in
        time."""
        crossfade_s = self.controller.spec.crossfade_ms / 1000.0
        if not await self.runner.wait_faded(timeout_s=crossfade_s + FRAMES_TIMEOUT_S):
            raise EngineError("the sources did not fade out in time (audio engine stalled?); nothing switched")
        if not await self._frames(self._tail_ms()):
            raise EngineError("the engine did not play the sets' tails in time (stalled?); nothing switched")

    def _tail_ms(self) -> float:
        """How long after the sources' fade a set still sounds in the running path: its delays
        (the sub's and the calibration's included) and EQ tails (ms)."""
        longest = max(
            (
                s.delay_ms + max((*s.output_delay_ms, s.sub.delay_ms if s.sub else 0.0), default=0.0)
                for s in self.controller.spec.sets
            ),
            default=0.0,
        )
        return longest + TAIL_MS

    async def _frames(self, ms: float) -> bool:
        """Until the engine has played ``ms`` more (and two blocks), counted in its own frames;
        False when audio runs and it did not in time."""
        rate, blocksize = self.controller.spec.samplerate, self.runner.config.audio.blocksize
        frames = round(ms * rate / 1000.0) + 2 * blocksize
        return await self.runner.wait_played(frames, FRAMES_TIMEOUT_S + ms / 1000.0)

    def _step(self, kind: str, to: str | None, step: str) -> None:
        self.sequence = {"kind": kind, "to": to, "step": step}
        log.debug("outboard: %s %s: %s", kind, to or "", step)
