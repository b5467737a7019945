"""``controlroom run``: the daemon (systemd Type=notify)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from functools import partial

from controlroom.daemon.cli import check, logsetup, options, warmup
from controlroom.daemon.config import search_path
from controlroom.daemon.errors import PortInUse
from controlroom.daemon.service import Daemon
from controlroom.dsp.path import process


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    logsetup.setup(logging.DEBUG if args.verbose else logging.INFO)
    config, path = options.load(args)
    notes = check.hardware(config)
    log = logging.getLogger("controlroom")
    for line in notes:
        log.warning("%s", line)
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
    daemon = Daemon(config, path, announce=partial(warmup.announce, process, log=log))
    try:
        status = asyncio.run(daemon.run())
    except PortInUse as exc:
        raise options.port_in_use(exc, "run", path) from None
    return leave(status, daemon)


def leave(status: int, daemon: Daemon) -> int:
    """``status``, or leave the process at once with it (``os._exit``, the state already
    saved) when a thread of the engine may still run: finalisation would free memory under a
    stream given up while it may still call back, and would wait for a first start's compile
    that a stop gave up."""
    log = logging.getLogger("controlroom")
    if (daemon.runner is not None and daemon.runner.abandoned) or not _engine_finalisation_safe():
        log.debug("leaving without finalisation: an engine thread may still run")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _engine_finalisation_safe() -> bool:
    engine = sys.modules.get("controlroom.daemon.engine.library")
    if engine is None:
        return True
    # Without the function the module is still being imported by a worker thread that a stop
    # during the first start gave up (its import initialises PortAudio): that thread runs on.
    finalisation_safe = getattr(engine, "finalisation_safe", None)
    return finalisation_safe is not None and finalisation_safe()
