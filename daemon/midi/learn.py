"""MIDI learn (``controlroom learn``): recognise a control and write its binding.

Waits for the next control moved on the surface's input, recognises what it is from everything
it sends until it has been quiet for ``SETTLE_S`` (at most ``GATHER_S``), adds a ``[[control]]``
binding it to TARGET to the surface's user mapping file and prints what it bound. A running
daemon picks the file up when it reloads (SIGHUP: ``systemctl reload controlroom``).

Where the binding goes: a surface whose ``mapping`` is a file gets it appended there, comments
and layout kept (tomlkit). A surface on a preset gets a user mapping file next to the config,
``NAME.mapping.toml``, that ``include``s the preset, and its ``mapping`` in the config is
pointed at it (the config keeps its comments too). Either way a learned control replaces any
control on the same MIDI source, in the file or in the included preset, so learning rebinds.

What it recognises (:func:`recognise`):

- pitch bend: an absolute 14-bit fader (a note arriving with it, as Mackie faders send on
  touch, becomes its ``touch``);
- cc 99/98 then 6 (and 38): an NRPN control, 14-bit when cc 38 came;
- cc n and cc n+32 (n < 32): a 14-bit cc pair;
- note on/off, program change, or a cc that sends only 127 and 0 (or one value once): a button
  (``press`` with ``--value``, else ``toggle`` on switches and ``next`` on choices);
- a cc that repeats small steps either side of a centre: a relative encoder. Turned both ways,
  the values tell the encoding: 1.. / 127.. two's complement, 65.. / 63.. binary offset, 1.. /
  65.. sign and magnitude. Turned one way only, two encodings may fit: the first is taken and
  a note says so;
- any other cc: an absolute knob or fader.

Buttons get LED feedback on their own note or cc when the surface has an output. Continuous
controls get none: feedback would stop a fader without a motor from picking up the volume.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import mido
import tomlkit

from controlroom.daemon.config import Config, SurfaceConfig
from controlroom.daemon.core.targets import BOOL_TARGETS, ENUM_TARGETS
from controlroom.daemon.errors import PortError, UsageError
from controlroom.daemon.midi.mapping import (
    NUMBER_KEYS,
    Address,
    is_preset,
    locate,
    parse_address,
    parse_mapping,
)
from controlroom.daemon.midi.ports import POLL_S, Input, Ports, api_for, backend_name, decode, find
from controlroom.daemon.quiet import quiet_stderr

SETTLE_S = 0.8
GATHER_S = 4.0
#: Tick values of one relative encoding: (clockwise, counter-clockwise) ranges.
_TICKS = {
    "relative-twos": (range(1, 16), range(113, 128)),
    "relative-signed": (range(1, 16), range(65, 80)),
    "relative-offset": (range(65, 80), range(49, 64)),
}


@dataclass(frozen=True)
class Learned:
    """What a control turned out to be: its source, ``encoder`` or ``button`` (one is None),
    a touch note, and a ``note`` for the user (e.g. an ambiguity)."""

    midi: Address
    encoder: str | None = None
    button: bool = False
    touch: Address | None = None
    note: str = ""

    def describe(self) -> str:
        kind = (
            "a button"
            if self.button
            else f"an {self.encoder} fader or knob"
            if self.encoder == "absolute"
            else f"a {self.encoder} encoder"
        )
        return f"{self.midi.describe()} as {kind}"


# --- recognising a control ---------------------------------------------------------------------


def recognise(messages: list[mido.Message]) -> Learned | None:
    """The control that sent ``messages`` (see module doc); None if nothing usable came."""
    by_type = Counter(m.type for m in messages)
    if by_type["pitchwheel"]:
        bend = next(m for m in messages if m.type == "pitchwheel")
        touch = next((m for m in messages if m.type == "note_on"), None)
        return Learned(
            Address("pitchbend", bend.channel + 1, None, 14),
            encoder="absolute",
            touch=None if touch is None else Address("note", touch.channel + 1, touch.note),
        )
    ccs = [m for m in messages if m.type == "control_change"]
    if ccs:
        return _recognise_cc(ccs)
    first = next((m for m in messages if m.type in ("note_on", "program_change")), None)
    if first is None:
        return None
    if first.type == "note_on":
        return Learned(Address("note", first.channel + 1, first.note), button=True)
    return Learned(Address("program", first.channel + 1, first.program), button=True)


def _recognise_cc(ccs: list[mido.Message]) -> Learned:
    channel = ccs[0].channel + 1
    numbers = {m.control for m in ccs if m.channel + 1 == channel}
    if {99, 98} <= numbers and 6 in numbers:
        values = {m.control: m.value for m in ccs}
        bits = 14 if 38 in numbers else 7
        return Learned(Address("nrpn", channel, values[99] << 7 | values[98], bits), encoder="absolute")
    number = ccs[0].control
    if number < 32 and number + 32 in numbers:
        return Learned(Address("cc", channel, number, 14), encoder="absolute")
    if number >= 32 and number < 64 and number - 32 in numbers:
        return Learned(Address("cc", channel, number - 32, 14), encoder="absolute")
    values = [m.value for m in ccs if m.control == number and m.channel + 1 == channel]
    address = Address("cc", channel, number)
    if len(values) == 1 or (0 in values and set(values) <= {0, 127}):
        return Learned(address, button=True)
    return _recognise_turn(address, values)


def _recognise_turn(address: Address, values: list[int]) -> Learned:
    """Relative if the control repeats itself (absolute controls only send changes) with every
    value in one encoding's tick ranges; absolute otherwise."""
    repeats = any(a == b for a, b in pairwise(values))
    fitting = [name for name, (up, down) in _TICKS.items() if all(v in up or v in down for v in values)]
    if not repeats or not fitting:
        return Learned(address, encoder="absolute")
    both_ways = [
        name
        for name in fitting
        if any(v in _TICKS[name][0] for v in values) and any(v in _TICKS[name][1] for v in values)
    ]
    chosen = both_ways or fitting
    note = ""
    if len(chosen) > 1:
        note = f"it could also be {' or '.join(chosen[1:])}: turn it both ways when learning to tell them apart"
    return Learned(address, encoder=chosen[0], note=note)


