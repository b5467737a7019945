"""Mutated files (tests/mutants.py): valid configs, mapping files and state files made hostile.
Every one is accepted or refused with a message (for the state file: defaults and one short
warning) — never a traceback. The mutants that once crashed a reader are kept here by their
number and tried on every run; a bounded sample of new ones is tried besides (more with
``$CONTROLROOM_FUZZ_EXAMPLES``)."""

from __future__ import annotations

import json

import pytest
from fuzzkit import examples, fuzz
from hypothesis import given
from hypothesis import strategies as st
from mutants import mutants, seeds, verdict

#: Mutants of seed 0 that crashed a reader before the limits (RecursionError, OverflowError,
#: ValueError: integer string conversion), by number.
FOUND = {
    "config": (0, 3, 4, 11, 15, 17, 25, 29, 35, 38, 54, 59, 61, 64, 80, 85, 87, 88, 91, 104, 105, 110, 112, 116, 122, 123, 129, 130, 132, 150, 168, 177, 178, 186, 190, 194, 213, 219, 220, 224, 230, 233, 238, 240, 242, 290, 296, 298, 303, 304, 331, 339, 347, 348, 350, 355, 372, 376, 381, 383, 386, 390, 402, 403, 418, 420, 421, 424, 428, 435, 450, 455),
    "mapping": (3, 4, 11, 15, 17, 18, 25, 29, 30, 32, 35, 54, 59, 60, 61, 80, 85, 87, 88, 91, 104, 105, 110, 112, 122, 123, 150, 151, 177, 190, 194, 213, 219, 220, 224, 230, 233, 238, 240, 250, 271, 281, 289, 290, 303, 311, 331, 339, 347, 348, 350),
    "state": (98, 107, 165, 305, 317, 369, 405, 670, 866, 929),
}  # fmt: skip


def sample(kind: str, numbers: tuple[int, ...] | None, n: int, seed: int):
    found = list(mutants(seeds(kind), max(numbers, default=-1) + 1, 0, json_files=kind == "state"))
    kept = [found[i] for i in numbers] if numbers is not None else []
    return kept + list(mutants(seeds(kind), n, seed, json_files=kind == "state"))


@pytest.mark.parametrize("kind", ["config", "mapping", "state"])
def test_mutated_files_are_read_or_refused_never_a_traceback(kind, tmp_path):
    for mutant in sample(kind, FOUND[kind], examples(10), seed=1):
        result = verdict(kind, mutant, tmp_path)
        assert result.outcome != "crash", (mutant.name, result.detail)
        assert result.log_bytes < 3000, mutant.name


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@fuzz(100)
@given(targets=st.dictionaries(st.sampled_from(["volume", "speakers", "mute", "match", "x"]), JSON), rest=JSON)
def test_any_json_state_file_restores_or_falls_back(tmp_path_factory, targets, rest):
    from mutants import Mutant

    doc = {"version": 1, "targets": targets, "match_db": rest, "inserts": rest}
    result = verdict("state", Mutant("fuzzed", json.dumps(doc).encode()), tmp_path_factory.mktemp("state"))
    assert result.outcome != "crash", result.detail
