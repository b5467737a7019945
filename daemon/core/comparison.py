"""Blind and ABX comparison of the ``[ab]`` pair.

Blind: labels (``x``/``y``, assigned at random) stand in for the pair's source names. ABX: is the
difference audible at all? While either test runs, everything the controller shows — the state
report, OSC and MIDI feedback, the meters, the systemd status — names the pair's sources only by
label. Their match offsets and their own meters are left out too: the pre-match level of each
source (and how the output follows one of them) would tell which is which.

ABX: each trial draws X at random as a or b; the listener plays a, b and x as often as they like
and answers which one X is. After ``trials`` answers the score is the number of correct ones,
with the one-sided binomial p-value: the probability of scoring at least that well by guessing
(p = 0.5 per trial). 10–25 trials is the usual recommendation; p < 0.05 is the usual bar.
Every answer is appended as one JSON object per line to ``abx.jsonl`` next to the state file.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The labels of a blind test, in the order the ``ab`` target steps through them.
BLIND_LABELS = ("x", "y")
#: Targets whose values are labels while a test runs.
LABELLED_TARGETS = ("source", "ab")


def blind_labels(pair: tuple[str, str], rng: random.Random) -> dict[str, str]:
    """A random assignment of the pair's two sources to ``x`` and ``y``: label -> source."""
    sources = list(pair)
    rng.shuffle(sources)
    return dict(zip(BLIND_LABELS, sources))


@dataclass
class Concealment:
    """The labels of a running test: ``labels`` maps label -> source name (two labels may name
    one source: ABX's x is a or b); ``label`` is the label last chosen, which ``ab`` shows;
    ``aliases`` maps other ``ab`` values to labels."""

    labels: dict[str, str]
    label: str
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def hidden(self) -> set[str]:
        """The source names the labels stand in for."""
        return set(self.labels.values())

    def choices(self, target: str, sources: Iterable[str]) -> tuple[str, ...]:
        """What ``target`` takes while the test runs: the labels, and for ``source`` also every
        source outside the pair."""
        labels = tuple(self.labels)
        if target == "ab":
            return labels
        return labels + tuple(s for s in sources if s not in self.hidden)

    def conceal(self, view: dict[str, Any]) -> dict[str, Any]:
        """``view`` (targets and ``match_db``) with the pair's names replaced by the label and
        its offsets left out."""
        out = dict(view)
        if view["source"] in self.hidden:
            out["source"] = self.label
        out["ab"] = self.label
        out["match_db"] = self._without(view["match_db"])
        return out

    def conceal_meters(self, meters: dict[str, Any]) -> dict[str, Any]:
        """``meters`` without the pair's per-source readings (levels and loudness)."""
        out = dict(meters)
        if "sources" in meters:
            out["sources"] = self._without(meters["sources"])
        loudness = meters.get("loudness")
        if isinstance(loudness, dict) and "sources" in loudness:
            out["loudness"] = {**loudness, "sources": self._without(loudness["sources"])}
        return out

    def _without(self, per_source: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in per_source.items() if name not in self.hidden}


# --- ABX ----------------------------------------------------------------------------------------

#: The labels of an ABX test, in the order the ``ab`` target steps through them.
ABX_LABELS = ("a", "b", "x")
#: What an answer names.
ANSWERS = ("a", "b")
#: Most trials one test may have.
MAX_TRIALS = 100
#: The results log, in the state file's directory.
LOG_NAME = "abx.jsonl"


def p_value(correct: int, trials: int) -> float:
    """P(at least ``correct`` right answers in ``trials`` | guessing, p = 0.5): the one-sided
    binomial p-value (1.0 before any trial)."""
    return sum(math.comb(trials, k) for k in range(correct, trials + 1)) / 2**trials


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class AbxTest:
    """One ABX test of sources ``a`` and ``b`` over ``trials`` trials; ``x`` is the current
    trial's X ("a" or "b"), drawn with ``rng``."""

    a: str
    b: str
    trials: int
    rng: random.Random
    started: str = field(default_factory=_now)
    done: int = 0
    correct: int = 0
    stopped: bool = False
    x: str = field(init=False)

    def __post_init__(self) -> None:
        self.x = self.rng.choice(ANSWERS)

    @property
    def running(self) -> bool:
        return not self.stopped and self.done < self.trials

    def labels(self) -> dict[str, str]:
        """Label -> source name for the current trial."""
        return {"a": self.a, "b": self.b, "x": self.a if self.x == "a" else self.b}

    def answer(self, label: str) -> dict[str, Any]:
        """Score ``label`` ("a" or "b") for the current trial and draw the next X; returns the
        trial's record for the log."""
        right = label == self.x
        self.done += 1
        self.correct += right
        record = {
            "time": _now(),
            "test": self.started,
            "a": self.a,
            "b": self.b,
            "trial": self.done,
            "trials": self.trials,
            "x": self.x,
            "answer": label,
            "correct": right,
            "score": self.correct,
            "p_value": p_value(self.correct, self.done),
        }
        self.x = self.rng.choice(ANSWERS)
        return record

    def summary(self) -> dict[str, Any]:
        """The state report's ``abx`` object."""
        return {
            "running": self.running,
            "a": self.a,
            "b": self.b,
            "trials": self.trials,
            "done": self.done,
            "correct": self.correct,
            "p_value": p_value(self.correct, self.done),
        }


def log_path(state_path: Path) -> Path:
    """Where the results go: ``abx.jsonl`` beside the state file."""
    return state_path.parent / LOG_NAME


def append_log(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line (a few hundred bytes at a listener's pace: written
    at once, from the event loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
