"""The daemon end to end on a real JACK dummy server.

``controlroom run -c CFG`` runs as a subprocess with the portaudio backend on device
``system`` (the session's JACK dummy server). A harness JACK client plays a sine of its own
frequency and amplitude into each of ``PortAudio:in_*`` 1-4 and records every
``PortAudio:out_*``; levels are asserted by RMS against the analytic level (sine RMS x gains)
within 0.1 dB, and every output that should be silent must be below -100 dBFS.

Synchronisation: a change sent over OSC is in the kernel's parameters once the daemon has
answered the ``/controlroom/state`` query that follows it (datagrams are handled in order);
recordings then skip ``SETTLE_FRAMES`` (well past ``ramp_ms``/``crossfade_ms``), counted in
JACK frames, which the daemon's callback runs in step with. Nothing asserts timing: these VMs
drop JACK deadlines at random.
"""

from __future__ import annotations

import json
import math
import signal
import threading

import numpy as np
import pytest
from daemonproc import DaemonProcess, message, wait_for, write_config
from jackutil import JACK_AUDIO, rms_db, sine
from loudnessoracle import sines_lufs
from osckit import ctl

pytestmark = pytest.mark.jack

SAMPLERATE = 48000
N_CHANNELS = 8
#: 0.2 s: a whole number of periods of every test frequency (and of their differences), so
#: the RMS of a recording is exact and sums of two of them have no cross term.
RECORD_FRAMES = 9600
#: After a change: 100 ms, five times ramp_ms and crossfade_ms.
SETTLE_FRAMES = 4800
#: After a (re)start: the master gain ramps in from silence over a second.
STARTUP_FRAMES = 60000
TOLERANCE_DB = 0.1
SILENT_DB = -100.0
#: Bound for audio to come back after the JACK server does (the contract: 5 s), with a margin
#: for this VM.
RESUME_TIMEOUT_S = 5.0 + 3.0
LOSS_TIMEOUT_S = 10.0
PORT_TIMEOUT_S = 10.0

#: input channel -> (frequency Hz, amplitude): mix = inputs 1-2, ref = inputs 3-4
SIGNALS = {1: (1000.0, 0.5), 2: (500.0, 0.25), 3: (1500.0, 0.4), 4: (2000.0, 0.2)}

VOLUME_DB = -30.0  # the config's initial volume (no saved state)
MAX_VOLUME_DB = 0.0
STARTUP_MAX_DB = -20.0
DIM_DB = -15.0
REF_TRIM_DB = -2.0
ALT_TRIM_DB = -1.5

CONFIG = (
    JACK_AUDIO
    + """\

[monitor]
volume_db = {volume_db}
min_volume_db = -80.0
max_volume_db = {max_volume_db}
startup_max_volume_db = {startup_max_db}
dim_db = {dim_db}
ramp_ms = 20.0
crossfade_ms = 20.0
ceiling_dbfs = -0.3

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]
trim_db = {ref_trim_db}

[speakers.studio]
outputs = [1, 2]
{studio_eq}
[speakers.alt]
outputs = [4, 5]
trim_db = {alt_trim_db}
[speakers.cube]
outputs = [6]

{ab}
[osc]
listen = "127.0.0.1:0"
allow = ["127.0.0.1/32"]

[state]
path = "{state_path}"
"""
)


def config_text(state_path, studio_eq: str = "", ab: str = "") -> str:
    return CONFIG.format(
        ab=ab,
        volume_db=VOLUME_DB,
        max_volume_db=MAX_VOLUME_DB,
        startup_max_db=STARTUP_MAX_DB,
        dim_db=DIM_DB,
        ref_trim_db=REF_TRIM_DB,
        alt_trim_db=ALT_TRIM_DB,
        studio_eq=studio_eq,
        state_path=state_path,
    )


# --- analytic levels ------------------------------------------------------------------------------


def sine_db(channel: int) -> float:
    """RMS level (dBFS) of the sine played into input ``channel``."""
    return 20 * math.log10(SIGNALS[channel][1] / math.sqrt(2))


def power_sum_db(*levels_db: float) -> float:
    """The level of a sum of sines of different frequencies (no cross terms)."""
    return 10 * math.log10(sum(10 ** (db / 10) for db in levels_db))


def mono_db(left: int, right: int) -> float:
    """(L + R) / 2 of two inputs."""
    return power_sum_db(sine_db(left), sine_db(right)) - 20 * math.log10(2)


