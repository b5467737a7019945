"""``controlroom learn TARGET [--surface NAME] [--value V] [-c FILE] [--timeout S]``: MIDI learn.

Waits for the next control moved on the surface's input and binds it to TARGET in the
surface's user mapping file (how it is recognised and where it is written: ``midi.learn``).
"""

from __future__ import annotations

import argparse
from typing import Any

from controlroom.daemon.cli import options
from controlroom.daemon.config import Config, SurfaceConfig
from controlroom.daemon.core.targets import TARGETS, Vocabulary
from controlroom.daemon.errors import TargetError, UsageError
from controlroom.daemon.midi.learn import control_fields, listen, opened_input, recognise, save


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument(
        "--surface", metavar="NAME", help="the surface to listen to (default: the only one with an input)"
    )
    parser.add_argument(
        "--value",
        metavar="V",
        help="what a button sets when pressed, e.g. a speaker set, a source or a level in dB "
        "(default: toggle a switch, next choice)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for a control (default: 30)"
    )
    parser.add_argument(
        "target", metavar="TARGET", help="volume, dim, mute, mono, solo, polarity, speakers, sub, source, ab or match"
    )


def run(args: argparse.Namespace) -> int:
    if args.target not in TARGETS:
        raise UsageError(f"unknown target {args.target!r} (expected one of {', '.join(TARGETS)})")
    config, path = options.load(args)
    if path is None:
        raise UsageError("no config file found: learn writes into the config's directory (give one with -c)")
    surface = _surface(config, args.surface)
    value = _value(config, args.target, args.value)
    # opened before the prompt: no one is asked to move a control that cannot be heard
    with opened_input(config, surface) as port:
        print(
            f"{surface.name}: move the control for {args.target} "
            "(turn encoders both ways, press and release buttons)...",
            flush=True,
        )
        learned = recognise(listen(port, args.timeout))
    if learned is None:
        raise UsageError(f"nothing usable came from {surface.input!r}")
    fields = control_fields(learned, args.target, value, feedback=surface.output is not None)
    written = save(path, config_dir=path.parent, surface=surface, fields=fields, midi=learned.midi)
    print(f"{surface.name}: bound {learned.describe()} to {args.target} in {written}")
    if learned.note:
        print(f"note: {learned.note}")
    print("reload the daemon to use it (SIGHUP, e.g. systemctl reload controlroom)")
    return 0


def _surface(config: Config, name: str | None) -> SurfaceConfig:
    if not config.surfaces:
        raise UsageError("add a [[surfaces]] table first (see `controlroom devices`)")
    inputs = [s for s in config.surfaces if s.input is not None]
    if name is not None:
        found = [s for s in inputs if s.name == name]
        if not found:
            raise UsageError(
                f"no surface {name!r} with an input (expected one of: {', '.join(s.name for s in inputs) or 'none'})"
            )
        return found[0]
    if len(inputs) != 1:
        if not inputs:
            raise UsageError("no surface has an input: give one an input port (see `controlroom devices`)")
        raise UsageError(f"name the surface with --surface ({', '.join(s.name for s in inputs)})")
    return inputs[0]


def _value(config: Config, target: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return Vocabulary(config).parse(target, value)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
