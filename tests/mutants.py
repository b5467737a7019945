"""Mutated files: valid configs, mapping files and state files made hostile, and a reader's
verdict on each.

``mutants(seeds, n, seed)`` mutates the texts of valid files the way an attacker or a damaged
disk would: arrays and inline tables nested thousands deep, integers of hundreds or thousands of
digits (decimal and hex), floats beyond float range, arrays of 200,000 entries, long strings,
dotted keys thousands deep, truncation at a random byte and random binary bytes. Each mutant is
reproducible from ``(seed, index)``.

``verdicts(kind, files)`` reads each through the reader the daemon uses and sorts the outcome:
``ok`` (accepted), ``refused`` (the reader's error for the user: ``ConfigError``; for the state
file, defaults), or ``crash`` (anything else: a traceback for the user). As a script it prints
the counts for a corpus, e.g. ``python tests/mutants.py config 2000``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Valid seeds by kind of file.
SEED_FILES = {
    "config": sorted((REPO / "examples").glob("*.toml")) + [REPO / "daemon" / "config" / "default.toml"],
    "mapping": sorted((REPO / "mappings").glob("*.toml")),
}
#: A state file as the daemon writes it for examples/studio.toml.
STATE_SEED = {
    "version": 1,
    "targets": {
        "volume": -20.0,
        "dim": False,
        "mute": False,
        "mono": False,
        "solo": "off",
        "polarity": False,
        "speakers": "studio",
        "sub": True,
        "source": "mix",
        "ab": "a",
        "match": "auto",
        "blind": False,
    },
    "match_db": {"mix": 0.0, "ref": -3.5},
    "inserts": {},
}
#: The config state files are restored under.
STATE_CONFIG = REPO / "examples" / "studio.toml"

_VALUE = re.compile(rb"(?<== )[^\n]+")  # the value of a ``key = value`` line
_NUMBER = re.compile(rb"-?\d+(\.\d+)?")


def _nested(rng: random.Random) -> bytes:
    depth = rng.choice((40, 400, 1000, 5000, 50000))
    inner = rng.choice((b"1", b"{ a = 1 }", b'"x"'))
    if rng.random() < 0.5:
        return b"[" * depth + inner + b"]" * depth
    return b"{ a = " * depth + inner + b" }" * depth


def _huge_number(rng: random.Random) -> bytes:
    digits = rng.choice((19, 20, 309, 400, 4301, 5000, 20000))
    sign = rng.choice((b"", b"-"))
    kind = rng.random()
    if kind < 0.4:
        return sign + b"1" + b"0" * (digits - 1)
    if kind < 0.6:
        return b"0x" + b"f" * digits
    if kind < 0.8:
        return sign + b"1e" + str(digits).encode()
    return sign + b"1" + b"0" * min(digits, 400) + b".5"


def _long_array(rng: random.Random) -> bytes:
    n = rng.choice((100, 2000, 200_000))
    item = rng.choice((b"1", b"-1.5", b'"x"', b"{ channel = 1 }"))
    return b"[" + b", ".join([item] * n) + b"]"


def _long_string(rng: random.Random) -> bytes:
    return b'"' + b"x" * rng.choice((100, 100_000, 2_000_000)) + b'"'


def _deep_key(rng: random.Random) -> bytes:
    return b".".join([b"k"] * rng.choice((50, 3000, 30000))) + b" = 1"


def _replace_value(data: bytes, rng: random.Random, value: bytes) -> bytes:
    spots = list(_VALUE.finditer(data))
    if not spots:
        return data + b"\nx = " + value + b"\n"
    spot = rng.choice(spots)
    return data[: spot.start()] + value + data[spot.end() :]


def _replace_number(data: bytes, rng: random.Random, value: bytes) -> bytes:
    spots = list(_NUMBER.finditer(data))
    if not spots:
        return _replace_value(data, rng, value)
    spot = rng.choice(spots)
    return data[: spot.start()] + value + data[spot.end() :]


def _insert_line(data: bytes, rng: random.Random, line: bytes) -> bytes:
    lines = data.split(b"\n")
    lines.insert(rng.randrange(len(lines) + 1), line)
    return b"\n".join(lines)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _binary(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


#: A mutation: (seed bytes, rng) -> mutated bytes; each equally likely.
MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "nested value": lambda d, r: _replace_value(d, r, _nested(r)),
    "huge number": lambda d, r: _replace_number(d, r, _huge_number(r)),
    "long array": lambda d, r: _replace_value(d, r, _long_array(r)),
    "long string": lambda d, r: _replace_value(d, r, _long_string(r)),
    "deep dotted key": lambda d, r: _insert_line(d, r, _deep_key(r)),
    "truncated": _truncate,
    "binary bytes": _binary,
}


def json_mutations() -> dict[str, Callable[[bytes, random.Random], bytes]]:
    """The mutations for JSON: values replaced at a ``": "``, no TOML-only syntax."""
    value = re.compile(rb'(?<=": )[^,\n}]+')

    def replace(data: bytes, rng: random.Random, new: bytes) -> bytes:
        spot = rng.choice(list(value.finditer(data)))
        return data[: spot.start()] + new + data[spot.end() :]

    def nested(rng: random.Random) -> bytes:
        depth = rng.choice((40, 400, 1000, 5000, 50000))
        return b"[" * depth + b"1" + b"]" * depth if rng.random() < 0.5 else b'{"a": ' * depth + b"1" + b"}" * depth

    def long_object(rng: random.Random) -> bytes:
        n = rng.choice((100, 2000, 200_000))
        return b"{" + b", ".join(b'"k%d": %d' % (i, i) for i in range(n)) + b"}"

    def huge(rng: random.Random) -> bytes:
        digits = rng.choice((309, 400, 4301, 5000))
        return rng.choice((b"", b"-")) + rng.choice((b"1" + b"0" * (digits - 1), b"1e%d" % digits, b"1e308"))

    return {
        "nested value": lambda d, r: replace(d, r, nested(r)),
        "huge number": lambda d, r: replace(d, r, huge(r)),
        "long array": lambda d, r: replace(d, r, _long_array(r).replace(b"{ channel = 1 }", b"1")),
        "long object": lambda d, r: replace(d, r, long_object(r)),
        "long string": lambda d, r: replace(d, r, _long_string(r)),
        "truncated": _truncate,
        "binary bytes": _binary,
    }


@dataclass(frozen=True)
class Mutant:
    name: str  # e.g. "studio.toml #17: huge number"
    data: bytes


def mutants(seeds: list[tuple[str, bytes]], n: int, seed: int = 0, json_files: bool = False) -> Iterator[Mutant]:
    """``n`` mutants of ``seeds`` (name, bytes): mutant i from ``random.Random(f"{seed}:{i}")``."""
    mutations = json_mutations() if json_files else MUTATIONS
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        name, data = rng.choice(seeds)
        how = rng.choice(sorted(mutations))
        yield Mutant(f"{name} #{i}: {how}", mutations[how](data, rng))


def seeds(kind: str) -> list[tuple[str, bytes]]:
    if kind == "state":
        return [("state.json", json.dumps(STATE_SEED, indent=1).encode())]
    return [(path.name, path.read_bytes()) for path in SEED_FILES[kind]]


# --- readers -------------------------------------------------------------------------------------


def read_config(path: Path) -> None:
    from controlroom.daemon.config import load_config

    load_config(path)


def read_mapping(path: Path) -> None:
    from controlroom.daemon.midi.mapping import load_mapping

    load_mapping(str(path), path.parent, "c.toml", "surfaces[0].mapping")


def read_state(path: Path) -> None:
    """What the daemon does with a state file at start: load it, then restore targets, match
    offsets and insert measurements under examples/studio.toml."""
    from controlroom.daemon.config import load_config
    from controlroom.daemon.core import matching
    from controlroom.daemon.core.inserts import Inserts
    from controlroom.daemon.core.targets import Vocabulary
    from controlroom.daemon.service import statefile

    config = load_config(STATE_CONFIG)
    doc = statefile.load(path)
    _, warnings = Vocabulary(config).restore(doc.get("targets", {}))
    warnings += matching.restore_offsets(doc.get("match_db", {}), config.sources, matching.max_boost_db(config))[1]
    warnings += Inserts(config).restore(doc.get("inserts", {}))
    statefile.warn_ignored(path, warnings)


READERS = {"config": read_config, "mapping": read_mapping, "state": read_state}


@dataclass(frozen=True)
class Verdict:
    mutant: str
    outcome: str  # "ok", "refused" or "crash"
    detail: str  # the exception (class: message, cut short), or ""
    seconds: float
    log_bytes: int  # what the reader logged


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.size = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.size += len(record.getMessage())


def verdict(kind: str, mutant: Mutant, directory: Path) -> Verdict:
    from controlroom.daemon.errors import ConfigError

    path = directory / ("state.json" if kind == "state" else "m.toml")
    path.write_bytes(mutant.data)
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.DEBUG
    start = time.perf_counter()
    try:
        READERS[kind](path)
        outcome, detail = ("refused" if kind == "state" and handler.size else "ok"), ""
    except ConfigError as exc:
        outcome, detail = "refused", str(exc)[:200]
    except BaseException as exc:  # noqa: BLE001 - any other exception is the finding
        outcome, detail = "crash", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        root.removeHandler(handler)
        root.level = level
        for leftover in directory.iterdir():  # a state file set aside
            leftover.unlink()
    return Verdict(mutant.name, outcome, detail, time.perf_counter() - start, handler.size)


def verdicts(kind: str, n: int, seed: int = 0) -> Iterator[Verdict]:
    """The verdict on each of ``n`` mutants of ``kind``'s seeds, as they come."""
    with tempfile.TemporaryDirectory(prefix="controlroom-mutants-") as tmp:
        verdict(kind, Mutant("warm-up", seeds(kind)[0][1]), Path(tmp))  # imports out of the timings
        for mutant in mutants(seeds(kind), n, seed, json_files=kind == "state"):
            yield verdict(kind, mutant, Path(tmp))


