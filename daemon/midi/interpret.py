"""MIDI messages -> controller actions, for one surface's mapping. Pure: no I/O, no clock.

The interpreter remembers what it must between messages: the MSB of each 14-bit cc pair, the
NRPN parameter selected on each channel, where each absolute control was and whether it has
picked up its target, when each encoder last ticked (acceleration), when each button went down
and what momentary and latch buttons restore, and which motor faders are touched.

Behaviour worth knowing:

- 14-bit cc pairs act when the LSB (cc n+32) arrives, with the latest MSB (cc n). NRPN: cc 99 /
  98 select the parameter, cc 6 (7-bit NRPN) or cc 38 after cc 6 (14-bit) carry the value,
  cc 96 / 97 step by one (the data byte is ignored, as MIDI 1.0 specifies); selecting an RPN
  (cc 101 / 100) deselects the NRPN so that its data entry is not taken for ours.
- Pick-up: an absolute control without motor or feedback acts only once it reaches the
  target's current value — within one step of it, or crossing it from either side between two
  messages. Any change of the target from elsewhere (another control, OSC, ...) lets go again.
- Buttons: ``toggle`` acts on press; ``momentary`` sets ``value`` on press and restores the
  previous value on release; ``latch`` toggles on press and, when held at least ``hold_ms``,
  restores on release (a short press latches, a long hold is momentary); ``press``, ``next``,
  ``prev`` and ``step`` act on press. A note-on with velocity 0 and a cc value of 0 are
  releases.
- Acceleration: a tick at least ``ACCEL_SLOW_S`` after the previous one moves ``step_db``;
  one within ``ACCEL_FAST_S`` moves ``step_db * (1 + acceleration)``; linear in between.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import mido

from controlroom.daemon.core.targets import BOOL_TARGETS, ENUM_TARGETS, NUMERIC_TARGETS, Vocabulary
from controlroom.daemon.midi.mapping import Address, Control, Mapping
from controlroom.daemon.midi.taper import Scale, scale_for

#: The state as the controller shows it (``Controller.view()``): target -> value.
View = dict[str, Any]

ACCEL_SLOW_S = 0.1
ACCEL_FAST_S = 0.02
_FULL_14 = 16383
_FULL_7 = 127

# controller numbers of NRPN and RPN selection and data entry
_NRPN_MSB, _NRPN_LSB, _RPN_MSB, _RPN_LSB = 99, 98, 101, 100
_DATA_MSB, _DATA_LSB, _INCREMENT, _DECREMENT = 6, 38, 96, 97


@dataclass(frozen=True)
class Action:
    """``controller.apply(target, action, value)`` on behalf of ``control`` (its index in the
    mapping). ``continuous``: from an encoder or fader, so adjacent ones may merge."""

    control: int
    target: str
    action: str
    value: Any = None
    continuous: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a message did: ``actions``, and ``refresh``, the controls whose feedback must be
    sent again even if unchanged (a surface lights or moves them itself on press, release or
    touch, so what it shows may no longer be the state)."""

    actions: tuple[Action, ...] = ()
    refresh: tuple[int, ...] = ()


@dataclass
class _Live:
    """What the interpreter remembers of one control."""

    position: float | None = None  # last absolute position, 0..1
    engaged: bool = False  # picked up
    last_tick_s: float | None = None
    pressed_s: float | None = None  # button down since
    restore: Any = None  # value a momentary or latch release goes back to
    touched: bool = False


@dataclass
class _NrpnChannel:
    parameter_msb: int | None = None
    parameter_lsb: int | None = None
    data_msb: int | None = None

    @property
    def parameter(self) -> int | None:
        if self.parameter_msb is None or self.parameter_lsb is None:
            return None
        return self.parameter_msb << 7 | self.parameter_lsb


