"""The ``controlroom`` command line (DESIGN.md §7).

Each command lives in its own module and is imported only when used, so that
``controlroom check`` answers without compiling any DSP.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from controlroom import __version__
from controlroom.daemon.errors import CommandError

#: command name -> module (under controlroom.daemon) whose ``run(args) -> int`` carries it out
COMMANDS = {
    "check": "check",
    "render": "render",
    "meter": "meter",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="controlroom", description="Headless studio monitor controller.")
    parser.add_argument("--version", action="version", version=f"controlroom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help="validate the config and its mappings; exit 0 or 2")
    p.add_argument("-c", "--config", metavar="FILE", help="config file (default: the usual search path)")

    p = sub.add_parser("render", help="run an audio file through the monitor path")
    p.add_argument("-c", "--config", metavar="FILE", help="config file (default: the usual search path)")
    p.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="TARGET=VALUE",
        help="set a target for the whole render (repeatable), e.g. --set speakers=crap",
    )
    p.add_argument("input", metavar="IN", help="input file (WAV, FLAC, AIFF); channel k is input k")
    p.add_argument("output", metavar="OUT", help="output file, same format as IN")

    p = sub.add_parser("meter", help="offline loudness report (BS.1770-4 / EBU R128)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--target", metavar="NAME", help="check a delivery spec (see README)")
    p.add_argument("--album", action="store_true", help="add the figures of all files played in sequence")
    p.add_argument("files", nargs="+", metavar="FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"controlroom.daemon.{COMMANDS[args.command]}")
    try:
        return module.run(args)
    except CommandError as exc:
        print(f"controlroom {args.command}: {exc}" if "\n" not in str(exc) else str(exc), file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
