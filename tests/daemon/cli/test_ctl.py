"""``controlroom ctl`` as a user runs it: a subprocess against a real OSC server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import socket
import subprocess
import sys
import termios
import threading
import time

import pytest
from osckit import make_controller, osc_config

from controlroom.daemon.osc.server import OscServer

PROCESS_TIMEOUT_S = 60


#: The monitor's BS.1770 figures as the daemon's loudness meters report them.
MONITOR_LOUDNESS = {
    "outputs": [1, 2],
    "momentary_lufs": -17.24,
    "short_term_lufs": -18.5,
    "integrated_lufs": -19.03,
    "loudness_range_lu": 4.2,
    "true_peak_dbtp": -2.95,
    "correlation": 0.8,
    "window_lufs": -19.0,
}


@pytest.fixture
def resets() -> list[str]:
    """The loudness resets the ``daemon`` fixture was asked for."""
    return []


@pytest.fixture
def matching() -> dict:
    """The ``matching`` status the ``daemon`` fixture reports (a test may change it)."""
    return {"status": "ready"}


@pytest.fixture
def daemon(resets, matching):
    """An ``OscServer`` on its own event loop in a background thread: ``(port, controller)``."""
    controller = make_controller()
    meters = {
        "sources": {"mix": {"peak_dbfs": [-3.5, None]}},
        "limiter_gain_reduction_db": 0.0,
        "loudness": {"monitor": MONITOR_LOUDNESS},
    }

    def report():
        return {
            "state": {**controller.state_report(), "matching": matching},
            "engine": {"running": True, "callbacks": 42},
            "meters": meters,
        }

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = OscServer(controller, osc_config(), report, reset_loudness=lambda: resets.append("reset"))
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server.port, controller
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def ctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlroom", "ctl", *args],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
    )


def at(port: int) -> tuple[str, str]:
    return ("--osc", f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    "words, target, printed, value",
    [
        (["volume", "-12"], "volume", "volume -12.0 dB", -12.0),
        (["volume", "-12.3"], "volume", "volume -12.3 dB", -12.3),  # exact: sent as a double
        (["volume", "step", "-3"], "volume", "volume -23.0 dB", -23.0),
        (["mute", "toggle"], "mute", "mute on", True),
        (["dim", "on"], "dim", "dim on", True),
        (["sub", "0"], "sub", "sub off", False),
        (["speakers", "next"], "speakers", "speakers consumer", "consumer"),
        (["speakers", "prev"], "speakers", "speakers crap", "crap"),
        (["speakers", "crap"], "speakers", "speakers crap", "crap"),
        (["source", "1"], "source", "source ref, matched 0.0 dB", "ref"),  # matching is on
        (["solo", "side"], "solo", "solo side", "side"),
        (["volume"], "volume", "volume -20.0 dB", -20.0),
    ],
)
def test_ctl_sets_and_prints_the_result(daemon, words, target, printed, value):
    port, controller = daemon
    result = ctl(*at(port), *words)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == printed
    assert getattr(controller.state, target) == value


def test_ctl_ab_names_the_source_heard_and_its_match_offset(daemon):
    port, controller = daemon
    controller.match_db["ref"] = -4.5  # as a measured switch would have left it
    result = ctl(*at(port), "ab", "b")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ab b: ref, matched -4.5 dB\n"
    assert json.loads(ctl(*at(port), "--json", "ab").stdout) == {"ab": "b"}  # --json unchanged


@pytest.mark.parametrize(
    "status, printed",
    [
        ({"status": "measuring", "filled_s": 4.2, "window_s": 10.0}, "ab b: ref, not matched: measuring 4 of 10 s"),
        ({"status": "no signal", "silent": ["ref"]}, "ab b: ref, not matched: no signal on ref"),
    ],
)
def test_ctl_ab_says_why_a_switch_was_not_matched(daemon, matching, status, printed):
    port, _ = daemon
    matching.clear()
    matching.update(status)
    result = ctl(*at(port), "ab", "b")
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed + "\n"


def test_ctl_source_shows_no_offset_when_matching_is_off(daemon):
    port, _ = daemon
    assert ctl(*at(port), "match", "off").returncode == 0
    result = ctl(*at(port), "source", "ref")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "source ref\n"


def test_ctl_prints_a_refusal_and_exits_1(daemon):
    port, controller = daemon
    result = ctl(*at(port), "volume", "0")  # above max_volume_db
    assert result.returncode == 1
    assert "refused" in result.stderr and "out of range" in result.stderr
    assert "Traceback" not in result.stderr
    assert controller.state.volume == -20.0


def test_ctl_json_prints_the_value(daemon):
    port, _ = daemon
    result = ctl(*at(port), "--json", "match", "hold")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"match": "hold"}


def test_ctl_status_is_readable(daemon):
    port, _ = daemon
    result = ctl(*at(port), "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "state"
    assert {"engine", "meters"} <= set(lines)
    rows = {line.split()[0]: line.split(None, 1)[1] for line in lines if line.startswith("  ")}
    assert rows["volume"] == "-20.0 dB"
    assert rows["mute"] == "off"
    assert rows["sub"] == "on"
    assert rows["running"] == "yes"
    assert rows["callbacks"] == "42"
    assert rows["sources.mix.peak_dbfs"] == "-3.5  -inf"


def test_ctl_status_json(daemon, matching):
    port, controller = daemon
    result = ctl(*at(port), "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == {**controller.state_report(), "matching": matching}
    assert report["engine"]["callbacks"] == 42
    assert report["engine"]["dropped"] == {}
    assert report["meters"]["sources"]["mix"]["peak_dbfs"] == [-3.5, None]


def test_ctl_loudness_reset_sends_the_reset_and_says_so(daemon, resets):
    port, _ = daemon
    result = ctl(*at(port), "loudness", "reset")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "loudness reset: integrated and LRA start afresh\n"
    assert resets == ["reset"]


# --- ctl watch ----------------------------------------------------------------------------------


def test_ctl_watch_prints_a_line_a_second_when_not_on_a_terminal(daemon):
    port, controller = daemon
    controller.match_db["ref"] = -4.5
    result = ctl(*at(port), "watch", "--seconds", "1.5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 1
    for line in lines:
        assert line.startswith("mix on studio at -20.0 dB | ")
        assert line.endswith(
            " | match auto: mix +0.0 ref -4.5 tape +0.0 dB | monitor M -17.2 S -18.5 I -19.0 LUFS, LRA 4.2 LU, TP -3.0 dBTP"
        )


class Terminal:
    """``controlroom ctl ARGS`` on a pseudo-terminal: what it drew, and keys pressed."""

    def __init__(self, *args: str) -> None:
        self.master, self.slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controlroom", "ctl", *args],
            stdin=self.slave,
            stdout=self.slave,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.screen = ""

    def wait_for(self, text: str, timeout: float = PROCESS_TIMEOUT_S) -> None:
        """Read what it draws until ``text`` appears (AssertionError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"{text!r} not drawn within {timeout} s: {self.screen[-500:]!r}"
            self.screen += os.read(self.master, 65536).decode(errors="replace")

    def press(self, key: str) -> None:
        os.write(self.master, key.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(PROCESS_TIMEOUT_S)
        os.close(self.master)
        os.close(self.slave)


def test_ctl_watch_on_a_terminal_resets_loudness_on_r_and_quits_on_q(daemon, resets):
    port, _ = daemon
    terminal = Terminal(*at(port), "watch")
    try:
        terminal.wait_for(f"controlroom ctl watch — 127.0.0.1:{port}   r: reset integrated loudness   q: quit")
        terminal.wait_for("monitor M -17.2 S -18.5 I -19.0 LUFS")
        terminal.press("r")
        terminal.wait_for("loudness reset: integrated and LRA start afresh")
        assert resets == ["reset"]
        terminal.press("q")
        assert terminal.process.wait(PROCESS_TIMEOUT_S) == 0, terminal.process.stderr.read()
        assert termios.tcgetattr(terminal.slave)[3] & termios.ICANON  # the terminal is given back
    finally:
        terminal.close()


def test_ctl_watch_without_a_daemon_says_so_and_exits_1():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing answers there once closed
    result = ctl(*at(port), "--timeout", "0.5", "watch")
    assert result.returncode == 1
    assert result.stderr == f"controlroom ctl: nothing is listening on 127.0.0.1:{port} (is the daemon running?)\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (("watch", "--json"), "watch takes no value and no --json (ctl status --json prints the report once)"),
        (("watch", "now"), "watch takes no value and no --json (ctl status --json prints the report once)"),
        (("volume", "--seconds", "2"), "--seconds is for watch (not volume)"),
    ],
)
def test_ctl_watch_arguments_are_checked(args, message):
    result = ctl("--osc", "127.0.0.1:9", *args)
    assert result.returncode == 2
    assert result.stderr == f"controlroom ctl: {message}\n"


