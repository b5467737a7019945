"""Calibrating the speakers end to end on JACK: a room stands between the outputs and the mic.

The daemon runs as a subprocess on the JACK dummy server. A harness client plays pink noise
into the source (inputs 1-2), records every output, and is the room: each output reaches the
mic (input 3) after its own delay and gain, plus noise (``JackHarness.room``). The oracle for
what the speakers do at the mic is that room applied to the outputs as recorded, with a probe
(the pink noise) played through the daemon: it knows nothing of the daemon's own figures.
"""

import json
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from functools import partial

import numpy as np
import pytest
from daemonproc import DaemonProcess, wait_for, write_config
from jackutil import JACK_AUDIO, rms_db

from controlroom.daemon.cli.program import pink_noise
from controlroom.dsp.calibration import LEVEL_BAND

MIC = 3
#: The room: output -> delay (samples) and gain (dB) to the mic.
DELAYS = {1: 40, 2: 173, 4: 95, 5: 262, 6: 121}
GAINS_DB = {1: -2.0, 2: -7.5, 4: -12.0, 5: -4.5, 6: -9.0}
ROOM_NOISE_DBFS = -75.0
SETS = {"studio": (1, 2), "consumer": (4, 5), "crap": (6,)}
NOISE_DBFS = -20.0
LOOP_FRAMES = 1 << 15
STARTUP_FRAMES = 60000  # the master gain ramps in over a second at start-up
SETTLE_FRAMES = 9600  # well past a set switch's crossfade

CONFIG = (
    JACK_AUDIO
    + """\

[monitor]
volume_db = -10.0
startup_max_volume_db = 0.0

[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
[speakers.consumer]
# hand-set offsets from before the calibration: it supersedes them
outputs = [{{ channel = 4, trim_db = 2.0, delay_ms = 1.5 }}, 5]
trim_db = -1.5
[speakers.crap]
outputs = [6]

[calibration]
mic = 3
noise_dbfs = {noise_dbfs}

[osc]
listen = "127.0.0.1:0"
allow = ["127.0.0.1/32"]

[state]
path = "{state_path}"
"""
)


PROBE = (0.1 * pink_noise(LOOP_FRAMES, 1, np.random.default_rng(5))[:, 0]).astype(np.float32)


@contextmanager
def rig(jack, tmp_path, config_text: str, delays: dict[int, int], gains_db: dict[int, float]):
    """The daemon on ``config_text`` and its harness (the probe, pink noise, into inputs 1-2,
    every output recorded, the room of ``delays`` and ``gains_db`` from the outputs to the
    mic): ``(daemon, peer, harness, room)``."""
    config = write_config(tmp_path / "controlroom.toml", config_text)
    with DaemonProcess(config, tmp_path / "daemon.log").start() as daemon, daemon.peer() as peer:
        daemon.wait_running(peer)
        harness = jack.harness(MIC, 8)
        wait_for(lambda: len(harness.client.get_ports("PortAudio", is_audio=True)) == 16, 10.0, "PortAudio ports")
        harness.play(1, PROBE)
        harness.play(2, PROBE)
        room = harness.room(MIC, delays, gains_db, ROOM_NOISE_DBFS)
        harness.wire("PortAudio")
        harness.record(1, skip=STARTUP_FRAMES)  # past the start-up ramp
        yield daemon, peer, harness, room


@pytest.fixture
def room_rig(jack, tmp_path):
    """``rig`` with five speakers in three sets."""
    text = CONFIG.format(noise_dbfs=NOISE_DBFS, state_path=tmp_path / "state.json")
    with rig(jack, tmp_path, text, DELAYS, GAINS_DB) as parts:
        yield parts


def ctl(port: int, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlroom", "ctl", "--osc", f"127.0.0.1:{port}", *words],
        capture_output=True,
        text=True,
        timeout=300,
    )


def at_the_mic(peer, harness, sets=SETS, delays=DELAYS, gains_db=GAINS_DB) -> dict[int, np.ndarray]:
    """Output -> what the probe played through it adds at the mic (one period of the probe
    loop, for every set in turn): the recorded output shifted by the room's delay (circularly:
    it is periodic with the probe) and scaled by its gain."""
    heard = {}
    for name, outputs in sets.items():
        assert peer.set("speakers", name)["state"]["speakers"] == name
        recording = harness.record(LOOP_FRAMES, skip=SETTLE_FRAMES).astype(float)
        for o in outputs:
            heard[o] = 10.0 ** (gains_db[o] / 20.0) * np.roll(recording[:, o - 1], delays[o])
    return heard


