"""The daemon's control surfaces: ports, mapping and feedback per ``[[surfaces]]`` entry.

Incoming events reach the event loop in batches (see ``ports``), are decoded, interpreted and
applied through the controller; adjacent moves of one fader or encoder merge into one change.
Nothing raises out of this: malformed bytes, messages no control uses and values the
vocabulary refuses are dropped and counted (``controller.drop``: ``midi_malformed``,
``midi_oversized``, ``midi_overflow``, ``midi_unmapped``, ``midi_bad_value``).

Feedback follows every change, from any origin, at the end of the loop turn that made it (a
burst of changes costs one render). The absolute control that made a change is not sent its
own value back (it is already there, and an echo would fight a moving hand or motor), nor is a
motor fader while it is touched; buttons get their LED re-sent after each press and release,
since many surfaces light or darken their own buttons.

Ports are found by name (substring, any case) and watched every ``RECONNECT_S``: a port that
vanishes is closed, and opened again when a matching port appears; an output that (re)opens
gets all its feedback again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mido

from controlroom.daemon.errors import ConfigError, TargetError
from controlroom.daemon.midi.feedback import Feedback
from controlroom.daemon.midi.interpret import Action, Interpreter, coalesce
from controlroom.daemon.midi.mapping import Mapping, bind, load_surface_mapping
from controlroom.daemon.midi.ports import (
    DROP_OVERFLOW,
    MAX_PENDING,
    Event,
    Inbox,
    Input,
    Output,
    Poller,
    PortError,
    Ports,
    api_for,
    backend_name,
    decode,
    find,
)
from controlroom.daemon.quiet import quiet_stderr

if TYPE_CHECKING:
    from controlroom.daemon.config import MidiConfig, SurfaceConfig
    from controlroom.daemon.core.controller import Controller

log = logging.getLogger(__name__)

#: How often the ports are listed while a surface waits for one (s): a replugged device is
#: back within this long.
RECONNECT_S = 0.5
#: ... and while every surface has its ports (s): listing asks the MIDI server (the JACK
#: server, the ALSA sequencer) every time, and an idle rack should hardly wake.
CONNECTED_WATCH_S = 2.0
#: How often an unavailable MIDI API (a JACK server not started yet: a boot race) is tried (s).
API_RETRY_S = 2.0
#: At most one warning per surface and drop reason this often (every drop is counted).
WARN_INTERVAL_S = 10.0

DROP_UNMAPPED = "midi_unmapped"
DROP_BAD_VALUE = "midi_bad_value"


class Surface:
    """One surface: its ports (when present), its mapping's interpreter and feedback."""

    def __init__(
        self, config: SurfaceConfig, mapping: Mapping, controller: Controller, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.config = config
        self.controller = controller
        self.origin = f"midi:{config.name}"
        self.input: Input | None = None
        self.output: Output | None = None
        self.inbox = Inbox(loop, self._receive)
        self._loop = loop
        self._applying: int | None = None
        self._pending: set[str] = set()
        self._refresh: set[int] = set()
        self._assume: set[int] = set()
        self._flush_scheduled = False
        self._stale = False  # a send failed: the next flush sends everything
        self._overflow_counted = 0
        self._warned: dict[str, float] = {}
        self._missing: set[str] = set()  # directions whose port was looked for in vain
        self.remap(mapping)
        controller.add_listener(self._changed)

    def remap(self, mapping: Mapping) -> None:
        """Adopt ``mapping`` (bound to the controller's vocabulary) and resend all feedback."""
        self.mapping = mapping
        self.interpreter = Interpreter(mapping, self.controller.vocabulary)
        self.feedback = Feedback(mapping, self.controller.vocabulary)
        self._assume.clear()
        self._refresh.clear()
        self._flush_all()

    @property
    def connected(self) -> bool:
        """Every port the surface names is open."""
        return (self.config.input is None or self.input is not None) and (
            self.config.output is None or self.output is not None
        )

    # --- input ---------------------------------------------------------------------------------

    def _receive(self, events: list[Event]) -> None:
        view = self.controller.view()
        actions: list[Action] = []
        for arrived, data in events:
            messages, problem = decode(data)
            if problem is not None:
                self._drop(problem, f"{len(data)} bytes")
            for message in messages:
                outcome = self.interpreter.handle(message, view, arrived)
                if outcome is None:
                    self._drop(DROP_UNMAPPED, str(message), warn=False)
                    continue
                actions += outcome.actions
                self._refresh.update(outcome.refresh)
        self._count_overflow()
        for action in coalesce(actions, self.controller.vocabulary.max_step_db):
            self._apply(action)
        self._schedule_flush()

    def _apply(self, action: Action) -> None:
        self._applying = action.control
        try:
            self.controller.apply(action.target, action.action, action.value, self.origin)
        except TargetError as exc:
            self._drop(DROP_BAD_VALUE, str(exc))
        finally:
            self._applying = None

    def _count_overflow(self) -> None:
        new = self.inbox.overflowed - self._overflow_counted
        if new:
            self._overflow_counted += new
            for _ in range(new):
                self.controller.drop(DROP_OVERFLOW)
            self._warn(DROP_OVERFLOW, f"{new} events beyond the {MAX_PENDING} waiting (a flood)")

    def _drop(self, reason: str, detail: str, warn: bool = True) -> None:
        self.controller.drop(reason)
        log.debug("surface %s: dropped (%s): %s", self.config.name, reason, detail)
        if warn:
            self._warn(reason, detail)

    def _warn(self, reason: str, detail: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(reason, -WARN_INTERVAL_S) >= WARN_INTERVAL_S:
            self._warned[reason] = now
            log.warning("surface %s: dropped MIDI (%s): %s", self.config.name, reason, detail)

    # --- feedback ------------------------------------------------------------------------------

    def _changed(self, changes: dict[str, Any], origin: str) -> None:
        """Controller listener: every change, from any origin."""
        by = self._applying if origin == self.origin else None
        self.interpreter.changed(changes, by)
        if by is not None and self.mapping.controls[by].absolute:
            self._assume.add(by)
        elif by is None:
            self._assume = {i for i in self._assume if self.mapping.controls[i].target not in changes}
        self._pending.update(changes)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and (self._pending or self._refresh):
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self, everything: bool = False) -> None:
        self._flush_scheduled = False
        targets = None if everything or self._stale else self._pending
        refresh, assume = self._refresh, self._assume
        self._pending, self._refresh, self._assume = set(), set(), set()
        if self.output is None:
            return
        if targets is None:
            self.feedback.reset()
            self._stale = False
        touched = {i for i in range(len(self.mapping.controls)) if self.interpreter.touched(i)}
        messages = self.feedback.render(
            self.controller.view(), targets, assume=assume | touched, refresh=refresh - touched
        )
        self._send(messages)

    def _flush_all(self) -> None:
        """Send the whole state (after (re)connecting or remapping)."""
        self._flush(everything=True)

    def _send(self, messages: list[mido.Message]) -> None:
        for message in messages:
            try:
                self.output.send(message)
            except PortError as exc:
                self._stale = True  # unsure what arrived: send everything next time
                log.warning("surface %s: feedback not sent: %s", self.config.name, exc)
                return

    # --- ports ---------------------------------------------------------------------------------

    async def reconnect(self, ports: Ports, poller: Poller, inputs: list[str], outputs: list[str]) -> None:
        """Close ports that vanished from ``inputs``/``outputs``; open matching ones that are missing."""
        name = self.config.name
        if self.input is not None and self.input.name not in inputs:
            log.warning("surface %s: MIDI input %r is gone; waiting for it to come back", name, self.input.name)
            self._close_input(poller)
        if self.output is not None and self.output.name not in outputs:
            log.warning("surface %s: MIDI output %r is gone; waiting for it to come back", name, self.output.name)
            self._close_output()
        if self.config.input is not None and self.input is None:
            port = await self._open(ports.open_input, inputs, self.config.input, "in")
            if port is not None:
                self.input = port
                # a replugged device starts afresh: no pick-up, no buttons held, no fader touched
                self.interpreter = Interpreter(self.mapping, self.controller.vocabulary)
                poller.add(port, self.inbox.put)
        if self.config.output is not None and self.output is None:
            port = await self._open(ports.open_output, outputs, self.config.output, "out")
            if port is not None:
                self.output = port
                self._flush_all()

    async def _open(self, opener, names: list[str], wanted: str, direction: str) -> Input | Output | None:
        name = find(names, wanted)
        if name is None:
            if direction not in self._missing:
                self._missing.add(direction)
                log.warning(
                    "surface %s: no MIDI %sput port matching %r (yet); watching for it",
                    self.config.name,
                    direction,
                    wanted,
                )
            return None
        try:
            port = await asyncio.to_thread(opener, name, f"{self.config.name} {direction}")
        except PortError as exc:
            log.warning("surface %s: %s", self.config.name, exc)
            return None
        log.info("surface %s: MIDI %sput connected to %r", self.config.name, direction, name)
        self._missing.discard(direction)
        return port

    def _close_input(self, poller: Poller) -> None:
        port, self.input = self.input, None
        if port is not None:
            poller.remove(port)
            port.close()

    def _close_output(self) -> None:
        port, self.output = self.output, None
        if port is not None:
            port.close()

    def close(self, poller: Poller) -> None:
        self.controller.remove_listener(self._changed)
        self._close_input(poller)
        self._close_output()


class SurfaceManager:
    """Every ``[[surfaces]]`` entry of the config, kept connected. ``config_dir`` resolves
    mapping paths (relative to the config file)."""

    def __init__(
        self, controller: Controller, surfaces: tuple[SurfaceConfig, ...], midi: MidiConfig, config_dir: Path
    ) -> None:
        self.controller = controller
        self.configs = surfaces
        self.midi = midi
        self.config_dir = config_dir
        self.surfaces: dict[str, Surface] = {}
        self._ports: Ports | None = None
        self._poller: Poller | None = None
        self.unavailable: str | None = None  # why the MIDI API cannot be opened (None: it is)

    async def start(self) -> None:
        """Load the mappings and open the ports that exist (``watch`` looks for the others).
        An unusable MIDI API (no JACK server yet, no ALSA sequencer) is logged once and tried
        again by ``watch``; an unusable mapping is logged. With no surfaces configured, no MIDI
        API is opened at all."""
        if not self.configs:
            return
        backend = backend_name(self.midi.backend)
        try:
            self._ports = await asyncio.to_thread(_quietly_opened, self.midi.backend)
        except PortError as exc:
            if str(exc) != self.unavailable:
                log.error("MIDI (%s) unavailable: %s; surfaces wait for it", backend, exc)
            self.unavailable = str(exc)
            return
        if self.unavailable is not None:
            log.info("MIDI (%s) available again", backend)
        self.unavailable = None
        self._poller = Poller()
        loop = asyncio.get_running_loop()
        for index, config in enumerate(self.configs):
            mapping = self._load(index, config)
            if mapping is not None:
                self.surfaces[config.name] = Surface(config, mapping, self.controller, loop)
        await self.reconnect()

    def close(self) -> None:
        for surface in self.surfaces.values():
            surface.close(self._poller)
        self.surfaces.clear()
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        if self._ports is not None:
            self._ports.close()
            self._ports = None

    async def reload(self, surfaces: tuple[SurfaceConfig, ...], midi: MidiConfig) -> None:
        """Adopt a reloaded config: mappings are read again (``controlroom learn`` wrote one,
        or the vocabulary changed); surfaces whose ports and backend are unchanged keep their
        connections; a mapping that no longer loads keeps its surface on the previous one. With
        no MIDI API open yet (no surfaces before, or the API was unavailable), it starts."""
        if midi != self.midi or self._ports is None:
            self.close()
            self.configs, self.midi = surfaces, midi
            await self.start()
            return
        old, self.configs = self.surfaces, surfaces
        self.surfaces = {}
        loop = asyncio.get_running_loop()
        for index, config in enumerate(surfaces):
            surface = old.pop(config.name, None)
            mapping = self._load(index, config)
            if surface is not None and (surface.config.input, surface.config.output) == (
                config.input,
                config.output,
            ):
                surface.config = config
                if mapping is not None:
                    surface.remap(mapping)
                else:
                    log.error("surface %s: keeping its previous mapping", config.name)
                self.surfaces[config.name] = surface
                continue
            if surface is not None:
                surface.close(self._poller)
            if mapping is not None and self._ports is not None:
                self.surfaces[config.name] = Surface(config, mapping, self.controller, loop)
        for surface in old.values():
            surface.close(self._poller)
        if self._ports is not None:
            await self.reconnect()

    def _load(self, index: int, config: SurfaceConfig) -> Mapping | None:
        """The surface's mapping bound to the vocabulary, or None (errors logged)."""
        try:
            mapping = load_surface_mapping(config, index, self.controller.config.source, self.config_dir)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("surface %s: %s", config.name, line)
            return None
        bound = bind(mapping, self.controller.vocabulary)
        for line in bound.errors:
            log.error("surface %s: %s (control ignored)", config.name, line)
        if bound.unused:
            log.info(
                "surface %s: %d controls unused (an index beyond the choices configured)",
                config.name,
                len(bound.unused),
            )
        for line in bound.unused:
            log.debug("surface %s: %s", config.name, line)
        return bound.mapping

    async def reconnect(self) -> None:
        """One round of port watching for every surface."""
        inputs, outputs = await asyncio.to_thread(lambda: (self._ports.inputs(), self._ports.outputs()))
        for surface in list(self.surfaces.values()):
            await surface.reconnect(self._ports, self._poller, inputs, outputs)

    def status(self) -> dict[str, dict[str, Any]]:
        """Surface name -> ``connected`` and the ``input``/``output`` ports it uses (None while
        it waits for them), as the state report shows it; ``waiting`` says for what."""
        report = {}
        for config in self.configs:
            surface = self.surfaces.get(config.name)
            entry = {
                "connected": surface is not None and surface.connected,
                "input": surface.input.name if surface is not None and surface.input is not None else None,
                "output": surface.output.name if surface is not None and surface.output is not None else None,
            }
            if self._ports is None:
                entry["waiting"] = f"MIDI: {self.unavailable or 'opening'}"
            elif surface is None:
                entry["waiting"] = "a mapping that loads"
            elif not surface.connected:
                entry["waiting"] = " and ".join(
                    repr(name)
                    for name, port in ((config.input, surface.input), (config.output, surface.output))
                    if name is not None and port is None
                )
            report[config.name] = entry
        return report

    async def watch(self) -> None:
        """Look for unplugged and replugged ports every ``RECONNECT_S`` while a surface waits
        for one, every ``CONNECTED_WATCH_S`` while none does (and for the MIDI API itself every
        ``API_RETRY_S`` while it is unavailable), for as long as the daemon runs (its task
        group runs this)."""
        last = None
        loop = asyncio.get_running_loop()
        next_api_try = loop.time() + API_RETRY_S
        while True:
            connected = self._ports is not None and all(s.connected for s in self.surfaces.values())
            await asyncio.sleep(CONNECTED_WATCH_S if connected and self.surfaces else RECONNECT_S)
            if self._ports is None and self.configs and loop.time() >= next_api_try:
                next_api_try = loop.time() + API_RETRY_S
                await self.start()
            if self._ports is None or not self.surfaces:
                continue
            try:
                await self.reconnect()
                last = None
            except Exception as exc:  # a MIDI API that fails must not stop the monitors
                if str(exc) != last:  # once per outage, not every half second
                    log.error("watching MIDI ports: %s", exc, exc_info=not isinstance(exc, PortError))
                last = str(exc)


def _quietly_opened(backend: str | None) -> Ports:
    """The ports of ``backend``'s MIDI API; what the API prints while it fails to find its
    server (JACK's "cannot connect" lines, every retry) stays off the log."""
    with quiet_stderr():
        return Ports(api_for(backend))
