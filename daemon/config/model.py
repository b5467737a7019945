"""The configuration as the daemon uses it: frozen dataclasses, and the limits they keep to.

Units: levels and gains in dB, frequencies in Hz, times in ms, channel numbers 1-based as
printed on audio interfaces.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from controlroom.dsp import layout
from controlroom.dsp.bands import Biquad
from controlroom.dsp.profiles import PROFILE_NAMES

#: Audio backends: PortAudio hardware, or a self-clocked thread with no hardware.
BACKENDS = ("portaudio", "virtual")
#: Sample rates (Hz) the monitor path is designed for.
SAMPLERATES = (44100, 48000, 88200, 96000, 176400, 192000)
#: Block sizes (frames): powers of two from 16 to 4096.
BLOCKSIZES = tuple(2**k for k in range(4, 13))
#: Loudness-match modes of the ``[ab]`` pair: the ``match`` target's values.
MATCH_MODES = ("off", "auto", "hold")
#: The targets by kind (the vocabulary of OSC, MIDI, MQTT, ``ctl`` and the state file; their
#: values are parsed in ``core.targets``).
BOOL_TARGETS = ("dim", "mute", "mono", "polarity", "sub", "blind")
ENUM_TARGETS = ("solo", "speakers", "source", "ab", "match")
NUMERIC_TARGETS = ("volume",)
#: Targets with a value of their own: the state, its file and feedback.
STATE_TARGETS = NUMERIC_TARGETS + BOOL_TARGETS + ENUM_TARGETS
#: Write-only targets: they set other targets and have no value of their own (``level`` sets
#: ``volume`` to a named ``[levels]`` entry).
WRITE_ONLY_TARGETS = ("level",)
TARGETS = STATE_TARGETS + WRITE_ONLY_TARGETS
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
#: What ``[sequencing] power_policy`` may say: amplifiers on while the daemon runs, or only
#: while a set that names them plays.
POWER_POLICIES = ("always", "selected")
#: GPIO pins by BCM number: the 40-pin header of every Raspberry Pi has GPIO 0 to 27.
GPIO_PINS = (0, 27)
#: Words ``ctl`` and OSC use for relative steps; a name equal to one would be ambiguous.
RESERVED_NAMES = ("next", "prev", "toggle", "step")

#: A network of the OSC allowlist.
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
class SpeakerOutput:
    """One of a speaker set's outputs: its 1-based channel, and its own trim (dB) and delay
    (ms) on top of the set's (an asymmetric room: one speaker nearer or louder)."""

    channel: int
    trim_db: float = 0.0
    delay_ms: float = 0.0


@dataclass(frozen=True)
class RecallConfig:
    """A speaker set's preset recall: Bank Select (``bank``: MSB = bank // 128 on CC 0, LSB =
    bank % 128 on CC 32) and Program Change ``program`` (0-127) sent to MIDI outboard entry
    ``outboard``; ``settle_ms``: how long the device takes to load it before audio returns."""

    outboard: str
    program: int
    bank: int | None = None  # None: Program Change only
    settle_ms: float = 0.0


@dataclass(frozen=True)
class SpeakerSetConfig:
    """``[speakers.NAME]``: 1 or 2 outputs (one = mono sum), trim dB, delay ms, EQ; and what
    selecting it does outside: ``power`` (outboard switches on while it plays, or always),
    ``relays`` (on while it plays, switched only in silence), ``recall`` (a MIDI preset)."""

    name: str
    outputs: tuple[SpeakerOutput, ...]
    trim_db: float = 0.0
    delay_ms: float = 0.0
    eq: tuple[Biquad, ...] = ()
    sub: SubConfig | None = None
    emulate: str | None = None  # one of EMULATION_PROFILES or a user-defined [emulations.NAME]
    power: tuple[str, ...] = ()  # [[outboard]] switches: amplifiers, powered in sequence
    relays: tuple[str, ...] = ()  # [[outboard]] switches: relays, switched in silence
    recall: RecallConfig | None = None

    @property
    def channels(self) -> tuple[int, ...]:
        """The 1-based output channels, in order (none while the outputs are invalid)."""
        return tuple(o.channel for o in self.outputs or ())


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
class CalibrationConfig:
    """``[calibration]``: the measurement mic's 1-based input channel and, optionally, what it
    reads (dBFS RMS) on a 94 dB SPL calibrator; the level each speaker is set to (dB SPL, or
    relative to the quietest without a calibrated mic) for pink noise at ``noise_dbfs`` (dBFS
    RMS, the test signal's level), and the most a speaker may be raised (dB)."""

    mic: int
    mic_dbfs_at_94_db_spl: float | None = None
    target_spl_db: float = 79.0
    noise_dbfs: float = -20.0
    max_boost_db: float = 6.0


