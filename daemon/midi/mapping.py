"""Mapping files: TOML in, typed controls out, every error at once.

A mapping has an optional ``name``, an optional ``include`` (a preset name or a path relative
to the including file: its controls come first, and a control of the including file replaces
an included one on the same MIDI source), ``[[control]]`` tables and ``[[lcd]]`` tables.

Errors read like the config's, ``FILE: control[3].midi.channel: 17 is out of range (expected a
MIDI channel from 1 to 16)``, with the config module's reader and value specs. Array indices
count from 0 (as TOML tools do); MIDI channels count from 1 to 16 (as printed on devices).

A mapping is independent of any config: names of speaker sets and sources are checked against
a config's vocabulary by :func:`bind`, which also turns 0-based indices (what presets use, since
they cannot know the set names) into names and leaves controls whose index lies beyond the
configured choices unused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from controlroom.daemon.config import SurfaceConfig, parse_toml, read_text
from controlroom.daemon.config.values import (
    NAME_PATTERN,
    Boolean,
    Choice,
    Integer,
    Invalid,
    ListOf,
    Number,
    Reader,
    Spec,
    Table,
    Text,
    join_key,
    show_value,
    wrong_type,
)
from controlroom.daemon.core.targets import (
    BOOL_TARGETS,
    ENUM_TARGETS,
    STATE_TARGETS,
    TARGETS,
    WRITE_ONLY_TARGETS,
    TargetError,
    Vocabulary,
)
from controlroom.daemon.errors import ConfigError

#: The package holding the preset files ``NAME.toml``.
PRESET_PACKAGE = "controlroom.mappings"

SOURCE_TYPES = ("note", "cc", "pitchbend", "program", "nrpn")
FEEDBACK_TYPES = ("note", "cc", "pitchbend", "program")
#: The key that names the number of each message type (pitch bend has none).
NUMBER_KEYS = {"note": "note", "cc": "control", "program": "program", "nrpn": "parameter"}
ENCODERS = ("absolute", "relative-twos", "relative-offset", "relative-signed")
RELATIVE_ENCODERS = ENCODERS[1:]
BUTTONS = ("toggle", "momentary", "latch", "press", "next", "prev", "step")
#: ``linear-db``: position linear in dB. ``audio``: dB falls with the square of the distance
#: from the top, so the upper half of the travel covers the top quarter of the range.
TAPERS = ("linear-db", "audio")
#: Mackie LED ring modes, in the order of their 2-bit code (bits 5-4 of the ring value).
RINGS = ("dot", "boost-cut", "wrap", "spread")

DEFAULT_STEP_DB = 0.5  # per encoder tick
DEFAULT_HOLD_MS = 500.0  # a latch button held this long acts momentarily
MACKIE_MODEL = 0x14  # Mackie Control; 0x15 is an extender
LCD_CHARS = 112  # two lines of 56


@dataclass(frozen=True)
class Address:
    """A MIDI source or destination. ``channel`` 1-16; ``number`` is the note, controller,
    program or NRPN parameter (None for pitch bend); ``bits`` 7 or 14 (pitch bend, cc pairs
    MSB n / LSB n+32, NRPN data entry 6 / 38)."""

    type: str
    channel: int
    number: int | None = None
    bits: int = 7

    @property
    def key(self) -> tuple[str, int, int | None]:
        """What identifies the physical control: type, channel and number."""
        return (self.type, self.channel, self.number)

    @property
    def maximum(self) -> int:
        """The highest data value: 127 or 16383."""
        return (1 << self.bits) - 1

    def describe(self) -> str:
        """E.g. ``cc 1 (channel 11)``, ``14-bit cc 7/39 (channel 1)``, ``pitch bend (channel 9)``."""
        if self.type == "pitchbend":
            what = "pitch bend"
        elif self.number is None:
            what = self.type
        elif self.type == "cc" and self.bits == 14:
            what = f"14-bit cc {self.number}/{self.number + 32}"
        elif self.type == "nrpn":
            what = f"{self.bits}-bit NRPN {self.number}"
        else:
            what = f"{self.type} {self.number}"
        return f"{what} (channel {self.channel})"


@dataclass(frozen=True)
class Feedback:
    """What a control shows: ``on``/``off`` data values for lit/unlit LEDs, a Mackie ``ring``
    mode for LED rings, or ``values`` mapping target values (names; on/off for switches) to
    data values (e.g. program numbers for outboard gear)."""

    address: Address
    on: int = 127
    off: int = 0
    ring: str | None = None
    values: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Control:
    """One ``[[control]]``. ``where`` names it in messages (``FILE: control[3]``).

    Exactly one of ``encoder`` (continuous controls) and ``button`` is set for a control with a
    ``midi`` source; neither for an output-only control (``feedback`` alone). ``value`` is what
    press and momentary buttons set (switches default to on). Levels in dB, times in ms.
    """

    where: str
    target: str
    midi: Address | None
    feedback: Feedback | None = None
    encoder: str | None = None
    button: str | None = None
    value: Any = None
    step_db: float = DEFAULT_STEP_DB
    min_db: float | None = None  # None: the config's min_volume_db
    max_db: float | None = None  # None: the config's max_volume_db
    taper: str = "linear-db"
    acceleration: float = 0.0
    pickup: bool | None = None  # None: on unless motorised or with feedback
    motorised: bool = False
    touch: Address | None = None
    hold_ms: float = DEFAULT_HOLD_MS

    @property
    def absolute(self) -> bool:
        return self.encoder == "absolute"

    @property
    def takes_over(self) -> bool:
        """Whether an absolute control waits to reach the current value before it acts."""
        if self.pickup is not None:
            return self.pickup
        return self.absolute and not self.motorised and self.feedback is None

    def describe(self) -> str:
        """E.g. ``an absolute encoder``, ``a toggle button``, ``an output``."""
        kind = f"{self.encoder} encoder" if self.encoder else f"{self.button} button" if self.button else "output"
        return ("an " if kind[0] in "aeiou" else "a ") + kind


@dataclass(frozen=True)
class Lcd:
    """One ``[[lcd]]``: ``width`` characters of Mackie LCD text at ``offset`` (0-55 line 1,
    56-111 line 2) showing a ``target``'s value or a fixed ``text``."""

    where: str
    offset: int
    width: int
    target: str | None = None
    text: str | None = None
    model: int = MACKIE_MODEL


