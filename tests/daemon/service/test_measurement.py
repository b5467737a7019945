"""Measuring an outboard insert: the analysis of a tap recording, recording from the tap, the
measurement's hold on its engine, the OSC request, and the whole measurement on JACK."""

import asyncio
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pyloudnorm
import pytest
from daemonproc import DaemonProcess, wait_for, write_config
from insertkit import CONFIG, measured
from jackutil import JACK_AUDIO
from loudnessoracle import outboard_eq, pink_k_gain_db
from osckit import Peer, run, serving

from controlroom.daemon.cli.program import pink_noise
from controlroom.daemon.config import parse_config
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.inserts import InsertError
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.osc.protocol import ERROR_ADDRESS, MEASURE_FAILED
from controlroom.daemon.osc.server import DROP_BAD_VALUE
from controlroom.daemon.service.loudness import LoudnessMonitor, TapOverrun, _Recording
from controlroom.daemon.service.measurement import EngineSession, analyse
from controlroom.dsp.tap import TapMap


def test_the_analysis_reads_the_returns_then_the_send_from_the_recording():
    config = parse_config(CONFIG)
    rng = np.random.default_rng(4)
    frames = 30000
    recording = np.zeros((frames, 3))
    send = rng.uniform(-0.1, 0.1, frames)
    recording[:, 2] = send  # output 7, after the returns
    recording[333:, 0] = recording[333:, 1] = 0.5 * send[:-333]  # returns on inputs 5-6
    result = analyse(config, "comp", recording)
    assert (result.latency, result.gain_db, result.samplerate) == (333, pytest.approx(-6.02, abs=0.01), 48000)
    assert (result.send, result.returns, result.source) == ((7, 8), (5, 6), "mix")


# --- recording from the tap ------------------------------------------------------------------------


#: a tap of input 1 alone
ONE = TapMap((1,), ())


def recording_of(frames: int, start: int):
    loop = asyncio.new_event_loop()
    recording = _Recording(frames, start, loop.create_future(), loop, inputs=(1,))
    return loop, recording


def test_a_recording_starts_at_its_frame_and_spans_blocks():
    loop, recording = recording_of(100, 50)
    block = np.arange(80, dtype=np.float32)[:, None]
    assert not recording.take(block, 0, ONE)  # frames 50-79
    assert recording.take(block + 80, 80, ONE)  # frames 80-149: complete
    loop.run_until_complete(asyncio.sleep(0))
    np.testing.assert_array_equal(recording.future.result()[:, 0], np.arange(50, 150))
    loop.close()


def test_a_recording_asked_for_after_its_frame_was_drained_starts_at_the_next_frame():
    loop, recording = recording_of(10, 50)
    assert recording.take(np.arange(60, 80, dtype=np.float32)[:, None], 60, ONE)
    loop.run_until_complete(asyncio.sleep(0))
    np.testing.assert_array_equal(recording.future.result()[:, 0], np.arange(60, 70))
    loop.close()


def test_frames_lost_in_the_middle_of_a_recording_fail_it():
    loop, recording = recording_of(100, 0)
    assert not recording.take(np.zeros((40, 1), np.float32), 0, ONE)
    assert recording.take(np.zeros((40, 1), np.float32), 60, ONE)  # 40-59 were lost or stale
    loop.run_until_complete(asyncio.sleep(0))
    with pytest.raises(TapOverrun):
        recording.future.result()
    loop.close()


def test_a_measurement_gives_up_at_once_when_its_engine_is_replaced_or_stops():
    config = parse_config(CONFIG)
    controller = Controller(config, Vocabulary(config).initial())
    controller.start_buffers().settle()
    runner = SimpleNamespace(
        controller=controller, running=True, config=config, loudness=LoudnessMonitor(controller.buffers, config)
    )
    engine = EngineSession(runner)
    engine.check()
    controller.start_buffers()  # a device came back: new buffers, a new stream
    with pytest.raises(InsertError, match="restarted"):
        asyncio.run(engine.until(lambda: False, "anything"))
    runner.running = False
    with pytest.raises(InsertError, match="not running"):
        EngineSession(runner)


# --- /controlroom/insert/measure over OSC ----------------------------------------------------------


