"""The configuration file (DESIGN.md §5): TOML in, frozen dataclasses out, every error at once.

Validation follows Mopidy's config schema: each kind of value is a small *spec* that converts
one TOML value or says what is wrong with it, and a reader walks the document collecting every
problem as one line ``FILE: key.path: what is wrong (what was expected)``. Only when the whole
file has been read is :class:`~controlroom.daemon.errors.ConfigError` raised, with all lines.

Units: levels and gains in dB, frequencies in Hz, times in ms, channel numbers 1-based as printed
on audio interfaces. Array indices in key paths (``eq[2]``) count from 0, as TOML tools do.

Names of sources, speaker sets, listening levels and surfaces become OSC address parts and MQTT
topics, and are typed at the ``controlroom ctl`` prompt, so they must match
``[a-z0-9][a-z0-9_-]*``, must not be all digits (enum targets also take a 0-based index) and
must not be one of the step words ``next``, ``prev``, ``toggle``, ``step``. A source and a
speaker set may share a name (they are values of different targets), and a source may be
called ``a`` or ``b`` (the ``ab`` target is separate from ``source``).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import partial
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from controlroom.daemon.core.targets import MATCH
from controlroom.daemon.errors import ConfigError
from controlroom.dsp import layout
from controlroom.dsp.biquad import FILTER_TYPES, GAIN_TYPES, SHELF_TYPES, Biquad
from controlroom.dsp.emulation import PROFILE_NAMES

#: Audio backends: PortAudio hardware, or a self-clocked thread with no hardware.
BACKENDS = ("portaudio", "virtual")
#: Sample rates (Hz) the monitor path is designed for.
SAMPLERATES = (44100, 48000, 88200, 96000, 176400, 192000)
#: Block sizes (frames): powers of two from 16 to 4096.
BLOCKSIZES = tuple(2**k for k in range(4, 13))
#: Loudness-match modes of the ``[ab]`` pair (DESIGN.md §9): the ``match`` target's values.
MATCH_MODES = MATCH
#: Built-in emulation profiles a speaker set may ``emulate`` (defined with their filters in dsp).
EMULATION_PROFILES = PROFILE_NAMES
#: Highest 1-based channel number accepted anywhere: the engine's compiled limit.
MAX_CHANNEL = layout.MAX_CHANNELS
#: Most sources and speaker sets a config may define: the engine's compiled limits.
MAX_NAMED = {"sources": layout.MAX_SOURCES, "speakers": layout.MAX_SETS}
#: Configured EQ bands per speaker set (the engine adds an emulation profile's on top).
MAX_EQ_BANDS = 16
#: Bands of a user-defined emulation profile: whatever a set's EQ holds, the two fit the engine.
MAX_EMULATION_BANDS = layout.MAX_BANDS - MAX_EQ_BANDS
#: Words ``ctl`` and OSC use for relative steps; a name equal to one would be ambiguous.
RESERVED_NAMES = ("next", "prev", "toggle", "step")

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_TOML_POSITION = re.compile(r"\s*\((at line (\d+), column (\d+)|at end of document)\)\s*$")

#: The built-in configuration (``controlroom demo``, or when no file is found). It goes through
#: the same validation as any file, so it cannot drift out of the schema.
DEFAULT_TOML = """\
[audio]
backend = "virtual"
samplerate = 48000
blocksize = 64

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]

[speakers.studio]
outputs = [1, 2]
sub = { output = 3, crossover_hz = 80.0 }
[speakers.consumer]
outputs = [4, 5]
trim_db = -1.5
[speakers.crap]
outputs = [6]
[speakers.phone]
outputs = [1, 2]
emulate = "phone"

[ab]
a = "mix"
b = "ref"
match = "auto"

[osc]
listen = "127.0.0.1:9000"
allow = ["127.0.0.0/8"]
"""

#: A network of the OSC allowlist.
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Fallback locations after ``-c`` and ``$CONTROLROOM_CONFIG`` (module attributes so that tests
#: can point them elsewhere).
LOCAL_CONFIG = Path("controlroom.toml")
SYSTEM_CONFIG = Path("/etc/controlroom/config.toml")


# --- the configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioConfig:
    """``[audio]``: the interface. Rates in Hz, block size in frames, channel counts."""

    backend: str  # "portaudio" | "virtual"
    device: str | int | None  # name substring or PortAudio index; None = system default
    samplerate: int
    blocksize: int
    input_channels: int  # default: the highest input channel any source uses
    output_channels: int  # default: the highest output any speaker set or sub uses


@dataclass(frozen=True)
class MonitorConfig:
    """``[monitor]``: master level and protection. Levels in dB, times in ms."""

    volume_db: float = -20.0  # initial volume when no state is saved
    min_volume_db: float = -80.0
    max_volume_db: float = 0.0  # volume never exceeds this, whatever a control sends
    startup_max_volume_db: float = -20.0  # cap on the restored volume at start-up
    dim_db: float = -20.0
    ramp_ms: float = 20.0  # master gain ramp
    crossfade_ms: float = 20.0  # source / speaker-set switch
    ceiling_dbfs: float = -0.3  # output limiter and hard clip
    reference_spl_db: float | None = None  # dB SPL at volume 0 dB with -20 dBFS RMS pink noise


@dataclass(frozen=True)
class SourceConfig:
    """``[sources.NAME]``: 1 (mono) or 2 (stereo) 1-based input channels and a trim in dB."""

    name: str
    channels: tuple[int, ...]
    trim_db: float = 0.0


#: An EQ band as configured: the DSP layer's own description (type, freq_hz, gain_db, q, slope).
EqBand = Biquad


@dataclass(frozen=True)
class SubConfig:
    """A speaker set's subwoofer: 1-based output, LR4 crossover (Hz), trim (dB)."""

    output: int
    crossover_hz: float = 80.0
    trim_db: float = 0.0