@dataclass(frozen=True)
class Mapping:
    """A validated mapping file (with its include merged in)."""

    name: str
    source: str
    controls: tuple[Control, ...]
    lcds: tuple[Lcd, ...] = ()


# --- finding and loading ----------------------------------------------------------------------


def preset_names() -> tuple[str, ...]:
    """The presets shipped in ``controlroom.mappings``, sorted."""
    files = resources.files(PRESET_PACKAGE).iterdir()
    return tuple(sorted(f.name[:-5] for f in files if f.name.endswith(".toml")))


def locate(spec: str, base_dir: Path) -> Traversable:
    """A preset's packaged file when ``spec`` names one, else ``spec`` as a path (``~``
    expanded; relative to ``base_dir``, the directory of the file that names it)."""
    if NAME_PATTERN.fullmatch(spec):
        preset = resources.files(PRESET_PACKAGE) / f"{spec}.toml"
        if preset.is_file():
            return preset
    path = Path(spec).expanduser()
    return path if path.is_absolute() else base_dir / path


def load_mapping(spec: str, base_dir: Path, source: str, key: str) -> Mapping:
    """The mapping ``spec`` names (see :func:`locate`); ``source: key`` is the entry that
    names it (e.g. the config file and ``surfaces[0].mapping``), blamed when there is no such
    file. Raises ConfigError."""
    return _load(_find(spec, base_dir, source, key), nested=False)


def is_preset(spec: str) -> bool:
    """Whether a ``mapping`` value names a preset rather than a file."""
    return spec in preset_names()


