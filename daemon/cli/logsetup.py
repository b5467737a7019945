"""Logging to stderr, journald-friendly: no timestamps when journald adds its own."""

from __future__ import annotations

import logging
import os
import sys


def setup(level: int = logging.INFO) -> None:
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