def main(argv: list[str]) -> int:
    kind, n = argv[0], int(argv[1])
    seed = int(argv[2]) if len(argv) > 2 else 0
    results = []
    for i, v in enumerate(verdicts(kind, n, seed), 1):
        results.append(v)
        if v.outcome == "crash" or v.seconds > 1.0 or v.log_bytes > 10_000:
            print(f"  {v.outcome} {v.seconds:.2f} s, log {v.log_bytes} bytes: {v.mutant}: {v.detail[:120]}", flush=True)
        if i % 100 == 0:
            counts = Counter(r.outcome for r in results)
            print(f"{i}: " + ", ".join(f"{k} {counts[k]}" for k in ("ok", "refused", "crash")), flush=True)
    counts = Counter(v.outcome for v in results)
    slowest = max(results, key=lambda v: v.seconds)
    largest = max(results, key=lambda v: v.log_bytes)
    print(f"{kind}: {n} mutants (seed {seed}): " + ", ".join(f"{k} {counts[k]}" for k in ("ok", "refused", "crash")))
    print(
        f"  slowest {slowest.seconds:.2f} s ({slowest.mutant}); largest log {largest.log_bytes} bytes ({largest.mutant})"
    )
    for kind_of_crash, count in Counter(v.detail.split(":")[0] for v in results if v.outcome == "crash").most_common():
        print(f"  crash {kind_of_crash}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
