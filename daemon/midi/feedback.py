"""State -> the MIDI messages that keep a surface true to it. Pure: no I/O.

What each control with ``feedback`` shows:

- buttons light (``on``, else ``off`` data value): ``toggle``/``latch`` while their switch is
  on, ``press``/``momentary`` while the target has their ``value``, ``next``/``prev`` while
  the target is not at its first choice;
- continuous controls send their position: a 7-bit cc, a 14-bit cc pair, pitch bend (motor
  faders); with ``ring`` the Mackie LED ring value (bits 5-4 mode, bits 3-0 LED 1-11);
- ``values`` maps target values to data values (program changes or cc values for outboard
  gear); a program change without ``values`` sends a choice's 0-based index;
- each ``[[lcd]]`` sends ``F0 00 00 66 <model> 12 <offset> <ASCII> F7``: volume as ``-20.0dB``,
  switches as on/off, choices by name, padded or cut to the width.

:class:`Feedback` remembers what it sent to each destination, so only differences go out;
after a (re)connect ``reset()`` makes the next render send everything.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import mido

from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.midi.interpret import View
from controlroom.daemon.midi.mapping import RINGS, Address, Control, Lcd, Mapping
from controlroom.daemon.midi.taper import ChoiceScale, Scale, scale_for

_MACKIE_ID = (0x00, 0x00, 0x66)
_LCD_COMMAND = 0x12


def ring_value(mode: str, position: float) -> int:
    """The Mackie LED ring value for ``position`` (0..1): mode in bits 5-4, LED 1-11 in bits
    3-0 (0 would light none)."""
    return RINGS.index(mode) << 4 | 1 + round(min(1.0, max(0.0, position)) * 10)


def lcd_text(target: str, value: Any, width: int) -> str:
    """``value`` as an LCD shows it in ``width`` characters."""
    if target == "volume":
        text = f"{value:.1f}dB"
        if len(text) > width:
            text = f"{value:.1f}"
    elif isinstance(value, bool):
        text = "on" if value else "off"
    else:
        text = str(value)
    return text[:width].ljust(width)


def lcd_message(model: int, offset: int, text: str) -> mido.Message:
    """Mackie LCD SysEx: ``text`` (ASCII) at ``offset`` (0-55 line 1, 56-111 line 2)."""
    return mido.Message("sysex", data=(*_MACKIE_ID, model, _LCD_COMMAND, offset, *text.encode("ascii")))


def messages(address: Address, data: int) -> list[mido.Message]:
    """The messages that send data value ``data`` to ``address``."""
    channel = address.channel - 1
    if address.type == "note":
        return [mido.Message("note_on", channel=channel, note=address.number, velocity=data)]
    if address.type == "program":
        return [mido.Message("program_change", channel=channel, program=data)]
    if address.type == "pitchbend":
        return [mido.Message("pitchwheel", channel=channel, pitch=data - 8192)]
    if address.bits == 14:
        return [
            mido.Message("control_change", channel=channel, control=address.number, value=data >> 7),
            mido.Message("control_change", channel=channel, control=address.number + 32, value=data & 0x7F),
        ]
    return [mido.Message("control_change", channel=channel, control=address.number, value=data)]


def data_value(control: Control, scale: Scale, view: View) -> int | None:
    """The data value ``control``'s feedback shows for ``view``; None: nothing to show (a
    value missing from ``values``, a blind test's label on a ring)."""
    feedback = control.feedback
    value = view[control.target]
    if feedback.values:
        name = ("on" if value else "off") if isinstance(value, bool) else str(value)
        return dict(feedback.values).get(name)
    lit = _lit(control, scale, value)
    if lit is not None:
        return feedback.on if lit else feedback.off
    position = scale.position(value)
    if position is None:
        return None
    if feedback.address.type == "program" and isinstance(scale, ChoiceScale):
        return scale.choices.index(value)
    if feedback.ring is not None:
        return ring_value(feedback.ring, position)
    return round(position * feedback.address.maximum)


def _lit(control: Control, scale: Scale, value: Any) -> bool | None:
    """Whether a button's LED is lit; None for continuous controls."""
    if control.button in ("press", "momentary"):
        return value == control.value
    if control.button in ("next", "prev"):
        return value != scale.choices[0]
    if control.button is not None or (control.encoder is None and isinstance(value, bool)):
        return bool(value)
    return None


class Feedback:
    """Renders a mapping's feedback and LCD text, sending only what the surface lacks."""

    def __init__(self, mapping: Mapping, vocabulary: Vocabulary) -> None:
        self.controls = mapping.controls
        self.lcds: tuple[Lcd, ...] = mapping.lcds
        self.scales = tuple(scale_for(c, vocabulary) for c in self.controls)
        self._shown: dict[tuple, Any] = {}

    def reset(self) -> None:
        """Forget what the surface shows (it was (re)connected or powered up)."""
        self._shown.clear()

    def render(
        self,
        view: View,
        targets: Iterable[str] | None = None,
        *,
        assume: Collection[int] = (),
        refresh: Collection[int] = (),
    ) -> list[mido.Message]:
        """Messages for the feedback of ``targets`` (None: everything, including fixed LCD
        text) as ``view`` has them, that differ from what was sent. Controls in ``refresh`` are sent even if
        unchanged; controls in ``assume`` are not sent but taken to show the state already (a
        fader under the hand, the absolute control that made the change)."""
        wanted = None if targets is None else set(targets)
        out: list[mido.Message] = []
        for i, control in enumerate(self.controls):
            if control.feedback is None or not (wanted is None or control.target in wanted or i in refresh):
                continue
            data = data_value(control, self.scales[i], view)
            key = control.feedback.address.key
            if data is None or i in assume:
                self._shown[key] = data
            elif self._shown.get(key) != data or i in refresh:
                self._shown[key] = data
                out += messages(control.feedback.address, data)
        for lcd in self.lcds:
            if wanted is None or lcd.target in wanted:
                out += self._lcd(lcd, view)
        return out

    def _lcd(self, lcd: Lcd, view: View) -> list[mido.Message]:
        text = (
            lcd.text.ljust(lcd.width)[: lcd.width]
            if lcd.text is not None
            else lcd_text(lcd.target, view[lcd.target], lcd.width)
        )
        key = ("lcd", lcd.model, lcd.offset)
        if self._shown.get(key) == text:
            return []
        self._shown[key] = text
        return [lcd_message(lcd.model, lcd.offset, text)]
