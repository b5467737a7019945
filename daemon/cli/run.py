"""``controlroom run``: the daemon (systemd Type=notify)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from controlroom.daemon.cli import logsetup, options
from controlroom.daemon.config import search_path
from controlroom.daemon.errors import PortInUse
from controlroom.daemon.service import Daemon


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    logsetup.setup(logging.DEBUG if args.verbose else logging.INFO)
    config, path = options.load(args)
    log = logging.getLogger("controlroom")
    if path is None:
        # a studio whose config went missing would otherwise "run" without a sound
        looked = ", ".join(str(place.absolute()) for place in search_path())
        log.warning(
            "no config file found (no -c FILE, no $CONTROLROOM_CONFIG, none of %s): running the built-in default"
            " on the %s backend, no audio hardware in use",
            looked,
            config.audio.backend,
        )
    else:
        log.info("config: %s", path)
    try:
        status = asyncio.run(Daemon(config, path).run())
    except PortInUse as exc:
        raise options.port_in_use(exc, "run", path) from None
    engine = sys.modules.get("controlroom.daemon.engine.library")
    if engine is not None and not engine.finalisation_safe():
        # A stream given up after its device vanished may still call back into memory that
        # the interpreter's finalisation would free: the state is saved, leave without it.
        log.debug("leaving without finalisation: a stream may still run")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
