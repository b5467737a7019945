"""Kinds of value in controlroom's TOML files, and the reader that collects every problem.

Validation follows Mopidy's config schema: each kind of value is a small *spec* that converts
one TOML value or says what is wrong with it, and a ``Reader`` walks the document collecting
every problem as one line ``FILE: key.path: what is wrong (what was expected)``. The config
(``schema``) and the control-surface mappings (``midi.mapping``) are read with these, so the
two kinds of file read and fail alike.

Names of sources, speaker sets, listening levels and surfaces become OSC address parts and are
typed at the ``controlroom ctl`` prompt, so they must match ``[a-z0-9][a-z0-9_-]*``, must not
be all digits (enum targets also take a 0-based index) and must not be one of the step words
``next``, ``prev``, ``toggle``, ``step``.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from controlroom.daemon.config.model import RESERVED_NAMES, IPNetwork

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


class Invalid(Exception):
    """What is wrong with one value: ``"... (expected ...)"``."""


def join_key(path: str, key: str) -> str:
    """``path.key``, quoting the key as TOML would when it is not a bare key (a key longer
    than 40 characters is cut short: a hostile file's megabyte key is no error line)."""
    if len(key) > 40:
        key = key[:37] + "..."
    if not _BARE_KEY.fullmatch(key):
        key = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{path}.{key}" if path else key


def show_value(value: Any) -> str:
    """A value as it would be written in TOML, shortened for an error line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, list):
        text = "[" + ", ".join(show_value(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{join_key('', k)} = {show_value(v)}" for k, v in value.items()) + " }"
    else:
        text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    kinds = {int: "an integer", float: "a float", str: "a string", list: "an array", dict: "a table"}
    return kinds.get(type(value), "a date/time")


def wrong_type(value: Any, spec: Spec) -> Invalid:
    return Invalid(f"{show_value(value)} is {_kind(value)} (expected {spec.describe()})")


def _hint(word: str, choices: tuple[str, ...]) -> str:
    """``did you mean 'x'?`` for a near miss, else the list of what is accepted."""
    # difflib is quadratic in the length of the word: a megabyte-long one would take hours
    close = difflib.get_close_matches(word, choices, n=1) if len(word) <= 100 else []
    if close:
        return f"did you mean {close[0]!r}?"
    return "expected one of: " + (", ".join(choices) or "none are defined")


def _count(low: int, high: int | None) -> str:
    """How many entries a list takes, as a phrase ending in a space ("1 or 2 ", "up to 16 ")."""
    if high is None:
        return f"at least {low} " if low else ""
    if low == 0:
        return f"up to {high} "
    return f"{low} or {high} " if high == low + 1 else f"{low} to {high} "


class Spec:
    """A kind of value: ``convert`` returns the Python value or raises Invalid."""

    def describe(self) -> str:
        raise NotImplementedError

    def convert(self, reader: Reader, path: str, value: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Spec):
    """A finite int or float (booleans are not numbers) within bounds, as float.

    ``low_name``/``high_name`` name a bound that comes from elsewhere (another key, Nyquist),
    so that the error says which limit was crossed.
    """

    low: float | None
    high: float | None
    unit: str
    low_open: bool = False
    high_open: bool = False
    low_name: str | None = None
    high_name: str | None = None
    note: str = ""

    def describe(self) -> str:
        lo = f"{'>' if self.low_open else '>='} {self.low}"
        hi = f"{'<' if self.high_open else '<='} {self.high}"
        if self.low is None:
            bounds = hi
        elif self.high is None:
            bounds = lo
        elif self.low_open or self.high_open:
            bounds = f"{lo} and {hi}"
        else:
            bounds = f"from {self.low} to {self.high}"
        return f"a number {bounds}{' ' if self.unit else ''}{self.unit}{self.note}"

    def convert(self, reader: Reader, path: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong_type(value, self)
        if not math.isfinite(value):
            raise Invalid(f"{show_value(value)} is not a finite number (expected {self.describe()})")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise self._outside(value, self.low_open, "below", self.low_name)
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise self._outside(value, self.high_open, "above", self.high_name)
        return float(value)

    def _outside(self, value: float, open_: bool, side: str, bound: str | None) -> Invalid:
        what = f"is {'at or ' if open_ else ''}{side} {bound}" if bound else "is out of range"
        return Invalid(f"{show_value(value)} {what} (expected {self.describe()})")


@dataclass(frozen=True)
class Integer(Spec):
    """An integer (not a boolean, not a float) from ``low`` to ``high``, or one of ``choices``."""

    noun: str
    low: int | None = None
    high: int | None = None
    choices: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return f"{self.noun}, one of {', '.join(map(str, self.choices))}"
        return f"{self.noun} from {self.low} to {self.high}"

    def convert(self, reader: Reader, path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type(value, self)
        if self.choices and value not in self.choices:
            raise Invalid(f"{value} is not supported (expected {self.describe()})")
        if not self.choices and not self.low <= value <= self.high:
            raise Invalid(f"{value} is out of range (expected {self.describe()})")
        return value


@dataclass(frozen=True)
class Text(Spec):
    """A non-empty string."""

    noun: str = "a non-empty string"

    def describe(self) -> str:
        return self.noun

    def convert(self, reader: Reader, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise wrong_type(value, self)
        if not value.strip():
            raise Invalid(f"{show_value(value)} is empty (expected {self.describe()})")
        return value


@dataclass(frozen=True)
class Choice(Spec):
    """One of a fixed set of strings, with a did-you-mean for near misses."""

    choices: tuple[str, ...]
    noun: str

    def describe(self) -> str:
        return f"{self.noun}: one of {', '.join(self.choices) or '(none defined)'}"

    def convert(self, reader: Reader, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise wrong_type(value, self)
        if value not in self.choices:
            raise Invalid(f"{show_value(value)} is not {self.noun} ({_hint(value, self.choices)})")
        return value


class Boolean(Spec):
    """``true`` or ``false`` (not 0/1 or a string: those would be guesses)."""

    def describe(self) -> str:
        return "true or false"

    def convert(self, reader: Reader, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise wrong_type(value, self)
        return value


class Name(Spec):
    """A name that becomes an OSC address part (see module docstring)."""

    def describe(self) -> str:
        return "a name of lower-case letters, digits, '-' and '_', starting with a letter or digit"

    def convert(self, reader: Reader, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise wrong_type(value, self)
        if not NAME_PATTERN.fullmatch(value):
            raise Invalid(f"{show_value(value)} is not a valid name (expected {self.describe()})")
        if value.isdigit():
            # enum targets also take a 0-based index, so a name of digits would be ambiguous
            raise Invalid(f"{show_value(value)} is all digits (expected a name with a letter in it)")
        if value in RESERVED_NAMES:
            others = ", ".join(RESERVED_NAMES)
            raise Invalid(f"{show_value(value)} is reserved (expected a name other than {others})")
        return value


class AbsolutePath(Spec):
    """A file path, absolute after ``~`` expansion (a daemon's working directory is arbitrary)."""

    def describe(self) -> str:
        return 'an absolute path (~ allowed), e.g. "/var/lib/controlroom/state.json"'

    def convert(self, reader: Reader, path: str, value: Any) -> Path:
        text = Text(self.describe()).convert(reader, path, value)
        result = Path(text).expanduser()
        if not result.is_absolute():
            raise Invalid(f"{show_value(value)} is a relative path (expected {self.describe()})")
        return result


@dataclass(frozen=True)
class Address(Spec):
    """``"host:port"`` (``"[v6]:port"`` for IPv6) as ``(host, port)``."""

    port: Integer

    def describe(self) -> str:
        return 'a "host:port" address such as "127.0.0.1:9000" or "[::1]:9000"'

    def convert(self, reader: Reader, path: str, value: Any) -> tuple[str, int]:
        if not isinstance(value, str):
            raise wrong_type(value, self)
        host, sep, port = value.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()):
            raise Invalid(f"{show_value(value)} has no port number (expected {self.describe()})")
        bracketed = host.startswith("[") and host.endswith("]")
        host = host[1:-1] if bracketed else host
        # an IPv6 address must be bracketed, or its last group would be taken for the port
        if not _valid_host(host) or (":" in host and not bracketed):
            raise Invalid(f"{show_value(value)} has an invalid host {show_value(host)} (expected {self.describe()})")
        if len(port) > 5:  # beyond any port, and int() refuses thousands of digits
            raise Invalid(f"port of {show_value(value)}: out of range (expected {self.port.describe()})")
        try:
            number = self.port.convert(reader, path, int(port))
        except Invalid as exc:
            raise Invalid(f"port of {show_value(value)}: {exc}") from None
        return host, number


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
    return True


class Device(Spec):
    """An audio device: a name substring, or a PortAudio device index."""

    def describe(self) -> str:
        return "a device name (substring) or index"

    def convert(self, reader: Reader, path: str, value: Any) -> str | int:
        if isinstance(value, int) and not isinstance(value, bool):
            return Integer("a device index", 0, 1023).convert(reader, path, value)
        return Text(self.describe()).convert(reader, path, value)


class Network(Spec):
    """A CIDR network; host bits are ignored and a bare address means just that host."""

    def describe(self) -> str:
        return 'a CIDR network such as "192.168.1.0/24" or an address'

    def convert(self, reader: Reader, path: str, value: Any) -> IPNetwork:
        if not isinstance(value, str):
            raise wrong_type(value, self)
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise Invalid(f"{show_value(value)} is not a network (expected {self.describe()})") from None


@dataclass(frozen=True)
class ListOf(Spec):
    """An array of ``item``s, ``low`` to ``high`` long, optionally without repeats, as a tuple."""

    item: Spec
    plural: str
    low: int = 0
    high: int | None = None
    distinct: bool = False
    example: str = ""

    def describe(self) -> str:
        example = f", e.g. {self.example}" if self.example else ""
        return f"a list of {_count(self.low, self.high)}{self.plural}{example}"

    def convert(self, reader: Reader, path: str, value: Any) -> tuple[Any, ...] | None:
        if not isinstance(value, list):
            raise wrong_type(value, self)
        if len(value) < self.low or (self.high is not None and len(value) > self.high):
            raise Invalid(f"{show_value(value)} has {len(value)} entries (expected {self.describe()})")
        items = tuple(reader.check(self.item, f"{path}[{i}]", v) for i, v in enumerate(value))
        if any(item is None for item in items):
            return None
        if self.distinct:
            for i, item in enumerate(items):
                if item in items[:i]:
                    raise Invalid(f"{show_value(value[i])} is listed twice (expected {self.describe()}, each once)")
        return items


@dataclass(frozen=True)
class Table(Spec):
    """An inline or standard table, built by ``build(reader, path, table)``."""

    noun: str
    build: Callable[[Reader, str, dict[str, Any]], Any]

    def describe(self) -> str:
        return self.noun

    def convert(self, reader: Reader, path: str, value: Any) -> Any:
        if not isinstance(value, dict):
            raise wrong_type(value, self)
        return self.build(reader, path, value)


class Reader:
    """Walks a TOML document, collecting ``FILE: key.path: message`` lines."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{self.source}: {path}: {message}")

    def check(self, spec: Spec, path: str, value: Any) -> Any:
        """``spec``'s conversion of ``value``, or None after recording what is wrong."""
        try:
            return spec.convert(self, path, value)
        except Invalid as exc:
            self.error(path, str(exc))
            return None

    def get(self, table: dict[str, Any], path: str, key: str, spec: Spec, default: Any = MISSING) -> Any:
        """``table[key]`` converted by ``spec``; ``default`` when absent (MISSING: required)."""
        where = join_key(path, key)
        if key in table:
            return self.check(spec, where, table[key])
        if default is MISSING:
            self.error(where, f"missing (expected {spec.describe()})")
            return None
        return default

    def keys(self, table: dict[str, Any], path: str, known: tuple[str, ...]) -> None:
        """Report every key of ``table`` that is not ``known``, with a did-you-mean."""
        for key in table:
            if key not in known:
                self.error(join_key(path, key), f"unknown key ({_hint(key, known)})")

    def section(self, document: dict[str, Any], name: str, known: tuple[str, ...]) -> dict[str, Any]:
        """Top-level table ``[name]`` with its keys checked; {} when absent or not a table."""
        table = self.check(Table(f"a table [{name}]", as_is), name, document.get(name, {}))
        if table is None:
            return {}
        self.keys(table, name, known)
        return table


def as_is(reader: Reader, path: str, table: dict[str, Any]) -> dict[str, Any]:
    """Builder of a table whose keys are checked by the caller."""
    return table


def default_of(cls: type, name: str) -> Any:
    """The dataclass default of ``cls.name``: the parser's defaults live on the dataclasses."""
    return next(f.default for f in fields(cls) if f.name == name)


def keys_of(cls: type) -> tuple[str, ...]:
    """TOML keys of a table that maps onto ``cls``: its fields except ``name``, which is the key."""
    return tuple(f.name for f in fields(cls) if f.name != "name")