def stereo(outputs: tuple[int, int], left_db: float, right_db: float, gain_db: float) -> dict[int, float]:
    return {outputs[0]: left_db + gain_db, outputs[1]: right_db + gain_db}


def mix_on_studio(volume_db: float) -> dict[int, float]:
    return stereo((1, 2), sine_db(1), sine_db(2), volume_db)


# --- the rig ------------------------------------------------------------------------------------


class Rig:
    """A daemon subprocess, an OSC peer and a JACK harness wired to the daemon's ports."""

    def __init__(self, jack, tmp_path, studio_eq: str = "", ab: str = "") -> None:
        self.jack = jack
        self.tmp_path = tmp_path
        self.state_path = tmp_path / "state.json"
        self.config = write_config(tmp_path / "controlroom.toml", config_text(self.state_path, studio_eq, ab))
        self.daemon = DaemonProcess(self.config, tmp_path / "daemon.log")
        self.peer = None
        self.harness = None

    def start(self) -> dict:
        """Start the daemon, wait until its audio runs, wire the harness; the report."""
        self.daemon.start()
        self.peer = self.daemon.peer()
        report = self.daemon.wait_running(self.peer)
        self.wire()
        return report

    def wire(self) -> None:
        """A new harness on the (current) server, wired once the daemon's ports exist."""
        self.harness = self.jack.harness(N_CHANNELS, N_CHANNELS)
        client = self.harness.client

        def ports_exist():
            names = [p.name for p in client.get_ports("PortAudio", is_audio=True)]
            return sum(":in_" in n for n in names) == N_CHANNELS and sum(":out_" in n for n in names) == N_CHANNELS

        wait_for(ports_exist, PORT_TIMEOUT_S, "the daemon's JACK ports")
        for channel, (frequency, amplitude) in SIGNALS.items():
            self.harness.play(channel, sine(frequency, amplitude, SAMPLERATE))
        self.harness.wire("PortAudio")

    def levels(self, skip: int = SETTLE_FRAMES) -> np.ndarray:
        """RMS dBFS per output (index 0 = output 1)."""
        return rms_db(self.harness.record(RECORD_FRAMES, skip=skip))

    def set(self, target: str, value) -> dict:
        report = self.peer.set(target, value)
        assert report["state"][target] == value, report["state"]
        return report

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()
        self.daemon.close()


@pytest.fixture
def rig(jack, tmp_path):
    rig = Rig(jack, tmp_path)
    yield rig
    rig.close()


def assert_levels(levels: np.ndarray, expected: dict[int, float], what: str = "") -> None:
    """Outputs in ``expected`` (1-based) at their level within TOLERANCE_DB; all others silent."""
    shown = ", ".join(f"{k + 1}: {v:.2f}" for k, v in enumerate(levels))
    for k, level in enumerate(levels, start=1):
        if k in expected:
            assert level == pytest.approx(expected[k], abs=TOLERANCE_DB), (
                f"{what}: output {k} at {level:.3f} dBFS, expected {expected[k]:.3f} ({shown})"
            )
        else:
            assert level < SILENT_DB, f"{what}: output {k} should be silent ({shown})"


# --- OSC changes, heard ---------------------------------------------------------------------------


def test_gain_targets_change_the_output_level(rig):
    rig.start()
    assert_levels(rig.levels(STARTUP_FRAMES), mix_on_studio(VOLUME_DB), "initial volume")

    rig.set("volume", -6.0)
    assert_levels(rig.levels(), mix_on_studio(-6.0), "volume -6")

    rig.set("dim", True)
    assert_levels(rig.levels(), mix_on_studio(-6.0 + DIM_DB), "dim on")
    rig.set("volume", -12.5)  # dim applies on top of whatever the volume is
    assert_levels(rig.levels(), mix_on_studio(-12.5 + DIM_DB), "dim on, volume -12.5")
    rig.set("dim", False)
    assert_levels(rig.levels(), mix_on_studio(-12.5), "dim off")

    rig.set("mute", True)
    assert_levels(rig.levels(), {}, "mute on")
    rig.set("volume", -3.0)  # the volume moves while muted; nothing is heard
    assert_levels(rig.levels(), {}, "mute on, volume -3")
    rig.set("mute", False)
    assert_levels(rig.levels(), mix_on_studio(-3.0), "mute off")

    report = rig.peer.query()
    assert report["engine"]["running"] and report["engine"]["restarts"] == 0
    assert report["engine"]["dropped"] == {}


