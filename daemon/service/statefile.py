"""The state file: targets' values survive restarts and power cuts.

One JSON document, ``{"version": N, "targets": {...}, "match_db": {...}, "inserts": {...},
"calibration": {...}}``,
saved by atomic replace (write a temporary file, fsync, rename, fsync the directory) shortly
after each change, so a power cut leaves either the old or the new file, never half of one.

A document of an older version is brought up to date by ``MIGRATIONS`` when read; one of a newer
version (after a downgrade) is restored as far as this version understands it. A file that
cannot be used — corrupt, beyond the limits every file controlroom reads is held to
(``config.limits``: size, nesting, entries, integers), of an unexpected shape, without a valid
version — is renamed to ``state.json.corrupt.<time>`` (kept for the user, never overwritten)
and reported in one warning; the daemon starts from the config's defaults. Nothing here ever
raises for what the file holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controlroom.daemon.config import limits
from controlroom.daemon.errors import LimitError

log = logging.getLogger(__name__)

#: The version ``save`` writes.
FORMAT_VERSION = 1
#: ``MIGRATIONS[n]`` turns a version-n document into version n + 1 (none yet: version 1 is the
#: first; a file without a version is read as version 1, which it is).
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
#: Quiet time before a save (s): a knob turned for a while is written once, not per tick.
DEBOUNCE_S = 0.5
#: Longest a change may wait while changes keep coming (s).
MAX_DELAY_S = 3.0
#: Longest warning about the entries not restored (characters).
MAX_WARNING_CHARS = 2000


def default_path(configured: Path | None) -> Path:
    """``[state] path``, else ``$STATE_DIRECTORY/state.json`` (systemd), else the XDG state dir."""
    if configured is not None:
        return Path(configured).expanduser()
    if os.environ.get("STATE_DIRECTORY"):
        # systemd may pass several directories separated by ':'; the first is ours
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "state.json"
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "controlroom" / "state.json"


def load(path: Path) -> dict[str, Any]:
    """The saved document at the current version, or ``{}`` (with one warning logged, and an
    unusable file set aside) when missing or unusable: not a regular file (a FIFO, a device:
    left alone), larger or deeper than the limits of ``config.limits`` (set aside)."""
    try:
        data = limits.read_file(path)
    except FileNotFoundError:
        log.info("no saved state at %s: starting from the config's defaults", path)
        return {}
    except OSError as exc:
        log.warning("cannot read state file %s (%s): starting from defaults", path, exc)
        return {}
    except LimitError as exc:
        if not path.is_file():  # a FIFO, a device: not ours to rename; the next save replaces it
            log.warning("state file %s %s: ignored; starting from defaults", path, exc)
            return {}
        return _set_aside(path, str(exc))
    try:
        # invalid UTF-8 (UnicodeDecodeError is a ValueError) and absurd nesting are corruption
        # too, not a reason to crash
        text = data.decode("utf-8")
        limits.check_text(text, limits.JSON_TOKENS)
        doc = json.loads(text)
    except LimitError as exc:
        return _set_aside(path, str(exc))
    except (ValueError, RecursionError) as exc:
        return _set_aside(path, f"is corrupt ({str(exc)[:200]})")
    problems = limits.check_document(doc)
    if problems:
        return _set_aside(path, f"holds {problems[0].key}: {problems[0]}")
    if not isinstance(doc, dict) or not isinstance(doc.get("targets", {}), dict):
        return _set_aside(path, "has an unexpected shape")
    version = doc.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return _set_aside(path, f"has no valid version ({str(version)[:20]})")
    if version > FORMAT_VERSION:
        # a downgrade: every value is checked as it is restored, unknown ones are ignored
        log.warning(
            "state file %s is of version %d, newer than this controlroom's %d: restoring what it knows",
            path,
            version,
            FORMAT_VERSION,
        )
    while version < FORMAT_VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
        doc["version"] = version
    return doc


def warn_ignored(path: Path, warnings: list[str]) -> None:
    """Log what could not be restored from the state file at ``path`` (a warning per entry,
    from restoring its targets, offsets and measurements) as one warning of at most
    ``MAX_WARNING_CHARS`` characters."""
    if not warnings:
        return
    text = "; ".join(warnings)
    if len(text) > MAX_WARNING_CHARS:
        text = text[: MAX_WARNING_CHARS - 3] + "..."
    log.warning("state file %s: %d entries not restored: %s", path, len(warnings), text)


def _set_aside(path: Path, problem: str) -> dict[str, Any]:
    """Rename the unusable file at ``path`` out of the way (the next save writes a new one)
    and say so; ``{}``."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt.{stamp}")
    n = 1
    while aside.exists():  # a restart loop within the second: keep every earlier file too
        n += 1
        aside = path.with_name(f"{path.name}.corrupt.{stamp}.{n}")
    try:
        path.rename(aside)
    except OSError as exc:
        log.warning("state file %s %s, and cannot be set aside (%s): starting from defaults", path, problem, exc)
    else:
        log.warning("state file %s %s: kept as %s; starting from defaults", path, problem, aside)
    return {}


def save(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically and durably. OSError when it cannot, and when
    ``path`` is something other than a regular file: a FIFO or a device (``/dev/null`` given
    to turn saving off) is not replaced by a file, even by a daemon running as root."""
    if path.exists() and not path.is_file():
        raise OSError(f"{path} is not a regular file (left as it is)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": FORMAT_VERSION, **doc}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Saver:
    """Debounced saving from the event loop: ``changed()`` after each change, ``flush()`` at exit.

    ``snapshot`` returns the document to write; the write runs in a worker thread so a slow
    SD card never stalls the control plane.
    """

    def __init__(self, path: Path, snapshot) -> None:
        self.path = path
        self.snapshot = snapshot
        self._timer: asyncio.TimerHandle | None = None
        self._first_change: float | None = None
        self._writing: asyncio.Task | None = None
        self.saves = 0

    def changed(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._first_change is None:
            self._first_change = now
        if self._timer is not None:
            self._timer.cancel()
        delay = min(DEBOUNCE_S, max(0.0, self._first_change + MAX_DELAY_S - now))
        self._timer = loop.call_later(delay, self._start_write)

    def _start_write(self) -> None:
        self._timer = None
        self._first_change = None
        doc = self.snapshot()
        previous = self._writing
        self._writing = asyncio.ensure_future(self._write(previous, doc))

    async def _write(self, previous: asyncio.Task | None, doc: dict[str, Any]) -> None:
        if previous is not None:
            await asyncio.shield(previous)  # keep writes in order
        try:
            await asyncio.to_thread(save, self.path, doc)
            self.saves += 1
        except OSError as exc:
            log.error("cannot save state to %s: %s", self.path, exc)

    async def flush(self) -> None:
        """Write any pending change now and wait for all writes to finish."""
        if self._timer is not None:
            self._timer.cancel()
            self._start_write()
        if self._writing is not None:
            await self._writing
