"""The schema of controlroom.toml: which sections and keys there are, and what each may hold.

Each section is read by a function here into the dataclasses of ``model``; the kinds of value
(and their limits, which docs/configuration.md lists) are the specs at the top. Rules between
sections (channel counts, the A/B pair's sources, insert returns) are in ``rules``. Array
indices in key paths (``eq[2]``) count from 0, as TOML tools do.
"""

from __future__ import annotations

import re
import socket
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from controlroom.daemon.config.model import (
    BACKENDS,
    BLOCKSIZES,
    EMULATION_PROFILES,
    GPIO_PINS,
    MATCH_MODES,
    MAX_CHANNEL,
    MAX_EMULATION_BANDS,
    MAX_EQ_BANDS,
    MAX_NAMED,
    POWER_POLICIES,
    SAMPLERATES,
    STATE_TARGETS,
    AbConfig,
    AudioConfig,
    CalibrationConfig,
    Config,
    EmulationConfig,
    InsertConfig,
    MidiConfig,
    MonitorConfig,
    MqttConfig,
    OscConfig,
    OutboardConfig,
    RecallConfig,
    SequencingConfig,
    SourceConfig,
    SpeakerOutput,
    SpeakerSetConfig,
    StateConfig,
    SubConfig,
    SurfaceConfig,
    WebConfig,
)
from controlroom.daemon.config.rules import channel_counts
from controlroom.daemon.config.values import (
    AbsolutePath,
    Address,
    Boolean,
    Choice,
    Device,
    Integer,
    Invalid,
    ListOf,
    Name,
    Network,
    Number,
    Reader,
    Spec,
    Table,
    Text,
    as_is,
    default_of,
    join_key,
    keys_of,
    show_value,
    wrong_type,
)
from controlroom.dsp import layout
from controlroom.dsp.bands import FILTER_TYPES, GAIN_TYPES, SHELF_TYPES, Biquad

_CHANNEL = Integer("a 1-based channel number", 1, MAX_CHANNEL)
_CHANNELS = ListOf(_CHANNEL, "1-based channel numbers", 1, 2, distinct=True, example="[1, 2]")
_CHANNEL_COUNT = Integer("a channel count", 1, MAX_CHANNEL)
_NAME = Name()
_BACKEND = Choice(BACKENDS, "a known backend")
_SAMPLERATE = Integer("a sample rate in Hz", choices=SAMPLERATES)
_BLOCKSIZE = Integer("a block size in frames", choices=BLOCKSIZES)
_TRIM = Number(-24.0, 24.0, "dB")
_MEASURE_LEVEL = Number(-60.0, -6.0, "dBFS")
_VOLUME = Number(-144.0, 24.0, "dB")
_DIM = Number(-80.0, 0.0, "dB", high_open=True)
_RAMP = Number(0.0, 1000.0, "ms")
_CEILING = Number(-60.0, 0.0, "dBFS")
_SPL = Number(40.0, 130.0, "dB SPL")
_DELAY = Number(0.0, 50.0, "ms")
_FILTER_TYPE = Choice(FILTER_TYPES, "a filter type")
_GAIN = Number(-24.0, 24.0, "dB")
_Q = Number(0.0, 100.0, "", low_open=True)
_SLOPE = Number(0.0, 1.0, "", low_open=True)
_CROSSOVER = Number(20.0, 500.0, "Hz")
_BOOLEAN = Boolean()
_MATCH = Choice(MATCH_MODES, "a match mode")
_MAX_BOOST = Number(0.0, 24.0, "dB")
_MATCH_WINDOW = Number(1.0, 60.0, "s")
_LISTEN = Address(Integer("a UDP port (0 = any free port)", 0, 65535))
_WEB_LISTEN = Address(Integer("a TCP port (0 = any free port)", 0, 65535))
_ALLOW = ListOf(Network(), "CIDR networks", 1, example='["127.0.0.0/8", "192.168.1.0/24"]')
_SUBSCRIBERS = Integer("a number of subscribers", 1, 1024)
_CLIENTS = ListOf(Address(Integer("a UDP port", 1, 65535)), '"host:port" addresses', example='["10.0.0.2:9001"]')
_PORT_NAME = Text("a MIDI port name (substring)")
_OUTBOARD_NAMES = ListOf(Name(), "[[outboard]] names", distinct=True, example='["studio-amp"]')
_GPIO = Integer("a GPIO pin (BCM number)", *GPIO_PINS)
_MIDI_CHANNEL = Integer("a MIDI channel", 1, 16)
_MIDI_PROGRAM = Integer("a MIDI program number", 0, 127)
_MIDI_BANK = Integer("a MIDI bank number (MSB * 128 + LSB)", 0, 16383)
_MIN_INTERVAL = Number(0.0, 10000.0, "ms")
_SETTLE = Number(0.0, 10000.0, "ms")
_STAGE_DELAY = Number(0.0, 30000.0, "ms")
_METERS_INTERVAL = Number(0.2, 60.0, "s")
_MIC_SENSITIVITY = Number(-80.0, 0.0, "dBFS")
#: the test signal's RMS level: up to -10 dBFS leaves its peaks (about 13 dB above) in range
_NOISE_LEVEL = Number(-60.0, -10.0, "dBFS")
#: MQTT instance ids: one topic level, the same letters as names.
_INSTANCE_ID = re.compile(r"[a-z0-9_-]+")
_MQTT_KEYS = (
    "broker",
    "id",
    "username",
    "password_file",
    "ca_file",
    "discovery",
    "discovery_prefix",
    "meters_interval_s",
    "link",
    "link_targets",
)