def lag(x: np.ndarray, y: np.ndarray) -> int:
    """Samples by which periodic ``y`` arrives after periodic ``x`` (one period each; signed,
    the peak of their circular cross-correlation)."""
    corr = np.fft.irfft(np.conj(np.fft.rfft(x)) * np.fft.rfft(y), len(x))
    k = int(np.argmax(corr))
    return k - len(x) if k > len(x) // 2 else k


def band_gain_db(heard: np.ndarray, band: tuple[float, float]) -> float:
    """The gain (dB) from the probe to ``heard`` (one period of it, through a linear path)
    within ``band`` (Hz): a periodic signal's spectrum has lines only, so no noise statistics."""
    freqs = np.fft.rfftfreq(LOOP_FRAMES, 1.0 / 48000)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    power = lambda x: np.sum(np.abs(np.fft.rfft(x)[inside]) ** 2)  # noqa: E731
    return float(10.0 * np.log10(power(heard) / power(PROBE.astype(float))))


def bursts(output: np.ndarray) -> list[np.ndarray]:
    """The stretches of ``output`` that sound for more than half a second (test-signal bursts,
    not the program fading out or in around them)."""
    sounding = np.flatnonzero(output)
    breaks = np.flatnonzero(np.diff(sounding) > 1)
    starts, ends = np.r_[sounding[0], sounding[breaks + 1]], np.r_[sounding[breaks], sounding[-1]]
    return [output[s : e + 1] for s, e in zip(starts, ends) if e - s > 24000]


def window_db(x: np.ndarray, frames: int) -> np.ndarray:
    """The RMS level (dBFS) of every window of ``frames`` frames of ``x``."""
    energy = np.concatenate([[0.0], np.cumsum(x.astype(float) ** 2)])
    return 10.0 * np.log10((energy[frames:] - energy[:-frames]) / frames)


def figures(heard: dict[int, np.ndarray]) -> dict[str, dict[int, float]]:
    """Per output its level at the mic (dBFS) and its arrival (samples) against the first
    output of its set."""
    levels = {o: round(float(rms_db(x)), 2) for o, x in heard.items()}
    arrivals = {o: lag(heard[outputs[0]], heard[o]) for outputs in SETS.values() for o in outputs}
    return {"level_db": levels, "arrival": arrivals}


@pytest.mark.jack
@pytest.mark.slow
def test_calibration_makes_every_output_equally_loud_and_each_set_arrive_together_at_the_mic(room_rig):
    daemon, peer, harness, room = room_rig
    before = figures(at_the_mic(peer, harness))
    print("before:", before)
    assert max(before["level_db"].values()) - min(before["level_db"].values()) > 5.0  # the test can fail
    assert any(abs(a) > 50 for a in before["arrival"].values())

    harness.begin_recording(48000 * 120)
    done = ctl(daemon.port, "calibrate")
    played = harness.end_recording().astype(float)
    assert done.returncode == 0, done.stderr
    steps = done.stdout.splitlines()
    assert steps[0].startswith("room noise")
    assert any(line.startswith("output 5 (4/5): arrival, pink noise 100-10000 Hz at -20 dBFS") for line in steps)
    print(done.stdout)

    after = figures(at_the_mic(peer, harness))
    print("after:", after)
    levels = after["level_db"].values()
    assert max(levels) - min(levels) <= 0.5
    assert all(abs(a) <= 1 for a in after["arrival"].values())

    # the test signal played one output at a time, in bursts that fade in and out, never
    # louder than noise_dbfs: a window of the noise strays from its level by the band's
    # statistics (about +0.7 dB at most over 100 ms, +0.3 dB over 400 ms)
    outputs = played[24000:, :6]  # past the program's fade-out
    assert np.all(np.count_nonzero(outputs, axis=1) <= 1)
    for o in (1, 2, 4, 5, 6):
        level, arrival = bursts(outputs[:, o - 1])
        for burst in (level, arrival):
            assert max(window_db(burst, 4800)) <= NOISE_DBFS + 1.0
            assert max(window_db(burst, 19200)) <= NOISE_DBFS + 0.5
            assert rms_db(burst[:480]) < NOISE_DBFS - 12.0 and rms_db(burst[-480:]) < NOISE_DBFS - 12.0
            assert np.max(np.abs(burst)) < 10.0 ** (-6.0 / 20.0)
    assert not np.any(outputs[:, 2])  # output 3 is no speaker: it never played

    state = peer.query()["state"]
    assert state["calibrating"] is None
    assert set(state["calibration"]["outputs"]) == {"1", "2", "4", "5", "6"}
    assert ctl(daemon.port, "calibrate", "status").stdout.startswith("output 1: ")

    # the results are state: they survive a restart
    assert daemon.terminate() == 0
    daemon.start()
    peer.address = ("127.0.0.1", daemon.port)
    assert daemon.wait_running(peer)["state"]["calibration"] == state["calibration"]
    harness.wire("PortAudio")
    harness.record(1, skip=STARTUP_FRAMES)
    restarted = figures(at_the_mic(peer, harness))
    assert max(restarted["level_db"].values()) - min(restarted["level_db"].values()) <= 0.5
    assert all(abs(a) <= 1 for a in restarted["arrival"].values())

    # and reset removes them
    assert ctl(daemon.port, "calibrate", "reset").returncode == 0
    assert peer.query()["state"]["calibration"]["outputs"] == {}


