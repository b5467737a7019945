"""Resetting integrated loudness: over OSC on a running daemon, and on one source's meter; a
source's meter reads its own inputs from the tap, whatever columns a reload moves them to;
recordings asked for while the meters drain in their own thread."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from daemonkit import SAMPLERATE, config, noise_at, program, running, until, windows_full
from osckit import Peer, run

from controlroom.daemon.service.loudness import LoudnessMonitor, SourceMeter
from controlroom.dsp import layout
from controlroom.dsp.control import Controls, PathBuffers, PathSpec, SetSpec, SourceSpec
from controlroom.dsp.path import render


def monitor(daemon) -> dict:
    """The monitor's loudness figures as the state report shows them."""
    return daemon.shown_meters().get("loudness", {}).get("monitor") or {}


def test_loudness_reset_over_osc_restarts_the_monitors_integrated_loudness_and_keeps_matching():
    async def scenario():
        async with running(config("window_s = 2.0"), program=program()) as daemon:
            await until(lambda: monitor(daemon).get("integrated_lufs") is not None, "an integrated loudness")
            await windows_full(daemon)
            # silence the output, so that nothing after the reset is loud enough to be gated in:
            # the short-term loudness (3 s) that loudness range takes must be silent too
            daemon.controller.apply("mute", "set", True, origin="test")
            await until(lambda: monitor(daemon).get("short_term_lufs") is None, "a silent monitor")
            assert monitor(daemon)["integrated_lufs"] is not None  # silence alone does not reset it

            peer = await Peer.open(daemon.osc.port)
            peer.send("/controlroom/loudness/reset")
            assert await peer.barrier() == []  # accepted: no error
            await until(lambda: monitor(daemon)["integrated_lufs"] is None, "integrated loudness reset")
            assert monitor(daemon)["loudness_range_lu"] is None
            # the sources' matching windows are not what was reset
            assert daemon.latest_loudness["sources"]["mix"]["window_filled_s"] == 2.0
            peer.close()

    run(scenario)


