"""Resetting integrated loudness: over OSC on a running daemon, and on one source's meter."""

from __future__ import annotations

import numpy as np
from daemonkit import SAMPLERATE, config, noise_at, program, running, until
from osckit import Peer, run

from controlroom.daemon.service.loudness import SourceMeter


def monitor(daemon) -> dict:
    return daemon.latest_loudness.get("monitor") or {}


def test_loudness_reset_over_osc_restarts_the_monitors_integrated_loudness_and_keeps_matching():
    async def scenario():
        async with running(config(), program=program()) as daemon:
            await until(lambda: monitor(daemon).get("integrated_lufs") is not None, "an integrated loudness")
            # silence the output, so that nothing after the reset is loud enough to be gated in
            daemon.controller.apply("mute", "set", True, origin="test")
            await until(lambda: monitor(daemon).get("momentary_lufs") is None, "a silent monitor")
            assert monitor(daemon)["integrated_lufs"] is not None  # silence alone does not reset it

            peer = await Peer.open(daemon.osc.port)
            peer.send("/controlroom/loudness/reset")
            assert await peer.barrier() == []  # accepted: no error
            await until(lambda: monitor(daemon)["integrated_lufs"] is None, "integrated loudness reset")
            assert monitor(daemon)["loudness_range_lu"] is None
            # the sources' matching windows are not what was reset
            assert daemon.latest_loudness["sources"]["mix"]["window_lufs"] is not None
            peer.close()

    run(scenario)


def test_a_source_meters_integrated_reset_keeps_its_matching_window():
    meter = SourceMeter([0, 1], SAMPLERATE, window_s=10.0)
    meter.feed(noise_at(-20.0, 0.0, seed=1)[: 2 * SAMPLERATE].astype(np.float32))
    before = meter.figures()
    assert before["integrated_lufs"] is not None and before["window_lufs"] is not None

    meter.reset_integrated()

    after = meter.figures()
    assert after["integrated_lufs"] is None
    assert after["loudness_range_lu"] is None
    assert after["window_lufs"] == before["window_lufs"]
    assert after["momentary_lufs"] == before["momentary_lufs"]