def test_mono_speakers_and_source_route_the_signal(rig):
    rig.start()
    rig.set("volume", -10.0)
    assert_levels(rig.levels(STARTUP_FRAMES), mix_on_studio(-10.0), "stereo mix on studio")

    rig.set("mono", True)
    assert_levels(rig.levels(), {1: mono_db(1, 2) - 10.0, 2: mono_db(1, 2) - 10.0}, "mono")
    rig.set("mono", False)

    rig.set("speakers", "alt")
    assert_levels(rig.levels(), stereo((4, 5), sine_db(1), sine_db(2), -10.0 + ALT_TRIM_DB), "speakers alt")

    rig.set("speakers", "cube")  # one output: the mono sum
    assert_levels(rig.levels(), {6: mono_db(1, 2) - 10.0}, "speakers cube")

    rig.set("source", "ref")
    assert_levels(rig.levels(), {6: mono_db(3, 4) - 10.0 + REF_TRIM_DB}, "ref on cube")

    rig.set("speakers", "studio")
    assert_levels(rig.levels(), stereo((1, 2), sine_db(3), sine_db(4), -10.0 + REF_TRIM_DB), "ref on studio")

    rig.set("source", "mix")
    assert_levels(rig.levels(), mix_on_studio(-10.0), "back to mix on studio")


# --- restart ------------------------------------------------------------------------------------


#: Long enough that the rig is wired and the first switch made well before it is full.
MATCH_WINDOW_S = 15.0


def test_matching_waits_for_a_full_window_then_matches_the_published_k_weighted_loudness(jack, tmp_path):
    """A switch made while the matching windows fill is not matched, and ctl says so; once they
    are full the next switch is, by the loudness difference of the played sines computed from
    BS.1770's published K-weighting (ref includes its trim), and the output follows."""
    rig = Rig(jack, tmp_path, ab=f'[ab]\na = "mix"\nb = "ref"\nwindow_s = {MATCH_WINDOW_S}\n')
    try:
        rig.start()
        early = ctl(rig.daemon.port, "ab", "b")
        assert early.returncode == 0, early.stderr
        assert early.stdout.startswith("ab b: ref, not matched: measuring "), early.stdout
        assert early.stdout.endswith(f" of {MATCH_WINDOW_S:.0f} s\n"), early.stdout
        assert rig.peer.query()["state"]["match_db"]["ref"] == 0.0
        raw = {o: sine_db(c) + REF_TRIM_DB + VOLUME_DB for o, c in ((1, 3), (2, 4))}
        assert_levels(rig.levels(skip=STARTUP_FRAMES), raw, "ref while the windows fill")

        rig.set("ab", "a")
        ready = rig.peer.wait(
            lambda r: r["state"]["matching"] == {"status": "ready"}, MATCH_WINDOW_S + 30.0, "full matching windows"
        )
        assert ready["state"]["match_db"]["mix"] == 0.0  # switched back before they were full: kept
        matched = ctl(rig.daemon.port, "ab", "b")
        assert matched.returncode == 0, matched.stderr
        mix = sines_lufs([SIGNALS[1], SIGNALS[2]])
        ref = sines_lufs([SIGNALS[3], SIGNALS[4]]) + REF_TRIM_DB
        offset = rig.peer.query()["state"]["match_db"]["ref"]
        assert offset == pytest.approx(mix - ref, abs=TOLERANCE_DB)
        assert matched.stdout == f"ab b: ref, matched {offset:.1f} dB\n"
        assert_levels(rig.levels(), {o: db + offset for o, db in raw.items()}, "ref matched")
    finally:
        rig.close()


def test_restart_restores_the_state_with_the_volume_capped(rig):
    rig.start()
    rig.set("speakers", "alt")
    rig.set("source", "ref")
    rig.set("mono", True)
    rig.set("volume", -3.0)
    assert rig.daemon.terminate() == 0
    saved = json.loads(rig.state_path.read_text())
    assert saved["targets"]["volume"] == -3.0 and saved["targets"]["speakers"] == "alt"
    rig.peer.close()
    rig.jack.close_harnesses()

    report = rig.start()
    state = report["state"]
    assert state["volume"] == STARTUP_MAX_DB  # -3 dB saved, capped at start-up
    assert (state["speakers"], state["source"], state["mono"]) == ("alt", "ref", True)
    assert "start-up volume capped at -20.0 dB (saved -3.0 dB)" in rig.daemon.log()
    mono_ref = mono_db(3, 4) + REF_TRIM_DB + STARTUP_MAX_DB + ALT_TRIM_DB
    assert_levels(rig.levels(STARTUP_FRAMES), {4: mono_ref, 5: mono_ref}, "restored, capped")