class _Output(Spec):
    """A speaker set's output: a channel number, or a table with its own trim and delay."""

    def describe(self) -> str:
        return "a 1-based channel number or a table such as { channel = 2, trim_db = -0.5, delay_ms = 0.3 }"

    def convert(self, reader: Reader, path: str, value: Any) -> SpeakerOutput | None:
        if isinstance(value, dict):
            reader.keys(value, path, keys_of(SpeakerOutput))
            channel = reader.get(value, path, "channel", _CHANNEL)
            trim_db = reader.get(value, path, "trim_db", _TRIM, default_of(SpeakerOutput, "trim_db"))
            delay_ms = reader.get(value, path, "delay_ms", _DELAY, default_of(SpeakerOutput, "delay_ms"))
            return None if None in (channel, trim_db, delay_ms) else SpeakerOutput(channel, trim_db, delay_ms)
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type(value, self)
        return SpeakerOutput(_CHANNEL.convert(reader, path, value))


_OUTPUTS = ListOf(_Output(), "outputs", 1, 2, example="[1, 2] or [1, { channel = 2, trim_db = -0.5 }]")


# --- sections ------------------------------------------------------------------------------------

_SECTIONS = (
    "audio",
    "monitor",
    "sources",
    "speakers",
    "emulations",
    "inserts",
    "ab",
    "osc",
    "surfaces",
    "midi",
    "state",
    "levels",
    "mqtt",
    "web",
    "outboard",
    "sequencing",
    "calibration",
)


def read_document(reader: Reader, document: dict[str, Any]) -> Config:
    reader.keys(document, "", _SECTIONS)
    audio = _audio(reader, reader.section(document, "audio", keys_of(AudioConfig)))
    monitor = _monitor(reader, reader.section(document, "monitor", keys_of(MonitorConfig)))
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
    if inserts and len(sources) > layout.MAX_SOURCES:
        reader.error(
            "inserts",
            f"{len(inserts)} returns make {len(sources)} sources "
            f"(expected at most {layout.MAX_SOURCES} sources, insert returns included)",
        )
    midi = reader.section(document, "midi", keys_of(MidiConfig))
    state = reader.section(document, "state", keys_of(StateConfig))
    mqtt = _mqtt(reader, document)
    outboard = _outboard(reader, document, mqtt)
    _outboard_of_sets(reader, speakers, outboard)
    calibration = _calibration(reader, document)
    return Config(
        source=reader.source,
        audio=channel_counts(reader, audio, sources, speakers, inserts, calibration),
        monitor=monitor,
        sources=sources,
        speakers=speakers,
        ab=_ab(reader, document, tuple(sources)),
        osc=_osc(reader, reader.section(document, "osc", ("listen", "allow", "clients", "max_subscribers"))),
        surfaces=_surfaces(reader, document),
        midi=MidiConfig(reader.get(midi, "midi", "backend", Text(), None)),
        state=StateConfig(reader.get(state, "state", "path", AbsolutePath(), None)),
        levels=_levels(reader, document, monitor),
        emulations=emulations,
        inserts=inserts,
        mqtt=mqtt,
        web=_web(reader, document),
        outboard=outboard,
        sequencing=_sequencing(reader, document),
        calibration=calibration,
    )


