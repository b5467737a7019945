"""A Daemon on the virtual backend, in-process, with programme on its inputs and a tap on its outputs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from timekit import scaled

from controlroom.daemon.cli.program import pink_noise
from controlroom.daemon.config import parse_config
from controlroom.daemon.service import Daemon
from controlroom.dsp.bs1770 import measure
from controlroom.dsp.tap import TapReader

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


WAIT_S = 30.0  # the longest any condition may take on a desktop (a cold numba cache compiles first)


def config(ab_extra: str = ""):
    return parse_config(CONFIG_TOML.format(ab_extra=ab_extra))


MIX_LUFS, REF_LUFS = -20.0, -14.0


class Levels:
    """An injected measurement: ``levels[source]`` LUFS, None when absent."""

    def __init__(self, **levels: float | None) -> None:
        self.levels = levels

    def __call__(self, source: str) -> float | None:
        return self.levels.get(source)


SAMPLERATE = 48000


LOOP_FRAMES = 8 * SAMPLERATE


RECORD_S = 2.0


SETTLE_FRAMES = SAMPLERATE // 5  # after a switch: a block, the crossfade and the gain ramp


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
    """A running ``Daemon`` on the virtual backend, audio flowing; stopped after (as SIGTERM
    stops it), and it must then exit cleanly."""
    daemon = Daemon(cfg, None, state_path=state_path, program=program)
    serving = asyncio.create_task(daemon.run())
    try:
        await until(lambda: serving.done() or (daemon.runner is not None and daemon.runner.running), "audio flowing")
        if serving.done():
            serving.result()  # raises what ended it
            raise AssertionError("the daemon stopped by itself")
        yield daemon
    finally:
        daemon.stop()
        assert await serving == 0


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def windows_full(daemon: Daemon) -> None:
    """Wait until every source's matching window holds a whole window of measurements."""
    meters = daemon.loudness.sources
    await until(lambda: all(len(m.window) == m.window.maxlen for m in meters.values()), "full loudness windows")


class OutputTap:
    """The monitor output (outputs 1-2, or the first ``outputs``) as the kernel wrote it, read
    from its tap ring from now (or from tap frame ``start``)."""

    def __init__(self, daemon: Daemon, outputs: int = 2, start: int | None = None) -> None:
        self.reader = TapReader(daemon.controller.buffers, start)
        self.outputs = tuple(range(1, outputs + 1))

    async def record(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames from where the last call (or the constructor) stopped."""
        chunks, got = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + frames / SAMPLERATE + scaled(WAIT_S)
        while got < frames:
            assert loop.time() < deadline, "the tap stopped"
            await asyncio.sleep(0.02)  # the ring holds 0.34 s: read well within that
            chunks.append(self.take())
            got += len(chunks[-1])
        return np.concatenate(chunks)[:frames]

    def take(self) -> np.ndarray:
        """The frames written since the last read, (frames, outputs); none may have been lost."""
        block, _ = self.reader.take()
        assert self.reader.lost == 0, f"{self.reader.lost} tap frames lost: read more often"
        return block[:, self.reader.map.columns(outputs=self.outputs)]


async def output_lufs_after(daemon: Daemon, change: Callable[[], object]) -> float:
    """Integrated loudness (LUFS) of the monitor output over ``RECORD_S`` after ``change()``
    (once the switch has settled)."""
    tap = OutputTap(daemon)
    change()
    x = await tap.record(SETTLE_FRAMES + int(RECORD_S * SAMPLERATE))
    return measure(x[SETTLE_FRAMES:], SAMPLERATE).integrated_lufs
