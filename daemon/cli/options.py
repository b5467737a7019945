"""Options several commands share: ``-c/--config`` and how the config is then found."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from controlroom.daemon.config import Config, default_config, find_config, load_config
from controlroom.daemon.errors import PortInUse


def add_config(parser: argparse.ArgumentParser, default: str = "the usual search path") -> None:
    """``-c/--config FILE``; ``default`` says in its help what is read without it."""
    parser.add_argument("-c", "--config", metavar="FILE", help=f"config file (default: {default})")


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


def port_in_use(exc: PortInUse, command: str, path: Path | None) -> PortInUse:
    """``exc`` (an OSC or web address is taken) with what to do about it: where ``command``
    reads the key that chooses it (``[osc] listen``, ``[web] listen``) from, the config file
    ``path``, or a config to name with ``-c`` when it runs on the built-in default (path None)."""
    where = f"in {path}" if path is not None else f"in a config: controlroom {command} -c FILE"
    return PortInUse(f"{exc} (another controlroom running? choose another port with {exc.key} {where})", exc.key)
