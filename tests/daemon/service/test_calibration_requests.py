"""Calibration requests on a running daemon (virtual backend, no room: the mic's input is
whatever the program plays there): refusals, failures that apply nothing, the mic's reading."""

import asyncio
import math

import numpy as np
from daemonkit import running
from osckit import Peer, ctl, run

from controlroom.daemon.config import parse_config
from controlroom.daemon.osc.protocol import (
    CALIBRATE_ADDRESS,
    CALIBRATE_FAILED,
    CALIBRATE_MIC_ADDRESS,
    CALIBRATE_PROGRESS_ADDRESS,
    ERROR_ADDRESS,
)
from controlroom.daemon.osc.server import DROP_BAD_VALUE

FS = 48000
CONFIG = """
[audio]
backend = "virtual"
input_channels = 3
output_channels = 2
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
[osc]
listen = "127.0.0.1:0"
"""
CALIBRATED = CONFIG + "[calibration]\nmic = 3\n"


def mic_program(signal: np.ndarray) -> np.ndarray:
    """A program that plays ``signal`` on input 3 (the mic) and nothing on the source."""
    x = np.zeros((len(signal), 3), dtype=np.float32)
    x[:, 2] = signal
    return x


async def answer(peer: Peer) -> tuple[str, list, list[str]]:
    """The answer to a calibration request, and the progress lines before it."""
    steps = []
    while True:
        address, params = await peer.receive()
        if address == CALIBRATE_PROGRESS_ADDRESS:
            steps.append(params[0])
        elif address in (CALIBRATE_ADDRESS, CALIBRATE_MIC_ADDRESS, ERROR_ADDRESS):
            return address, params, steps


def test_a_calibration_is_refused_without_a_mic_or_for_an_unknown_set_and_bad_arguments_are_dropped():
    async def scenario():
        async with running(parse_config(CONFIG)) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send(CALIBRATE_ADDRESS)
            address, params, _ = await answer(peer)
            assert [address, params[0]] == [ERROR_ADDRESS, CALIBRATE_FAILED] and "[calibration]" in params[1]
            peer.close()
        async with running(parse_config(CALIBRATED)) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send(CALIBRATE_ADDRESS, "nearfield")
            address, params, _ = await answer(peer)
            assert params[:2] == [CALIBRATE_FAILED, "no speaker set nearfield (expected one of studio)"]
            peer.send(CALIBRATE_ADDRESS, 3)
            address, params, _ = await answer(peer)
            assert [address, params[0]] == [ERROR_ADDRESS, DROP_BAD_VALUE]
            assert daemon.controller.calibration.outputs == {}
            peer.close()

    run(scenario)


def test_a_dead_mic_fails_on_the_room_noise_before_any_output_plays_and_nothing_is_applied():
    async def scenario():
        async with running(parse_config(CALIBRATED)) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send(CALIBRATE_ADDRESS)
            address, params, steps = await answer(peer)
            assert address == ERROR_ADDRESS and params[0] == CALIBRATE_FAILED
            assert params[1].startswith("no signal at the mic (input 3): it hears nothing, not even the room")
            assert len(steps) == 1 and steps[0].startswith("room noise")
            report = daemon.controller.state_report()
            assert report["calibration"]["outputs"] == {} and report["calibrating"] is None
            assert daemon.controller.calibration_signal is None
            peer.close()

    run(scenario)


def test_a_speaker_the_mic_does_not_hear_over_the_room_noise_fails_naming_the_output():
    noise = (10 ** (-30 / 20) * np.random.default_rng(4).standard_normal(FS)).astype(np.float32)

    async def scenario():
        async with running(parse_config(CALIBRATED), program=mic_program(noise)) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send(CALIBRATE_ADDRESS, "studio")
            address, params, _ = await answer(peer)
            assert params[0] == CALIBRATE_FAILED
            assert params[1].startswith("output 1: the test signal is not over the room's noise")
            assert "over the room's noise at the mic (needs 20 dB)" in params[1]
            assert daemon.controller.calibration.outputs == {}
            peer.close()

    run(scenario)


def test_the_mic_reads_a_calibrator_tone_as_its_rms_level_and_refuses_a_clipping_one_or_noise():
    t = np.arange(FS) / FS
    amplitude = 10 ** (-20 / 20)

    async def scenario():
        tone = (amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
        async with running(parse_config(CALIBRATED), program=mic_program(tone)) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send(CALIBRATE_MIC_ADDRESS)
            address, params, _ = await answer(peer)
            assert address == CALIBRATE_MIC_ADDRESS
            assert math.isclose(params[0], 20 * math.log10(amplitude / math.sqrt(2)), abs_tol=0.05)
            peer.close()
            shown = await asyncio.to_thread(ctl, daemon.osc.port, "calibrate", "mic")
            assert shown.stdout == "[calibration]\nmic_dbfs_at_94_db_spl = -23.0\n"
        clipping = np.clip(2.0 * np.sin(2 * np.pi * 1000 * t), -1.0, 1.0).astype(np.float32)
        async with running(parse_config(CALIBRATED), program=mic_program(clipping)) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send(CALIBRATE_MIC_ADDRESS)
            address, params, _ = await answer(peer)
            assert params[0] == CALIBRATE_FAILED and "clips" in params[1]
            peer.close()
        # a room's noise at a calibrator's level is no calibrator
        noise = (10 ** (-20 / 20) * np.random.default_rng(6).standard_normal(FS)).astype(np.float32)
        async with running(parse_config(CALIBRATED), program=mic_program(noise)) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send(CALIBRATE_MIC_ADDRESS)
            address, params, _ = await answer(peer)
            assert params[0] == CALIBRATE_FAILED
            assert params[1].startswith("no calibrator tone at the mic (input 3): it hears")
            peer.close()

    run(scenario)
