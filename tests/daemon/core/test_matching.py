"""Loudness matching: the controller's arithmetic with an injected measurement,
the state file round trip, and the whole chain through the real kernel on the virtual backend.

End-to-end, the daemon plays generated noise of known loudness and tone; the monitor output is
read from the kernel's tap ring and measured with the offline BS.1770 meter. Waits are for
conditions (windows filled, frames recorded), each with a timeout.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from daemonkit import (
    MIX_LUFS,
    REF_LUFS,
    Levels,
    config,
    output_lufs_after,
    program,
    running,
    until,
    windows_full,
)
from osckit import run

from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.matching import matched_offset, restore_offsets, status
from controlroom.daemon.core.targets import Vocabulary
from controlroom.dsp import layout
from controlroom.dsp.control import db_to_gain


def controller(ab_extra: str = "", **levels: float | None) -> tuple[Controller, Levels, list]:
    cfg = config(ab_extra)
    measured = Levels(**levels)
    c = Controller(cfg, Vocabulary(cfg).initial(), measure=measured)
    heard: list = []
    c.add_listener(lambda changes, origin: heard.append(changes))
    return c, measured, heard


# --- the controller, no audio ---------------------------------------------------------------


def test_the_new_source_takes_the_loudness_of_the_one_it_replaces():
    c, _, heard = controller(mix=-20.0, ref=-14.0, tape=-23.5)
    assert c.state.source == "mix" and c.match_db == {"mix": 0.0, "ref": 0.0, "tape": 0.0}
    assert c.apply("ab", "set", "b") == {"source": "ref", "ab": "b", "match_db": {"ref": -6.0}}
    assert heard == [{"source": "ref", "ab": "b", "match_db": {"ref": -6.0}}]
    # plain source switching among all sources, the replaced source's offset included
    c.apply("source", "set", "tape")
    assert c.match_db["tape"] == (-14.0 - 6.0) - (-23.5) == 3.5
    c.apply("ab", "set", "a")
    assert c.match_db == {"mix": (-23.5 + 3.5) - (-20.0), "ref": -6.0, "tape": 3.5}


def test_offsets_follow_the_latest_measurements_with_exact_arithmetic():
    c, levels, _ = controller(mix=-18.37, ref=-12.91)
    c.apply("source", "set", "ref")
    assert c.match_db["ref"] == round(-18.37 - -12.91, 2) == -5.46
    levels.levels.update(mix=-19.02, ref=-13.55)  # the music moved on
    c.apply("source", "set", "mix")
    assert c.match_db["mix"] == round((-13.55 - 5.46) - -19.02, 2) == 0.01
    assert matched_offset(-20.0, -14.0, 6.0) == -6.0


@pytest.mark.parametrize("ab_extra, cap", [("", 6.0), ("max_boost_db = 2.5", 2.5), ("max_boost_db = 0", 0.0)])
def test_a_quieter_source_is_raised_by_at_most_the_cap(ab_extra, cap):
    c, _, _ = controller(ab_extra, mix=-20.0, ref=-14.0, tape=-40.0)
    c.apply("source", "set", "ref")  # ref is attenuated, however far: no cap on that side
    assert c.match_db["ref"] == -6.0
    c.apply("source", "set", "tape")  # (-14 - 6) - (-40) = +20 dB wanted
    assert c.match_db["tape"] == cap


def test_the_offset_holds_still_while_the_source_plays():
    c, levels, heard = controller(mix=-20.0, ref=-14.0)
    c.apply("ab", "set", "b")
    for loudness in (-10.0, -30.0, None, -14.0):
        levels.levels["ref"] = loudness
        levels.levels["mix"] = loudness
        c.apply("volume", "step", -1.0)
        c.apply("dim", "toggle")
        c.apply("ab", "set", "b")  # no switch: ref already plays
        assert c.match_db == {"mix": 0.0, "ref": -6.0, "tape": 0.0}
    assert not any("match_db" in changes for changes in heard[1:])


def test_a_missing_measurement_keeps_the_offset(caplog):
    c, levels, _ = controller(mix=-20.0, ref=-14.0)
    c.apply("ab", "set", "b")
    levels.levels["mix"] = None  # silence or not enough data yet
    with caplog.at_level(logging.DEBUG, logger="controlroom.daemon.core.matching"):
        changes = c.apply("ab", "set", "a")
    assert changes == {"source": "mix", "ab": "a"}
    assert c.match_db["mix"] == 0.0
    assert any("no loudness measured for mix" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
    levels.levels["ref"] = None
    c.apply("ab", "set", "b")
    assert c.match_db["ref"] == -6.0  # kept from before


@pytest.mark.parametrize(
    "mode, windows, expected",
    [
        ("off", {"mix": (None, 0.0)}, {"status": "off"}),
        ("hold", {"mix": (-20.0, 10.0)}, {"status": "hold"}),
        (
            "auto",
            {"mix": (-20.0, 10.0), "ref": (None, 3.94)},
            {"status": "measuring", "filled_s": 3.9, "window_s": 10.0},
        ),
        ("auto", {"mix": (-20.0, 10.0), "ref": (None, 10.0)}, {"status": "no signal", "silent": ["ref"]}),
        ("auto", {"mix": (-20.0, 10.0), "ref": (-14.0, 10.0)}, {"status": "ready"}),
    ],
)
def test_the_status_says_what_matching_waits_for(mode, windows, expected):
    assert status(mode, windows, 10.0) == expected


def test_hold_freezes_every_offset():
    c, levels, _ = controller(mix=-20.0, ref=-14.0, tape=-30.0)
    c.apply("ab", "set", "b")
    c.apply("match", "set", "hold")
    levels.levels.update(mix=-10.0, ref=-25.0)
    for source in ("tape", "mix", "ref", "mix"):
        c.apply("source", "set", source)
        assert c.match_db == {"mix": 0.0, "ref": -6.0, "tape": 0.0}
    c.apply("match", "set", "auto")  # and matching resumes from the held offsets
    c.apply("source", "set", "ref")
    assert c.match_db["ref"] == 6.0  # (-10 + 0) - (-25) = +15 dB wanted: capped


def test_off_clears_every_offset_and_auto_starts_again_from_zero():
    c, _, heard = controller(mix=-20.0, ref=-14.0, tape=-17.0)
    c.apply("source", "set", "ref")
    c.apply("source", "set", "tape")
    assert c.match_db == {"mix": 0.0, "ref": -6.0, "tape": -3.0}
    heard.clear()
    assert c.apply("match", "set", "off") == {"match": "off", "match_db": {"ref": 0.0, "tape": 0.0}}
    c.apply("source", "set", "mix")
    c.apply("source", "set", "ref")
    assert c.match_db == {"mix": 0.0, "ref": 0.0, "tape": 0.0}
    c.apply("match", "set", "auto")
    c.apply("source", "set", "mix")
    assert c.match_db == {"mix": 6.0, "ref": 0.0, "tape": 0.0}


def test_the_kernel_gets_the_offset_with_the_switch():
    c, _, _ = controller(mix=-20.0, ref=-14.0)
    buffers = c.start_buffers()
    c.apply("ab", "set", "b")
    ref = layout.SOURCES_BASE + 1 * layout.SRC_STRIDE
    assert buffers.shared[layout.P_SOURCE] == 1
    assert buffers.shared[ref + layout.S_GAIN] == pytest.approx(db_to_gain(-6.0))


def test_saved_offsets_are_checked_when_restored():
    offsets, warnings = restore_offsets(
        {"mix": -3, "ref": 9.5, "tape": "loud", "gone": 1.0, "x": math.nan, "y": True},
        ("mix", "ref", "tape"),
        6.0,
    )
    assert offsets == {"mix": -3.0, "ref": 6.0}
    assert len(warnings) == 4
    offsets, warnings = restore_offsets([1, 2], ("mix",), 6.0)
    assert offsets == {} and len(warnings) == 1


def test_the_offsets_survive_a_restart_through_the_state_file(tmp_path):
    path = tmp_path / "state.json"

    async def scenario():
        async with running(config(), state_path=path) as daemon:
            daemon.controller.measure = Levels(mix=-20.0, ref=-14.0, tape=-18.25)
            daemon.controller.apply("source", "set", "tape")
            daemon.controller.apply("source", "set", "ref")
            saved = dict(daemon.controller.match_db)
            assert saved == {"mix": 0.0, "ref": (-18.25 - 1.75) - (-14.0), "tape": -20.0 - (-18.25)}
        async with running(config(), state_path=path) as daemon:
            assert daemon.controller.match_db == saved
            assert daemon.report()["state"]["match_db"] == saved
            daemon.controller.apply("match", "set", "off")
        async with running(config(), state_path=path) as daemon:
            assert daemon.controller.match_db == {"mix": 0.0, "ref": 0.0, "tape": 0.0}

    run(scenario)


# --- through the real kernel ----------------------------------------------------------------

MATCH_TOLERANCE_LU = 0.5


@pytest.mark.slow
def test_auto_matching_keeps_the_output_loudness_across_switches():
    async def scenario():
        async with running(config("window_s = 2.0"), program=program()) as daemon:
            c = daemon.controller
            await windows_full(daemon)
            mix = await output_lufs_after(daemon, lambda: None)
            assert mix == pytest.approx(MIX_LUFS - 10.0, abs=0.3)  # volume -10 dB
            ref = await output_lufs_after(daemon, lambda: c.apply("ab", "set", "b"))
            assert c.match_db["ref"] == pytest.approx(MIX_LUFS - REF_LUFS, abs=0.3)
            assert abs(ref - mix) < MATCH_TOLERANCE_LU
            back = await output_lufs_after(daemon, lambda: c.apply("source", "set", "mix"))
            assert abs(back - ref) < MATCH_TOLERANCE_LU
            assert daemon.report()["state"]["match_db"] == c.match_db

    run(scenario)


@pytest.mark.slow
def test_the_boost_cap_leaves_a_quiet_source_quieter():
    async def scenario():
        async with running(config("max_boost_db = 2.0\nwindow_s = 2.0"), program=program()) as daemon:
            c = daemon.controller
            c.apply("match", "set", "off")
            await windows_full(daemon)
            ref = await output_lufs_after(daemon, lambda: c.apply("ab", "set", "b"))
            c.apply("match", "set", "auto")
            mix = await output_lufs_after(daemon, lambda: c.apply("ab", "set", "a"))
            assert c.match_db["mix"] == 2.0  # +6 dB wanted
            assert ref - mix == pytest.approx(REF_LUFS - MIX_LUFS - 2.0, abs=MATCH_TOLERANCE_LU)

    run(scenario)


@pytest.mark.slow
def test_hold_and_off_in_the_output():
    async def scenario():
        async with running(config("window_s = 2.0"), program=program()) as daemon:
            c = daemon.controller
            await windows_full(daemon)
            c.apply("ab", "set", "b")
            c.apply("ab", "set", "a")  # both matched: ref -6 dB, mix 0 dB
            mix = await output_lufs_after(daemon, lambda: c.apply("match", "set", "hold"))
            # ref gets 3 dB louder while held: its offset does not follow
            daemon.host.program[:, 2:4] *= np.float32(db_to_gain(3.0))
            await until(lambda: daemon.loudness.window_lufs("ref") > REF_LUFS + 2.9, "ref measured louder")
            ref = await output_lufs_after(daemon, lambda: c.apply("ab", "set", "b"))
            assert c.match_db["ref"] == pytest.approx(MIX_LUFS - REF_LUFS, abs=0.3)
            assert ref - mix == pytest.approx(3.0, abs=MATCH_TOLERANCE_LU)
            # off: no offsets at all, the raw difference comes through
            ref_off = await output_lufs_after(daemon, lambda: c.apply("match", "set", "off"))
            assert c.match_db == {"mix": 0.0, "ref": 0.0, "tape": 0.0}
            assert ref_off - mix == pytest.approx(REF_LUFS + 3.0 - MIX_LUFS, abs=MATCH_TOLERANCE_LU)

    run(scenario)
