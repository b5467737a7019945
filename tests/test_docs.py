"""The manual states each limit once, in docs/configuration.md; the schema must keep to it.

Every row of the limits table is tried on the real config reader: both ends of a range (or every
listed value) are accepted, and a value just beyond either end (or one not listed) is refused
with an error at that key. A limit changed in the code and not in the manual, or the other way
round, fails here.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import tomlkit

from controlroom.daemon.config import parse_config
from controlroom.daemon.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs"
SOURCE = "limits.toml"
#: What an error about a value beyond a documented limit says (as opposed to a rule between
#: keys, such as a channel above ``audio.input_channels``).
BEYOND = re.compile(
    r"out of range|is at or (above|below)|expected at most|expected at least|entries \(expected|is not supported"
)

#: A config that uses every key of the table once: NAME and [N] in a key stand for its first entry.
BASE = {
    "audio": {"backend": "virtual", "device": 0},
    "monitor": {},
    "sources": {"mix": {"channels": [1]}, "ref": {"channels": [2]}},
    "speakers": {
        "studio": {
            "outputs": [{"channel": 1}],
            "eq": [{"type": "peak", "freq_hz": 1000.0, "q": 1.0}],
            "sub": {"output": 2},
            "recall": {"outboard": "dsp", "program": 0, "bank": 0, "settle_ms": 0},
        },
    },
    "emulations": {"tiny": {"eq": [{"type": "highshelf", "freq_hz": 5000.0, "gain_db": -3.0}]}},
    "inserts": {"comp": {"send": [3], "return": [3], "source": "mix"}},
    "ab": {"a": "mix", "b": "ref"},
    "mqtt": {"broker": "127.0.0.1"},
    "outboard": [{"name": "amp", "gpio": 17}, {"name": "dsp", "midi_port": "DSP", "channel": 1, "min_interval_ms": 0}],
    "sequencing": {"on_delay_ms": 1000, "settle_ms": 50},
    "calibration": {"mic": 3},
}
#: Count rows: what one more entry of the counted table looks like.
ENTRY = {
    "sources": lambda i: {"channels": [1]},
    "speakers": lambda i: {"outputs": [1]},
    "inserts": lambda i: {"send": [4 + i], "return": [4 + i], "source": "mix"},
}


def limits() -> list[tuple[str, str]]:
    """(key, range) of every row of the limits table."""
    text = (DOCS / "configuration.md").read_text()
    table = text[text.index("| key | range | unit |") :].split("\n\n")[0].splitlines()[2:]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    return [(key.strip("`"), span) for key, span, _ in rows]


def at(document: dict, key: str) -> tuple[dict, str]:
    """The table holding ``key`` in ``document`` (NAME = the first entry, [N] = the first
    element, or of a list of tables the first that has the key: [[outboard]] entries differ in
    kind), and the last part of the key."""
    *path, last = re.sub(r"\[N\]", ".0", key).split(".")
    node = document
    for part in path:
        if part.isdigit():
            node = next((entry for entry in node if isinstance(entry, dict) and last in entry), node[int(part)])
        else:
            node = next(iter(node.values())) if part == "NAME" else node[part]
    return node, last


def errors_with(key: str, value) -> list[str]:
    """The reader's errors about ``key`` when it holds ``value`` (counts: that many entries)."""
    document = copy.deepcopy(BASE)
    node, last = at(document, key)
    if key in ENTRY:
        node[last] = {f"x{i}": ENTRY[key](i) for i in range(value)}
    elif last == "eq":
        node[last] = [{"type": "peak", "freq_hz": 1000.0}] * value
    else:
        node[last] = [value] if isinstance(node.get(last), list) else value
    try:
        parse_config(tomlkit.dumps(document), SOURCE)
    except ConfigError as exc:
        display = re.sub(r"\.NAME\b", "", key)
        return [line for line in exc.errors if line.startswith(f"{SOURCE}: ") and _about(line, key, display)]
    return []


def _about(line: str, key: str, display: str) -> bool:
    path = line.split(": ")[1]
    pattern = re.escape(key).replace("NAME", "[a-z0-9_-]+").replace(r"\[N\]", r"\[\d+\]")
    return re.fullmatch(pattern + r"(\[\d+\])?", path) is not None or path == display


def number(text: str) -> float | int:
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


#: Bounds the manual says are open (the bound itself is refused).
OPEN = {("monitor.dim_db", "high"), ("speakers.NAME.eq[N].q", "low"), ("speakers.NAME.eq[N].slope", "low")}


@pytest.mark.parametrize("key, span", limits(), ids=[key for key, _ in limits()])
def test_every_documented_limit_is_the_schemas(key, span):
    if " to " in span:
        low, high = (number(x) for x in span.split(" to "))
        counted = key in ENTRY or key.endswith(".eq")  # a number of tables or bands
        step = 1 if counted or (isinstance(low, int) and isinstance(high, int)) else 0.01
        for end, value, outside in (("low", low, low - step), ("high", high, high + step)):
            refused = [line for line in errors_with(key, value) if BEYOND.search(line)]
            if (key, end) in OPEN:
                assert refused, f"{key} = {value} is documented as an open bound, but accepted"
            else:
                assert not refused, f"{key} = {value} is documented as allowed: {refused}"
            if not (counted and outside < 0):
                beyond = errors_with(key, outside)
                assert any(BEYOND.search(line) for line in beyond), f"{key} = {outside} was not refused: {beyond}"
    else:
        values = [number(x) for x in span.split(", ")]
        for value in values:
            assert not errors_with(key, value), f"{key} = {value} is documented as allowed"
        beyond = errors_with(key, values[0] - 1)
        assert any(BEYOND.search(line) for line in beyond), f"{key} = {values[0] - 1} was not refused: {beyond}"


def test_the_table_covers_the_limits_the_issue_names():
    keys = {key for key, _ in limits()}
    assert {"sources.NAME.channels", "speakers.NAME.delay_ms", "speakers.NAME.eq", "monitor.min_volume_db"} <= keys