def _audio(reader: Reader, table: dict[str, Any]) -> AudioConfig:
    """``[audio]`` as written; channel counts stay None when not given (see ``rules.channel_counts``)."""
    return AudioConfig(
        backend=reader.get(table, "audio", "backend", _BACKEND, "portaudio"),
        device=reader.get(table, "audio", "device", Device(), None),
        samplerate=reader.get(table, "audio", "samplerate", _SAMPLERATE, 48000),
        blocksize=reader.get(table, "audio", "blocksize", _BLOCKSIZE, 64),
        input_channels=reader.get(table, "audio", "input_channels", _CHANNEL_COUNT, None),
        output_channels=reader.get(table, "audio", "output_channels", _CHANNEL_COUNT, None),
    )


def _monitor(reader: Reader, table: dict[str, Any]) -> MonitorConfig:
    def get(key: str, spec: Spec) -> Any:
        return reader.get(table, "monitor", key, spec, default_of(MonitorConfig, key))

    low = get("min_volume_db", _VOLUME)
    high = get("max_volume_db", _VOLUME)
    if low is not None and high is not None and not low < high:
        reader.error("monitor.min_volume_db", f"{low} is not below max_volume_db {high} (expected a lower level)")
    span = _volume_span(low, high)

    def level(key: str) -> Any:
        # A default outside a narrowed range is clamped: an error about a key the user did not
        # write would only confuse.
        fallback = min(max(default_of(MonitorConfig, key), span.low), span.high)
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


def _volume_span(low: float | None, high: float | None) -> Number:
    """Volumes from ``min_volume_db`` to ``max_volume_db`` when those are valid, else any volume."""
    if low is None or high is None or not low < high:
        return _VOLUME
    return Number(low, high, "dB", low_name="min_volume_db", high_name="max_volume_db")


def _named(
    reader: Reader,
    document: dict[str, Any],
    section: str,
    build: Callable[[Reader, str, str, dict[str, Any]], Any],
) -> dict[str, Any]:
    """``[section.NAME]`` tables, at least one, each built by ``build(reader, path, name, table)``."""
    expected = f"at least one [{section}.NAME] table"
    if section not in document:
        reader.error(section, f"missing (expected {expected})")
        return {}
    tables = reader.check(Table(expected, as_is), section, document[section])
    if tables == {}:
        reader.error(section, f"none defined (expected {expected})")
    if tables and len(tables) > MAX_NAMED[section]:
        reader.error(section, f"{len(tables)} defined (expected at most {MAX_NAMED[section]})")
    result = {}
    for name, table in (tables or {}).items():
        path = join_key(section, name)
        reader.check(_NAME, path, name)
        item = reader.check(Table(f"a table [{section}.{name}]", partial(build, name=name)), path, table)
        if item is not None:
            result[name] = item
    return result


def _source(reader: Reader, path: str, table: dict[str, Any], name: str) -> SourceConfig:
    reader.keys(table, path, keys_of(SourceConfig))
    return SourceConfig(
        name=name,
        channels=reader.get(table, path, "channels", _CHANNELS),
        trim_db=reader.get(table, path, "trim_db", _TRIM, default_of(SourceConfig, "trim_db")),
    )


def _speaker_set(
    reader: Reader,
    path: str,
    table: dict[str, Any],
    name: str,
    samplerate: int | None,
    profiles: tuple[str, ...],
) -> SpeakerSetConfig:
    reader.keys(table, path, keys_of(SpeakerSetConfig))

    def get(key: str, spec: Spec) -> Any:
        return reader.get(table, path, key, spec, default_of(SpeakerSetConfig, key))

    outputs = reader.get(table, path, "outputs", _OUTPUTS)
    trim_db, delay_ms = get("trim_db", _TRIM), get("delay_ms", _DELAY)
    _check_outputs(reader, path, outputs or (), delay_ms)
    eq = get("eq", _eq(samplerate, MAX_EQ_BANDS))
    sub = get("sub", Table("a table such as { output = 3, crossover_hz = 80.0 }", _sub))
    if sub is not None and outputs and sub.output in (o.channel for o in outputs):
        message = f"{sub.output} is also one of the set's outputs (expected an output of its own)"
        reader.error(f"{path}.sub.output", message)
    emulate = get("emulate", Choice(profiles, "an emulation profile"))
    return SpeakerSetConfig(
        name,
        outputs,
        trim_db,
        delay_ms,
        eq,
        sub,
        emulate,
        power=get("power", _OUTBOARD_NAMES),
        relays=get("relays", _OUTBOARD_NAMES),
        recall=get("recall", Table('a table such as { outboard = "dsp-preset", program = 3, bank = 0 }', _recall)),
    )


