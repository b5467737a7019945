"""Blind comparison: labels stand in for the ``[ab]`` pair's source names (DESIGN.md §9).

While a blind test (labels ``x``/``y``, assigned at random) or an ABX test (``a``/``b``/``x``,
see ``abx.py``) runs, everything the controller shows — the state report, OSC and MIDI feedback,
the meters, the systemd status — names the pair's sources only by label. Their match offsets
and their own meters are left out too: the pre-match level of each source (and how the output
follows one of them) would tell which is which.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
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