@dataclass(frozen=True)
class SpeakerSetConfig:
    """``[speakers.NAME]``: 1 or 2 1-based outputs (one = mono sum), trim dB, delay ms, EQ."""

    name: str
    outputs: tuple[int, ...]
    trim_db: float = 0.0
    delay_ms: float = 0.0
    eq: tuple[Biquad, ...] = ()
    sub: SubConfig | None = None
    emulate: str | None = None  # one of EMULATION_PROFILES or a user-defined [emulations.NAME]


@dataclass(frozen=True)
class InsertConfig:
    """``[inserts.NAME]``: ``source`` is sent to the ``send`` outputs (1-based) of outboard
    gear whose output comes back on the ``returns`` inputs (TOML key ``return``); the return
    is a source named NAME. ``measure_dbfs``: peak level of the measurement noise."""

    name: str
    send: tuple[int, ...]
    returns: tuple[int, ...]
    source: str
    measure_dbfs: float = -20.0


@dataclass(frozen=True)
class EmulationConfig:
    """``[emulations.NAME]``: a user-defined emulation profile, EQ bands and a mono flag."""

    name: str
    eq: tuple[Biquad, ...] = ()
    mono: bool = False  # play (L+R)/2 on every output, as a single-driver device does


@dataclass(frozen=True)
class AbConfig:
    """``[ab]``: the compared pair of source names, loudness matching, boost cap (dB), and the
    loudness window (s) matching compares."""

    a: str
    b: str
    match: str = "auto"  # one of MATCH_MODES
    max_boost_db: float = 6.0  # matching never raises a quieter source by more than this
    window_s: float = 10.0  # gated loudness over this many seconds is what matching compares


@dataclass(frozen=True)
class OscConfig:
    """``[osc]``: UDP listen address, sender allowlist, clients that always get feedback."""

    host: str = "127.0.0.1"
    port: int = 9000  # 0 = any free port
    allow: tuple[IPNetwork, ...] = (
        ipaddress.IPv4Network("127.0.0.0/8"),
    )
    clients: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class SurfaceConfig:
    """``[[surfaces]]``: MIDI port names (substrings) and a mapping preset name or path."""

    name: str
    input: str | None
    output: str | None
    mapping: str


@dataclass(frozen=True)
class MidiConfig:
    """``[midi]``: mido backend, e.g. ``mido.backends.rtmidi/UNIX_JACK``; None = MIDO_BACKEND."""

    backend: str | None = None


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: where targets' values are saved; None = $STATE_DIRECTORY or XDG state dir."""

    path: Path | None = None


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``source`` is the file it came from (or ``<default>``)."""

    source: str
    audio: AudioConfig
    monitor: MonitorConfig
    sources: dict[str, SourceConfig]  # in file order
    speakers: dict[str, SpeakerSetConfig]  # in file order
    ab: AbConfig | None
    osc: OscConfig
    surfaces: tuple[SurfaceConfig, ...]
    midi: MidiConfig
    state: StateConfig
    levels: dict[str, float]  # named listening levels (dB), within [min_volume_db, max_volume_db]
    emulations: dict[str, EmulationConfig] = field(default_factory=dict)  # user-defined, file order
    inserts: dict[str, InsertConfig] = field(default_factory=dict)  # their returns are in sources too

    @property
    def default_source(self) -> str:
        """Name of the source heard when nothing else is known: the first one defined."""
        return next(iter(self.sources))

    @property
    def default_speakers(self) -> str:
        """Name of the speaker set played when nothing else is known: the first one defined."""
        return next(iter(self.speakers))


# --- public functions ---------------------------------------------------------------------------


def find_config(explicit: str | None) -> Path | None:
    """The config file to use (DESIGN.md §5), or None for the built-in default.

    Order: ``explicit`` (``-c``), ``$CONTROLROOM_CONFIG``, ``./controlroom.toml``,
    ``$XDG_CONFIG_HOME/controlroom/config.toml`` (``~/.config`` when unset),
    ``/etc/controlroom/config.toml``. A file named by ``-c`` or the environment must exist:
    falling back to another file would silently run a different studio.
    """
    for given, origin in ((explicit, "-c"), (os.environ.get("CONTROLROOM_CONFIG"), "$CONTROLROOM_CONFIG")):
        if given:
            path = Path(given).expanduser()
            if not path.exists():
                raise ConfigError([f"{given}: no such config file (given by {origin})"])
            return path
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    config_home = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"
    for path in (LOCAL_CONFIG, config_home / "controlroom" / "config.toml", SYSTEM_CONFIG):
        if path.is_file():
            return path
    return None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at ``path``; raises ConfigError listing every problem."""
    return parse_config(read_text(path), os.fspath(path))


