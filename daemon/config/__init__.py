"""The configuration file: TOML in, frozen dataclasses out, every error at once.

``load_config(path)`` reads and validates a file; every problem is one line ``FILE: key.path:
what is wrong (what was expected)`` of a ``ConfigError``. The modules behind this package:
``model`` (the dataclasses and limits), ``values`` (kinds of value and the reader, shared with
mapping files), ``schema`` (sections and keys), ``rules`` (rules across sections, and ``diff``
for reloads), ``limits`` (what a file may be and hold at all: regular, size, nesting, numbers;
shared with mapping and state files), ``loader`` (where the file is found, reading and parsing
it) and ``default.toml`` (the built-in config).
Importing it loads no numpy, numba or scipy, so that ``controlroom check`` answers at once.
"""

from controlroom.daemon.config.loader import (
    default_config,
    find_config,
    load_config,
    parse_config,
    parse_toml,
    read_text,
    search_path,
    syntax_error,
)
from controlroom.daemon.config.model import (
    BACKENDS,
    BLOCKSIZES,
    EMULATION_PROFILES,
    MATCH_MODES,
    MAX_CHANNEL,
    MAX_EQ_BANDS,
    POWER_POLICIES,
    SAMPLERATES,
    AbConfig,
    AudioConfig,
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
from controlroom.daemon.config.rules import Changes, diff

__all__ = [
    "BACKENDS",
    "BLOCKSIZES",
    "EMULATION_PROFILES",
    "MATCH_MODES",
    "MAX_CHANNEL",
    "MAX_EQ_BANDS",
    "POWER_POLICIES",
    "SAMPLERATES",
    "AbConfig",
    "AudioConfig",
    "Changes",
    "Config",
    "EmulationConfig",
    "InsertConfig",
    "MidiConfig",
    "MqttConfig",
    "MonitorConfig",
    "OscConfig",
    "OutboardConfig",
    "RecallConfig",
    "SequencingConfig",
    "SourceConfig",
    "SpeakerOutput",
    "SpeakerSetConfig",
    "StateConfig",
    "SubConfig",
    "SurfaceConfig",
    "WebConfig",
    "default_config",
    "diff",
    "find_config",
    "load_config",
    "parse_config",
    "parse_toml",
    "read_text",
    "search_path",
    "syntax_error",
]