def _recall(reader: Reader, path: str, table: dict[str, Any]) -> RecallConfig:
    reader.keys(table, path, keys_of(RecallConfig))
    return RecallConfig(
        outboard=reader.get(table, path, "outboard", _NAME),
        program=reader.get(table, path, "program", _MIDI_PROGRAM),
        bank=reader.get(table, path, "bank", _MIDI_BANK, None),
        settle_ms=reader.get(table, path, "settle_ms", _SETTLE, default_of(RecallConfig, "settle_ms")),
    )


# --- outboard ------------------------------------------------------------------------------------

#: The keys that make an [[outboard]] entry of each kind; the other keys belong to one kind.
_OUTBOARD_KINDS = {"gpio": "gpio", "midi_port": "midi", "mqtt_topic": "mqtt"}
_OUTBOARD_KIND_KEYS = {
    "gpio": ("active_high",),
    "midi": ("channel", "min_interval_ms"),
    "mqtt": ("payload_on", "payload_off"),
}


#: Said to a config with an ``[outboard]`` table: the timing keys the issue's sketch put there.
OUTBOARD_TABLE_HINT = (
    "outboard outputs are [[outboard]] entries (double brackets); their timing lives in "
    "[sequencing] (on_delay_ms, settle_ms, power_policy)"
)


def _outboard(reader: Reader, document: dict[str, Any], mqtt: MqttConfig | None) -> dict[str, OutboardConfig]:
    """``[[outboard]]`` entries, unique names and GPIO pins; MQTT switches need ``[mqtt]``."""
    if isinstance(document.get("outboard"), dict):
        reader.error("outboard", f"[outboard] is a table: {OUTBOARD_TABLE_HINT}")
        return {}
    entry = Table("an [[outboard]] table with name and one of gpio, midi_port, mqtt_topic", _outboard_entry)
    # entry by entry, so that one broken entry leaves the others checked against the sets
    tables = reader.get(
        document, "", "outboard", ListOf(Table("[[outboard]] tables", as_is), "[[outboard]] tables"), ()
    )
    entries = [reader.check(entry, f"outboard[{i}]", table) for i, table in enumerate(tables or ())]
    result: dict[str, OutboardConfig] = {}
    pins: dict[int, int] = {}
    for i, item in enumerate(entries):
        if item is None:
            continue
        if item.name in result:
            first = next(j for j, e in enumerate(entries) if e is not None and e.name == item.name)
            reader.error(f"outboard[{i}].name", f'"{item.name}" is also outboard[{first}] (expected unique names)')
            continue
        if item.gpio is not None:
            if item.gpio in pins:
                reader.error(f"outboard[{i}].gpio", f"{item.gpio} is also outboard[{pins[item.gpio]}]'s pin")
            pins.setdefault(item.gpio, i)
        if item.kind == "mqtt" and mqtt is None:
            reader.error(f"outboard[{i}].mqtt_topic", "needs an [mqtt] section (the broker to publish to)")
        result[item.name] = item
    return result


def _outboard_entry(reader: Reader, path: str, table: dict[str, Any]) -> OutboardConfig | None:
    known = ("name",) + tuple(_OUTBOARD_KINDS) + tuple(k for keys in _OUTBOARD_KIND_KEYS.values() for k in keys)
    reader.keys(table, path, known)
    name = reader.get(table, path, "name", _NAME)
    kinds = [kind for key, kind in _OUTBOARD_KINDS.items() if key in table]
    if len(kinds) != 1:
        found = f"has {' and '.join(k for k in _OUTBOARD_KINDS if k in table)}" if kinds else "has none"
        reader.error(path, f"{found} (expected exactly one of gpio, midi_port, mqtt_topic)")
        return None
    kind = kinds[0]
    for other, keys in _OUTBOARD_KIND_KEYS.items():
        for key in keys:
            if key in table and other != kind:
                reader.error(join_key(path, key), f"applies to a {other} entry only (this one is {kind})")

    def get(key: str, spec: Spec) -> Any:
        return reader.get(table, path, key, spec, default_of(OutboardConfig, key))

    entry = OutboardConfig(
        name=name,
        kind=kind,
        gpio=get("gpio", _GPIO),
        active_high=get("active_high", _BOOLEAN),
        midi_port=get("midi_port", _PORT_NAME),
        channel=get("channel", _MIDI_CHANNEL),
        min_interval_ms=get("min_interval_ms", _MIN_INTERVAL),
        mqtt_topic=get("mqtt_topic", _Topic()),
        payload_on=get("payload_on", Text("a payload")),
        payload_off=get("payload_off", Text("a payload")),
    )
    return None if name is None else entry