def read_text(path: str | os.PathLike[str] | Traversable) -> str:
    """The UTF-8 text of a TOML file (a path or a package resource); ConfigError if unreadable."""
    try:
        data = (path if isinstance(path, Traversable) else Path(path)).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{_source_name(path)}: cannot read ({exc.strerror or exc})"]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"byte {exc.start} is not UTF-8 (expected a UTF-8 TOML file)"
        raise ConfigError([f"{_source_name(path)}: {message}"]) from None


def _source_name(path: str | os.PathLike[str] | Traversable) -> str:
    return os.fspath(path) if isinstance(path, str | os.PathLike) else str(path)


def parse_config(text: str, source: str = "<default>") -> Config:
    """Validate TOML ``text``; ``source`` names it in error lines. Raises ConfigError."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_error(source, exc)]) from None
    reader = _Reader(source)
    config = _config(reader, document)
    if reader.errors:
        raise ConfigError(reader.errors)
    return config


def default_config() -> Config:
    """The built-in configuration: virtual backend, sources mix/ref, sets studio/consumer/crap/phone."""
    return parse_config(DEFAULT_TOML, "<default>")


def _syntax_error(source: str, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    where = "end of document"
    if match:
        message = message[: match.start()]
        if match.group(2):
            where = f"line {match.group(2)}, column {match.group(3)}"
    return f"{source}: {where}: invalid TOML ({message[:1].lower()}{message[1:]})"


# --- value specs: one per kind of value ----------------------------------------------------------


class _Invalid(Exception):
    """What is wrong with one value: ``"... (expected ...)"``."""


def _join(path: str, key: str) -> str:
    """``path.key``, quoting the key as TOML would when it is not a bare key."""
    if not _BARE_KEY.fullmatch(key):
        key = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    """A value as it would be written in TOML, shortened for an error line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{_join('', k)} = {_show(v)}" for k, v in value.items()) + " }"
    else:
        text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    kinds = {int: "an integer", float: "a float", str: "a string", list: "an array", dict: "a table"}
    return kinds.get(type(value), "a date/time")


def _wrong_type(value: Any, spec: _Spec) -> _Invalid:
    return _Invalid(f"{_show(value)} is {_kind(value)} (expected {spec.describe()})")


def _hint(word: str, choices: tuple[str, ...]) -> str:
    """``did you mean 'x'?`` for a near miss, else the list of what is accepted."""
    close = difflib.get_close_matches(word, choices, n=1)
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


