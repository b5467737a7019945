"""Options several commands share: ``-c/--config`` and how the config is then found."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from controlroom.daemon.config import Config, default_config, find_config, load_config


def add_config(parser: argparse.ArgumentParser) -> None:
    """``-c/--config FILE``."""
    parser.add_argument("-c", "--config", metavar="FILE", help="config file (default: the usual search path)")


def positive_seconds(text: str) -> float:
    """An argparse ``type``: a finite number of seconds above 0 (else an argument error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def load(args: argparse.Namespace) -> tuple[Config, Path | None]:
    """The config ``-c`` names, else the first on the search path, else the built-in default
    (path None). ConfigError when the file named is missing or invalid."""
    path = find_config(args.config)
    return (load_config(path) if path is not None else default_config()), path