def _outboard_of_sets(
    reader: Reader, speakers: dict[str, SpeakerSetConfig], outboard: dict[str, OutboardConfig]
) -> None:
    """The sets' ``power`` and ``relays`` name [[outboard]] switches, ``recall`` a MIDI entry;
    an output is an amplifier (power) or a relay, not both: the two are sequenced apart."""
    switches = tuple(name for name, entry in outboard.items() if entry.switch)
    devices = tuple(name for name, entry in outboard.items() if not entry.switch)
    role: dict[str, tuple[str, str]] = {}  # output -> (key, set) where it first appeared
    for set_name, s in speakers.items():
        path = join_key("speakers", set_name)
        for key in ("power", "relays"):
            for i, name in enumerate(getattr(s, key) or ()):
                where = f"{path}.{key}[{i}]"
                if name not in switches:
                    reader.error(where, f'"{name}" is not a GPIO or MQTT [[outboard]] entry ({_defined(switches)})')
                    continue
                first = role.setdefault(name, (key, set_name))
                if first[0] != key:
                    reader.error(
                        where,
                        f'"{name}" is also in speakers.{first[1]}.{first[0]} '
                        "(expected an output to be an amplifier (power) or a relay, not both)",
                    )
        if s.recall is not None and s.recall.outboard is not None and s.recall.outboard not in devices:
            reader.error(
                f"{path}.recall.outboard",
                f'"{s.recall.outboard}" is not a MIDI [[outboard]] entry ({_defined(devices)})',
            )


def _defined(names: tuple[str, ...]) -> str:
    return f"expected one of {', '.join(names)}" if names else "none is defined"


def _sequencing(reader: Reader, document: dict[str, Any]) -> SequencingConfig:
    table = reader.section(document, "sequencing", keys_of(SequencingConfig))

    def get(key: str, spec: Spec) -> Any:
        return reader.get(table, "sequencing", key, spec, default_of(SequencingConfig, key))

    return SequencingConfig(
        on_delay_ms=get("on_delay_ms", _STAGE_DELAY),
        settle_ms=get("settle_ms", _SETTLE),
        power_policy=get("power_policy", Choice(POWER_POLICIES, "a power policy")),
    )


def _check_outputs(reader: Reader, path: str, outputs: tuple[SpeakerOutput, ...], delay_ms: float | None) -> None:
    """Each output once; an output's delay on top of the set's within the engine's longest."""
    for i, output in enumerate(outputs):
        where = f"{path}.outputs[{i}]"
        if output.channel in (o.channel for o in outputs[:i]):
            reader.error(where, f"{output.channel} is listed twice (expected 1 or 2 distinct outputs)")
        total = output.delay_ms + (delay_ms or 0.0)
        if output.delay_ms and total > layout.MAX_DELAY_MS:
            reader.error(
                f"{where}.delay_ms",
                f"{output.delay_ms} ms on top of delay_ms {delay_ms} ms makes {total:g} ms "
                f"(expected at most {layout.MAX_DELAY_MS:g} ms together)",
            )


def _eq(samplerate: int | None, most: int) -> ListOf:
    """A list of up to ``most`` EQ bands, each below Nyquist at ``samplerate`` (Hz) when known."""
    band = Table(
        'an EQ band such as { type = "peak", freq_hz = 250.0, gain_db = -2.0, q = 4.0 }',
        partial(_band, samplerate=samplerate),
    )
    return ListOf(band, "EQ bands (inline tables)", 0, most)


def _emulations(reader: Reader, document: dict[str, Any], samplerate: int | None) -> dict[str, EmulationConfig]:
    """``[emulations.NAME]``: user-defined emulation profiles, any number (none required)."""
    spec = Table("[emulations.NAME] tables", as_is)
    tables = reader.check(spec, "emulations", document.get("emulations", {}))
    result = {}
    for name, table in (tables or {}).items():
        path = join_key("emulations", name)
        reader.check(_NAME, path, name)
        if name in EMULATION_PROFILES:
            reader.error(path, f'"{name}" is a built-in emulation profile (expected a name of its own)')
        build = partial(_emulation, name=name, samplerate=samplerate)
        item = reader.check(Table(f"a table [emulations.{name}]", build), path, table)
        if item is not None:
            result[name] = item
    return result