class _Spec:
    """A kind of value: ``convert`` returns the Python value or raises _Invalid."""

    def describe(self) -> str:
        raise NotImplementedError

    def convert(self, reader: _Reader, path: str, value: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class _Number(_Spec):
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

    def convert(self, reader: _Reader, path: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(value, self)
        if not math.isfinite(value):
            raise _Invalid(f"{_show(value)} is not a finite number (expected {self.describe()})")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise self._outside(value, self.low_open, "below", self.low_name)
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise self._outside(value, self.high_open, "above", self.high_name)
        return float(value)

    def _outside(self, value: float, open_: bool, side: str, bound: str | None) -> _Invalid:
        what = f"is {'at or ' if open_ else ''}{side} {bound}" if bound else "is out of range"
        return _Invalid(f"{_show(value)} {what} (expected {self.describe()})")


@dataclass(frozen=True)
class _Integer(_Spec):
    """An integer (not a boolean, not a float) from ``low`` to ``high``, or one of ``choices``."""

    noun: str
    low: int | None = None
    high: int | None = None
    choices: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return f"{self.noun}, one of {', '.join(map(str, self.choices))}"
        return f"{self.noun} from {self.low} to {self.high}"

    def convert(self, reader: _Reader, path: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(value, self)
        if self.choices and value not in self.choices:
            raise _Invalid(f"{value} is not supported (expected {self.describe()})")
        if not self.choices and not self.low <= value <= self.high:
            raise _Invalid(f"{value} is out of range (expected {self.describe()})")
        return value


@dataclass(frozen=True)
class _Text(_Spec):
    """A non-empty string."""

    noun: str = "a non-empty string"

    def describe(self) -> str:
        return self.noun

    def convert(self, reader: _Reader, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _wrong_type(value, self)
        if not value.strip():
            raise _Invalid(f"{_show(value)} is empty (expected {self.describe()})")
        return value


@dataclass(frozen=True)
class _Choice(_Spec):
    """One of a fixed set of strings, with a did-you-mean for near misses."""

    choices: tuple[str, ...]
    noun: str

    def describe(self) -> str:
        return f"{self.noun}: one of {', '.join(self.choices) or '(none defined)'}"

    def convert(self, reader: _Reader, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _wrong_type(value, self)
        if value not in self.choices:
            raise _Invalid(f"{_show(value)} is not {self.noun} ({_hint(value, self.choices)})")
        return value


class _Boolean(_Spec):
    """``true`` or ``false`` (not 0/1 or a string: those would be guesses)."""

    def describe(self) -> str:
        return "true or false"

    def convert(self, reader: _Reader, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _wrong_type(value, self)
        return value


class _Name(_Spec):
    """A name that becomes an OSC address part and MQTT topic level (see module docstring)."""

    def describe(self) -> str:
        return "a name of lower-case letters, digits, '-' and '_', starting with a letter or digit"

    def convert(self, reader: _Reader, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _wrong_type(value, self)
        if not NAME_PATTERN.fullmatch(value):
            raise _Invalid(f"{_show(value)} is not a valid name (expected {self.describe()})")
        if value.isdigit():
            # enum targets also take a 0-based index, so a name of digits would be ambiguous
            raise _Invalid(f"{_show(value)} is all digits (expected a name with a letter in it)")
        if value in RESERVED_NAMES:
            others = ", ".join(RESERVED_NAMES)
            raise _Invalid(f"{_show(value)} is reserved (expected a name other than {others})")
        return value


class _AbsolutePath(_Spec):
    """A file path, absolute after ``~`` expansion (a daemon's working directory is arbitrary)."""

    def describe(self) -> str:
        return 'an absolute path (~ allowed), e.g. "/var/lib/controlroom/state.json"'

    def convert(self, reader: _Reader, path: str, value: Any) -> Path:
        text = _Text(self.describe()).convert(reader, path, value)
        result = Path(text).expanduser()
        if not result.is_absolute():
            raise _Invalid(f"{_show(value)} is a relative path (expected {self.describe()})")
        return result


@dataclass(frozen=True)
class _Address(_Spec):
    """``"host:port"`` (``"[v6]:port"`` for IPv6) as ``(host, port)``."""

    port: _Integer

    def describe(self) -> str:
        return 'a "host:port" address such as "127.0.0.1:9000" or "[::1]:9000"'

    def convert(self, reader: _Reader, path: str, value: Any) -> tuple[str, int]:
        if not isinstance(value, str):
            raise _wrong_type(value, self)
        host, sep, port = value.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()):
            raise _Invalid(f"{_show(value)} has no port number (expected {self.describe()})")
        bracketed = host.startswith("[") and host.endswith("]")
        host = host[1:-1] if bracketed else host
        # an IPv6 address must be bracketed, or its last group would be taken for the port
        if not _valid_host(host) or (":" in host and not bracketed):
            raise _Invalid(f"{_show(value)} has an invalid host {host!r} (expected {self.describe()})")
        try:
            number = self.port.convert(reader, path, int(port))
        except _Invalid as exc:
            raise _Invalid(f"port of {_show(value)}: {exc}") from None
        return host, number


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
    return True


class _Device(_Spec):
    """An audio device: a name substring, or a PortAudio device index."""

    def describe(self) -> str:
        return "a device name (substring) or index"

    def convert(self, reader: _Reader, path: str, value: Any) -> str | int:
        if isinstance(value, int) and not isinstance(value, bool):
            return _Integer("a device index", 0, 1023).convert(reader, path, value)
        return _Text(self.describe()).convert(reader, path, value)


class _Network(_Spec):
    """A CIDR network; host bits are ignored and a bare address means just that host."""

    def describe(self) -> str:
        return 'a CIDR network such as "192.168.1.0/24" or an address'

    def convert(self, reader: _Reader, path: str, value: Any) -> IPNetwork:
        if not isinstance(value, str):
            raise _wrong_type(value, self)
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _Invalid(f"{_show(value)} is not a network (expected {self.describe()})") from None


@dataclass(frozen=True)
class _List(_Spec):
    """An array of ``item``s, ``low`` to ``high`` long, optionally without repeats, as a tuple."""

    item: _Spec
    plural: str
    low: int = 0
    high: int | None = None
    distinct: bool = False
    example: str = ""

    def describe(self) -> str:
        example = f", e.g. {self.example}" if self.example else ""
        return f"a list of {_count(self.low, self.high)}{self.plural}{example}"

    def convert(self, reader: _Reader, path: str, value: Any) -> tuple[Any, ...] | None:
        if not isinstance(value, list):
            raise _wrong_type(value, self)
        if len(value) < self.low or (self.high is not None and len(value) > self.high):
            raise _Invalid(f"{_show(value)} has {len(value)} entries (expected {self.describe()})")
        items = tuple(reader.check(self.item, f"{path}[{i}]", v) for i, v in enumerate(value))
        if any(item is None for item in items):
            return None
        if self.distinct:
            for i, item in enumerate(items):
                if item in items[:i]:
                    raise _Invalid(f"{_show(value[i])} is listed twice (expected {self.describe()}, each once)")
        return items


@dataclass(frozen=True)
class _Table(_Spec):
    """An inline or standard table, built by ``build(reader, path, table)``."""

    noun: str
    build: Callable[[_Reader, str, dict[str, Any]], Any]

    def describe(self) -> str:
        return self.noun

    def convert(self, reader: _Reader, path: str, value: Any) -> Any:
        if not isinstance(value, dict):
            raise _wrong_type(value, self)
        return self.build(reader, path, value)


_CHANNEL = _Integer("a 1-based channel number", 1, MAX_CHANNEL)
_CHANNELS = _List(_CHANNEL, "1-based channel numbers", 1, 2, distinct=True, example="[1, 2]")
_CHANNEL_COUNT = _Integer("a channel count", 1, MAX_CHANNEL)
_NAME = _Name()
_BACKEND = _Choice(BACKENDS, "a known backend")
_SAMPLERATE = _Integer("a sample rate in Hz", choices=SAMPLERATES)
_BLOCKSIZE = _Integer("a block size in frames", choices=BLOCKSIZES)
_TRIM = _Number(-24.0, 24.0, "dB")
_MEASURE_LEVEL = _Number(-60.0, -6.0, "dBFS")
_VOLUME = _Number(-144.0, 24.0, "dB")
_DIM = _Number(-80.0, 0.0, "dB", high_open=True)
_RAMP = _Number(0.0, 1000.0, "ms")
_CEILING = _Number(-60.0, 0.0, "dBFS")
_SPL = _Number(40.0, 130.0, "dB SPL")
_DELAY = _Number(0.0, 50.0, "ms")
_FILTER_TYPE = _Choice(FILTER_TYPES, "a filter type")
_GAIN = _Number(-24.0, 24.0, "dB")
_Q = _Number(0.0, 100.0, "", low_open=True)
_SLOPE = _Number(0.0, 1.0, "", low_open=True)
_CROSSOVER = _Number(20.0, 500.0, "Hz")
_BOOLEAN = _Boolean()
_MATCH = _Choice(MATCH_MODES, "a match mode")
_MAX_BOOST = _Number(0.0, 24.0, "dB")
_MATCH_WINDOW = _Number(1.0, 60.0, "s")
_LISTEN = _Address(_Integer("a UDP port (0 = any free port)", 0, 65535))
_ALLOW = _List(_Network(), "CIDR networks", 1, example='["127.0.0.0/8", "192.168.1.0/24"]')
_CLIENTS = _List(_Address(_Integer("a UDP port", 1, 65535)), '"host:port" addresses', example='["10.0.0.2:9001"]')
_PORT_NAME = _Text("a MIDI port name (substring)")


class _Reader:
    """Walks a TOML document, collecting ``FILE: key.path: message`` lines."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{self.source}: {path}: {message}")

    def check(self, spec: _Spec, path: str, value: Any) -> Any:
        """``spec``'s conversion of ``value``, or None after recording what is wrong."""
        try:
            return spec.convert(self, path, value)
        except _Invalid as exc:
            self.error(path, str(exc))
            return None

    def get(self, table: dict[str, Any], path: str, key: str, spec: _Spec, default: Any = MISSING) -> Any:
        """``table[key]`` converted by ``spec``; ``default`` when absent (MISSING: required)."""
        where = _join(path, key)
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
                self.error(_join(path, key), f"unknown key ({_hint(key, known)})")

    def section(self, document: dict[str, Any], name: str, known: tuple[str, ...]) -> dict[str, Any]:
        """Top-level table ``[name]`` with its keys checked; {} when absent or not a table."""
        table = self.check(_Table(f"a table [{name}]", _as_is), name, document.get(name, {}))
        if table is None:
            return {}
        self.keys(table, name, known)
        return table


def _as_is(reader: _Reader, path: str, table: dict[str, Any]) -> dict[str, Any]:
    """Builder of a table whose keys are checked by the caller."""
    return table


def _default(cls: type, name: str) -> Any:
    """The dataclass default of ``cls.name``: the parser's defaults live on the dataclasses."""
    return next(f.default for f in fields(cls) if f.name == name)


def _keys(cls: type) -> tuple[str, ...]:
    """TOML keys of a table that maps onto ``cls``: its fields except ``name``, which is the key."""
    return tuple(f.name for f in fields(cls) if f.name != "name")


# --- sections ------------------------------------------------------------------------------------

_SECTIONS = (
    "audio", "monitor", "sources", "speakers", "emulations", "inserts", "ab", "osc", "surfaces", "midi", "state",
    "levels",
)


def _config(reader: _Reader, document: dict[str, Any]) -> Config:
    reader.keys(document, "", _SECTIONS)
    audio = _audio(reader, reader.section(document, "audio", _keys(AudioConfig)))
    monitor = _monitor(reader, reader.section(document, "monitor", _keys(MonitorConfig)))
    sources = _named(reader, document, "sources", _source)
    emulations = _emulations(reader, document, audio.samplerate)
    profiles = EMULATION_PROFILES + tuple(emulations)
    speakers = _named(
        reader, document, "speakers", partial(_speaker_set, samplerate=audio.samplerate, profiles=profiles)
    )
    inserts = _inserts(reader, document, sources, speakers)
    sources = sources | {
        name: SourceConfig(name, insert.returns) for name, insert in inserts.items() if name not in sources
    }
    midi = reader.section(document, "midi", _keys(MidiConfig))
    state = reader.section(document, "state", _keys(StateConfig))
    return Config(
        source=reader.source,
        audio=_channel_counts(reader, audio, sources, speakers, inserts),
        monitor=monitor,
        sources=sources,
        speakers=speakers,
        ab=_ab(reader, document, tuple(sources)),
        osc=_osc(reader, reader.section(document, "osc", ("listen", "allow", "clients"))),
        surfaces=_surfaces(reader, document),
        midi=MidiConfig(reader.get(midi, "midi", "backend", _Text(), None)),
        state=StateConfig(reader.get(state, "state", "path", _AbsolutePath(), None)),
        levels=_levels(reader, document, monitor),
        emulations=emulations,
        inserts=inserts,
    )


def _audio(reader: _Reader, table: dict[str, Any]) -> AudioConfig:
    """``[audio]`` as written; channel counts stay None when not given (see _channel_counts)."""
    return AudioConfig(
        backend=reader.get(table, "audio", "backend", _BACKEND, "portaudio"),
        device=reader.get(table, "audio", "device", _Device(), None),
        samplerate=reader.get(table, "audio", "samplerate", _SAMPLERATE, 48000),
        blocksize=reader.get(table, "audio", "blocksize", _BLOCKSIZE, 64),
        input_channels=reader.get(table, "audio", "input_channels", _CHANNEL_COUNT, None),
        output_channels=reader.get(table, "audio", "output_channels", _CHANNEL_COUNT, None),
    )


def _channel_counts(
    reader: _Reader,
    audio: AudioConfig,
    sources: dict[str, SourceConfig],
    speakers: dict[str, SpeakerSetConfig],
    inserts: dict[str, InsertConfig],
) -> AudioConfig:
    """``audio`` with its channel counts: as given (every channel used must fit), else the
    highest channel that sources and insert returns (inputs) or speaker sets, subs and insert
    sends (outputs) use."""
    inputs = [
        (f"{_join('sources', name)}.channels[{i}]", channel)
        for name, source in sources.items()
        for i, channel in enumerate(source.channels or ())
    ]
    outputs = [
        (f"{_join('speakers', name)}.outputs[{i}]", channel)
        for name, speaker_set in speakers.items()
        for i, channel in enumerate(speaker_set.outputs or ())
    ] + [
        (f"{_join('speakers', name)}.sub.output", speaker_set.sub.output)
        for name, speaker_set in speakers.items()
        if speaker_set.sub is not None and speaker_set.sub.output is not None
    ] + [
        (f"{_join('inserts', name)}.send[{i}]", channel)
        for name, insert in inserts.items()
        for i, channel in enumerate(insert.send or ())
    ]
    return replace(
        audio,
        input_channels=_channel_count(reader, "input_channels", audio.input_channels, inputs),
        output_channels=_channel_count(reader, "output_channels", audio.output_channels, outputs),
    )


def _channel_count(reader: _Reader, key: str, given: int | None, used: list[tuple[str, int]]) -> int:
    if given is None:
        return max((channel for _, channel in used), default=1)  # none used: errors already say why
    for path, channel in used:
        if channel > given:
            reader.error(path, f"{channel} is above audio.{key} (expected a channel from 1 to {given})")
    return given


def _monitor(reader: _Reader, table: dict[str, Any]) -> MonitorConfig:
    def get(key: str, spec: _Spec) -> Any:
        return reader.get(table, "monitor", key, spec, _default(MonitorConfig, key))

    low = get("min_volume_db", _VOLUME)
    high = get("max_volume_db", _VOLUME)
    if low is not None and high is not None and not low < high:
        reader.error("monitor.min_volume_db", f"{low} is not below max_volume_db {high} (expected a lower level)")
    span = _volume_span(low, high)

    def level(key: str) -> Any:
        # A default outside a narrowed range is clamped: an error about a key the user did not
        # write would only confuse.
        fallback = min(max(_default(MonitorConfig, key), span.low), span.high)
        return reader.get(table, "monitor", key, span, fallback)

    return MonitorConfig(
        volume_db=level("volume_db"),
        min_volume_db=low,
        max_volume_db=high,
        startup_max_volume_db=level("startup_max_volume_db"),
        dim_db=get("dim_db", _DIM),
        ramp_ms=get("ramp_ms", _RAMP),
        crossfade_ms=get("crossfade_ms", _RAMP),
        ceiling_dbfs=get("ceiling_dbfs", _CEILING),
        reference_spl_db=get("reference_spl_db", _SPL),
    )


def _volume_span(low: float | None, high: float | None) -> _Number:
    """Volumes from ``min_volume_db`` to ``max_volume_db`` when those are valid, else any volume."""
    if low is None or high is None or not low < high:
        return _VOLUME
    return _Number(low, high, "dB", low_name="min_volume_db", high_name="max_volume_db")


def _named(
    reader: _Reader,
    document: dict[str, Any],
    section: str,
    build: Callable[[_Reader, str, str, dict[str, Any]], Any],
) -> dict[str, Any]:
    """``[section.NAME]`` tables, at least one, each built by ``build(reader, path, name, table)``."""
    expected = f"at least one [{section}.NAME] table"
    if section not in document:
        reader.error(section, f"missing (expected {expected})")
        return {}
    tables = reader.check(_Table(expected, _as_is), section, document[section])
    if tables == {}:
        reader.error(section, f"none defined (expected {expected})")
    if tables and len(tables) > MAX_NAMED[section]:
        reader.error(section, f"{len(tables)} defined (expected at most {MAX_NAMED[section]})")
    result = {}
    for name, table in (tables or {}).items():
        path = _join(section, name)
        reader.check(_NAME, path, name)
        item = reader.check(_Table(f"a table [{section}.{name}]", partial(build, name=name)), path, table)
        if item is not None:
            result[name] = item
    return result


def _source(reader: _Reader, path: str, table: dict[str, Any], name: str) -> SourceConfig:
    reader.keys(table, path, _keys(SourceConfig))
    return SourceConfig(
        name=name,
        channels=reader.get(table, path, "channels", _CHANNELS),
        trim_db=reader.get(table, path, "trim_db", _TRIM, _default(SourceConfig, "trim_db")),
    )


def _speaker_set(
    reader: _Reader, path: str, table: dict[str, Any], name: str, samplerate: int | None,
    profiles: tuple[str, ...],
) -> SpeakerSetConfig:
    reader.keys(table, path, _keys(SpeakerSetConfig))

    def get(key: str, spec: _Spec) -> Any:
        return reader.get(table, path, key, spec, _default(SpeakerSetConfig, key))

    outputs = reader.get(table, path, "outputs", _CHANNELS)
    trim_db, delay_ms = get("trim_db", _TRIM), get("delay_ms", _DELAY)
    eq = get("eq", _eq(samplerate, MAX_EQ_BANDS))
    sub = get("sub", _Table("a table such as { output = 3, crossover_hz = 80.0 }", _sub))
    if sub is not None and outputs and sub.output in outputs:
        message = f"{sub.output} is also one of the set's outputs (expected an output of its own)"
        reader.error(f"{path}.sub.output", message)
    emulate = get("emulate", _Choice(profiles, "an emulation profile"))
    return SpeakerSetConfig(name, outputs, trim_db, delay_ms, eq, sub, emulate)


def _eq(samplerate: int | None, most: int) -> _List:
    """A list of up to ``most`` EQ bands, each below Nyquist at ``samplerate`` (Hz) when known."""
    band = _Table(
        'an EQ band such as { type = "peak", freq_hz = 250.0, gain_db = -2.0, q = 4.0 }',
        partial(_band, samplerate=samplerate),
    )
    return _List(band, "EQ bands (inline tables)", 0, most)


def _emulations(
    reader: _Reader, document: dict[str, Any], samplerate: int | None
) -> dict[str, EmulationConfig]:
    """``[emulations.NAME]``: user-defined emulation profiles, any number (none required)."""
    spec = _Table("[emulations.NAME] tables", _as_is)
    tables = reader.check(spec, "emulations", document.get("emulations", {}))
    result = {}
    for name, table in (tables or {}).items():
        path = _join("emulations", name)
        reader.check(_NAME, path, name)
        if name in EMULATION_PROFILES:
            reader.error(path, f'"{name}" is a built-in emulation profile (expected a name of its own)')
        build = partial(_emulation, name=name, samplerate=samplerate)
        item = reader.check(_Table(f"a table [emulations.{name}]", build), path, table)
        if item is not None:
            result[name] = item
    return result


def _emulation(
    reader: _Reader, path: str, table: dict[str, Any], name: str, samplerate: int | None
) -> EmulationConfig:
    reader.keys(table, path, _keys(EmulationConfig))
    return EmulationConfig(
        name=name,
        eq=reader.get(table, path, "eq", _eq(samplerate, MAX_EMULATION_BANDS), _default(EmulationConfig, "eq")),
        mono=reader.get(table, path, "mono", _BOOLEAN, _default(EmulationConfig, "mono")),
    )


def _band(reader: _Reader, path: str, table: dict[str, Any], samplerate: int | None) -> Biquad:
    """One EQ band. Frequency must lie below Nyquist; gain_db only for peak and shelves; slope
    (0 < S <= 1: beyond 1 a shelf overshoots) only for shelves, and never together with q."""
    reader.keys(table, path, _keys(Biquad))
    kind = reader.get(table, path, "type", _FILTER_TYPE)
    frequency = _Number(0.0, None, "Hz", low_open=True)
    if samplerate is not None:
        frequency = _Number(
            0.0, samplerate / 2, "Hz", low_open=True, high_open=True,
            high_name="Nyquist", note=f" at samplerate {samplerate}",
        )
    band = Biquad(
        type=kind,
        freq_hz=reader.get(table, path, "freq_hz", frequency),
        gain_db=reader.get(table, path, "gain_db", _GAIN, _default(Biquad, "gain_db")),
        q=reader.get(table, path, "q", _Q, None),
        slope=reader.get(table, path, "slope", _SLOPE, None),
    )
    if kind is not None:
        for key, types in (("gain_db", GAIN_TYPES), ("slope", SHELF_TYPES)):
            if key in table and kind not in types:
                expected = f"{key} only for {', '.join(types)}"
                reader.error(_join(path, key), f"does not apply to a {kind} band (expected {expected})")
    if "q" in table and "slope" in table:
        reader.error(path, "has both q and slope (expected one of them)")
    return band


def _sub(reader: _Reader, path: str, table: dict[str, Any]) -> SubConfig:
    reader.keys(table, path, _keys(SubConfig))
    return SubConfig(
        output=reader.get(table, path, "output", _CHANNEL),
        crossover_hz=reader.get(table, path, "crossover_hz", _CROSSOVER, _default(SubConfig, "crossover_hz")),
        trim_db=reader.get(table, path, "trim_db", _TRIM, _default(SubConfig, "trim_db")),
    )


def _inserts(
    reader: _Reader,
    document: dict[str, Any],
    sources: dict[str, SourceConfig],
    speakers: dict[str, SpeakerSetConfig],
) -> dict[str, InsertConfig]:
    """``[inserts.NAME]``: outboard inserts, at most the engine's limit; none required."""
    tables = reader.check(_Table("[inserts.NAME] tables", _as_is), "inserts", document.get("inserts", {}))
    if tables and len(tables) > layout.MAX_INSERTS:
        reader.error("inserts", f"{len(tables)} defined (expected at most {layout.MAX_INSERTS})")
    speaker_outputs = {
        o: name
        for name, s in speakers.items()
        for o in (s.outputs or ()) + ((s.sub.output,) if s.sub is not None else ())
    }
    result = {}
    for name, table in (tables or {}).items():
        path = _join("inserts", name)
        reader.check(_NAME, path, name)
        if name in sources:
            reader.error(path, f'"{name}" is already a source (expected a name of its own: the return becomes a source)')
        build = partial(_insert, name=name, sources=tuple(sources), speaker_outputs=speaker_outputs)
        item = reader.check(_Table(f"a table [inserts.{name}]", build), path, table)
        if item is not None:
            result[name] = item
    return result


def _insert(
    reader: _Reader,
    path: str,
    table: dict[str, Any],
    name: str,
    sources: tuple[str, ...],
    speaker_outputs: dict[int, str],
) -> InsertConfig:
    reader.keys(table, path, ("send", "return", "source", "measure_dbfs"))
    insert = InsertConfig(
        name=name,
        send=reader.get(table, path, "send", _CHANNELS),
        returns=reader.get(table, path, "return", _CHANNELS),
        source=reader.get(table, path, "source", _Choice(sources, "a defined source")),
        measure_dbfs=reader.get(table, path, "measure_dbfs", _MEASURE_LEVEL, _default(InsertConfig, "measure_dbfs")),
    )
    for i, output in enumerate(insert.send or ()):
        if output in speaker_outputs:
            reader.error(
                f"{path}.send[{i}]",
                f"output {output} also feeds speakers.{speaker_outputs[output]} (expected an output of its own)",
            )
    return insert


def _ab(reader: _Reader, document: dict[str, Any], sources: tuple[str, ...]) -> AbConfig | None:
    if "ab" not in document:
        return None
    table = reader.section(document, "ab", _keys(AbConfig))
    source = _Choice(sources, "a defined source")
    ab = AbConfig(
        a=reader.get(table, "ab", "a", source),
        b=reader.get(table, "ab", "b", source),
        match=reader.get(table, "ab", "match", _MATCH, _default(AbConfig, "match")),
        max_boost_db=reader.get(table, "ab", "max_boost_db", _MAX_BOOST, _default(AbConfig, "max_boost_db")),
        window_s=reader.get(table, "ab", "window_s", _MATCH_WINDOW, _default(AbConfig, "window_s")),
    )
    if ab.a is not None and ab.a == ab.b:
        reader.error("ab.b", f'"{ab.b}" is also ab.a (expected two different sources)')
    return ab


def _osc(reader: _Reader, table: dict[str, Any]) -> OscConfig:
    listen = reader.get(table, "osc", "listen", _LISTEN, None)
    host, port = listen or (_default(OscConfig, "host"), _default(OscConfig, "port"))
    return OscConfig(
        host=host,
        port=port,
        allow=reader.get(table, "osc", "allow", _ALLOW, _default(OscConfig, "allow")),
        clients=reader.get(table, "osc", "clients", _CLIENTS, _default(OscConfig, "clients")),
    )


def _surfaces(reader: _Reader, document: dict[str, Any]) -> tuple[SurfaceConfig, ...]:
    surface = _Table("a [[surfaces]] table with name, input and/or output, mapping", _surface)
    surfaces = reader.get(document, "", "surfaces", _List(surface, "[[surfaces]] tables"), ()) or ()
    first: dict[str, int] = {}
    for i, item in enumerate(surfaces):
        if item.name in first:
            message = f'"{item.name}" is also surfaces[{first[item.name]}] (expected unique names)'
            reader.error(f"surfaces[{i}].name", message)
        first.setdefault(item.name, i)
    return surfaces


def _surface(reader: _Reader, path: str, table: dict[str, Any]) -> SurfaceConfig:
    reader.keys(table, path, ("name",) + _keys(SurfaceConfig))
    surface = SurfaceConfig(
        name=reader.get(table, path, "name", _NAME),
        input=reader.get(table, path, "input", _PORT_NAME, None),
        output=reader.get(table, path, "output", _PORT_NAME, None),
        mapping=reader.get(table, path, "mapping", _Text("a mapping preset name or path")),
    )
    if "input" not in table and "output" not in table:
        reader.error(path, "has neither input nor output (expected a MIDI port name in input, output or both)")
    return surface


def _levels(reader: _Reader, document: dict[str, Any], monitor: MonitorConfig) -> dict[str, float]:
    """``[levels]``: named listening levels (dB) within the volume range."""
    spec = _Table("a table of NAME = level in dB", _as_is)
    table = reader.check(spec, "levels", document.get("levels", {})) or {}
    span = _volume_span(monitor.min_volume_db, monitor.max_volume_db)
    levels = {}
    for name in table:
        reader.check(_NAME, _join("levels", name), name)
        levels[name] = reader.get(table, "levels", name, span)
    return levels


# --- shared with other TOML files ------------------------------------------------------------------
# Control-surface mappings (controlroom.daemon.midi.mapping) report their errors in this module's
# style with this module's reader and value specs, so the two files read and fail alike.

Reader = _Reader
Invalid = _Invalid
Spec = _Spec
Number = _Number
Integer = _Integer
Text = _Text
Choice = _Choice
ListOf = _List
Table = _Table
join_key = _join
show_value = _show
wrong_type = _wrong_type
syntax_error = _syntax_error
