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
import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controlroom.daemon.core.targets import AB, parse_choice, parse_number, step_choice
from controlroom.daemon.errors import TargetError

if TYPE_CHECKING:
    from controlroom.daemon.core.controller import Controller

log = logging.getLogger(__name__)

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


# --- the tests of a controller ----------------------------------------------------------------------


class Comparison:
    """The blind and ABX tests of ``controller``'s ``[ab]`` pair: which runs, its labels
    (``concealment``), the current or last ABX test (``abx``) and the last blind test's labels
    once revealed (``revealed``). Every switch in a test goes through silence, so that it
    sounds the same whichever source a label stands for and whether or not the source changes.
    """

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.rng = random.SystemRandom()
        self.concealment: Concealment | None = None
        self.abx: AbxTest | None = None
        self.revealed: dict[str, str] | None = None

    @property
    def abx_running(self) -> bool:
        return self.abx is not None and self.abx.running

    def report(self) -> dict[str, Any]:
        """``abx`` (the current or last ABX test, None before the first) and ``blind_mapping``
        (the last blind test's labels -> sources once revealed; None while one runs or before
        the first), as the state report shows them."""
        return {
            "abx": self.abx.summary() if self.abx is not None else None,
            "blind_mapping": None if self.revealed is None else dict(self.revealed),
        }

    def reveal(self, origin: str = "") -> dict[str, str]:
        """End the blind test (``blind`` off) and return its labels -> sources; the last test's
        again when none runs. Raises ``TargetError`` when there has been none."""
        if self.controller.state.blind:
            self.controller.apply("blind", "set", False, origin)
        if self.revealed is None:
            raise TargetError("no blind test to reveal")
        return dict(self.revealed)

    def abx_start(self, trials: Any, origin: str = "") -> dict[str, Any]:
        """Start an ABX test of the ``[ab]`` pair over ``trials`` trials (abandoning a running
        one); A plays. Returns the changes."""
        ab = self.controller.config.ab
        if ab is None:
            raise TargetError("abx needs an [ab] pair (none is configured)")
        if self.controller.state.blind:
            raise TargetError("blind is on (reveal or switch it off first)")
        n = parse_number(trials)
        if n != int(n) or not 1 <= n <= MAX_TRIALS:
            raise TargetError(f"abx trials {trials!r} out of range (expected a whole number from 1 to {MAX_TRIALS})")
        before, heard = self.controller.view(), self.controller.state.source
        self.abx = AbxTest(ab.a, ab.b, int(n), self.rng)
        self.concealment = Concealment(self.abx.labels(), "a")
        self.play("a")
        return self.controller._commit(before, heard, origin)

    def abx_play(self, label: Any, origin: str = "") -> dict[str, Any]:
        """Play a, b or x of the running ABX test (what ``ab`` does while it runs)."""
        self._running_abx()
        return self.controller.apply("ab", "set", label, origin)

    def abx_answer(self, label: Any, origin: str = "") -> dict[str, Any]:
        """Answer which one X is ("a" or "b"): scored and logged; the next trial begins with A
        playing, or the test ends."""
        test = self._running_abx()
        answer = parse_choice("abx answer", label, ANSWERS)
        before, heard = self.controller.view(), self.controller.state.source
        record = test.answer(answer)
        if self.controller.abx_log is not None:
            try:
                self.controller.abx_log(record)
            except OSError as exc:
                log.error("cannot log the ABX answer: %s", exc)
        if test.running:
            self.concealment.labels = test.labels()
            self.play("a")
        else:
            self.concealment = None
            log.info("ABX %s vs %s: %d of %d correct", test.a, test.b, test.correct, test.done)
        return self.controller._commit(before, heard, origin)

    def abx_stop(self, origin: str = "") -> dict[str, Any]:
        """Abandon the running ABX test; its score so far stays in the report."""
        test = self._running_abx()
        before, heard = self.controller.view(), self.controller.state.source
        test.stopped = True
        self.concealment = None
        return self.controller._commit(before, heard, origin)

    def _running_abx(self) -> AbxTest:
        if self.abx is None or not self.abx.running:
            raise TargetError("no ABX test is running (start one: abx/start TRIALS)")
        return self.abx

    def start_blind(self) -> None:
        ab = self.controller.config.ab
        labels = blind_labels((ab.a, ab.b), self.rng)
        # a and b stay usable (surfaces have A/B buttons): they pick x and y
        self.concealment = Concealment(labels, BLIND_LABELS[0], aliases=dict(zip(AB, BLIND_LABELS)))
        self.revealed = None
        self.play(BLIND_LABELS[0])

    def end_blind(self) -> None:
        self.revealed = dict(self.concealment.labels)
        self.concealment = None
        log.info("blind test revealed: %s", ", ".join(f"{k} = {v}" for k, v in self.revealed.items()))

    def labelled_choice(self, target: str, action: str, value: Any) -> str:
        """The label (or source outside the pair) a change of ``source`` or ``ab`` picks while
        a test runs."""
        c = self.concealment
        choices = c.choices(target, self.controller.config.sources)
        if action == "set":
            if target == "ab" and isinstance(value, str):
                value = c.aliases.get(value, value)
            return parse_choice(target, value, choices)
        if action in ("step", "next", "prev"):
            delta = parse_number(value) if action == "step" else (1 if action == "next" else -1)
            return step_choice(target, choices, self.controller.view()[target], delta)
        raise TargetError(f"{target} cannot {action} (expected one of {', '.join(choices)}, next, prev or step)")

    def choose(self, choice: str) -> None:
        """Play ``choice`` unless it already plays."""
        if choice != self.controller.view()["source"]:
            self.play(choice)

    def play(self, choice: str) -> None:
        """Switch to ``choice`` — a label, or a source outside the pair — through silence."""
        c = self.concealment
        if choice in c.labels:
            c.label = choice
        self.controller.vocabulary.set(self.controller.state, "source", c.labels.get(choice, choice))
        self.controller._silence_sources()

    def end_tests(self) -> None:
        """Stop a running blind or ABX test (its pair is gone)."""
        if self.controller.state.blind:
            self.controller.state.blind = False
            self.end_blind()
        elif self.abx is not None and self.abx.running:
            self.abx.stopped = True
            self.concealment = None
