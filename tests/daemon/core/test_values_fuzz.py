"""Fuzzing the one place every control value goes through, whichever port it came in by (OSC,
MIDI, MQTT, web, ``ctl``): ``Controller.apply``. Whatever the target, action and value, it
either changes the state within its limits or raises ``TargetError`` with a short message and
leaves the state as it was.
"""

from __future__ import annotations

import json
import math

from fuzzkit import STUDIO, fuzz
from hypothesis import example, given
from hypothesis import strategies as st

from controlroom.daemon.config import load_config
from controlroom.daemon.core.controller import ACTIONS, Controller
from controlroom.daemon.core.targets import TARGETS, Vocabulary
from controlroom.daemon.errors import TargetError

CONFIG = load_config(STUDIO)

#: Any JSON value, as MQTT, the web page or a state file could carry.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
#: What OSC and MIDI carry: numbers of every size and strings that look like numbers.
NUMBERS = st.integers() | st.floats() | st.from_regex(r"\A[-+]?[0-9]{0,400}(\.[0-9]*)?(e[-+]?[0-9]{1,4})?\Z")


def in_limits(controller: Controller) -> bool:
    state, vocabulary = controller.state, controller.vocabulary
    return (
        vocabulary.min_volume_db <= state.volume <= vocabulary.max_volume_db
        and all(
            getattr(state, name) in vocabulary.choices[name] for name in ("solo", "speakers", "source", "ab", "match")
        )
        and all(math.isfinite(v) for v in controller.match_db.values())
    )


@fuzz(200)
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(TARGETS) | st.text(max_size=8),
            st.sampled_from(ACTIONS) | st.text(max_size=6),
            JSON | NUMBERS,
        ),
        max_size=8,
    )
)
@example(changes=[("volume", "step", 1e308)])
@example(changes=[("volume", "step", "1e308")])
@example(changes=[("volume", "step", 10**400)])
@example(changes=[("volume", "set", "9" * 5000)])
@example(changes=[("speakers", "step", 1e300)])
@example(changes=[("volume", "set", json.loads("[" * 200 + "]" * 200))])
def test_any_change_is_made_within_the_limits_or_refused_untouched(changes):
    controller = Controller(CONFIG, Vocabulary(CONFIG).initial())
    for target, action, value in changes:
        before = controller.view()
        try:
            controller.apply(target, action, value)
        except TargetError as exc:
            assert controller.view() == before
            assert len(str(exc)) < 300
        assert in_limits(controller)


def test_a_step_larger_than_the_volume_range_is_refused_like_nan():
    controller = Controller(CONFIG, Vocabulary(CONFIG).initial())
    span = CONFIG.monitor.max_volume_db - CONFIG.monitor.min_volume_db
    for garbage in (1e308, "1e308", -1e308, 10**400, math.nan, span + 0.01):
        before = controller.view()
        try:
            controller.apply("volume", "step", garbage)
        except TargetError:
            pass
        else:
            raise AssertionError(f"a step of {garbage!r} was taken")
        assert controller.view() == before
    controller.apply("volume", "step", -span)  # the whole range is still one step
    assert controller.state.volume == CONFIG.monitor.min_volume_db
