"""``controlroom check [-c FILE]``: validate the configuration exactly as ``run`` would read it.

Prints ``FILE: ok (...)`` and returns 0. An invalid config raises ConfigError, which the command
line prints one line per problem on stderr, exiting 2; so does a ``-c`` file that does not exist.
"""

from __future__ import annotations

import argparse

from controlroom.daemon.config import Config, default_config, find_config, load_config


def run(args: argparse.Namespace) -> int:
    path = find_config(args.config)
    config = load_config(path) if path is not None else default_config()
    name = config.source if path is not None else "built-in default (no config file found)"
    print(f"{name}: ok ({summary(config)})")
    return 0


def summary(config: Config) -> str:
    """One line: what the config defines, e.g. ``2 sources, 4 speaker sets, A/B mix vs ref, ...``."""
    audio = config.audio
    parts = [
        _plural(len(config.sources), "source"),
        _plural(len(config.speakers), "speaker set"),
        f"A/B {config.ab.a} vs {config.ab.b}" if config.ab else "no A/B pair",
        _plural(len(config.surfaces), "surface"),
        f"{audio.backend} {audio.samplerate} Hz, {audio.blocksize}-frame blocks",
        f"{audio.input_channels} in / {audio.output_channels} out",
    ]
    return ", ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
