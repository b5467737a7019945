"""The ``controlroom`` command line (DESIGN.md §7).

Each command lives in its own module and is imported only when used, so that
``controlroom check`` answers without compiling any DSP.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from controlroom import __version__
from controlroom.daemon.errors import CommandError, ConfigError

#: command name -> module (under controlroom.daemon) whose ``run(args) -> int`` carries it out
COMMANDS = {
    "run": "run",
    "demo": "demo",
    "check": "check",
    "devices": "devices",
    "render": "render",
    "meter": "meter",
    "ctl": "ctl",
    "learn": "midi.learn",
    "plot": "plot",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="controlroom", description="Headless studio monitor controller.")
    parser.add_argument("--version", action="version", version=f"controlroom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="the daemon (systemd Type=notify)")
    p.add_argument("-c", "--config", metavar="FILE", help="config file (default: the usual search path)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    p = sub.add_parser("demo", help="the daemon on generated programme, no audio hardware, live view")
    p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")

    p = sub.add_parser("devices", help="list audio devices and MIDI ports")
    p.add_argument("--json", action="store_true", help="machine-readable output")

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

    p = sub.add_parser(
        "ctl", help="control a running daemon over OSC",
        usage="controlroom ctl [--osc HOST:PORT] [--json] [--timeout S] "
              "{TARGET [VALUE|toggle|next|prev|step DELTA] | blind reveal | abx [start N|play L|answer L|stop] | insert [measure NAME] | status}",
    )
    p.add_argument("--osc", metavar="HOST:PORT", help="the daemon's OSC address (default: 127.0.0.1:9000)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for the answer (default: 2)")
    p.add_argument("target", metavar="TARGET", help="volume, dim, mute, mono, solo, polarity, speakers, sub, "
                   "source, ab, match, blind, level; or abx, insert, status")
    p.add_argument("words", nargs="*", metavar="VALUE", help="a value, toggle, next, prev or step DELTA; "
                   "none: print the current value")

    p = sub.add_parser("plot", help="draw each speaker set's frequency response as the path plays it (PNG)")
    p.add_argument("-c", "--config", metavar="FILE", help="config file (default: the usual search path)")
    p.add_argument(
        "--speakers", action="append", default=[], metavar="NAME",
        help="plot this speaker set (repeatable; default: every set)",
    )
    p.add_argument("--samplerate", type=int, metavar="HZ", help="sample rate to design the filters at "
                   "(default: the config's)")
    p.add_argument("output", metavar="OUT.png", help="PNG file to write")

    p = sub.add_parser("learn", help="MIDI learn: bind the next control moved on a surface to TARGET and save it")
    p.add_argument("-c", "--config", metavar="FILE", help="config file (default: the usual search path)")
    p.add_argument("--surface", metavar="NAME", help="the surface to listen to (default: the only one with an input)")
    p.add_argument("--value", metavar="V", help="what a button sets when pressed, e.g. a speaker set, a source "
                   "or a level in dB (default: toggle a switch, next choice)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for a control (default: 30)")
    p.add_argument("target", metavar="TARGET", help="volume, dim, mute, mono, solo, polarity, speakers, sub, "
                   "source, ab or match")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"controlroom.daemon.{COMMANDS[args.command]}")
    try:
        return module.run(args)
    except ConfigError as exc:  # already "FILE: key.path: problem", one line each
        print("\n".join(exc.errors), file=sys.stderr)
        return exc.status
    except CommandError as exc:
        print(f"controlroom {args.command}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
