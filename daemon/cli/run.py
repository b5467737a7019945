"""``controlroom run``: the daemon (systemd Type=notify)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from controlroom.daemon.cli import logsetup, options
from controlroom.daemon.service import Daemon


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    logsetup.setup(logging.DEBUG if args.verbose else logging.INFO)
    config, path = options.load(args)
    logging.getLogger("controlroom").info("config: %s", path or "built-in default")
    return asyncio.run(Daemon(config, path).run())