def _emulation(reader: Reader, path: str, table: dict[str, Any], name: str, samplerate: int | None) -> EmulationConfig:
    reader.keys(table, path, keys_of(EmulationConfig))
    return EmulationConfig(
        name=name,
        eq=reader.get(table, path, "eq", _eq(samplerate, MAX_EMULATION_BANDS), default_of(EmulationConfig, "eq")),
        mono=reader.get(table, path, "mono", _BOOLEAN, default_of(EmulationConfig, "mono")),
    )


def _band(reader: Reader, path: str, table: dict[str, Any], samplerate: int | None) -> Biquad:
    """One EQ band. Frequency must lie below Nyquist; gain_db only for peak and shelves; slope
    (0 < S <= 1: beyond 1 a shelf overshoots) only for shelves, and never together with q."""
    reader.keys(table, path, keys_of(Biquad))
    kind = reader.get(table, path, "type", _FILTER_TYPE)
    frequency = Number(0.0, None, "Hz", low_open=True)
    if samplerate is not None:
        frequency = Number(
            0.0,
            samplerate / 2,
            "Hz",
            low_open=True,
            high_open=True,
            high_name="Nyquist",
            note=f" at samplerate {samplerate}",
        )
    band = Biquad(
        type=kind,
        freq_hz=reader.get(table, path, "freq_hz", frequency),
        gain_db=reader.get(table, path, "gain_db", _GAIN, default_of(Biquad, "gain_db")),
        q=reader.get(table, path, "q", _Q, None),
        slope=reader.get(table, path, "slope", _SLOPE, None),
    )
    if kind is not None:
        for key, types in (("gain_db", GAIN_TYPES), ("slope", SHELF_TYPES)):
            if key in table and kind not in types:
                expected = f"{key} only for {', '.join(types)}"
                reader.error(join_key(path, key), f"does not apply to a {kind} band (expected {expected})")
    if "q" in table and "slope" in table:
        reader.error(path, "has both q and slope (expected one of them)")
    return band


def _sub(reader: Reader, path: str, table: dict[str, Any]) -> SubConfig:
    reader.keys(table, path, keys_of(SubConfig))
    return SubConfig(
        output=reader.get(table, path, "output", _CHANNEL),
        crossover_hz=reader.get(table, path, "crossover_hz", _CROSSOVER, default_of(SubConfig, "crossover_hz")),
        trim_db=reader.get(table, path, "trim_db", _TRIM, default_of(SubConfig, "trim_db")),
    )


def _inserts(
    reader: Reader,
    document: dict[str, Any],
    sources: dict[str, SourceConfig],
    speakers: dict[str, SpeakerSetConfig],
) -> dict[str, InsertConfig]:
    """``[inserts.NAME]``: outboard inserts, at most the engine's limit; none required."""
    tables = reader.check(Table("[inserts.NAME] tables", as_is), "inserts", document.get("inserts", {}))
    if tables and len(tables) > layout.MAX_INSERTS:
        reader.error("inserts", f"{len(tables)} defined (expected at most {layout.MAX_INSERTS})")
    speaker_outputs = {
        o: name for name, s in speakers.items() for o in s.channels + ((s.sub.output,) if s.sub is not None else ())
    }
    result = {}
    for name, table in (tables or {}).items():
        path = join_key("inserts", name)
        reader.check(_NAME, path, name)
        if name in sources:
            reader.error(
                path, f'"{name}" is already a source (expected a name of its own: the return becomes a source)'
            )
        build = partial(_insert, name=name, sources=tuple(sources), speaker_outputs=speaker_outputs)
        item = reader.check(Table(f"a table [inserts.{name}]", build), path, table)
        if item is not None:
            result[name] = item
    return result


def _insert(
    reader: Reader,
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
        source=reader.get(table, path, "source", Choice(sources, "a defined source")),
        measure_dbfs=reader.get(table, path, "measure_dbfs", _MEASURE_LEVEL, default_of(InsertConfig, "measure_dbfs")),
    )
    for i, output in enumerate(insert.send or ()):
        if output in speaker_outputs:
            reader.error(
                f"{path}.send[{i}]",
                f"output {output} also feeds speakers.{speaker_outputs[output]} (expected an output of its own)",
            )
    return insert


