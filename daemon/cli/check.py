"""``controlroom check [-c FILE | FILE]``: validate the configuration exactly as ``run`` would read it.

Prints ``FILE: ok (...)``, a line per surface and a ``warning:`` line per setting that is
valid but most likely not what was meant (OSC listening on the LAN while only loopback may
send), and returns 0. An invalid config or mapping
file raises ConfigError, which the command line prints one line per problem on stderr, exiting
2; so does a file named that does not exist, and GPIO outboard entries on a machine without
GPIO (unless ``GPIOZERO_PIN_FACTORY=mock``). The file may be named with ``-c`` or as the one
argument (not both: a UsageError). Mapping values are checked against the config
(speaker set and source names, the volume range).
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from controlroom.daemon.cli import options
from controlroom.daemon.config import Config
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.errors import ConfigError, PortError, UsageError
from controlroom.daemon.midi.mapping import bind, load_surface_mapping
from controlroom.daemon.midi.ports import api_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument("file", nargs="?", metavar="FILE", help="the config file, as -c names it")


def run(args: argparse.Namespace) -> int:
    if args.file is not None:
        if args.config is not None:
            raise UsageError(f"name the config once: -c {args.config} or {args.file}, not both")
        args.config = args.file
    config, path = options.load(args)
    notes = hardware(config)
    name = config.source if path is not None else "built-in default (no config file found)"
    surfaces = surface_lines(config, path.parent if path is not None else Path.cwd())
    print(f"{name}: ok ({summary(config)})")
    for line in surfaces:
        print(f"  {line}")
    for line in warnings(config) + notes:
        print(f"  warning: {line}")
    return 0


def hardware(config: Config) -> list[str]:
    """ConfigError when the config names hardware this machine lacks (GPIO pins without GPIO);
    else a warning line when its GPIO pins are gpiozero's mock pins (no relay would move)."""
    if not any(entry.kind == "gpio" for entry in config.outboard.values()):
        return []
    from controlroom.daemon.outboard import gpio_errors, mock_pins  # gpiozero only for a config that asks

    errors = gpio_errors(config)
    if errors:
        raise ConfigError(errors)
    if mock_pins():
        return [
            "outboard: GPIOZERO_PIN_FACTORY=mock: the GPIO entries drive mock pins in memory, no relay or "
            "amplifier moves (unset it on the rack's machine)"
        ]
    return []


def warnings(config: Config) -> list[str]:
    """What is valid yet most likely a mistake, one line each."""
    osc = config.osc
    try:
        listens_beyond_loopback = not ipaddress.ip_address(osc.host).is_loopback
    except ValueError:  # a host name: not resolved here, so not judged
        listens_beyond_loopback = False
    if listens_beyond_loopback and all(_loopback(network) for network in osc.allow):
        allowed = ", ".join(str(network) for network in osc.allow)
        host = f"[{osc.host}]" if ":" in osc.host else osc.host
        # the example network is documentation text: the user's LAN is theirs to fill in
        return [
            f'osc: listen = "{host}:{osc.port}" reaches the network, yet only {allowed} may send '
            "(osc.allow): tablets and other machines are ignored; to accept your LAN, add it, e.g. "
            'allow = ["127.0.0.0/8", "192.168.1.0/24"]'
        ]
    return []


def _loopback(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return network.network_address.is_loopback and network.broadcast_address.is_loopback


def surface_lines(config: Config, config_dir: Path) -> list[str]:
    """A line per surface (its mapping and how many controls it binds); ConfigError with every
    problem of every mapping file."""
    errors, lines = [], []
    if config.surfaces and config.midi.backend is not None:
        try:
            api_for(config.midi.backend)
        except PortError as exc:
            errors.append(f"{config.source}: midi.backend: {exc}")
    vocabulary = Vocabulary(config)
    for index, surface in enumerate(config.surfaces):
        try:
            mapping = load_surface_mapping(surface, index, config.source, config_dir)
        except ConfigError as exc:
            errors += exc.errors
            continue
        bound = bind(mapping, vocabulary)
        errors += bound.errors
        unused = f", {len(bound.unused)} unused (beyond the sets or sources defined)" if bound.unused else ""
        lines.append(
            f"surface {surface.name}: {mapping.name} ({_plural(len(bound.mapping.controls), 'control')}{unused})"
        )
    if errors:
        raise ConfigError(errors)
    return lines


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
    if config.outboard:
        parts.append(f"{_plural(len(config.outboard), 'outboard output')}, power {config.sequencing.power_policy}")
    return ", ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