@pytest.mark.jack
@pytest.mark.slow
def test_a_dead_mic_fails_before_any_test_signal_plays_and_changes_nothing(room_rig):
    daemon, peer, harness, room = room_rig
    room.mic_live = False  # the input hears only its own noise, at -105 dBFS
    before = peer.query()["state"]
    harness.begin_recording(48000 * 60)
    done = ctl(daemon.port, "calibrate", "consumer")
    played = harness.end_recording()
    assert done.returncode == 1
    assert "no signal at the mic (input 3): it hears nothing, not even the room" in done.stderr
    assert not np.any(played[:, [3, 4]])  # the consumer set's speakers never played
    after = peer.query()["state"]
    assert after["calibration"] == before["calibration"] and after["calibrating"] is None
    assert after["volume"] == before["volume"]
    # the program plays again, as before
    level = rms_db(harness.record(9600, skip=SETTLE_FRAMES)[:, :2])
    assert np.all(level > -40.0)


@pytest.mark.jack
@pytest.mark.slow
def test_a_speaker_the_mic_cannot_measure_fails_naming_it_and_the_previous_results_stay(room_rig):
    daemon, peer, harness, room = room_rig
    assert ctl(daemon.port, "calibrate", "crap").returncode == 0
    calibrated = peer.query()["state"]["calibration"]

    def fails(message: str) -> None:
        done = ctl(daemon.port, "calibrate", "crap")
        assert done.returncode == 1 and re.search(message, done.stderr), done.stderr
        state = peer.query()["state"]
        assert state["calibration"] == calibrated and state["calibrating"] is None

    # louder than the mic takes
    room.move(6, DELAYS[6], 20.0)
    fails(r"output 6: the mic \(input 3\) clips at")
    # a noisy room: the level's band 17 dB over the noise, the arrival's 10 dB
    room.move(6, DELAYS[6], GAINS_DB[6])
    room.noise = 10.0 ** (-38.0 / 20.0)
    fails(r"output 6: the test signal is only 1[5-9]\.\d dB over the room's noise at the mic \(needs 20 dB\)")
    # further than any arrival searched: what the mic hears of it in that time is room noise
    room.noise = 10.0 ** (ROOM_NOISE_DBFS / 20.0)
    room.move(6, 9000, GAINS_DB[6])
    fails(r"output 6: no clear arrival at the mic \(correlation 0\.[0-2]\d at \d+ samples, needs 0\.3")


