"""Specification tests for changes while the monitor path runs.

Parameters cross through the seqlock and apply at the next block; gains ramp, switches
crossfade: no change produces a step in the output larger than the program's own largest
sample-to-sample step plus 1 % of full scale. The output does not depend on the block size.
Mid-signal changes are published between ``process`` calls made block by block from Python.
"""

from __future__ import annotations

import numpy as np
import pytest
from pathkit import FS, band_noise, frames, gain, max_step, noise, run, run_blocks, sine, square, stereo_spec

from controlroom.dsp import layout
from controlroom.dsp.bands import Biquad
from controlroom.dsp.control import STARTUP_RAMP_MS, Controls, PathBuffers, SetSpec, SourceSpec, SubSpec

STEP_ALLOWANCE = 0.01  # 1 % of full scale
XFADE = round(20.0 * FS / 1000)  # PathSpec's default crossfade_ms and ramp_ms: 20 ms
RAMP = XFADE
SETTLE = FS // 10  # after this, every ramp, crossfade and filter transient is over


def settled(spec, controls):
    buffers = PathBuffers(spec, controls)
    buffers.settle()
    return buffers


def assert_no_click(y, at, settle_after):
    """No step in the output larger than the output's own largest step in its steady parts
    (before the change, and once everything has settled after it) plus 1 % of full scale."""
    own = max(max_step(y[:at]), max_step(y[at + settle_after :]))
    worst = max_step(y[at - 1 : at + settle_after + 1])
    assert worst <= own + STEP_ALLOWANCE, f"step {worst:.4f} > own {own:.4f} + {STEP_ALLOWANCE}"


# --------------------------------------------------------------------------- source switch

TWO_SOURCES = stereo_spec(n_in=4, sources=[SourceSpec((1, 2)), SourceSpec((3, 4), trim_db=-2.0)])


def two_programs(kind, n):
    if kind == "sines":
        return [sine(220.0, n, 0.5), sine(230.0, n, 0.5, 1.0), sine(330.0, n, 0.5, 2.0), sine(345.0, n, 0.5, 0.3)]
    if kind == "noise":
        return [band_noise(n, 0.5, seed=s) for s in range(4)]
    return [square(50.0, n, 0.3), square(75.0, n, 0.3), sine(1000.0, n, 0.5), sine(1000.0, n, 0.5, 1.0)]