# --- writing the binding -----------------------------------------------------------------------


def control_fields(learned: Learned, target: str, value: Any, feedback: bool) -> list[tuple[str, Any]]:
    """The ``[[control]]`` keys binding ``learned`` to ``target``; UsageError when the pair
    cannot work (a button on volume without a value)."""
    midi = _address_table(learned.midi)
    fields: list[tuple[str, Any]] = [("midi", midi), ("target", target)]
    if not learned.button:
        fields.append(("encoder", learned.encoder))
        if learned.touch is not None:
            fields += [("motorised", True), ("touch", _address_table(learned.touch))]
        if value is not None:
            raise UsageError(f"--value is for buttons; {learned.describe()} sets {target} by its position")
        return fields
    if value is not None:
        fields += [("button", "press"), ("value", value)]
    elif target in BOOL_TARGETS:
        fields.append(("button", "toggle"))
    elif target in ENUM_TARGETS:
        fields.append(("button", "next"))
    else:
        raise UsageError(f"a button on {target} needs --value (the level a press sets, in dB)")
    if feedback:
        fields.append(("feedback", midi))
    return fields


def _address_table(address: Address) -> dict[str, Any]:
    table = {"type": address.type, "channel": address.channel}
    if address.number is not None:
        table[NUMBER_KEYS[address.type]] = address.number
    if address.type in ("cc", "nrpn") and address.bits != (14 if address.type == "nrpn" else 7):
        table["bits"] = address.bits
    return table


def control_toml(fields: list[tuple[str, Any]]) -> str:
    """A ``[[control]]`` table as TOML text, inline tables spaced as the presets write them."""
    return "[[control]]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in fields)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return tomlkit.item(value).as_string()