@dataclass(frozen=True)
class OscConfig:
    """``[osc]``: UDP listen address, sender allowlist, clients that always get feedback, and
    how many senders may subscribe at once."""

    host: str = "127.0.0.1"
    port: int = 9000  # 0 = any free port
    allow: tuple[IPNetwork, ...] = (ipaddress.IPv4Network("127.0.0.0/8"),)
    clients: tuple[tuple[str, int], ...] = ()
    max_subscribers: int = 32


#: Who may open the web remote unless ``[web] allow`` says: this machine and the private ranges.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7", "fe80::/10")
)


@dataclass(frozen=True)
class WebConfig:
    """``[web]``: the web remote's listen address (TOML ``listen = "host:port"``, port 0 = any
    free port), who may open it, and the file holding its password (none: no password)."""

    host: str = "127.0.0.1"
    port: int = 8080
    allow: tuple[IPNetwork, ...] = PRIVATE_NETWORKS
    password_file: Path | None = None


@dataclass(frozen=True)
class MqttConfig:
    """``[mqtt]``: the broker (TOML ``broker = "host[:port]"``), this instance's ``id`` in its
    topics, the login and TLS files, Home Assistant discovery, how often meters go out (s), and
    the instances whose ``link_targets`` follow ours and ours theirs."""

    host: str
    port: int = 1883
    id: str = ""
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    meters_interval_s: float = 1.0
    link: tuple[str, ...] = ()
    link_targets: tuple[str, ...] = ("volume", "dim", "mute")


@dataclass(frozen=True)
class OutboardConfig:
    """``[[outboard]]``: one output of the daemon to outboard gear, of one ``kind``:

    - ``gpio``: a pin (BCM number) driving a relay or an amplifier's power; ``active_high``
      false for the common relay boards that switch on a low pin;
    - ``midi``: a MIDI output port (name substring) that receives preset recalls, at least
      ``min_interval_ms`` apart, on MIDI ``channel`` (1-16);
    - ``mqtt``: a switch on the MQTT broker (a smart plug): ``payload_on``/``payload_off`` to
      ``mqtt_topic``.
    """

    name: str
    kind: str  # "gpio" | "midi" | "mqtt"
    gpio: int | None = None
    active_high: bool = True
    midi_port: str | None = None
    channel: int = 1
    min_interval_ms: float = 0.0
    mqtt_topic: str | None = None
    payload_on: str = "ON"
    payload_off: str = "OFF"

    @property
    def switch(self) -> bool:
        """Whether it is switched on and off (GPIO, MQTT); a MIDI device recalls presets."""
        return self.kind != "midi"


@dataclass(frozen=True)
class SequencingConfig:
    """``[sequencing]``: how outboard gear is switched. ``on_delay_ms`` between amplifiers
    coming on one after another (they go off together, last on first off, in silence);
    ``settle_ms`` after relays switch before presets are recalled and audio returns (a recall's
    own ``settle_ms`` follows it); ``power_policy``: one of POWER_POLICIES."""

    on_delay_ms: float = 1000.0
    settle_ms: float = 50.0
    power_policy: str = "always"


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
    mqtt: MqttConfig | None = None  # None: no [mqtt] section, MQTT off
    web: WebConfig | None = None  # None: no [web] section, no web remote
    outboard: dict[str, OutboardConfig] = field(default_factory=dict)  # [[outboard]], in file order
    sequencing: SequencingConfig = field(default_factory=SequencingConfig)
    calibration: CalibrationConfig | None = None  # None: no [calibration] section, no mic

    @property
    def default_source(self) -> str:
        """Name of the source heard when nothing else is known: the first one defined."""
        return next(iter(self.sources))

    @property
    def default_speakers(self) -> str:
        """Name of the speaker set played when nothing else is known: the first one defined."""
        return next(iter(self.speakers))