@pytest.mark.parametrize("kind", ["sines", "noise", "square-to-sine"])
@pytest.mark.parametrize("match", [(0.0, 0.0), (0.0, -6.0), (3.0, -9.0)])
@pytest.mark.parametrize("blocksize", [64, 1000])
def test_source_switch_crossfades_without_a_click(kind, match, blocksize):
    n = FS
    a_l, a_r, b_l, b_r = two_programs(kind, n)
    x = frames(a_l, a_r, b_l, b_r)
    at = n // 2 + 13
    buffers = settled(TWO_SOURCES, Controls(master_db=0.0, match_db=match))
    y = run_blocks(buffers, x, blocksize, {at: (TWO_SOURCES, Controls(source=1, master_db=0.0, match_db=match))})
    assert_no_click(y, at, XFADE + 1)
    # before: source A alone; after the crossfade: source B alone, at their gains
    ga, gb = gain(match[0]), gain(-2.0 + match[1])
    np.testing.assert_allclose(y[:at], ga * np.stack([a_l, a_r], 1)[:at], rtol=0, atol=1e-6)
    np.testing.assert_allclose(y[at + XFADE + 1 :], gb * np.stack([b_l, b_r], 1)[at + XFADE + 1 :], rtol=0, atol=1e-6)
    # and it really is a crossfade: halfway through, both sources are heard
    mid = slice(at + XFADE // 2 - 50, at + XFADE // 2 + 50)
    heard_a = np.abs(y[mid] - gb * np.stack([b_l, b_r], 1)[mid]).max()
    heard_b = np.abs(y[mid] - ga * np.stack([a_l, a_r], 1)[mid]).max()
    assert heard_a > 0.05 and heard_b > 0.05


def crossfade_gains(y, x_out, x_in, at, length):
    """Per-sample gains of the outgoing and incoming programs, read on the two channels where
    only one of them plays (the other one is 0 there)."""
    window = slice(at - 1, at + length + 2)
    return y[window, 0] / x_out[window], y[window, 1] / x_in[window]


@pytest.mark.parametrize("crossfade_ms", [5.0, 20.0, 50.0])
def test_source_crossfade_is_equal_power_over_crossfade_ms(crossfade_ms):
    """Source A plays only on the left, source B only on the right: the two output channels
    show the two crossfade gains, which must keep gA^2 + gB^2 = 1 (equal-power crossfade)."""
    spec = stereo_spec(n_in=4, sources=[SourceSpec((1, 2)), SourceSpec((3, 4))], crossfade_ms=crossfade_ms)
    length = round(crossfade_ms * FS / 1000)
    n = FS // 2
    a, b, zero = square(3.0, n, 0.5), square(2.0, n, 0.4), np.zeros(n)
    at = n // 2 + 11
    buffers = settled(spec, Controls(master_db=0.0))
    y = run_blocks(buffers, frames(a, zero, zero, b), 128, {at: (spec, Controls(source=1, master_db=0.0))})
    g_out, g_in = crossfade_gains(y.astype(float), a, b, at, length)
    np.testing.assert_allclose(g_out**2 + g_in**2, 1.0, atol=1e-5)
    assert g_out[0] == 1.0 and g_in[0] == 0.0  # before the switch
    assert g_out[-1] == 0.0 and g_in[-1] == pytest.approx(1.0, abs=1e-7)  # done after crossfade_ms
    assert np.all(np.diff(g_out) <= 1e-12) and np.all(np.diff(g_in) >= -1e-12)
    assert 0.2 < g_in[length // 2] < 0.8  # still fading halfway


def test_a_coherent_switch_crossfades_at_equal_gain_and_an_ordinary_one_swells_3_db():
    """Two sources carrying the same signal (an insert's dry source and its aligned return):
    a coherent switch keeps the output level through the crossfade (gA + gB = 1); an
    equal-power one would play sqrt(2) x the signal mid-fade (+3 dB)."""
    spec = stereo_spec(n_in=4, sources=[SourceSpec((1, 2)), SourceSpec((3, 4))])
    n = FS // 2
    dc = np.full(n, 0.25)
    x = frames(dc, dc, dc, dc)
    at = n // 2 + 11
    middle = at + XFADE // 2
    peaks = {}
    for coherent in (True, False):
        buffers = settled(spec, Controls(master_db=0.0))
        switch = Controls(source=1, master_db=0.0, coherent_switch=coherent)
        y = run_blocks(buffers, x, 128, {at: (spec, switch)})[:, 0].astype(float)
        peaks[coherent] = y[middle] / 0.25
        if coherent:
            np.testing.assert_allclose(y[at - 10 : at + 2 * XFADE], 0.25, rtol=1e-6)
    assert peaks[False] == pytest.approx(np.sqrt(2.0), abs=0.01)


@pytest.mark.parametrize("crossfade_ms", [5.0, 20.0, 50.0])
def test_set_crossfade_fades_the_old_set_out_and_the_new_set_in_over_crossfade_ms(crossfade_ms):
    spec = stereo_spec(n_out=2, sets=[SetSpec((1,)), SetSpec((2,))], crossfade_ms=crossfade_ms)
    length = round(crossfade_ms * FS / 1000)
    n = FS // 2
    a = square(3.0, n, 0.5)
    at = n // 2 + 11
    buffers = settled(spec, Controls(master_db=0.0))
    y = run_blocks(buffers, frames(a, a), 128, {at: (spec, Controls(speakers=1, master_db=0.0))})
    g_out, g_in = crossfade_gains(y.astype(float), a, a, at, length)
    assert g_out[0] == pytest.approx(1.0, abs=1e-7) and g_in[0] == 0.0
    assert g_out[-1] == 0.0 and g_in[-1] == pytest.approx(1.0, abs=1e-7)
    assert np.all(np.diff(g_out) <= 1e-12) and np.all(np.diff(g_in) >= -1e-12)
    assert 0.2 < g_in[length // 2] < 0.8 and 0.2 < g_out[length // 2] < 0.8


# --------------------------------------------------------------------------- speaker-set switch

SET_SWITCHES = {
    "other outputs": [SetSpec((1, 2)), SetSpec((3, 4), trim_db=-3.0)],
    "same outputs, other eq": [SetSpec((1, 2)), SetSpec((1, 2), trim_db=-4.0, eq=(Biquad("peak", 300.0, 6.0, 1.0),))],
    "to a one-output set": [SetSpec((1, 2)), SetSpec((3,))],
    "to a set with a sub": [SetSpec((1, 2)), SetSpec((3, 4), sub=SubSpec(5, 100.0))],
    "to a mono set": [SetSpec((1, 2)), SetSpec((1, 2), mono=True)],
    "from a delayed set": [SetSpec((1, 2), delay_ms=5.0), SetSpec((3, 4))],
    "to a delayed set": [SetSpec((1, 2)), SetSpec((3, 4), delay_ms=5.0)],
    "to a delayed set on the same outputs": [SetSpec((1, 2)), SetSpec((1, 2), delay_ms=2.0)],
}


@pytest.mark.parametrize("sets", SET_SWITCHES.values(), ids=[k.replace(" ", "-") for k in SET_SWITCHES])
@pytest.mark.parametrize("kind", ["sines", "noise"])
def test_set_switch_crossfades_without_a_click(sets, kind):
    spec = stereo_spec(n_out=5, sets=sets)
    n = FS
    if kind == "sines":
        x = frames(sine(220.0, n, 0.5, 0.4), sine(330.0, n, 0.5, 1.3))
    else:
        x = frames(band_noise(n, 0.5, seed=31), band_noise(n, 0.5, seed=32))
    at = n // 2 + 29
    buffers = settled(spec, Controls(master_db=0.0))
    y = run_blocks(buffers, x, 64, {at: (spec, Controls(speakers=1, master_db=0.0))})
    assert_no_click(y, at, SETTLE)
    # the signal has moved: outputs only the old set used are exactly silent once the fade
    # has travelled through the old set's delay line
    old = {o - 1 for o in sets[0].outputs} - {
        o - 1 for o in sets[1].outputs + ((sets[1].sub.output,) if sets[1].sub else ())
    }
    drained = at + XFADE + round(sets[0].delay_ms * FS / 1000) + 1
    for o in old:
        assert not np.any(y[drained:, o]), f"output {o + 1} still plays"


def test_set_switch_moves_the_signal_and_back():
    spec = stereo_spec(n_out=4, sets=[SetSpec((1, 2)), SetSpec((3, 4))])
    n = FS
    left, right = sine(440.0, n, 0.4), sine(550.0, n, 0.3)
    x = frames(left, right)
    there, back = n // 3, 2 * n // 3
    buffers = settled(spec, Controls(master_db=0.0))
    y = run_blocks(
        buffers,
        x,
        128,
        {there: (spec, Controls(speakers=1, master_db=0.0)), back: (spec, Controls(speakers=0, master_db=0.0))},
    )
    prog = np.stack([left, right], 1)
    np.testing.assert_allclose(y[:there, :2], prog[:there], atol=1e-6)
    assert not np.any(y[:there, 2:])
    np.testing.assert_allclose(y[there + XFADE + 1 : back, 2:], prog[there + XFADE + 1 : back], atol=1e-6)
    assert not np.any(y[there + XFADE + 1 : back, :2])
    np.testing.assert_allclose(y[back + XFADE + 1 :, :2], prog[back + XFADE + 1 :], atol=1e-6)
    assert not np.any(y[back + XFADE + 1 :, 2:])


# --------------------------------------------------------------------------- matrix and sub changes


def matrix_of(mode, polarity, left, right):
    l_in = -left if polarity else left
    return {
        layout.MATRIX_STEREO: (l_in, right),
        layout.MATRIX_MONO: ((l_in + right) / 2, (l_in + right) / 2),
        layout.MATRIX_LEFT: (l_in, l_in),
        layout.MATRIX_RIGHT: (right, right),
        layout.MATRIX_SIDE: ((l_in - right) / 2, (l_in - right) / 2),
    }[mode]


MATRIX_CHANGES = {
    "stereo->mono": ((layout.MATRIX_STEREO, False), (layout.MATRIX_MONO, False)),
    "mono->stereo": ((layout.MATRIX_MONO, False), (layout.MATRIX_STEREO, False)),
    "stereo->solo left": ((layout.MATRIX_STEREO, False), (layout.MATRIX_LEFT, False)),
    "solo left->solo right": ((layout.MATRIX_LEFT, False), (layout.MATRIX_RIGHT, False)),
    "stereo->side": ((layout.MATRIX_STEREO, False), (layout.MATRIX_SIDE, False)),
    "side->mono": ((layout.MATRIX_SIDE, False), (layout.MATRIX_MONO, False)),
    "polarity on": ((layout.MATRIX_STEREO, False), (layout.MATRIX_STEREO, True)),
    "polarity off in mono": ((layout.MATRIX_MONO, True), (layout.MATRIX_MONO, False)),
}


@pytest.mark.parametrize("change", MATRIX_CHANGES.values(), ids=[k.replace(" ", "-") for k in MATRIX_CHANGES])
def test_mono_solo_and_polarity_changes_crossfade(change):
    (m0, p0), (m1, p1) = change
    n = FS
    left, right = sine(300.0, n, 0.5, 0.2), sine(450.0, n, 0.45, 2.1)
    at = n // 2 + 5
    spec = stereo_spec()
    buffers = settled(spec, Controls(master_db=0.0, matrix=m0, polarity=p0))
    y = run_blocks(buffers, frames(left, right), 256, {at: (spec, Controls(master_db=0.0, matrix=m1, polarity=p1))})
    assert_no_click(y, at, XFADE + 1)
    before = np.stack(matrix_of(m0, p0, left, right), 1)
    after = np.stack(matrix_of(m1, p1, left, right), 1)
    np.testing.assert_allclose(y[:at], before[:at], atol=1e-6)
    np.testing.assert_allclose(y[at + XFADE :], after[at + XFADE :], atol=1e-6)
    # a crossfade, not a jump: halfway through the output is neither the old nor the new mix
    mid = slice(at + XFADE // 2 - 50, at + XFADE // 2 + 50)
    assert np.abs(y[mid] - before[mid]).max() > 0.05
    assert np.abs(y[mid] - after[mid]).max() > 0.05


@pytest.mark.parametrize("sub_before", [True, False])
def test_sub_on_off_crossfades(sub_before):
    spec = stereo_spec(n_out=3, sets=[SetSpec((1, 2), sub=SubSpec(3, 80.0))])
    n = FS
    x = frames(sine(50.0, n, 0.4) + sine(1000.0, n, 0.2), sine(45.0, n, 0.4, 1.0) + sine(700.0, n, 0.2))
    at = n // 2 + 3
    buffers = settled(spec, Controls(master_db=0.0, sub=sub_before))
    y = run_blocks(buffers, x, 128, {at: (spec, Controls(master_db=0.0, sub=not sub_before))})
    assert_no_click(y, at, SETTLE)
    if sub_before:
        assert not np.any(y[at + XFADE :, 2])  # sub now off: silent
    else:
        assert not np.any(y[:at, 2])
        assert np.abs(y[at + XFADE :, 2]).max() > 0.3


# --------------------------------------------------------------------------- gain ramps

VOLUME_CHANGES = {
    "down 12 dB": (Controls(master_db=0.0), Controls(master_db=-12.0)),
    "up 20 dB": (Controls(master_db=-20.0), Controls(master_db=0.0)),
    "dim": (Controls(master_db=-10.0), Controls(master_db=-30.0)),
    "mute": (Controls(master_db=-6.0), Controls(master_db=-6.0, mute=True)),
    "unmute": (Controls(master_db=-6.0, mute=True), Controls(master_db=-6.0)),
}


def master(c: Controls) -> float:
    return 0.0 if c.mute else gain(c.master_db)


@pytest.mark.parametrize("change", VOLUME_CHANGES.values(), ids=[k.replace(" ", "-") for k in VOLUME_CHANGES])
@pytest.mark.parametrize("ramp_ms", [5.0, 20.0, 50.0])
def test_volume_change_is_ramped_over_ramp_ms(change, ramp_ms):
    c0, c1 = change
    spec = stereo_spec(ramp_ms=ramp_ms)
    ramp = round(ramp_ms * FS / 1000)
    n = FS // 2
    x = frames(square(50.0, n, 0.5), -square(70.0, n, 0.5))
    at = n // 3 + 17
    buffers = settled(spec, c0)
    y = run_blocks(buffers, x, 100, {at: (spec, c1)})
    g = y.astype(float) / x.astype(float)  # the square never crosses 0: the gain on every sample
    g0, g1 = master(c0), master(c1)
    np.testing.assert_allclose(g[:at], g0, rtol=1e-6, atol=0)
    np.testing.assert_allclose(g[at + ramp :], g1, rtol=1e-6, atol=1e-9)
    for ch in range(2):
        env = g[at - 1 : at + ramp + 1, ch]
        direction = np.sign(g1 - g0)
        assert np.all(direction * np.diff(env) >= -1e-9), "gain envelope not monotonic"
        # no jump: no per-sample gain change much larger than an even spread over the ramp
        assert np.max(np.abs(np.diff(env))) <= 2.0 * abs(g1 - g0) / ramp
        # still on its way halfway through
        half = g[at + ramp // 2, ch]
        assert min(g0, g1) + 0.1 * abs(g1 - g0) < half < max(g0, g1) - 0.1 * abs(g1 - g0)


@pytest.mark.parametrize("what", ["source trim", "set trim", "match"])
def test_trim_and_match_changes_are_ramped(what):
    n = FS // 2
    x = frames(square(50.0, n, 0.4), square(50.0, n, 0.4))
    before = stereo_spec()
    c0 = Controls(master_db=0.0, match_db=(0.0,))
    c1 = c0
    after = before
    if what == "source trim":
        after = stereo_spec(sources=[SourceSpec((1, 2), trim_db=-9.0)])
    elif what == "set trim":
        after = stereo_spec(sets=[SetSpec((1, 2), trim_db=-9.0)])
    else:
        c1 = Controls(master_db=0.0, match_db=(-9.0,))
    at = n // 2 + 1
    buffers = settled(before, c0)
    y = run_blocks(buffers, x, 64, {at: (after, c1)})
    g = y.astype(float) / x.astype(float)
    assert_no_click(y, at, SETTLE)
    np.testing.assert_allclose(g[at + RAMP + 1 :], gain(-9.0), rtol=1e-6)
    assert np.all(np.diff(g[at - 1 : at + RAMP + 2, 0]) <= 1e-9)
    assert gain(-9.0) + 0.05 < g[at + RAMP // 2, 0] < 1.0 - 0.05


# --------------------------------------------------------------------------- seqlock


def test_an_update_applies_at_the_next_block_and_c_applied_follows_c_seq():
    spec = stereo_spec()
    buffers = settled(spec, Controls(master_db=0.0))
    c = buffers.counters
    block = frames(square(100.0, 256, 0.5), square(100.0, 256, 0.5))
    assert c[layout.C_APPLIED] == c[layout.C_SEQ]
    y1 = run_blocks(buffers, block, 256)
    buffers.update(spec, Controls(master_db=-6.0))
    assert c[layout.C_SEQ] % 2 == 0 and c[layout.C_APPLIED] != c[layout.C_SEQ]  # published, not yet taken
    y2 = run_blocks(buffers, block, 256)
    assert c[layout.C_APPLIED] == c[layout.C_SEQ]
    assert np.array_equal(y1, block)  # the block before the update: the old gain throughout
    assert abs(y2[0, 0]) < 0.5 and abs(y2[-1, 0]) < abs(y2[0, 0])  # the very next block moves
    # two updates between blocks: the last one wins
    buffers.update(spec, Controls(master_db=-30.0))
    buffers.update(spec, Controls(master_db=-12.0))
    run_blocks(buffers, frames(square(100.0, FS // 10, 0.5), square(100.0, FS // 10, 0.5)), 256)
    assert c[layout.C_APPLIED] == c[layout.C_SEQ]
    y3 = run_blocks(buffers, block, 256)
    np.testing.assert_allclose(y3, gain(-12.0) * block.astype(float), rtol=1e-6)


def test_a_half_written_update_is_not_taken():
    """While the writer holds C_SEQ odd, the kernel keeps its parameters; it takes the new
    ones at the first block after the writer has finished."""
    spec = stereo_spec()
    buffers = settled(spec, Controls(master_db=0.0))
    c = buffers.counters
    block = frames(square(100.0, 256, 0.5), square(100.0, 256, 0.5))
    applied = c[layout.C_APPLIED]
    c[layout.C_SEQ] += 1  # writer starts...
    buffers.shared[layout.P_MASTER] = 0.0  # ...and has written half of what it means to write
    y = run_blocks(buffers, block, 256)
    assert np.array_equal(y, block)
    assert c[layout.C_APPLIED] == applied
    c[layout.C_SEQ] += 1  # writer done
    run_blocks(buffers, block, 256)
    assert c[layout.C_APPLIED] == c[layout.C_SEQ]
    y = run_blocks(buffers, frames(square(100.0, FS // 10, 0.5), square(100.0, FS // 10, 0.5)), 256)
    assert not np.any(y[RAMP:])


# --------------------------------------------------------------------------- block-size independence

FULL = stereo_spec(
    n_in=3,
    n_out=6,
    sources=[SourceSpec((1, 2), trim_db=-1.0), SourceSpec((3,), trim_db=2.0)],
    sets=[
        SetSpec(
            (1, 2),
            trim_db=1.5,
            delay_ms=7.3,
            eq=(Biquad("lowshelf", 90.0, 6.0), Biquad("peak", 2500.0, -4.0, 2.0), Biquad("highshelf", 9000.0, 3.0)),
            sub=SubSpec(3, 85.0, 2.0),
        ),
        SetSpec((4, 5), mono=True, eq=(Biquad("bandpass", 1500.0, q=0.5),)),
        SetSpec((6,), delay_ms=1.0),
    ],
)


def full_program(n):
    return frames(
        sine(55.0, n, 0.6) + noise(n, 0.3, seed=41),
        square(110.0, n, 0.4) + noise(n, 0.2, seed=42),
        sine(440.0, n, 0.7) + noise(n, 0.3, seed=43),
    )


@pytest.mark.parametrize("settle", [True, False], ids=["settled", "start-up"])
@pytest.mark.parametrize(
    "controls",
    [
        Controls(master_db=6.0, polarity=True, match_db=(-1.0, 0.0)),  # loud: the limiter works
        Controls(source=1, speakers=1, master_db=-3.0),
        Controls(speakers=2, master_db=0.0, matrix=layout.MATRIX_SIDE, sub=False),
    ],
    ids=["limiting", "mono-set", "one-output"],
)
def test_output_does_not_depend_on_the_block_size(settle, controls):
    x = full_program(5 * FS // 2)
    outputs = {}
    for blocksize in (1024, 32, 100, 4096):
        outputs[blocksize], _ = run(
            FULL,
            controls,
            x,
            blocksize=blocksize,
            settle=settle,
            master_ramp_ms=STARTUP_RAMP_MS if not settle else None,
        )
    assert np.abs(outputs[1024]).max() > 0.1
    for blocksize in (32, 100, 4096):
        np.testing.assert_allclose(
            outputs[blocksize], outputs[1024], rtol=0, atol=1e-6, err_msg=f"blocksize {blocksize}"
        )


def test_a_change_at_the_same_frame_gives_the_same_output_whatever_the_block_size():
    x = full_program(2 * FS)
    changes = {
        FS // 2: (FULL, Controls(source=1, speakers=1, master_db=-3.0)),
        FS: (FULL, Controls(source=0, speakers=0, master_db=-10.0, matrix=layout.MATRIX_MONO)),
        3 * FS // 2: (FULL, Controls(source=0, speakers=2, master_db=0.0, sub=False, polarity=True)),
    }
    outputs = {}
    for blocksize in (64, 1024, 4096, 100):
        buffers = settled(FULL, Controls(master_db=0.0))
        outputs[blocksize] = run_blocks(buffers, x, blocksize, changes)
    for blocksize in (1024, 4096, 100):
        np.testing.assert_allclose(outputs[blocksize], outputs[64], rtol=0, atol=1e-6, err_msg=f"blocksize {blocksize}")


# --------------------------------------------------------------------------- start-up


@pytest.mark.parametrize("master_ramp_ms", [None, STARTUP_RAMP_MS])
def test_start_up_ramps_the_master_gain_in_from_silence(master_ramp_ms):
    spec = stereo_spec(n_out=3, sets=[SetSpec((1, 2), sub=SubSpec(3))])
    ramp = round((20.0 if master_ramp_ms is None else master_ramp_ms) * FS / 1000)
    n = ramp + FS // 5
    x = frames(square(500.0, n, 0.5), square(300.0, n, 0.5))
    y, _ = run(spec, Controls(master_db=-6.0, sub=False), x, blocksize=64, settle=False, master_ramp_ms=master_ramp_ms)
    target = gain(-6.0)
    assert abs(y[0, 0]) <= 0.5 * target * 2.0 / ramp  # the first sample is ~0
    g = y[:, :2].astype(float) / x.astype(float)
    assert np.all(np.diff(g[: ramp + 1], axis=0) >= -1e-12)  # rises monotonically...
    assert np.max(np.diff(g[: ramp + 1], axis=0)) <= 2.0 * target / ramp  # ...without a jump
    assert g[ramp // 2, 0] == pytest.approx(target / 2, rel=0.2)
    np.testing.assert_allclose(g[ramp:], target, rtol=1e-6)  # and arrives after the ramp
    # only the master ramps in: sources, sets and sub mode start where they were told to
    assert not np.any(y[:, 2])
