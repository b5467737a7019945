"""Loudness matching (DESIGN.md §9): the controller's arithmetic with an injected measurement,
the state file round trip, and the whole chain through the real kernel on the virtual backend.

End-to-end, the daemon plays generated noise of known loudness and tone; the monitor output is
read from the kernel's tap ring and measured with the offline BS.1770 meter. Waits are for
conditions (windows filled, frames recorded), each with a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from controlroom.daemon.config import parse_config
from controlroom.daemon.controller import Controller
from controlroom.daemon.matching import matched_offset, restore_offsets
from controlroom.daemon.program import pink_noise
from controlroom.daemon.service import Daemon
from controlroom.daemon.targets import Vocabulary
from controlroom.dsp import layout as L
from controlroom.dsp.control import db_to_gain
from controlroom.dsp.loudness import measure
from controlroom.dsp.tap import read_tap
from test_osc import run

CONFIG_TOML = """
[audio]
backend = "virtual"
blocksize = 256

[monitor]
volume_db = -10.0
startup_max_volume_db = -10.0

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]
[sources.tape]
channels = [5]

[speakers.studio]
outputs = [1, 2]

[ab]
a = "mix"
b = "ref"
match = "auto"
{ab_extra}

[osc]
listen = "127.0.0.1:0"
"""

WAIT_S = 30.0  # the longest any condition may take (a cold numba cache compiles first)


def config(ab_extra: str = ""):
    return parse_config(CONFIG_TOML.format(ab_extra=ab_extra))


class Levels:
    """An injected measurement: ``levels[source]`` LUFS, None when absent."""

    def __init__(self, **levels: float | None) -> None:
        self.levels = levels

    def __call__(self, source: str) -> float | None:
        return self.levels.get(source)


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
    with caplog.at_level(logging.DEBUG, logger="controlroom.daemon.matching"):
        changes = c.apply("ab", "set", "a")
    assert changes == {"source": "mix", "ab": "a"}
    assert c.match_db["mix"] == 0.0
    assert any("no loudness measured for mix" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
    levels.levels["ref"] = None
    c.apply("ab", "set", "b")
    assert c.match_db["ref"] == -6.0  # kept from before


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
    ref = L.SOURCES_BASE + 1 * L.SRC_STRIDE
    assert buffers.shared[L.P_SOURCE] == 1
    assert buffers.shared[ref + L.S_GAIN] == pytest.approx(db_to_gain(-6.0))


def test_saved_offsets_are_checked_when_restored():
    offsets, warnings = restore_offsets(
        {"mix": -3, "ref": 9.5, "tape": "loud", "gone": 1.0, "x": math.nan, "y": True},
        ("mix", "ref", "tape"), 6.0,
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

SAMPLERATE = 48000
LOOP_FRAMES = 8 * SAMPLERATE
MIX_LUFS, REF_LUFS = -20.0, -14.0
RECORD_S = 2.0
SETTLE_FRAMES = SAMPLERATE // 5  # after a switch: a block, the crossfade and the gain ramp
MATCH_TOLERANCE_LU = 0.5


def noise_at(lufs: float, treble_db: float, seed: int) -> np.ndarray:
    """A periodic stereo noise loop at ``lufs`` integrated loudness, tilted by ``treble_db``
    above a few kHz (brighter with a positive tilt)."""
    x = pink_noise(LOOP_FRAMES, 2, np.random.default_rng(seed))
    spectrum = np.fft.rfft(x, axis=0)
    f = np.fft.rfftfreq(LOOP_FRAMES, 1.0 / SAMPLERATE)
    tilt = 10 ** (treble_db / 20.0 / (1.0 + (3000.0 / np.maximum(f, 1.0)) ** 2))
    x = np.fft.irfft(spectrum * tilt[:, None], n=LOOP_FRAMES, axis=0)
    return x * 10 ** ((lufs - measure(x, SAMPLERATE).integrated_lufs) / 20.0)


def program(n_in: int = 5) -> np.ndarray:
    """Pink noise at -20 LUFS on mix, brighter noise at -14 LUFS on ref, silence on tape."""
    x = np.zeros((LOOP_FRAMES, n_in), dtype=np.float32)
    x[:, 0:2] = noise_at(MIX_LUFS, 0.0, seed=1)
    x[:, 2:4] = noise_at(REF_LUFS, 9.0, seed=2)
    return x


@asynccontextmanager
async def running(cfg, *, state_path: Path | None = None, program: np.ndarray | None = None):
    """A started ``Daemon`` on the virtual backend, audio flowing; shut down after."""
    daemon = Daemon(cfg, None, state_path=state_path, program=program)
    await daemon.start()
    try:
        await until(lambda: daemon.host is not None and daemon.host.running, "audio flowing")
        yield daemon
    finally:
        await daemon.shutdown()


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def windows_full(daemon: Daemon) -> None:
    """Wait until every source's matching window holds a whole window of measurements."""
    meters = daemon.loudness.sources
    await until(lambda: all(len(m.window) == m.window.maxlen for m in meters.values()), "full loudness windows")


class OutputTap:
    """The monitor output (outputs 1-2) as the kernel wrote it, read from its tap ring."""

    def __init__(self, daemon: Daemon) -> None:
        self.buffers = daemon.controller.buffers
        spec = self.buffers.spec
        self.n_in, self.width = spec.n_in, spec.n_in + spec.n_out
        self.scratch = np.zeros((L.TAP_FRAMES, self.width), dtype=np.float32)
        self.read = int(self.buffers.counters[L.C_TAP_WRITE])

    async def record(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames from where the last call (or the constructor) stopped."""
        chunks, got = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + frames / SAMPLERATE + WAIT_S
        while got < frames:
            assert loop.time() < deadline, "the tap stopped"
            await asyncio.sleep(0.02)  # the ring holds 0.34 s: read well within that
            b = self.buffers
            n, self.read, lost = read_tap(b.meters, b.counters, self.read, self.width, self.scratch)
            assert lost == 0
            chunks.append(self.scratch[:n, self.n_in:self.n_in + 2].copy())
            got += n
        return np.concatenate(chunks)[:frames]


async def output_lufs_after(daemon: Daemon, change: Callable[[], object]) -> float:
    """Integrated loudness (LUFS) of the monitor output over ``RECORD_S`` after ``change()``
    (once the switch has settled)."""
    tap = OutputTap(daemon)
    change()
    x = await tap.record(SETTLE_FRAMES + int(RECORD_S * SAMPLERATE))
    return measure(x[SETTLE_FRAMES:], SAMPLERATE).integrated_lufs


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
