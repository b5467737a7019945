"""Rules between sections of the config, and what a reload changes.

``channel_counts`` checks what no single key can: that the channels sources, speaker sets,
subwoofers and inserts use exist on the interface. ``diff(old, new)`` classifies a reload once,
for the engine runner and the daemon: which parts must be restarted, from the parameters of the
running path (published to the kernel without a gap) to the stream itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controlroom.daemon.config.model import (
    AudioConfig,
    CalibrationConfig,
    Config,
    InsertConfig,
    SourceConfig,
    SpeakerSetConfig,
)
from controlroom.daemon.config.values import Reader, join_key

#: ``[audio]`` keys whose change needs a new stream on fresh kernel buffers.
STREAM_KEYS = ("backend", "device", "samplerate", "blocksize", "input_channels", "output_channels")


@dataclass(frozen=True)
class Changes:
    """What a reload from one config to another changes.

    ``stream``: the ``[audio]`` keys that differ (the stream is reopened on fresh buffers; empty
    when the path's parameters can be published to the running kernel). ``device``: the
    backend or device changed, so the device list is read afresh. ``sources``: the sources'
    channels or names changed (the loudness meters start again). ``osc``: the OSC server is
    restarted. (The MIDI surfaces take every reload: they re-read their mapping files.)
    """

    stream: tuple[str, ...]
    device: bool
    sources: bool
    osc: bool


def diff(old: Config, new: Config) -> Changes:
    """How ``new`` differs from the running ``old``, by what must be restarted."""
    stream = tuple(k for k in STREAM_KEYS if getattr(old.audio, k) != getattr(new.audio, k))
    return Changes(
        stream=stream,
        device="backend" in stream or "device" in stream,
        sources={n: s.channels for n, s in old.sources.items()} != {n: s.channels for n, s in new.sources.items()},
        osc=old.osc != new.osc,
    )


def channel_counts(
    reader: Reader,
    audio: AudioConfig,
    sources: dict[str, SourceConfig],
    speakers: dict[str, SpeakerSetConfig],
    inserts: dict[str, InsertConfig],
    calibration: CalibrationConfig | None = None,
) -> AudioConfig:
    """``audio`` with its channel counts: as given (every channel used must fit), else the
    highest channel that sources, insert returns and the measurement mic (inputs) or speaker
    sets, subs and insert sends (outputs) use."""
    inputs = [
        (f"{join_key('sources', name)}.channels[{i}]", channel)
        for name, source in sources.items()
        for i, channel in enumerate(source.channels or ())
    ]
    if calibration is not None and calibration.mic is not None:
        inputs.append(("calibration.mic", calibration.mic))
    outputs = (
        [
            (f"{join_key('speakers', name)}.outputs[{i}]", channel)
            for name, speaker_set in speakers.items()
            for i, channel in enumerate(speaker_set.channels)
        ]
        + [
            (f"{join_key('speakers', name)}.sub.output", speaker_set.sub.output)
            for name, speaker_set in speakers.items()
            if speaker_set.sub is not None and speaker_set.sub.output is not None
        ]
        + [
            (f"{join_key('inserts', name)}.send[{i}]", channel)
            for name, insert in inserts.items()
            for i, channel in enumerate(insert.send or ())
        ]
    )
    return replace(
        audio,
        input_channels=_count(reader, "input_channels", audio.input_channels, inputs),
        output_channels=_count(reader, "output_channels", audio.output_channels, outputs),
    )


def _count(reader: Reader, key: str, given: int | None, used: list[tuple[str, int]]) -> int:
    if given is None:
        return max((channel for _, channel in used), default=1)  # none used: errors already say why
    for path, channel in used:
        if channel > given:
            reader.error(path, f"{channel} is above audio.{key} (expected a channel from 1 to {given})")
    return given