# --- device loss ------------------------------------------------------------------------------------


def test_jack_server_loss_and_return(rig, jack):
    rig.start()
    rig.set("volume", -12.0)
    rig.set("speakers", "alt")
    rig.set("source", "ref")
    expected = stereo((4, 5), sine_db(3), sine_db(4), -12.0 + REF_TRIM_DB + ALT_TRIM_DB)
    assert_levels(rig.levels(), expected, "before the loss")
    before = rig.peer.query()["state"]

    jack.kill()  # closes the harness first
    lost = rig.peer.wait(lambda r: not r["engine"]["running"], LOSS_TIMEOUT_S, "engine.running = false")
    assert rig.daemon.alive
    assert lost["state"] == before

    jack.start()
    back = rig.peer.wait(lambda r: r["engine"]["running"], RESUME_TIMEOUT_S, "audio to resume")
    assert rig.daemon.alive
    assert back["state"] == before
    assert back["engine"]["restarts"] >= 1
    rig.wire()
    assert_levels(rig.levels(STARTUP_FRAMES), expected, "after the server came back")
    assert "audio stopped (device gone or stream failed); retrying" in rig.daemon.log()


# --- SIGHUP ---------------------------------------------------------------------------------------


EQ_FREQ_HZ, EQ_GAIN_DB = SIGNALS[1][0], -6.0
STUDIO_EQ = f'eq = [{{ type = "peak", freq_hz = {EQ_FREQ_HZ}, gain_db = {EQ_GAIN_DB}, q = 4.0 }}]'
BROKEN_EQ = f'eq = [{{ type = "peak", freq_hz = {EQ_FREQ_HZ}, gain_db = "loud", q = 4.0 }}]'


def reload(rig, marker: str) -> None:
    """SIGHUP, and wait for the daemon to log ``marker`` (a reload's outcome)."""
    after = len(rig.daemon.log())
    rig.daemon.signal(signal.SIGHUP)
    rig.daemon.wait_log(marker, 10.0, after=after)


def test_sighup_applies_an_eq_change_without_restarting_the_stream(rig):
    rig.start()
    rig.set("volume", -10.0)
    flat = rig.levels(STARTUP_FRAMES)
    assert_levels(flat, mix_on_studio(-10.0), "flat")
    before = rig.peer.query()["engine"]

    write_config(rig.config, config_text(rig.state_path, STUDIO_EQ))
    reload(rig, r"reload: applied without interrupting audio")
    equalised = rig.levels()
    after = rig.peer.query()["engine"]
    assert after["restarts"] == before["restarts"]
    assert after["running"] and after["callbacks"] > before["callbacks"]  # the same stream, counting on
    assert equalised[0] - flat[0] == pytest.approx(EQ_GAIN_DB, abs=TOLERANCE_DB)
    assert np.all(equalised[[2, 3, 4, 5, 6, 7]] < SILENT_DB)

    write_config(rig.config, config_text(rig.state_path, BROKEN_EQ))
    reload(rig, r"reload rejected: keeping the running config")
    assert "speakers.studio.eq[0].gain_db" in rig.daemon.log()
    kept = rig.levels()
    assert rig.daemon.alive
    assert kept[0] == pytest.approx(equalised[0], abs=TOLERANCE_DB)
    assert kept[1] == pytest.approx(equalised[1], abs=TOLERANCE_DB)
    final = rig.peer.query()["engine"]
    assert final["restarts"] == before["restarts"] and final["callbacks"] > after["callbacks"]


# --- SIGTERM ----------------------------------------------------------------------------------------


