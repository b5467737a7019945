"""``controlroom run``: the daemon (systemd Type=notify)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from controlroom.daemon.cli import logsetup, options
from controlroom.daemon.service import Daemon


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    logsetup.setup(logging.DEBUG if args.verbose else logging.INFO)
    config, path = options.load(args)
    logging.getLogger("controlroom").info("config: %s", path or "built-in default")
    status = asyncio.run(Daemon(config, path).run())
    engine = sys.modules.get("controlroom.daemon.engine.library")
    if engine is not None and not engine.finalisation_safe():
        # A stream given up after its device vanished may still call back into memory that
        # the interpreter's finalisation would free: the state is saved, leave without it.
        logging.getLogger("controlroom").debug("leaving without finalisation: a stream may still run")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