def test_ctl_loudness_prints_the_monitors_loudness(daemon):
    port, _ = daemon
    result = ctl(*at(port), "loudness")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "monitor M -17.2 S -18.5 I -19.0 LUFS, LRA 4.2 LU, TP -3.0 dBTP\n"
    assert json.loads(ctl(*at(port), "--json", "loudness").stdout) == {"loudness": MONITOR_LOUDNESS}


@pytest.mark.parametrize(
    "words",
    [
        ["loudness", "now"],
        ["volum", "-12"],
        ["volume", "step"],
        ["volume", "step", "loud"],
        ["volume", "1", "2"],
        ["status", "now"],
        ["--osc", "localhost", "volume"],
        ["--osc", "127.0.0.1:99999", "volume"],
        ["--timeout", "0", "volume"],
        ["insert", "measure"],
        ["insert", "comp"],
        ["insert", "measure", "comp", "now"],
        [],
    ],
)
def test_ctl_bad_usage_exits_2(words):
    result = ctl(*words)
    assert result.returncode == 2
    assert result.stderr and "Traceback" not in result.stderr


def test_ctl_without_a_daemon_times_out_clearly():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        result = ctl(*at(silent.getsockname()[1]), "--timeout", "0.5", "volume", "-12")
    assert result.returncode == 1
    assert "no answer from 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctl_with_nothing_listening_says_so():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free again once closed
    result = ctl(*at(port), "status")
    assert result.returncode == 1
    assert "nothing is listening" in result.stderr or "no answer" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_negative_number_with_an_exponent_is_a_value_not_an_option(daemon):
    port, controller = daemon
    result = ctl(*at(port), "volume", "-1e9")  # sent, and refused by the daemon as out of range
    assert result.returncode == 1
    assert "refused" in result.stderr and "out of range" in result.stderr
    assert controller.state.volume == -20.0


def test_a_signed_value_suggests_a_step():
    result = ctl("volume", "+2")
    assert result.returncode == 2
    assert result.stderr == "controlroom ctl: volume +2: a value sets the target; did you mean `step +2`?\n"


def test_without_a_target_only_the_target_is_said_to_be_required():
    result = ctl()
    assert result.returncode == 2
    assert result.stderr.endswith("controlroom ctl: error: the following arguments are required: TARGET\n")