def _ab(reader: Reader, document: dict[str, Any], sources: tuple[str, ...]) -> AbConfig | None:
    if "ab" not in document:
        return None
    table = reader.section(document, "ab", keys_of(AbConfig))
    source = Choice(sources, "a defined source")
    ab = AbConfig(
        a=reader.get(table, "ab", "a", source),
        b=reader.get(table, "ab", "b", source),
        match=reader.get(table, "ab", "match", _MATCH, default_of(AbConfig, "match")),
        max_boost_db=reader.get(table, "ab", "max_boost_db", _MAX_BOOST, default_of(AbConfig, "max_boost_db")),
        window_s=reader.get(table, "ab", "window_s", _MATCH_WINDOW, default_of(AbConfig, "window_s")),
    )
    if ab.a is not None and ab.a == ab.b:
        reader.error("ab.b", f'"{ab.b}" is also ab.a (expected two different sources)')
    return ab


def _osc(reader: Reader, table: dict[str, Any]) -> OscConfig:
    listen = reader.get(table, "osc", "listen", _LISTEN, None)
    host, port = listen or (default_of(OscConfig, "host"), default_of(OscConfig, "port"))
    return OscConfig(
        host=host,
        port=port,
        allow=reader.get(table, "osc", "allow", _ALLOW, default_of(OscConfig, "allow")),
        clients=reader.get(table, "osc", "clients", _CLIENTS, default_of(OscConfig, "clients")),
        max_subscribers=reader.get(
            table, "osc", "max_subscribers", _SUBSCRIBERS, default_of(OscConfig, "max_subscribers")
        ),
    )


