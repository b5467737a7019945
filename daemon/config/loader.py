"""Finding, reading and validating a config file."""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from controlroom.daemon.config import limits
from controlroom.daemon.config.model import Config
from controlroom.daemon.config.schema import OUTBOARD_TABLE_HINT, read_document
from controlroom.daemon.config.values import Reader
from controlroom.daemon.errors import ConfigError, LimitError

_OUTBOARD_TABLE = re.compile(r"^\s*\[\s*outboard\s*\]", re.MULTILINE)
_OUTBOARD_ENTRY = re.compile(r"^\s*\[\[\s*outboard\s*\]\]", re.MULTILINE)
_TOML_POSITION = re.compile(r"\s*\((at line (\d+), column (\d+)|at end of document)\)\s*$")

#: Fallback locations after ``-c`` and ``$CONTROLROOM_CONFIG`` (module attributes so that tests
#: can point them elsewhere).
LOCAL_CONFIG = Path("controlroom.toml")
SYSTEM_CONFIG = Path("/etc/controlroom/config.toml")


def find_config(explicit: str | None) -> Path | None:
    """The config file to use, or None for the built-in default.

    Order: ``explicit`` (``-c``), ``$CONTROLROOM_CONFIG``, ``./controlroom.toml``,
    ``$XDG_CONFIG_HOME/controlroom/config.toml`` (``~/.config`` when unset),
    ``/etc/controlroom/config.toml``. A file named by ``-c`` or the environment must exist:
    falling back to another file would silently run a different studio.
    """
    for given, origin in ((explicit, "-c"), (os.environ.get("CONTROLROOM_CONFIG"), "$CONTROLROOM_CONFIG")):
        if given:
            path = Path(given).expanduser()
            if not path.exists():
                raise ConfigError([f"{given}: no such config file (given by {origin})"])
            return path
    for path in search_path():
        if path.is_file():
            return path
    return None


def search_path() -> tuple[Path, ...]:
    """The files ``find_config`` tries, in order, when neither ``-c`` nor
    ``$CONTROLROOM_CONFIG`` names one."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    config_home = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"
    return (LOCAL_CONFIG, config_home / "controlroom" / "config.toml", SYSTEM_CONFIG)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at ``path``; raises ConfigError listing every problem."""
    return parse_config(read_text(path), os.fspath(path))


def read_text(path: str | os.PathLike[str] | Traversable) -> str:
    """The UTF-8 text of a TOML file (a path or a package resource) within the limits of
    ``limits``; ConfigError if unreadable, no regular file or too large."""
    try:
        if isinstance(path, Traversable) and not isinstance(path, Path):
            data = path.read_bytes()  # a packaged preset
        else:
            data = limits.read_file(path)
    except OSError as exc:
        raise ConfigError([f"{_source_name(path)}: cannot read ({exc.strerror or exc})"]) from None
    except LimitError as exc:
        raise ConfigError([f"{_source_name(path)}: {exc}"]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"byte {exc.start} is not UTF-8 (expected a UTF-8 TOML file)"
        raise ConfigError([f"{_source_name(path)}: {message}"]) from None


def _source_name(path: str | os.PathLike[str] | Traversable) -> str:
    return os.fspath(path) if isinstance(path, str | os.PathLike) else str(path)


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """The document of TOML ``text`` within the limits of ``limits``; ``source`` names it in
    error lines. Raises ConfigError with every limit crossed, or the syntax error."""
    try:
        limits.check_text(text, limits.TOML_TOKENS)
        document = tomllib.loads(text)
    except LimitError as exc:
        raise ConfigError([f"{source}: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        errors = [syntax_error(source, exc)]
        if _OUTBOARD_TABLE.search(text) and _OUTBOARD_ENTRY.search(text):
            errors.append(f"{source}: outboard: [outboard] and [[outboard]] both appear: {OUTBOARD_TABLE_HINT}")
        raise ConfigError(errors) from None
    except ValueError:  # tomllib's int() refuses more than 4300 digits
        raise ConfigError([f"{source}: {limits.huge_integer(text)}"]) from None
    except RecursionError:  # the nesting check should have refused it first; never a traceback
        raise ConfigError(
            [f"{source}: nested too deeply to read (expected at most {limits.MAX_DEPTH} levels)"]
        ) from None
    problems = limits.check_document(document)
    if problems:
        raise ConfigError([f"{source}: {p.key}: {p}" for p in problems])
    return document


def parse_config(text: str, source: str = "<default>") -> Config:
    """Validate TOML ``text``; ``source`` names it in error lines. Raises ConfigError."""
    document = parse_toml(text, source)
    reader = Reader(source)
    config = read_document(reader, document)
    if reader.errors:
        raise ConfigError(reader.errors)
    return config


def default_config() -> Config:
    """The built-in configuration: virtual backend, sources mix/ref, sets studio/consumer/crap/phone."""
    text = resources.files("controlroom.daemon.config").joinpath("default.toml").read_text(encoding="utf-8")
    return parse_config(text, "<default>")


def syntax_error(source: str, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = _TOML_POSITION.search(message)
    where = "end of document"
    if match:
        message = message[: match.start()]
        if match.group(2):
            where = f"line {match.group(2)}, column {match.group(3)}"
    return f"{source}: {where}: invalid TOML ({message[:1].lower()}{message[1:]})"