def test_a_matching_window_has_no_loudness_until_it_is_full():
    meter = SourceMeter([0, 1], SAMPLERATE, window_s=2.0)
    x = noise_at(-20.0, 0.0, seed=1)[: 2 * SAMPLERATE].astype(np.float32)
    meter.feed(x[: 19 * SAMPLERATE // 10])  # 1.9 s: 19 momentary values
    assert meter.filled_s() == 1.9
    assert meter.window_lufs() is None
    assert meter.figures()["momentary_lufs"] is not None  # the meter itself shows the programme
    meter.feed(x[19 * SAMPLERATE // 10 :])
    assert meter.filled_s() == 2.0
    # -20 LUFS integrated over the whole loop; the first momentary values are of a partial block
    assert meter.window_lufs() == pytest.approx(-20.0, abs=0.5)


def test_a_silent_full_window_has_no_loudness():
    meter = SourceMeter([0], SAMPLERATE, window_s=1.0)
    meter.feed(np.zeros((2 * SAMPLERATE, 1), np.float32))
    assert meter.filled_s() == 1.0 and meter.window_lufs() is None


def test_a_source_meters_integrated_reset_keeps_its_matching_window():
    meter = SourceMeter([0, 1], SAMPLERATE, window_s=2.0)
    meter.feed(noise_at(-20.0, 0.0, seed=1)[: 2 * SAMPLERATE].astype(np.float32))
    before = meter.figures()
    assert before["integrated_lufs"] is not None and before["window_lufs"] is not None

    meter.reset_integrated()

    after = meter.figures()
    assert after["integrated_lufs"] is None
    assert after["loudness_range_lu"] is None
    assert after["window_lufs"] == before["window_lufs"]
    assert after["momentary_lufs"] == before["momentary_lufs"]


def test_a_reload_that_moves_a_sources_tap_columns_keeps_its_meter_on_its_inputs():
    # input 1 loud, the source's inputs 3-4 quiet: a meter reading the wrong columns shows it
    rng = np.random.default_rng(7)
    x = np.hstack([rng.uniform(-0.9, 0.9, (2 * SAMPLERATE, 2)), rng.uniform(-0.03, 0.03, (2 * SAMPLERATE, 2))])
    x = x.astype(np.float32)
    spec = PathSpec(SAMPLERATE, 4, 2, (SourceSpec((3, 4)),), (SetSpec((1, 2)),))
    buffers = PathBuffers(spec, Controls())
    monitor = LoudnessMonitor(buffers, SimpleNamespace(sources={"ref": SimpleNamespace(channels=(3, 4))}), 1.0)
    y = np.zeros((x.shape[0], 2), np.float32)
    for start in range(0, x.shape[0], 4800):  # drained more often than the ring wraps
        if start == SAMPLERATE:
            buffers.update(replace(spec, tap_inputs=(1,)), Controls())  # a mic on input 1: the columns move
        render(x[start : start + 4800], y[start : start + 4800], 256, *buffers.arrays)
        monitor.drain()
    assert monitor.reader.map.columns(inputs=(3, 4)) == [1, 2]
    assert monitor.reader.lost == monitor.reader.stale == 0

    reference = SourceMeter([0, 1], SAMPLERATE, 1.0)
    reference.feed(x[:, 2:4])
    assert monitor.report()["sources"]["ref"] == reference.figures()


def test_every_recording_asked_for_while_the_meters_drain_in_their_thread_is_delivered():
    # as in the daemon: the kernel and the drain run in a thread, recordings are asked for on
    # the event loop at any moment of a drain, each from the tap frame the kernel is at
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.5, 0.5, (480, 4)).astype(np.float32)
    y = np.zeros((480, 2), np.float32)
    spec = PathSpec(SAMPLERATE, 4, 2, (SourceSpec((3, 4)),), (SetSpec((1, 2)),))
    buffers = PathBuffers(spec, Controls())
    monitor = LoudnessMonitor(buffers, SimpleNamespace(sources={"ref": SimpleNamespace(channels=(3, 4))}), 1.0)
    stop = threading.Event()

    def kernel_and_meters() -> None:
        while not stop.is_set():
            render(x, y, 64, *buffers.arrays)
            monitor.drain()

    async def scenario():
        thread = threading.Thread(target=kernel_and_meters)
        thread.start()
        try:
            for _ in range(200):
                recording = monitor.record(64, int(buffers.counters[layout.C_TAP_WRITE]), inputs=(3,))
                taken = await asyncio.wait_for(recording, 10.0)
                assert taken.shape == (64, 1)
                assert set(np.unique(taken)) <= set(np.unique(x[:, 2]))  # input 3's samples
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)

    run(scenario)


def stereo_source_on_inputs_3_4(samplerate: int, wake: threading.Event | None = None):
    spec = PathSpec(samplerate, 4, 2, (SourceSpec((3, 4)),), (SetSpec((1, 2)),))
    buffers = PathBuffers(spec, Controls())
    config = SimpleNamespace(sources={"ref": SimpleNamespace(channels=(3, 4))})
    return buffers, LoudnessMonitor(buffers, config, 1.0, wake)


@pytest.mark.parametrize("samplerate", [44100, 192000])
def test_meters_drained_at_their_idle_pace_lose_nothing_even_when_a_drain_comes_a_period_late(samplerate):
    rng = np.random.default_rng(11)
    x = rng.uniform(-0.5, 0.5, (2 * samplerate, 4)).astype(np.float32)
    buffers, monitor = stereo_source_on_inputs_3_4(samplerate)
    late = int(2 * monitor.period_s(watched=False) * samplerate)
    y = np.zeros((x.shape[0], 2), np.float32)
    for start in range(0, x.shape[0], late):
        render(x[start : start + late], y[start : start + late], 256, *buffers.arrays)
        monitor.drain()
    assert monitor.reader.lost == 0
    reference = SourceMeter([0, 1], samplerate, 1.0)
    reference.feed(x[:, 2:4])
    assert monitor.report()["sources"]["ref"] == reference.figures()


def test_meters_drain_at_every_step_while_watched_or_recording_and_wake_their_thread_when_asked():
    wake = threading.Event()
    buffers, monitor = stereo_source_on_inputs_3_4(SAMPLERATE, wake)
    step = 1.0 / 10  # the BS.1770 meters' 100 ms step
    assert monitor.period_s(watched=True) == pytest.approx(step)
    assert monitor.period_s(watched=False) > 2 * step
    x = np.full((SAMPLERATE // 10, 4), 0.1, np.float32)
    y = np.zeros((x.shape[0], 2), np.float32)

    async def scenario():
        recording = monitor.record(SAMPLERATE // 4, inputs=(3,))
        assert wake.is_set()  # the thread drains now, not at its next idle turn
        assert monitor.period_s(watched=False) == pytest.approx(step)
        while not recording.done():
            assert monitor.period_s(watched=False) == pytest.approx(step)  # the recording waits
            render(x, y, 64, *buffers.arrays)
            monitor.drain()
            await asyncio.sleep(0)  # its frames, once all in, arrive through the loop
        assert (await recording).shape == (SAMPLERATE // 4, 1)
        assert monitor.period_s(watched=False) > 2 * step  # nothing waits any more

    run(scenario)
