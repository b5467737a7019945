"""The ``controlroom`` command line.

Each command is a module here with ``add_arguments(parser)`` and ``run(args) -> int``. Only the
module of the command given is imported, so that ``controlroom ctl`` and ``controlroom check``
answer without loading numba or compiling any DSP. Errors become messages and exit statuses
here and nowhere else: 2 for what the user gave (a config, an argument, a value), 1 for what
the machine did (audio, ports, a daemon that does not answer), 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import controlroom
from controlroom.daemon.errors import ConfigError, ControlroomError, TargetError, UsageError

#: command -> (module under controlroom.daemon.cli, one line of help)
COMMANDS = {
    "run": ("run", "the daemon (systemd Type=notify)"),
    "demo": ("demo", "the daemon on generated programme, no audio hardware, live view"),
    "check": ("check", "validate the config and its mappings; exit 0 or 2"),
    "warm": ("warm", "compile the audio engine into numba's cache (after an install or upgrade)"),
    "devices": ("devices", "list audio devices and MIDI ports"),
    "ctl": ("ctl", "control a running daemon over OSC"),
    "render": ("render", "run an audio file through the monitor path"),
    "meter": ("meter", "offline loudness report (BS.1770-4 / EBU R128)"),
    "plot": ("plot", "draw each speaker set's frequency response as the path plays it (PNG)"),
    "learn": ("learn", "MIDI learn: bind the next control moved on a surface to TARGET and save it"),
}

#: the commands that run the daemon (and so stay up, holding what they loaded)
DAEMONS = ("run", "demo")
#: exit status by kind of error; any other ControlroomError exits 1
USER_ERRORS = (ConfigError, UsageError, TargetError)


class _Version(argparse.Action):
    """``--version``: the version is looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"controlroom {controlroom.__version__}")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="controlroom", description="Headless studio monitor controller.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((word for word in argv if not word.startswith("-")), None)
    command = None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            if name in DAEMONS:
                from controlroom.daemon.cli import warmup

                warmup.leave_scipy_unloaded()  # before numba is imported, which imports it
            command = importlib.import_module(f"controlroom.daemon.cli.{module_name}")
            command.add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return command.run(args)
    except ConfigError as exc:  # already "FILE: key.path: problem", one line each
        print("\n".join(exc.errors), file=sys.stderr)
        return 2
    except ControlroomError as exc:
        print(f"controlroom {args.command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, USER_ERRORS) else 1
    except KeyboardInterrupt:
        return 130
