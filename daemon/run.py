"""``controlroom run``: the daemon (systemd Type=notify)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from controlroom.daemon import logsetup
from controlroom.daemon.config import default_config, find_config, load_config
from controlroom.daemon.service import Daemon


def run(args: argparse.Namespace) -> int:
    logsetup.setup(logging.DEBUG if args.verbose else logging.INFO)
    path = find_config(args.config)
    config = load_config(path) if path else default_config()
    logging.getLogger("controlroom").info("config: %s", path or "built-in default")
    return asyncio.run(Daemon(config, path).run())
