"""Limits on the files controlroom reads: configs, mapping files and the state file.

A file is read only when it is a regular file (a FIFO would block the reader for ever, a device
such as ``/dev/zero`` never ends) of at most ``MAX_FILE_BYTES``. Its document, TOML or JSON, may
nest arrays and tables at most ``MAX_DEPTH`` deep, hold at most ``MAX_ENTRIES`` entries in any
one array or table, and integers of 64 bits (TOML's own range). Real files stay far inside
these (a config nests 5 deep, the largest preset has 34 controls); a file beyond them is
refused as a whole, in well under a second, before its values are looked at. docs/configuration.md
lists the limits for users.

Everything here raises ``LimitError`` with the key path where there is one, or a line and
column when the text itself is too deep to parse.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from controlroom.daemon.config.values import join_key
from controlroom.daemon.errors import LimitError

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 16
MAX_ENTRIES = 1024
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1

_TOML_KEY = r'(?:[A-Za-z0-9_-]++|"(?:\\.|[^"\\\n])*+"|\'[^\'\n]*+\')'
#: Tokens that matter for nesting: dotted keys of more than ``MAX_DEPTH`` parts (tomllib takes
#: time quadratic in their length: 30,000 parts take 20 s), strings and comments (skipped whole)
#: and brackets.
TOML_TOKENS = re.compile(
    rf"(?P<key>(?<![A-Za-z0-9_-])(?:{_TOML_KEY}[ \t]*\.[ \t]*){{{MAX_DEPTH},}}{_TOML_KEY})"
    r'|"""(?:\\.|[^\\])*?"""|\'\'\'.*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]',
    re.DOTALL,
)
JSON_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|[\[\]{}]')

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_file(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``: OSError when it cannot be read, LimitError
    when it is no regular file or holds more than ``limit`` bytes."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, for ever
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise LimitError(f"is {kind} (expected a regular file)")
        chunks, size = [], 0
        while size <= limit:  # read rather than trust st_size: the file may be growing
            chunk = os.read(fd, min(limit + 1 - size, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise LimitError(too_large(limit))
    return b"".join(chunks)


def read_secret(path: str | os.PathLike[str]) -> str:
    """A password file's first line's worth: its text, stripped (at most 4 KiB, a regular file:
    OSError or LimitError otherwise)."""
    return read_file(path, 4096).decode(errors="replace").strip()


def too_large(limit: int = MAX_FILE_BYTES) -> str:
    return f"is larger than {limit // 1024} KiB (expected a file of at most {limit // 1024} KiB)"


def check_text(text: str, tokens: re.Pattern[str]) -> None:
    """Refuse ``text`` longer than ``MAX_FILE_BYTES`` or whose brackets nest deeper than
    ``MAX_DEPTH``, before a parser recurses into it; ``tokens`` is ``TOML_TOKENS`` or
    ``JSON_TOKENS``. Text that is not valid TOML or JSON is left to the parser to report."""
    if len(text) > MAX_FILE_BYTES:
        raise LimitError(too_large())
    depth = 0
    for token in tokens.finditer(text):
        bracket = token.group()
        if token.lastgroup == "key":
            where = _position(text, token.start())
            raise LimitError(f"{where}: a dotted key of more than {MAX_DEPTH} parts (expected at most {MAX_DEPTH})")
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise LimitError(f"{_position(text, token.start())}: {_too_deep()}")
        elif bracket in "]}":
            depth = max(0, depth - 1)


def check_document(document: Any) -> list[LimitError]:
    """What in a parsed document (dicts, lists, scalars) is beyond the limits, each with its key
    path; the entries of an array or table already refused are not looked into."""
    problems: list[LimitError] = []
    pending: list[tuple[Any, str, int]] = [(document, "", 0)]
    while pending:  # iterative: a document of dotted keys may be deep without brackets
        value, path, depth = pending.pop()
        if isinstance(value, dict):
            entries = [(v, join_key(path, str(k))) for k, v in value.items()]
        elif isinstance(value, list):
            entries = [(v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            if isinstance(value, int) and not isinstance(value, bool) and not MIN_INTEGER <= value <= MAX_INTEGER:
                problems.append(LimitError(f"an integer of {value.bit_length()} bits {_integers()}", path))
            continue
        if depth > MAX_DEPTH:  # the document itself is level 0, a top-level table level 1
            problems.append(LimitError(_too_deep(), path))
        elif len(entries) > MAX_ENTRIES:
            kind = "a table" if isinstance(value, dict) else "an array"
            problems.append(
                LimitError(f"{kind} of {len(entries)} entries (expected at most {MAX_ENTRIES} entries)", path)
            )
        else:
            pending += [(v, p, depth + 1) for v, p in reversed(entries)]
    return problems


def huge_integer(text: str) -> str:
    """Where an integer too long for Python to parse (over 4,300 digits) sits in ``text``:
    ``line L, column C: ...`` (``...`` alone if it cannot be found)."""
    match = re.search(r"[0-9][0-9_]{4300,}", text)
    where = f"{_position(text, match.start())}: " if match is not None else ""
    return f"{where}an integer of more than 4300 digits {_integers()}"


def _position(text: str, index: int) -> str:
    """``line L, column C`` of ``text[index]`` (both from 1, as editors count)."""
    return f"line {text.count(chr(10), 0, index) + 1}, column {index - text.rfind(chr(10), 0, index)}"


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels (expected arrays and tables at most {MAX_DEPTH} deep)"


def _integers() -> str:
    return f"(expected integers from {MIN_INTEGER} to {MAX_INTEGER})"
