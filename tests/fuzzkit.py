"""How many examples the fuzz tests try: a bounded number in the suite (the whole fuzzing costs
well under a minute), as many as ``$CONTROLROOM_FUZZ_EXAMPLES`` asks for a longer run, e.g.
``CONTROLROOM_FUZZ_EXAMPLES=20000 pytest -k fuzz``. Every failure a run finds is kept in the test
that found it as an ``@example`` (or a corpus file), so that it is tried on every run after.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

ENVIRONMENT = "CONTROLROOM_FUZZ_EXAMPLES"
#: A config with every kind of target: four speaker sets, three sources, an A/B pair.
STUDIO = Path(__file__).resolve().parent.parent / "examples" / "studio.toml"


def examples(default: int) -> int:
    """``default``, or what ``$CONTROLROOM_FUZZ_EXAMPLES`` asks for."""
    return int(os.environ.get(ENVIRONMENT, default))


def fuzz(default: int = 200) -> settings:
    """Hypothesis settings for a fuzz test: ``examples(default)`` examples, no deadline (a
    loaded machine is slow, not wrong), no database of earlier failures (found ones are kept as
    ``@example`` instead, so every run tries the same ones)."""
    return settings(
        max_examples=examples(default),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
