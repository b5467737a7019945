"""The demo's programme: ``ref`` is louder than ``mix`` by the figure the README's tour gives."""

from __future__ import annotations

import pytest

from controlroom.daemon.cli.program import demo_inputs
from controlroom.dsp.bs1770 import measure

SAMPLERATE = 48000
#: "mastered about 4.5 LU louder" (README.md, the quick tour)
DOCUMENTED_LU = 4.5


def test_ref_is_as_much_louder_than_mix_as_the_tour_says():
    x = demo_inputs(SAMPLERATE, 4)
    mix = measure(x[:, 0:2].copy(), SAMPLERATE).integrated_lufs
    ref = measure(x[:, 2:4].copy(), SAMPLERATE).integrated_lufs
    assert ref - mix == pytest.approx(DOCUMENTED_LU, abs=0.25)