def relative_ticks(encoder: str, value: int) -> int:
    """Signed ticks of a relative encoder's 7-bit value: ``relative-twos`` (1 = +1, 127 = -1),
    ``relative-offset`` (65 = +1, 63 = -1) or ``relative-signed`` (bit 6 = negative, low six
    bits = ticks: 1 = +1, 65 = -1; Mackie V-Pots)."""
    if encoder == "relative-twos":
        return value - 128 if value >= 64 else value
    if encoder == "relative-offset":
        return value - 64
    if encoder == "relative-signed":
        return -(value & 0x3F) if value & 0x40 else value & 0x3F
    raise ValueError(f"not a relative encoder: {encoder!r}")


def acceleration(control: Control, interval_s: float) -> float:
    """Step multiplier for a tick ``interval_s`` after the previous one (see module doc)."""
    fast = (ACCEL_SLOW_S - interval_s) / (ACCEL_SLOW_S - ACCEL_FAST_S)
    return 1.0 + control.acceleration * min(1.0, max(0.0, fast))


def coalesce(actions: Iterable[Action], max_step_db: float = math.inf) -> list[Action]:
    """Adjacent continuous actions of one control merged (the last value set wins, steps add
    up, a volume's to at most ``max_step_db`` either way: an encoder spun fast goes to the end
    of the range, which is as far as any step goes), so that a flood from one fader or encoder
    costs one state change, not hundreds."""
    merged: list[Action] = []
    for action in actions:
        last = merged[-1] if merged else None
        if (
            last is not None
            and action.continuous
            and last.continuous
            and last.control == action.control
            and last.action == action.action
        ):
            value = last.value + action.value if action.action == "step" else action.value
            if action.action == "step" and action.target in NUMERIC_TARGETS:
                value = min(max_step_db, max(-max_step_db, value))
            merged[-1] = replace(action, value=value)
        else:
            merged.append(action)
    return merged


def _route(address: Address) -> tuple:
    """The lookup key of a source: 14-bit cc pairs apart from 7-bit cc on the same number."""
    if address.type == "cc" and address.bits == 14:
        return ("cc14", address.channel, address.number)
    return address.key