def test_a_measurement_is_answered_when_done_and_a_failure_is_reported_not_counted():
    config = parse_config(CONFIG)
    calls = []

    async def measure_insert(name):
        calls.append(name)
        if len(calls) == 2:
            raise InsertError("insert comp: no clear return (coherence 0.02): is the insert connected?")
        return measured(config, name, 225, -2.82)

    async def scenario():
        controller = Controller(config, Vocabulary(config).initial())
        async with serving(controller, measure_insert=measure_insert) as server:
            peer = await Peer.open(server.port)
            peer.send("/controlroom/insert/measure", "comp")
            address, params = await peer.receive()
            assert address == "/controlroom/insert/measure"
            assert params[:3] == ["comp", 225, pytest.approx(4.6875)]
            assert params[3:] == [pytest.approx(-2.82), pytest.approx(0.99), 0]
            peer.send("/controlroom/insert/measure", "comp")
            address, params = await peer.receive()
            assert (address, params[0]) == (ERROR_ADDRESS, MEASURE_FAILED) and "connected" in params[1]
            for bad in ("eq", 3):
                peer.send("/controlroom/insert/measure", bad)
                [(address, params)] = await peer.barrier()
                assert (address, params[0]) == (ERROR_ADDRESS, DROP_BAD_VALUE)
            assert calls == ["comp", "comp"]
            assert dict(controller.dropped) == {DROP_BAD_VALUE: 2}
            peer.close()

    run(scenario)


# --- measuring an insert end to end on JACK -------------------------------------
#
# The daemon runs as a subprocess on the JACK dummy server. A harness client plays pink noise
# into the dry source (inputs 1-2), records the monitor outputs (1-2), and is the gear in the
# insert: the sends (outputs 7-8) come back on inputs 3-4 OUTBOARD_DELAY samples later,
# OUTBOARD_GAIN_DB louder and through a known EQ. Its cables thus have the same JACK latencies
# as the harness's own, so the oracle for the insert's round trip is the harness's round trip
# through the dry path (measured first, by the harness alone) plus OUTBOARD_DELAY.

OUTBOARD_DELAY = 97  # odd, and not a multiple of anything the path works in
OUTBOARD_GAIN_DB = -4.5
#: Frames per recording: one period of the pink loop, so rotating by the loop phase is exact.
LOOP_FRAMES = 1 << 15
STARTUP_FRAMES = 60000  # the master gain ramps in over a second at start-up
SETTLE_FRAMES = 9600  # well past the crossfade, and past the alignment's fade through silence

JACK_CONFIG = (
    JACK_AUDIO
    + """\

[monitor]
volume_db = -6.0
max_volume_db = 0.0
startup_max_volume_db = 0.0
ramp_ms = 20.0
crossfade_ms = 20.0

[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
[inserts.comp]
send = [7, 8]
return = [3, 4]
source = "mix"

[osc]
listen = "127.0.0.1:0"
allow = ["127.0.0.1/32"]

[state]
path = "{state_path}"
"""
)


@pytest.fixture
def insert_rig(jack, tmp_path):
    """The daemon and its harness (pink noise into inputs 1-2, every output recorded, the
    outboard from sends 7-8 to returns 3-4): ``(daemon, peer, harness, loop)``."""
    config = write_config(tmp_path / "controlroom.toml", JACK_CONFIG.format(state_path=tmp_path / "state.json"))
    with DaemonProcess(config, tmp_path / "daemon.log").start() as daemon, daemon.peer() as peer:
        daemon.wait_running(peer)
        harness = jack.harness(4, 8)
        wait_for(lambda: len(harness.client.get_ports("PortAudio", is_audio=True)) == 16, 10.0, "PortAudio ports")
        loop = (0.1 * pink_noise(LOOP_FRAMES, 1, np.random.default_rng(5))[:, 0]).astype(np.float32)
        harness.play(1, loop)
        harness.play(2, loop)
        harness.outboard([7, 8], [3, 4], OUTBOARD_DELAY, OUTBOARD_GAIN_DB, *outboard_eq())
        harness.wire("PortAudio")
        yield daemon, peer, harness, loop


def ctl(port: int, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlroom", "ctl", "--osc", f"127.0.0.1:{port}", *words],
        capture_output=True,
        text=True,
        timeout=60,
    )


def loop_aligned(harness, frames: int, skip: int) -> np.ndarray:
    """Record output 1 for ``frames`` (a whole loop) and rotate it so that index i is what
    the daemon played in answer to loop sample i."""
    recording = harness.record(frames, skip=skip)[:, 0].astype(float)
    return np.roll(recording, harness.recorded_phase[0])


def circular_peak_lag(x: np.ndarray, y: np.ndarray) -> int:
    """The lag (samples, signed) at which ``y`` best matches ``x`` (circular)."""
    corr = np.fft.irfft(np.conj(np.fft.rfft(x)) * np.fft.rfft(y), len(x))
    lag = int(np.argmax(corr))
    return lag - len(x) if lag > len(x) // 2 else lag