def test_sigterm_ramps_to_silence_saves_and_exits_0(rig):
    rig.start()
    rig.set("volume", -6.0)
    assert_levels(rig.levels(STARTUP_FRAMES), mix_on_studio(-6.0), "before SIGTERM")

    # Record across the shut-down: from before the signal until well after the daemon left.
    frames = 3 * SAMPLERATE
    recorded: list[np.ndarray] = []
    recorder = threading.Thread(target=lambda: recorded.append(rig.harness.record(frames)))
    recorder.start()
    harness = rig.harness

    def recording_started():  # (the harness has no public progress report)
        current = harness._recording
        return current is not None and current.shape[0] == frames and harness._recorded > SAMPLERATE // 10

    wait_for(recording_started, 10.0, "the recording to start")
    assert rig.daemon.terminate() == 0
    recorder.join()
    left = recorded[0][:, 0]  # output 1: the 1 kHz sine, peak 0.5 x -6 dB

    steady_peak = SIGNALS[1][1] * 10 ** (-6.0 / 20)
    sounding = np.flatnonzero(np.abs(left) > 1e-6)
    assert sounding.size, "output 1 should play until the signal"
    end = sounding[-1] + 1
    assert end < frames - SAMPLERATE // 10, "the output should be silent once the daemon has gone"
    assert np.max(np.abs(left[: SAMPLERATE // 10])) == pytest.approx(steady_peak, rel=0.01)
    # A ramp, not a cut: the last period (1 ms) before silence is far below the steady level.
    assert np.max(np.abs(left[end - 48 : end])) < 0.25 * steady_peak

    saved = json.loads(rig.state_path.read_text())
    assert saved["targets"]["volume"] == -6.0
    assert "stopped" in rig.daemon.log()


# --- bad input end to end ---------------------------------------------------------------------------


FLOOD_PACKETS = 10_000
BATCH = 50  # packets between two state queries: their skbs stay far below the receive buffer
STRANGER = "127.0.0.2"  # in 127/8 but outside allow = ["127.0.0.1/32"]

TARGETS = ("volume", "dim", "mute", "mono", "solo", "polarity", "speakers", "sub", "source", "ab", "match")


def invalid_packets(rng: np.random.Generator):
    """Endless ``(reason, packet)`` pairs, each packet certainly dropped for ``reason``."""
    nan, inf = float("nan"), float("inf")
    bad_values = [
        # out of range
        ("volume", 6.0),
        ("volume", 0.5),
        ("volume", -200.0),
        ("volume", 1),
        ("volume", ("d", 1e300)),
        ("speakers", 99),
        ("source", -1),
        ("solo", 4),
        ("match", 3.0),
        ("speakers", 1.5),
        # non-finite
        ("volume", nan),
        ("volume", inf),
        ("volume", -inf),
        ("volume", ("d", nan)),
        ("mute", nan),
        ("dim", inf),
        ("speakers", nan),
        ("source", ("d", inf)),
        # wrong types
        ("volume", "loud"),
        ("volume", b"\x00\x01"),
        ("volume", True),
        ("mute", "maybe"),
        ("mono", b"x"),
        ("speakers", "nowhere"),
        ("source", "2.5"),
        ("solo", "middle"),
        ("ab", "c"),
    ]
    while True:
        kind = rng.integers(8)
        if kind == 0:  # garbage
            size = int(rng.integers(1, 300))
            data = bytes(rng.integers(0, 256, size, dtype=np.uint8))
            if data[:1] in (b"/", b"#"):
                data = b"\x00" + data[1:]
            yield "osc_malformed", data
        elif kind == 1:  # a message cut short inside its arguments
            whole = message("/controlroom/volume", ("d", -10.0))
            yield "osc_malformed", whole[: int(rng.integers(len(whole) - 7, len(whole)))]
        elif kind == 2:  # unsupported type tag, bad bundle element size
            if rng.integers(2):
                yield "osc_malformed", b"/controlroom/volume\x00,x\x00\x00\x00\x00\x00\x01"
            else:
                yield "osc_malformed", b"#bundle\x00" + bytes(8) + (-4).to_bytes(4, "big", signed=True)
        elif kind == 3:  # unknown addresses
            address = [
                "/controlroom/nope",
                "/other/volume",
                "/controlroom/volume/sideways",
                "/controlroom",
                "/controlroom/mute/step/again",
            ][int(rng.integers(5))]
            yield "osc_unknown_address", message(address, 1.0)
        elif kind == 4:  # argument count
            target = TARGETS[int(rng.integers(len(TARGETS)))]
            args = [] if rng.integers(2) else [1.0, 2.0]
            yield "osc_bad_value", message(f"/controlroom/{target}", *args)
        elif kind == 5:  # a step by something that is not a finite number, or beyond the range
            yield (
                "osc_bad_value",
                message("/controlroom/volume/step", [nan, "up", b"\x01", 1e6, -1e30][int(rng.integers(5))]),
            )
        else:
            target, value = bad_values[int(rng.integers(len(bad_values)))]
            yield "osc_bad_value", message(f"/controlroom/{target}", value)


def valid_packets(rng: np.random.Generator):
    """Endless valid changes that cannot raise any level above volume = max: volume set and
    steps up to the whole range, switches, matrix, speakers and source; never ``match`` (its
    boost is not volume)."""
    choices = [
        lambda: message("/controlroom/volume", float(rng.uniform(-80.0, 0.0))),
        lambda: message("/controlroom/volume", MAX_VOLUME_DB),
        lambda: message("/controlroom/volume/step", float(rng.choice([80.0, 40.0, 3.0, -3.0, -80.0]))),
        lambda: message(
            f"/controlroom/{['dim', 'mute', 'mono', 'polarity'][int(rng.integers(4))]}", bool(rng.integers(2))
        ),
        lambda: message("/controlroom/mute", "off"),
        lambda: message("/controlroom/solo", ["off", "left", "right", "side"][int(rng.integers(4))]),
        lambda: message("/controlroom/speakers", ["studio", "alt", "cube"][int(rng.integers(3))]),
        lambda: message("/controlroom/speakers/next"),
        lambda: message("/controlroom/source", int(rng.integers(2))),
    ]
    while True:
        yield choices[int(rng.integers(len(choices)))]()


def window_levels_db(recording: np.ndarray, window: int = 960) -> np.ndarray:
    """RMS dBFS per 20 ms window (a whole number of periods of every test sine) and output."""
    frames = recording.shape[0] // window * window
    blocks = recording[:frames].reshape(-1, window, recording.shape[1])
    with np.errstate(divide="ignore"):
        return 10 * np.log10(np.mean(np.square(blocks, dtype=np.float64), axis=1))


def test_flood_of_bad_and_foreign_packets(rig):
    rig.start()
    assert rig.peer.query()["engine"]["dropped"] == {}
    # Loudest possible output: the mix's left sine at volume = max on a stereo set, trims <= 0.
    loudest_db = sine_db(1) + MAX_VOLUME_DB

    recordings: list[np.ndarray] = []
    flooding = threading.Event()
    flooding.set()

    def record_while_flooding():
        while flooding.is_set():
            recordings.append(rig.harness.record(SAMPLERATE // 2))

    recorder = threading.Thread(target=record_while_flooding)
    recorder.start()

    rng = np.random.default_rng(20261122)
    invalid, valid = invalid_packets(rng), valid_packets(rng)
    expected: dict[str, int] = {}
    stranger = rig.daemon.peer(bind=STRANGER)
    try:
        for sent in range(1, FLOOD_PACKETS + 1):
            draw = rng.random()
            if draw < 0.1:  # from outside the allowlist: even a valid message must not count
                packet = next(valid) if rng.integers(2) else next(invalid)[1]
                stranger.send_raw(packet)
                expected["osc_not_allowed"] = expected.get("osc_not_allowed", 0) + 1
            elif draw < 0.3:
                rig.peer.send_raw(next(valid))
            else:
                reason, packet = next(invalid)
                rig.peer.send_raw(packet)
                expected[reason] = expected.get(reason, 0) + 1
            if sent % BATCH == 0:
                report = rig.peer.query()  # every packet before it was handled
                state = report["state"]
                assert rig.daemon.alive
                assert -80.0 <= state["volume"] <= MAX_VOLUME_DB, state
                assert state["speakers"] in ("studio", "alt", "cube") and state["source"] in ("mix", "ref")
    finally:
        stranger.close()
        flooding.clear()
        recorder.join()

    report = rig.peer.query()
    assert rig.daemon.alive
    dropped = report["engine"]["dropped"]
    assert dropped == expected
    assert sum(dropped.values()) == sum(expected.values()) > 0.7 * FLOOD_PACKETS
    assert report["engine"]["running"]

    windows = window_levels_db(np.concatenate(recordings))
    assert np.max(windows) <= loudest_db + TOLERANCE_DB, f"{np.max(windows):.2f} dBFS above {loudest_db:.2f}"

    # Still in full working order: a known state, at volume = max, heard at the analytic level.
    for target, value in [
        ("mute", False),
        ("dim", False),
        ("mono", False),
        ("solo", "off"),
        ("polarity", False),
        ("speakers", "studio"),
        ("source", "mix"),
        ("volume", MAX_VOLUME_DB),
    ]:
        rig.set(target, value)
    assert_levels(rig.levels(), mix_on_studio(MAX_VOLUME_DB), "after the flood, volume = max")