class Interpreter:
    """Turns one surface's incoming messages into actions under ``mapping`` (bound to the
    config's vocabulary: see ``mapping.bind``)."""

    def __init__(self, mapping: Mapping, vocabulary: Vocabulary) -> None:
        self.controls = mapping.controls
        self.max_step_db = vocabulary.max_step_db
        self.scales: tuple[Scale, ...] = tuple(scale_for(c, vocabulary) for c in self.controls)
        self.live = [_Live() for _ in self.controls]
        self._routes: dict[tuple, list[int]] = defaultdict(list)
        self._touches: dict[tuple, list[int]] = defaultdict(list)
        self._msb: dict[tuple[int, int], int] = {}
        self._nrpn: dict[int, _NrpnChannel] = {}
        for i, control in enumerate(self.controls):
            if control.midi is not None:
                self._routes[_route(control.midi)].append(i)
                if control.midi.type == "nrpn":
                    self._nrpn.setdefault(control.midi.channel, _NrpnChannel())
            if control.touch is not None:
                self._touches[control.touch.key].append(i)

    # --- state from elsewhere ---------------------------------------------------------------

    def changed(self, targets: Iterable[str], by: int | None = None) -> None:
        """``targets`` changed, by control ``by`` of this surface or (None) from elsewhere:
        every other control on them has to pick them up again."""
        targets = set(targets)
        for i, control in enumerate(self.controls):
            if control.target in targets and i != by:
                self.live[i].engaged = False

    def touched(self, index: int) -> bool:
        return self.live[index].touched

    # --- messages ----------------------------------------------------------------------------

    def handle(self, message: mido.Message, view: View, now: float) -> Outcome | None:
        """What ``message`` does, received at ``now`` (seconds on any steady clock) while the
        controller shows ``view``, or None when no control uses it."""
        kind = message.type
        if kind in ("note_on", "note_off"):
            return self._note(message, view, now)
        if kind == "control_change":
            return self._cc(message.channel + 1, message.control, message.value, view, now)
        if kind == "pitchwheel":
            key = ("pitchbend", message.channel + 1, None)
            return self._positions(key, (message.pitch + 8192) / _FULL_14, 1 / _FULL_14, view)
        if kind == "program_change":
            return self._buttons(("program", message.channel + 1, message.program), True, view, now)
        return None

    def _note(self, message: mido.Message, view: View, now: float) -> Outcome | None:
        key = ("note", message.channel + 1, message.note)
        down = message.type == "note_on" and message.velocity > 0
        touches = self._touches.get(key, [])
        for i in touches:
            self.live[i].touched = down
        released = tuple(touches) if not down else ()
        outcome = self._buttons(key, down, view, now)
        if outcome is None:
            return Outcome(refresh=released) if touches else None
        return Outcome(outcome.actions, outcome.refresh + released)

    def _cc(self, channel: int, number: int, value: int, view: View, now: float) -> Outcome | None:
        outcomes = []
        if channel in self._nrpn:
            outcomes.append(self._nrpn_cc(channel, number, value, view, now))
        outcomes.append(self._pair(channel, number, value, view))
        for i in self._routes.get(("cc", channel, number), []):
            outcomes.append(self._cc7(i, value, view, now))
        return _combine(outcomes)

    def _cc7(self, i: int, value: int, view: View, now: float) -> Outcome:
        control = self.controls[i]
        if control.button is not None:
            action = self._press(i, view, now) if value > 0 else self._release(i, view, now)
            return Outcome(_some(action), (i,) if control.feedback is not None else ())
        if control.absolute:
            return Outcome(_some(self._position(i, value / _FULL_7, 1 / _FULL_7, view)))
        ticks = relative_ticks(control.encoder, value)
        return Outcome(_some(self._ticks(i, ticks, now) if ticks else None))

    def _pair(self, channel: int, number: int, value: int, view: View) -> Outcome | None:
        """14-bit cc: remember the MSB, act on the LSB."""
        if number < 32 and ("cc14", channel, number) in self._routes:
            self._msb[(channel, number)] = value
            return Outcome()
        if 32 <= number < 64 and ("cc14", channel, number - 32) in self._routes:
            msb = self._msb.get((channel, number - 32))
            if msb is None:
                return Outcome()
            return self._positions(("cc14", channel, number - 32), (msb << 7 | value) / _FULL_14, 1 / _FULL_14, view)
        return None

    def _nrpn_cc(self, channel: int, number: int, value: int, view: View, now: float) -> Outcome | None:
        nrpn = self._nrpn[channel]
        if number in (_NRPN_MSB, _NRPN_LSB):
            setattr(nrpn, "parameter_msb" if number == _NRPN_MSB else "parameter_lsb", value)
            nrpn.data_msb = None
            return Outcome()
        if number in (_RPN_MSB, _RPN_LSB):
            nrpn.parameter_msb = nrpn.parameter_lsb = nrpn.data_msb = None
            return None
        indices = self._routes.get(("nrpn", channel, nrpn.parameter), [])
        if not indices or number not in (_DATA_MSB, _DATA_LSB, _INCREMENT, _DECREMENT):
            return None
        if number in (_INCREMENT, _DECREMENT):
            step = 1 if number == _INCREMENT else -1
            return Outcome(tuple(a for i in indices if (a := self._ticks(i, step, now)) is not None))
        if number == _DATA_MSB:
            nrpn.data_msb = value
            seven = [i for i in indices if self.controls[i].midi.bits == 7]
            return Outcome(tuple(a for i in seven if (a := self._position(i, value / _FULL_7, 1 / _FULL_7, view))))
        if nrpn.data_msb is None:
            return Outcome()
        fourteen = [i for i in indices if self.controls[i].midi.bits == 14]
        position = (nrpn.data_msb << 7 | value) / _FULL_14
        return Outcome(tuple(a for i in fourteen if (a := self._position(i, position, 1 / _FULL_14, view))))

    # --- continuous controls -------------------------------------------------------------

    def _positions(self, key: tuple, position: float, resolution: float, view: View) -> Outcome | None:
        indices = self._routes.get(key)
        if not indices:
            return None
        return Outcome(tuple(a for i in indices if (a := self._position(i, position, resolution, view))))

    def _position(self, i: int, position: float, resolution: float, view: View) -> Action | None:
        control, live, scale = self.controls[i], self.live[i], self.scales[i]
        previous, live.position = live.position, position
        if control.takes_over and not live.engaged:
            if not _reaches(scale, previous, position, resolution, view[control.target]):
                return None
            live.engaged = True
        return Action(i, control.target, "set", scale.value(position), continuous=True)

    def _ticks(self, i: int, ticks: int, now: float) -> Action:
        control, live = self.controls[i], self.live[i]
        interval = math.inf if live.last_tick_s is None else now - live.last_tick_s
        live.last_tick_s = now
        if control.target in BOOL_TARGETS:
            return Action(i, control.target, "set", ticks > 0, continuous=True)
        if control.target in ENUM_TARGETS:
            return Action(i, control.target, "step", ticks, continuous=True)
        delta = ticks * control.step_db * acceleration(control, interval)
        delta = min(self.max_step_db, max(-self.max_step_db, delta))  # a fast tick of a coarse step
        return Action(i, control.target, "step", delta, continuous=True)

    # --- buttons --------------------------------------------------------------------------

    def _buttons(self, key: tuple, down: bool, view: View, now: float) -> Outcome | None:
        indices = self._routes.get(key)
        if not indices:
            return None
        handle = self._press if down else self._release
        actions = tuple(a for i in indices if (a := handle(i, view, now)) is not None)
        return Outcome(actions, tuple(i for i in indices if self.controls[i].feedback is not None))

    def _press(self, i: int, view: View, now: float) -> Action | None:
        control, live = self.controls[i], self.live[i]
        live.pressed_s = now
        mode, target = control.button, control.target
        if mode in ("toggle", "next", "prev"):
            return Action(i, target, mode)
        if mode == "step":
            return Action(i, target, "step", control.step_db)
        if mode == "press":
            return Action(i, target, "set", control.value)
        live.restore = view[target]
        if mode == "momentary":
            return Action(i, target, "set", control.value)
        return Action(i, target, "set", not live.restore)  # latch

    def _release(self, i: int, view: View, now: float) -> Action | None:
        control, live = self.controls[i], self.live[i]
        if live.pressed_s is None:  # a release without a press (we connected mid-press)
            return None
        held_ms = (now - live.pressed_s) * 1000.0
        live.pressed_s = None
        if control.button == "momentary" or (control.button == "latch" and held_ms >= control.hold_ms):
            return Action(i, control.target, "set", live.restore)
        return None


def _reaches(scale: Scale, previous: float | None, position: float, resolution: float, current: Any) -> bool:
    """Whether a control moving from ``previous`` to ``position`` has reached ``current``:
    its value there, within one step of it, or across it."""
    if scale.value(position) == current:
        return True
    here = scale.position(current)
    if here is None:  # a value the control cannot show (a blind test's label)
        return False
    if abs(position - here) <= resolution:
        return True
    return previous is not None and (previous - here) * (position - here) <= 0


def _some(action: Action | None) -> tuple[Action, ...]:
    return () if action is None else (action,)


def _combine(outcomes: list[Outcome | None]) -> Outcome | None:
    found = [o for o in outcomes if o is not None]
    if not found:
        return None
    return Outcome(
        tuple(a for o in found for a in o.actions),
        tuple(i for o in found for i in o.refresh),
    )