def load_surface_mapping(surface: SurfaceConfig, index: int, config_source: str, config_dir: Path) -> Mapping:
    """The mapping of ``surfaces[index]`` of the config file ``config_source``, whose
    directory is ``config_dir``. Raises ConfigError."""
    return load_mapping(surface.mapping, config_dir, config_source, f"surfaces[{index}].mapping")


def _find(spec: str, base_dir: Path, source: str, key: str) -> Traversable:
    where = locate(spec, base_dir)
    if where.is_file():
        return where
    expected = f"expected a preset name ({', '.join(preset_names())}) or the path of a mapping file"
    raise ConfigError([f"{source}: {key}: {show_value(spec)} is neither a preset nor a file ({expected})"])


def _load(where: Traversable, nested: bool) -> Mapping:
    source = str(where)
    return parse_mapping(read_text(where), source, Path(source).parent, nested=nested)


def parse_mapping(text: str, source: str, base_dir: Path, *, nested: bool = False) -> Mapping:
    """Validate mapping TOML ``text``; ``source`` names it in error lines, ``base_dir``
    resolves a relative ``include``. ``nested``: this file is itself included (it may not
    include another). Raises ConfigError listing every problem."""
    document = parse_toml(text, source)
    reader = Reader(source)
    reader.keys(document, "", ("name", "include", "control", "lcd"))
    name = reader.get(document, "", "name", Text("a name for the mapping"), None)
    include = reader.get(document, "", "include", Text("a preset name or the path of a mapping file"), None)
    control = Table("a [[control]] table", partial(_control, source=source))
    controls = reader.get(document, "", "control", ListOf(control, "[[control]] tables"), ()) or ()
    lcd = Table("an [[lcd]] table", partial(_lcd, source=source))
    lcds = reader.get(document, "", "lcd", ListOf(lcd, "[[lcd]] tables"), ()) or ()
    if include is not None and nested:
        reader.error("include", f"{show_value(include)} is in an included mapping (expected includes one level deep)")
    if reader.errors:
        raise ConfigError(reader.errors)
    mapping = Mapping(name or Path(source).stem, source, controls, lcds)
    if include is None:
        return mapping
    return _merge(_load(_find(include, base_dir, source, "include"), nested=True), mapping, name)


def _merge(base: Mapping, own: Mapping, name: str | None) -> Mapping:
    """``own`` on top of ``base``: own controls replace base controls on the same MIDI source."""
    taken = {c.midi.key for c in own.controls if c.midi is not None}
    kept = tuple(c for c in base.controls if c.midi is None or c.midi.key not in taken)
    return Mapping(name or base.name, own.source, kept + own.controls, base.lcds + own.lcds)


# --- value specs -------------------------------------------------------------------------------


class _TargetValue(Spec):
    """A value as a target takes it; the vocabulary checks it against a config (``bind``)."""

    def describe(self) -> str:
        return "a value of the target: true/false, a level in dB, or a name or 0-based index"

    def convert(self, reader: Reader, path: str, value: Any) -> Any:
        if not isinstance(value, bool | int | float | str):
            raise wrong_type(value, self)
        return value