def stopped(daemon, peer, stop) -> subprocess.CompletedProcess:
    """Start ``ctl calibrate``, call ``stop(process)`` once it measures the second output, and
    return how ctl ended."""
    run = subprocess.Popen(
        [sys.executable, "-m", "controlroom", "ctl", "--osc", f"127.0.0.1:{daemon.port}", "calibrate"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        peer.wait(lambda r: (r["state"]["calibrating"] or {}).get("step") == 2, 60.0, "the second output")
        stop(run)
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
    return subprocess.CompletedProcess(run.args, run.returncode, out, err)


@pytest.mark.jack
@pytest.mark.slow
def test_a_control_action_or_a_stop_during_calibration_ends_it_and_nothing_is_applied(room_rig):
    daemon, peer, harness, room = room_rig
    assert ctl(daemon.port, "calibrate", "crap").returncode == 0  # results that must stay
    calibrated = peer.query()["state"]["calibration"]
    assert set(calibrated["outputs"]) == {"6"}

    def ends(stop, message: str, returncode: int = 1) -> None:
        done = stopped(daemon, peer, stop)
        assert done.returncode == returncode and message in done.stderr
        state = peer.wait(lambda r: r["state"]["calibrating"] is None, 30.0, "the run to end")["state"]
        assert state["calibration"] == calibrated

    ends(lambda run: ctl(daemon.port, "calibrate", "stop"), "calibration stopped (stopped on request); nothing applied")
    ends(lambda run: peer.set("volume", -12.0), "calibration stopped (volume changed); nothing applied")
    assert peer.query()["state"]["volume"] == -12.0
    ends(lambda run: peer.set("mute", True), "calibration stopped (mute changed); nothing applied")
    refused = ctl(daemon.port, "calibrate")
    assert refused.returncode == 1 and "the monitor is muted: unmute first" in refused.stderr
    peer.set("mute", False)
    # a reload, even of the same file, ends it before it is applied
    ends(lambda run: daemon.signal(signal.SIGHUP), "calibration stopped (the config was reloaded); nothing applied")
    # Ctrl-C on ctl ends the run in the daemon, not only ctl
    ends(lambda run: run.send_signal(signal.SIGINT), "", returncode=130)

    # the test signal stopped and the program plays again, on the studio set only
    level = rms_db(harness.record(9600, skip=SETTLE_FRAMES)[:, :6])
    assert np.all(level[:2] > -40.0)
    assert np.all(np.isneginf(level[2:]))


@pytest.mark.jack
@pytest.mark.slow
def test_a_device_lost_during_calibration_ends_it_and_the_stream_that_comes_back_plays_no_test_signal(room_rig, jack):
    daemon, peer, harness, room = room_rig
    assert ctl(daemon.port, "calibrate", "crap").returncode == 0
    calibrated = peer.query()["state"]["calibration"]
    done = stopped(daemon, peer, lambda run: jack.kill())
    assert done.returncode == 1 and "the audio engine stopped or restarted during the measurement" in done.stderr
    jack.start()
    back = peer.wait(lambda r: r["engine"]["running"], 60.0, "audio to resume")
    assert back["state"]["calibration"] == calibrated and back["state"]["calibrating"] is None
    harness = jack.harness(MIC, 8)
    wait_for(lambda: len(harness.client.get_ports("PortAudio", is_audio=True)) == 16, 10.0, "PortAudio ports")
    harness.play(1, PROBE)
    harness.play(2, PROBE)
    harness.wire("PortAudio")
    level = rms_db(harness.record(48000, skip=STARTUP_FRAMES)[:, :6])
    assert np.all(level[:2] > -40.0)  # the program, on the studio set
    assert np.all(np.isneginf(level[2:]))  # and nothing else


@pytest.mark.jack
@pytest.mark.slow
def test_sigterm_during_calibration_fades_the_test_signal_out_exits_0_and_keeps_the_saved_results(room_rig, tmp_path):
    daemon, peer, harness, room = room_rig
    assert ctl(daemon.port, "calibrate", "crap").returncode == 0
    calibrated = peer.query()["state"]["calibration"]
    harness.begin_recording(48000 * 120)
    done = stopped(daemon, peer, lambda run: daemon.terminate())
    played = harness.end_recording().astype(float)
    assert daemon.process.returncode == 0 and done.returncode != 0
    assert json.loads((tmp_path / "state.json").read_text())["calibration"] == calibrated
    # every output ends in a fade, never cut off while it plays (output 2 was playing noise)
    assert np.any(played[:, 1])
    for o in range(6):
        sounding = np.flatnonzero(played[:, o])
        if sounding.size:
            end = sounding[-1]
            assert np.max(np.abs(played[end - 48 : end + 1, o])) < 0.2 * np.max(np.abs(played[:, o])), o + 1


# --- a set with a subwoofer, and a calibrated mic ------------------------------------------------

SUB_DELAYS = {1: 40, 2: 173, 3: 420}  # the sub stands furthest away
SUB_GAINS_DB = {1: -2.0, 2: -7.5, 3: -6.0}
MIC_DBFS_AT_94 = -20.0
SUB_CONFIG = (
    JACK_AUDIO
    + """\

[monitor]
volume_db = -10.0
startup_max_volume_db = 0.0

[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
sub = {{ output = 3, crossover_hz = 100.0 }}  # its test noise: 37.5-100 Hz

[calibration]
mic = 3
mic_dbfs_at_94_db_spl = {mic}
target_spl_db = {target}

[osc]
listen = "127.0.0.1:0"
allow = ["127.0.0.1/32"]

[state]
path = "{state_path}"
"""
)


@pytest.mark.jack
@pytest.mark.slow
def test_a_subwoofer_is_aligned_with_its_mains_and_a_calibrated_mic_reads_spl(jack, tmp_path):
    path = tmp_path / "controlroom.toml"
    text = partial(SUB_CONFIG.format, mic=MIC_DBFS_AT_94, state_path=tmp_path / "state.json")
    with rig(jack, tmp_path, text(target=79.0), SUB_DELAYS, SUB_GAINS_DB) as (daemon, peer, harness, _):
        at_mic = partial(at_the_mic, peer, harness, {"studio": (1, 2, 3)}, SUB_DELAYS, SUB_GAINS_DB)
        heard = at_mic()
        before = {o: lag(heard[1], heard[o]) for o in SUB_DELAYS}
        print("sub before:", before)
        assert before[3] > 300
        done = ctl(daemon.port, "--json", "calibrate")
        assert done.returncode == 0, done.stderr
        measured = json.loads(done.stdout)["calibration"]["measured"]
        print("sub calibration:", measured)
        heard = at_mic()
        after = {o: lag(heard[1], heard[o]) for o in SUB_DELAYS}
        print("sub after:", after)
        assert all(abs(a) <= 1 for a in after.values())

        # the levels read in dB SPL are the room's: -20 dBFS of test noise, the room's gain, the mic
        for o, gain in SUB_GAINS_DB.items():
            expected = NOISE_DBFS + gain - MIC_DBFS_AT_94 + 94.0
            assert measured[str(o)]["spl_db"] == pytest.approx(expected, abs=0.3)
        # and their SNR the room's white noise in the band they are read in (an octave either side
        # of the test band), with nothing of the program in it
        bands = {1: (250.0, 4000.0), 2: (250.0, 4000.0), 3: (18.75, 200.0)}
        for o, (low, high) in bands.items():
            floor = ROOM_NOISE_DBFS + 10.0 * np.log10((high - low) / 24000.0)
            assert measured[str(o)]["snr_db"] == pytest.approx(NOISE_DBFS + SUB_GAINS_DB[o] - floor, abs=1.5)
        # what the mains now play at the mic, from the probe: pink noise at -20 dBFS at volume
        # 0 dB plays at the target, and volume_spl_db says so
        state = peer.query()["state"]
        spl = {o: -20.0 + band_gain_db(heard[o], LEVEL_BAND) - state["volume"] - MIC_DBFS_AT_94 + 94.0 for o in (1, 2)}
        print("mains' SPL at volume 0 dB, from the probe:", spl)
        assert spl == pytest.approx({1: 79.0, 2: 79.0}, abs=0.3)
        assert state["volume_spl_db"] - state["volume"] == pytest.approx(79.0, abs=0.3)
        # the sub's gain to the mic in its band is each main's in theirs, for the sum of the two
        # channels it plays (+6 dB for the probe's identical ones), well below the crossover
        sub_db = band_gain_db(heard[3], (20.0, 40.0)) - 20.0 * np.log10(2.0)
        print("sub's gain to the mic against the mains':", sub_db - band_gain_db(heard[1], LEVEL_BAND))
        assert sub_db == pytest.approx(band_gain_db(heard[1], LEVEL_BAND), abs=0.5)

        # a target the quietest speaker cannot reach without more than max_boost_db is refused
        write_config(path, text(target=93.0))
        mark = len(daemon.log())
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("reload: applied without interrupting audio", 30.0, after=mark)
        refused = ctl(daemon.port, "calibrate")
        assert refused.returncode == 1
        assert "output 2 needs +6.5 dB to reach target_spl_db 93 dB SPL (max_boost_db is 6)" in refused.stderr
        assert peer.query()["state"]["calibration"] == state["calibration"]