def add_control(text: str, fields: list[tuple[str, Any]], midi: Address) -> str:
    """Mapping TOML ``text`` with the control ``fields`` appended and every other control on
    the same MIDI source removed; comments and layout kept."""
    document = tomlkit.parse(text)
    if "control" not in document:
        document.append("control", tomlkit.aot())
    controls = document["control"]
    for index in reversed(range(len(controls))):
        found = parse_address(controls[index].get("midi"))
        if found is not None and found.key == midi.key:
            del controls[index]
    table = tomlkit.parse(control_toml(fields))["control"][0]
    before = controls[-1].as_string() if len(controls) else tomlkit.dumps(document)
    if not before.endswith("\n\n"):
        table.trivia.indent = "\n"  # a blank line before it, as between the others
    controls.append(table)
    return tomlkit.dumps(document)


def user_mapping_text(surface: SurfaceConfig) -> str:
    """A new user mapping file for a surface on a preset: the preset included."""
    return (
        f"# Mapping of surface {surface.name!r}, written by `controlroom learn`.\n"
        "# The preset below comes first; a control here replaces the preset's control on the same\n"
        "# MIDI source. Edit freely: learn keeps comments and layout.\n"
        f"include = {_toml_value(surface.mapping)}\n"
    )


def point_config_at(text: str, surface: str, mapping: str) -> str:
    """Config TOML ``text`` with ``[[surfaces]]`` ``surface``'s mapping set to ``mapping``."""
    document = tomlkit.parse(text)
    for table in document["surfaces"]:
        if table.get("name") == surface:
            table["mapping"] = mapping
    return tomlkit.dumps(document)


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


# --- the command ---------------------------------------------------------------------------------


@contextlib.contextmanager
def opened_input(config: Config, surface: SurfaceConfig) -> Iterator[Input]:
    """The surface's input port, open inside the block. PortError when the MIDI API cannot be
    used (no ALSA sequencer, no JACK server, an API this rtmidi lacks); UsageError when no
    input port matches the surface's."""
    api = api_for(config.midi.backend)
    try:
        # learn is a command in a terminal: ALSA's own "ALSA lib ..." lines would bury the reason
        with quiet_stderr():
            ports = Ports(api)
    except PortError as exc:
        raise PortError(f"cannot use MIDI through {backend_name(config.midi.backend)}: {exc}") from None
    try:
        name = find(ports.inputs(), surface.input)
        if name is None:
            raise UsageError(f"no MIDI input matching {surface.input!r} (found: {', '.join(ports.inputs()) or 'none'})")
        port = ports.open_input(name, f"{surface.name} learn")
        try:
            yield port
        finally:
            port.close()
    finally:
        ports.close()


def listen(port: Input, timeout_s: float) -> list[mido.Message]:
    """Everything ``port`` sends from the first message until it has been quiet for
    ``SETTLE_S`` (at most ``GATHER_S``); UsageError when nothing comes in ``timeout_s``."""
    messages: list[mido.Message] = []
    deadline = time.monotonic() + timeout_s
    first = last = None
    while True:
        now = time.monotonic()
        if first is None and now > deadline:
            raise UsageError(f"no control moved within {timeout_s:g} s")
        if first is not None and (now - last > SETTLE_S or now - first > GATHER_S):
            return messages
        for _, data in port.poll():
            found, _ = decode(data)
            messages += [m for m in found if m.type != "sysex"]
            if found:
                first, last = first or now, now
        time.sleep(POLL_S)


def save(
    config_path: Path, config_dir: Path, surface: SurfaceConfig, fields: list[tuple[str, Any]], midi: Address
) -> Path:
    """Add the binding to the surface's user mapping file (made, and the config pointed at
    it, for a surface on a preset); the file is validated before it is written. Returns it."""
    preset = is_preset(surface.mapping)
    target = config_dir / f"{surface.name}.mapping.toml" if preset else Path(locate(surface.mapping, config_dir))
    if target.exists():
        text = target.read_text(encoding="utf-8")
    elif preset:
        text = user_mapping_text(surface)
    else:
        text = f"# Mapping of surface {surface.name!r}, written by `controlroom learn`.\n"
    text = add_control(text, fields, midi)
    parse_mapping(text, str(target), target.parent)  # ConfigError: nothing written
    _replace(target, text)
    if preset:
        _replace(config_path, point_config_at(config_path.read_text(encoding="utf-8"), surface.name, target.name))
    return target