class _Ascii(Spec):
    def describe(self) -> str:
        return "printable ASCII text"

    def convert(self, reader: Reader, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise wrong_type(value, self)
        if not all(" " <= ch <= "~" for ch in value):
            raise Invalid(f"{show_value(value)} has characters an LCD cannot show (expected {self.describe()})")
        return value


_CHANNEL = Integer("a MIDI channel", 1, 16)
_BITS = Integer("a resolution in bits", choices=(7, 14))
_NUMBER_SPECS = {
    ("note", 7): Integer("a note number", 0, 127),
    ("cc", 7): Integer("a controller number", 0, 127),
    ("cc", 14): Integer("a controller number of a 14-bit pair (MSB; LSB = MSB + 32)", 0, 31),
    ("program", 7): Integer("a program number", 0, 127),
    ("nrpn", 7): Integer("an NRPN parameter number", 0, 16383),
    ("nrpn", 14): Integer("an NRPN parameter number", 0, 16383),
}
_TARGET = Choice(TARGETS, "a target")
_ENCODER = Choice(ENCODERS, "an encoder type")
_BUTTON = Choice(BUTTONS, "a button mode")
_TAPER = Choice(TAPERS, "a taper")
_RING = Choice(RINGS, "a Mackie LED ring mode")
_STEP = Number(-24.0, 24.0, "dB")
_LEVEL = Number(-144.0, 24.0, "dB")
_ACCELERATION = Number(0.0, 16.0, "", note=" (extra steps per tick when turned fast)")
_HOLD = Number(100.0, 5000.0, "ms")
_DATA = Integer("a data value", 0, 127)
_MODEL = Integer("a Mackie model byte", choices=(0x14, 0x15))


def _address(
    reader: Reader, path: str, table: dict[str, Any], types: tuple[str, ...], outgoing: bool = False
) -> Address:
    """``{ type, channel, note|control|program|parameter, bits }``. An ``outgoing`` program
    change has no number: the program it sends is the data value."""
    kind = reader.get(table, path, "type", Choice(types, "a MIDI message type"))
    key = None if outgoing and kind == "program" else NUMBER_KEYS.get(kind)
    resolution = kind in ("cc", "nrpn")
    if kind is None:  # unknown type: accept any number key rather than report it too
        known = ("type", "channel", "bits") + tuple(NUMBER_KEYS.values())
    else:
        known = ("type", "channel") + ((key,) if key else ()) + (("bits",) if resolution else ())
    reader.keys(table, path, known)
    channel = reader.get(table, path, "channel", _CHANNEL)
    default_bits = 14 if kind in ("pitchbend", "nrpn") else 7
    bits = reader.get(table, path, "bits", _BITS, default_bits) if resolution else default_bits
    number = None
    if key is not None and bits is not None:
        number = reader.get(table, path, key, _NUMBER_SPECS[(kind, bits)])
    return Address(kind, channel, number, bits or default_bits)


def parse_address(value: Any) -> Address | None:
    """A ``midi`` table as a mapping file has it, or None if it is not a valid MIDI source."""
    if not isinstance(value, dict):
        return None
    reader = Reader("")
    address = _address(reader, "midi", value, SOURCE_TYPES)
    return None if reader.errors else address


_SOURCE = Table(
    'a MIDI source such as { type = "cc", channel = 1, control = 7 }', partial(_address, types=SOURCE_TYPES)
)
_DESTINATION = partial(_address, types=FEEDBACK_TYPES, outgoing=True)


def _feedback(reader: Reader, path: str, table: dict[str, Any]) -> Feedback:
    """A control's feedback: an address plus ``on``, ``off``, ``ring``, ``values``."""
    own = ("on", "off", "ring", "values")
    address = _DESTINATION(reader, path, {k: v for k, v in table.items() if k not in own})
    feedback = Feedback(
        address,
        on=reader.get(table, path, "on", _DATA, 127),
        off=reader.get(table, path, "off", _DATA, 0),
        ring=reader.get(table, path, "ring", _RING, None),
        values=reader.get(
            table,
            path,
            "values",
            Table("a table of VALUE = data value", partial(_values, address=address)),
            (),
        ),
    )
    if feedback.ring is not None and (address.type, address.bits) != ("cc", 7):
        reader.error(join_key(path, "ring"), 'needs a 7-bit cc feedback (expected type = "cc")')
    return feedback


def _values(reader: Reader, path: str, table: dict[str, Any], address: Address) -> tuple[tuple[str, int], ...]:
    spec = Integer("a data value", 0, address.maximum if address.type != "program" else 127)
    return tuple((name, reader.get(table, path, name, spec)) for name in table)


_FEEDBACK = Table('a MIDI destination such as { type = "note", channel = 1, note = 8 }', _feedback)
_TOUCH = Table('a touch note such as { type = "note", channel = 1, note = 112 }', partial(_address, types=("note",)))

_CONTROL_KEYS = (
    "midi",
    "target",
    "encoder",
    "button",
    "value",
    "step_db",
    "min_db",
    "max_db",
    "taper",
    "acceleration",
    "pickup",
    "motorised",
    "touch",
    "hold_ms",
    "feedback",
)


def _control(reader: Reader, path: str, table: dict[str, Any], source: str) -> Control:
    reader.keys(table, path, _CONTROL_KEYS)

    def get(key: str, spec: Spec, default: Any = None) -> Any:
        return reader.get(table, path, key, spec, default)

    midi = get("midi", _SOURCE)
    target = reader.get(table, path, "target", _TARGET)
    feedback = get("feedback", _FEEDBACK)
    if "midi" not in table and "feedback" not in table:
        reader.error(
            path,
            "has neither midi nor feedback (expected a MIDI source in midi, an output in feedback, or both)",
        )
    control = Control(
        where=f"{source}: {path}",
        target=target,
        midi=midi,
        feedback=feedback,
        value=get("value", _TargetValue()),
        step_db=get("step_db", _STEP, DEFAULT_STEP_DB),
        min_db=get("min_db", _LEVEL),
        max_db=get("max_db", _LEVEL),
        taper=get("taper", _TAPER, "linear-db"),
        acceleration=get("acceleration", _ACCELERATION, 0.0),
        pickup=get("pickup", Boolean()),
        motorised=get("motorised", Boolean(), False),
        touch=get("touch", _TOUCH),
        hold_ms=get("hold_ms", _HOLD, DEFAULT_HOLD_MS),
    )
    control = _kind(reader, path, table, control, get("encoder", _ENCODER), get("button", _BUTTON))
    _check(reader, path, table, control)
    return control


def _kind(
    reader: Reader,
    path: str,
    table: dict[str, Any],
    control: Control,
    encoder: str | None,
    button: str | None,
) -> Control:
    """``control`` with its encoder or button mode, given or by default from its source:
    notes and program changes are buttons, pitch bend and NRPN absolute, cc absolute unless a
    button mode is given."""
    midi, target = control.midi, control.target
    if midi is None or midi.type is None:
        for key in ("encoder", "button"):
            if key in table and midi is None:
                reader.error(join_key(path, key), "does not apply without a midi source (expected midi too)")
        return control
    if encoder is not None and button is not None:
        reader.error(path, "has both encoder and button (expected one of them)")
        return control
    if midi.type in ("note", "program"):
        if encoder is not None:
            reader.error(join_key(path, "encoder"), f"does not apply to a {midi.type} source (expected button)")
        return replace(control, button=button or _default_button(reader, path, table, target))
    if midi.type in ("pitchbend", "nrpn") or midi.bits == 14:
        if button is not None:
            reader.error(
                join_key(path, "button"),
                f'does not apply to {midi.describe()} (expected encoder = "absolute")',
            )
        if encoder not in (None, "absolute"):
            reader.error(
                join_key(path, "encoder"),
                f'{show_value(encoder)} does not apply to {midi.describe()} (expected "absolute": relative encoders send 7-bit cc)',
            )
        return replace(control, encoder="absolute")
    return replace(control, button=button) if button else replace(control, encoder=encoder or "absolute")


def _default_button(reader: Reader, path: str, table: dict[str, Any], target: str | None) -> str | None:
    if "value" in table:
        return "press"
    if "step_db" in table:
        return "step"
    if target in BOOL_TARGETS:
        return "toggle"
    if target in ENUM_TARGETS:
        return "next"
    if target is not None:
        reader.error(
            join_key(path, "button"),
            f'missing for {target} (expected "press" with a value, or "step" with step_db)',
        )
    return None


#: Optional keys and the controls they apply to: (test, what the error says is expected).
_APPLIES: dict[str, tuple[Any, str]] = {
    "value": (lambda c: c.button in ("press", "momentary"), "only for press and momentary buttons"),
    "step_db": (
        lambda c: (
            c.encoder in RELATIVE_ENCODERS or c.button == "step" or (c.midi is not None and c.midi.type == "nrpn")
        ),
        "only for relative encoders, NRPN controls and step buttons",
    ),
    "min_db": (lambda c: c.absolute and c.target == "volume", "only for absolute volume controls"),
    "max_db": (lambda c: c.absolute and c.target == "volume", "only for absolute volume controls"),
    "taper": (lambda c: c.absolute and c.target == "volume", "only for absolute volume controls"),
    "acceleration": (
        lambda c: c.encoder in RELATIVE_ENCODERS and c.target == "volume",
        "only for relative volume encoders",
    ),
    "pickup": (lambda c: c.absolute, "only for absolute controls"),
    "motorised": (lambda c: c.absolute, "only for absolute controls"),
    "touch": (lambda c: c.absolute, "only for absolute controls"),
    "hold_ms": (lambda c: c.button == "latch", "only for latch buttons"),
}

#: Button modes and the targets they work on.
_BUTTON_TARGETS = {
    "toggle": (BOOL_TARGETS, "a switch: " + ", ".join(BOOL_TARGETS)),
    "latch": (BOOL_TARGETS, "a switch: " + ", ".join(BOOL_TARGETS)),
    "next": (ENUM_TARGETS, "a choice: " + ", ".join(ENUM_TARGETS)),
    "prev": (ENUM_TARGETS, "a choice: " + ", ".join(ENUM_TARGETS)),
    "step": (("volume",), "volume"),
}


def _check(reader: Reader, path: str, table: dict[str, Any], control: Control) -> None:
    """What each key means depends on the control's kind and target: report the combinations
    that cannot work."""
    for key, (applies, expected) in _APPLIES.items():
        if key in table and control.target is not None and not applies(control):
            reader.error(
                join_key(path, key),
                f"does not apply to {control.describe()} on {control.target} (expected {key} {expected})",
            )
    button, target = control.button, control.target
    if target is None:
        return
    if target in WRITE_ONLY_TARGETS and (control.midi is None or button != "press"):
        reader.error(
            join_key(path, "target"),
            f"{target} only sets other targets (expected a press button with a value)",
        )
    if button in _BUTTON_TARGETS and target not in _BUTTON_TARGETS[button][0]:
        reader.error(
            join_key(path, "button"),
            f"{show_value(button)} does not work on {target} (expected a target that is {_BUTTON_TARGETS[button][1]})",
        )
    if button in ("momentary", "latch") and control.midi is not None and control.midi.type == "program":
        reader.error(
            join_key(path, "button"),
            f"{show_value(button)} needs a release, which a program change has not (expected press, toggle, next, prev or step)",
        )
    if button == "press" and "value" not in table:
        reader.error(join_key(path, "value"), "missing (expected the value a press sets)")
    if button == "momentary" and "value" not in table and target not in BOOL_TARGETS:
        reader.error(join_key(path, "value"), f"missing (expected the value of {target} while held)")
    if "value" in table and control.value is not None:
        _check_value_type(reader, join_key(path, "value"), target, control.value)
    if control.min_db is not None and control.max_db is not None and not control.min_db < control.max_db:
        reader.error(
            join_key(path, "min_db"),
            f"{control.min_db:g} is not below max_db {control.max_db:g} (expected a lower level)",
        )
    if "step_db" in table and control.step_db == 0:
        reader.error(join_key(path, "step_db"), "0 does not move (expected a step other than 0 dB)")
    if control.feedback is not None:
        _check_feedback(reader, join_key(path, "feedback"), control)


def _check_value_type(reader: Reader, path: str, target: str, value: Any) -> None:
    if target in BOOL_TARGETS:
        ok, expected = isinstance(value, bool), "true or false"
    elif target in ENUM_TARGETS:
        ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
        expected = "a name or a 0-based index"
    else:
        ok, expected = isinstance(value, int | float) and not isinstance(value, bool), "a level in dB"
    if not ok:
        reader.error(path, f"{show_value(value)} is not a value of {target} (expected {expected})")


def _check_feedback(reader: Reader, path: str, control: Control) -> None:
    feedback, target = control.feedback, control.target
    if control.button == "step" or target in WRITE_ONLY_TARGETS:
        reader.error(path, f"{control.describe()} on {target} has no state to show (expected no feedback)")
    if feedback.values and target not in BOOL_TARGETS + ENUM_TARGETS:
        reader.error(
            join_key(path, "values"),
            f"does not apply to {target} (expected values only for switches and choices)",
        )
    if target in BOOL_TARGETS:
        for name, _ in feedback.values:
            if name not in ("on", "off"):
                reader.error(join_key(join_key(path, "values"), name), "is not a switch position (expected on or off)")


def _lcd(reader: Reader, path: str, table: dict[str, Any], source: str) -> Lcd:
    reader.keys(table, path, ("offset", "width", "target", "text", "model"))
    offset = reader.get(
        table, path, "offset", Integer("an LCD position (0-55 line 1, 56-111 line 2)", 0, LCD_CHARS - 1)
    )
    lcd = Lcd(
        where=f"{source}: {path}",
        offset=offset,
        width=reader.get(table, path, "width", Integer("a width in characters", 1, LCD_CHARS), 7),
        target=reader.get(table, path, "target", Choice(STATE_TARGETS, "a target with a value"), None),
        text=reader.get(table, path, "text", _Ascii(), None),
        model=reader.get(table, path, "model", _MODEL, MACKIE_MODEL),
    )
    if ("target" in table) == ("text" in table):
        reader.error(path, "needs one of target and text (expected a target to show or a fixed text)")
    if offset is not None and lcd.width is not None and offset + lcd.width > LCD_CHARS:
        reader.error(
            join_key(path, "width"),
            f"{lcd.width} runs past the LCD's end (expected at most {LCD_CHARS - offset} at offset {offset})",
        )
    return lcd


# --- binding to a config -----------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A mapping in a config's terms: controls whose values the vocabulary accepts (enum
    indices turned into names), ``errors`` (``FILE: control[3].value: ...`` lines) and
    ``unused`` (controls whose index lies beyond the configured choices)."""

    mapping: Mapping
    errors: tuple[str, ...]
    unused: tuple[str, ...]


def bind(mapping: Mapping, vocabulary: Vocabulary) -> Bound:
    """Check ``mapping``'s values against ``vocabulary`` (a config's sets and sources)."""
    controls, errors, unused = [], [], []
    for control in mapping.controls:
        problems = _bind_errors(control, vocabulary)
        if problems:
            errors += problems
            continue
        value = control.value
        if value is None and control.button == "momentary":
            value = True
        if value is not None:
            try:
                value = vocabulary.parse(control.target, value)
            except TargetError as exc:
                unused.append(f"{control.where}: unused ({exc})")
                continue
        controls.append(replace(control, value=value))
    return Bound(replace(mapping, controls=tuple(controls)), tuple(errors), tuple(unused))


def _bind_errors(control: Control, vocabulary: Vocabulary) -> list[str]:
    """Values that can never work with this config: a name that is not a choice, a level
    outside the volume range. (An index beyond the choices only leaves the control unused.)"""
    errors = []
    value = control.value
    if value is not None and not (control.target in ENUM_TARGETS and isinstance(value, int)):
        try:
            vocabulary.parse(control.target, value)
        except TargetError as exc:
            errors.append(f"{control.where}.value: {exc}")
    if control.feedback is not None and control.target in ENUM_TARGETS:
        choices = vocabulary.choices[control.target]
        for name, _ in control.feedback.values:
            if name not in choices:
                errors.append(
                    f"{control.where}.feedback.values.{name}: is not a {control.target} choice (expected one of {', '.join(choices)})"
                )
    return errors