@pytest.mark.jack
@pytest.mark.slow
def test_an_insert_is_measured_exactly_then_in_and_out_are_aligned_and_matched(jack, insert_rig):
    daemon, peer, harness, loop = insert_rig
    round_trip = circular_peak_lag(loop, loop_aligned(harness, LOOP_FRAMES, STARTUP_FRAMES))

    done = ctl(daemon.port, "--json", "insert", "measure", "comp")
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    assert measured["latency"] == round_trip + OUTBOARD_DELAY
    expected_gain = OUTBOARD_GAIN_DB + pink_k_gain_db(*outboard_eq())
    assert abs(expected_gain - OUTBOARD_GAIN_DB) > 1.0  # the EQ moves the loudness: the test can fail
    assert measured["gain_db"] == pytest.approx(expected_gain, abs=0.1)
    assert measured["coherence"] > 0.95 and not measured["inverted"]

    state = peer.query()["state"]
    assert state["inserts"]["comp"]["latency"] == measured["latency"]
    assert state["measuring"] is None
    shown = ctl(daemon.port, "insert").stdout.strip()
    assert shown.startswith(
        f"insert comp: latency {measured['latency']} samples ({measured['latency_ms']:.2f} ms), gain "
    )

    # out (the dry mix, delayed by the latency) and in (the return, compensated)
    assert peer.set("source", "mix")["state"]["source"] == "mix"
    dry = loop_aligned(harness, LOOP_FRAMES, SETTLE_FRAMES)
    assert peer.set("source", "comp")["state"]["source"] == "comp"
    wet = loop_aligned(harness, LOOP_FRAMES, SETTLE_FRAMES)
    assert circular_peak_lag(dry, wet) == 0
    meter = pyloudnorm.Meter(48000)
    dry_lufs, wet_lufs = meter.integrated_loudness(dry), meter.integrated_loudness(wet)
    assert wet_lufs == pytest.approx(dry_lufs, abs=0.2)

    # the measurement is kept across a restart
    assert daemon.terminate() == 0
    daemon.start()
    peer.address = ("127.0.0.1", daemon.port)
    assert daemon.wait_running(peer)["state"]["inserts"] == state["inserts"]


@pytest.mark.jack
def test_the_measurement_noise_never_reaches_the_speakers_or_the_matching(insert_rig):
    daemon, peer, harness, loop = insert_rig
    harness.play(1, None)  # nothing on the dry source: all the return could carry is the noise
    harness.play(2, None)
    assert peer.set("source", "comp")["state"]["source"] == "comp"  # listening to the return
    wait_for(lambda: not np.any(harness.record(4800)[:, :2]), 10.0, "the programme's tail to die away")
    harness.begin_recording(48000 * 60)
    done = ctl(daemon.port, "insert", "measure", "comp")
    heard = harness.end_recording()
    assert done.returncode == 0, done.stderr
    assert heard.shape[0] > 48000 // 2  # the recording spans the measurement
    # nothing but the gear's decaying filter state (an IIR tail never quite ends) once the
    # return fades back in: below the 24-bit floor, where noise would be at -30 dBFS
    assert np.max(np.abs(heard[:, :2])) < 10 ** (-120 / 20)
    # the return's matching window restarted after the noise (it would hold it for 10 s)
    peer.wait(
        lambda r: r["meters"]["loudness"]["sources"]["comp"]["window_lufs"] is None,
        3.0,
        "the return's loudness window to forget the noise",
    )


@pytest.mark.jack
def test_gear_slower_than_the_path_can_align_is_refused_and_its_noise_kept_off_the_speakers(insert_rig):
    daemon, peer, harness, loop = insert_rig
    harness.play(1, None)
    harness.play(2, None)
    harness.outboard([7, 8], [3, 4], 4000, 0.0)  # 83 ms: a digital delay, not a compressor
    assert peer.set("source", "comp")["state"]["source"] == "comp"
    wait_for(lambda: not np.any(harness.record(4800)[:, :2]), 10.0, "the programme's tail to die away")
    harness.begin_recording(48000 * 60)
    failed = ctl(daemon.port, "insert", "measure", "comp")
    heard = harness.end_recording()
    assert failed.returncode == 1
    assert "samples late, beyond the 2400 the path can align" in failed.stderr
    assert np.max(np.abs(heard[:, :2])) < 10 ** (-120 / 20)
    assert peer.query()["state"]["inserts"] == {}


@pytest.mark.jack
def test_an_unconnected_insert_fails_to_measure_and_keeps_playing(jack, tmp_path):
    config = write_config(tmp_path / "controlroom.toml", JACK_CONFIG.format(state_path=tmp_path / "state.json"))
    with DaemonProcess(config, tmp_path / "daemon.log").start() as daemon, daemon.peer() as peer:
        daemon.wait_running(peer)
        failed = ctl(daemon.port, "--json", "insert", "measure", "comp")
        assert failed.returncode == 1
        assert "is the insert connected" in failed.stderr
        unknown = ctl(daemon.port, "--json", "insert", "measure", "eq")
        assert unknown.returncode == 1 and "no insert 'eq'" in unknown.stderr
        report = peer.query()
        assert report["state"]["inserts"] == {} and report["state"]["measuring"] is None
        assert report["engine"]["running"]