class _InstanceId(Spec):
    """An MQTT instance id: one topic level of lower-case letters, digits, '-' and '_'."""

    def describe(self) -> str:
        return "an id of lower-case letters, digits, '-' and '_', e.g. \"control-a\""

    def convert(self, reader: Reader, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise wrong_type(value, self)
        if not _INSTANCE_ID.fullmatch(value):
            raise Invalid(f"{show_value(value)} is not a valid id (expected {self.describe()})")
        return value


class _Broker(Spec):
    """``"host"`` or ``"host:port"`` (``[v6]`` bracketed), the port 1883 unless given."""

    def describe(self) -> str:
        return 'a broker address "host" or "host:port", e.g. "127.0.0.1:1883"'

    def convert(self, reader: Reader, path: str, value: Any) -> tuple[str, int]:
        if not isinstance(value, str):
            raise wrong_type(value, self)
        address = Address(Integer("a TCP port", 1, 65535))
        bare = re.fullmatch(r"\[[^\]]*\]|[^:]*", value) is not None  # a host alone: the default port
        try:
            return address.convert(reader, path, f"{value}:{MqttConfig.port}" if bare else value)
        except Invalid as exc:
            raise Invalid(str(exc).replace(address.describe(), self.describe())) from None


class _TopicPrefix(Spec):
    """A topic prefix: levels without MQTT's wildcards, not starting or ending with '/'."""

    noun = "a topic prefix"
    example = "homeassistant"

    def describe(self) -> str:
        return f'{self.noun} without + or #, e.g. "{self.example}"'

    def convert(self, reader: Reader, path: str, value: Any) -> str:
        text = Text(self.describe()).convert(reader, path, value)
        if "+" in text or "#" in text or text.startswith("/") or text.endswith("/") or "//" in text:
            raise Invalid(f"{show_value(value)} is not {self.noun} (expected {self.describe()})")
        return text


class _Topic(_TopicPrefix):
    """A topic to publish to: the same rules as a prefix."""

    noun = "a topic"
    example = "shellies/cube/relay/0/command"


class _PrivateFile(Spec):
    """An absolute path to a file that exists; ``private``: not readable by everyone."""

    def __init__(self, private: bool) -> None:
        self.private = private

    def describe(self) -> str:
        return "an absolute path to an existing file" + (" that only its owner may read" if self.private else "")

    def convert(self, reader: Reader, path: str, value: Any) -> Path:
        file = AbsolutePath().convert(reader, path, value)
        try:
            mode = file.stat().st_mode
        except OSError as exc:
            raise Invalid(f"{show_value(value)}: {exc.strerror} (expected {self.describe()})") from None
        if not stat.S_ISREG(mode):  # a FIFO or device would block the daemon that reads it
            raise Invalid(f"{show_value(value)} is not a regular file (expected {self.describe()})")
        if self.private and mode & 0o004:
            raise Invalid(f"{show_value(value)} is readable by everyone (chmod o-r it: it holds a password)")
        return file


def _mqtt(reader: Reader, document: dict[str, Any]) -> MqttConfig | None:
    """``[mqtt]``: absent means no MQTT."""
    if "mqtt" not in document:
        return None
    table = reader.section(document, "mqtt", _MQTT_KEYS)

    def get(key: str, spec: Spec) -> Any:
        return reader.get(table, "mqtt", key, spec, default_of(MqttConfig, key))

    broker = reader.get(table, "mqtt", "broker", _Broker())
    host = re.sub(r"[^a-z0-9_-]", "-", socket.gethostname().lower()) or "controlroom"
    instance = reader.get(table, "mqtt", "id", _InstanceId(), host)
    link = get("link", ListOf(_InstanceId(), "instance ids", distinct=True, example='["control-b"]'))
    if link and instance in link:
        reader.error("mqtt.link", f'"{instance}" is this instance\'s own id (expected the ids of other instances)')
    targets = ListOf(Choice(STATE_TARGETS, "a target with a value"), "targets", distinct=True, example='["volume"]')
    host, port = broker or (None, None)
    return MqttConfig(
        host=host,
        port=port,
        id=instance,
        username=get("username", Text("a user name")),
        password_file=get("password_file", _PrivateFile(private=True)),
        ca_file=get("ca_file", _PrivateFile(private=False)),
        discovery=get("discovery", _BOOLEAN),
        discovery_prefix=get("discovery_prefix", _TopicPrefix()),
        meters_interval_s=get("meters_interval_s", _METERS_INTERVAL),
        link=link,
        link_targets=get("link_targets", targets),
    )


def _web(reader: Reader, document: dict[str, Any]) -> WebConfig | None:
    """``[web]``: absent means no web remote."""
    if "web" not in document:
        return None
    table = reader.section(document, "web", ("listen", "allow", "password_file"))
    host, port = reader.get(table, "web", "listen", _WEB_LISTEN, None) or (
        default_of(WebConfig, "host"),
        default_of(WebConfig, "port"),
    )
    return WebConfig(
        host=host,
        port=port,
        allow=reader.get(table, "web", "allow", _ALLOW, default_of(WebConfig, "allow")),
        password_file=reader.get(table, "web", "password_file", _PrivateFile(private=True), None),
    )


def _calibration(reader: Reader, document: dict[str, Any]) -> CalibrationConfig | None:
    """``[calibration]``: absent means no measurement mic."""
    if "calibration" not in document:
        return None
    table = reader.section(document, "calibration", keys_of(CalibrationConfig))

    def get(key: str, spec: Spec) -> Any:
        return reader.get(table, "calibration", key, spec, default_of(CalibrationConfig, key))

    return CalibrationConfig(
        mic=reader.get(table, "calibration", "mic", _CHANNEL),
        mic_dbfs_at_94_db_spl=get("mic_dbfs_at_94_db_spl", _MIC_SENSITIVITY),
        target_spl_db=get("target_spl_db", _SPL),
        noise_dbfs=get("noise_dbfs", _NOISE_LEVEL),
        max_boost_db=get("max_boost_db", _MAX_BOOST),
    )


def _surfaces(reader: Reader, document: dict[str, Any]) -> tuple[SurfaceConfig, ...]:
    surface = Table("a [[surfaces]] table with name, input and/or output, mapping", _surface)
    surfaces = reader.get(document, "", "surfaces", ListOf(surface, "[[surfaces]] tables"), ()) or ()
    first: dict[str, int] = {}
    for i, item in enumerate(surfaces):
        if item.name in first:
            message = f'"{item.name}" is also surfaces[{first[item.name]}] (expected unique names)'
            reader.error(f"surfaces[{i}].name", message)
        first.setdefault(item.name, i)
    return surfaces


def _surface(reader: Reader, path: str, table: dict[str, Any]) -> SurfaceConfig:
    reader.keys(table, path, ("name",) + keys_of(SurfaceConfig))
    surface = SurfaceConfig(
        name=reader.get(table, path, "name", _NAME),
        input=reader.get(table, path, "input", _PORT_NAME, None),
        output=reader.get(table, path, "output", _PORT_NAME, None),
        mapping=reader.get(table, path, "mapping", Text("a mapping preset name or path")),
    )
    if "input" not in table and "output" not in table:
        reader.error(path, "has neither input nor output (expected a MIDI port name in input, output or both)")
    return surface


def _levels(reader: Reader, document: dict[str, Any], monitor: MonitorConfig) -> dict[str, float]:
    """``[levels]``: named listening levels (dB) within the volume range."""
    spec = Table("a table of NAME = level in dB", as_is)
    table = reader.check(spec, "levels", document.get("levels", {})) or {}
    span = _volume_span(monitor.min_volume_db, monitor.max_volume_db)
    levels = {}
    for name in table:
        reader.check(_NAME, join_key("levels", name), name)
        levels[name] = reader.get(table, "levels", name, span)
    return levels
