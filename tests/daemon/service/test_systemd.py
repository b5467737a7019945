"""systemd integration: the unit file verifies, and ``controlroom run`` speaks sd_notify.

The notify protocol is checked against an AF_UNIX datagram socket this test binds itself and
passes as ``NOTIFY_SOCKET`` (a file-system path, and an abstract ``@name``), as systemd does,
to a daemon on the ``virtual`` backend: READY=1 with STATUS=, WATCHDOG=1 again and again with
``WATCHDOG_USEC`` set (and no ``WATCHDOG_PID``), STATUS= lines that follow the state, and
STOPPING=1 at SIGTERM.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, write_config
from notifykit import NotifyListener
from timekit import scaled

REPO = Path(__file__).resolve().parents[3]
UNIT = REPO / "systemd" / "controlroom.service"
WATCHDOG_USEC = 400_000

CONFIG = """\
[audio]
backend = "virtual"
samplerate = 48000
blocksize = 64

[monitor]
volume_db = -20.0

[sources.mix]
channels = [1, 2]

[speakers.studio]
outputs = [1, 2]

[osc]
listen = "127.0.0.1:0"

[state]
path = "{state}"
"""


# --- the unit file --------------------------------------------------------------------------------


def controlroom_executable() -> Path:
    """The ``controlroom`` console script of the interpreter running the tests (the venv's)."""
    script = Path(sys.executable).parent / "controlroom"
    if not script.exists():
        found = shutil.which("controlroom")
        if found is None:
            pytest.skip("no controlroom console script installed")
        script = Path(found)
    return script


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (./setup installs systemd)"
)
def test_unit_file_verifies(tmp_path):
    text = UNIT.read_text()
    lines = text.splitlines()
    commands = {key: [line for line in lines if line.startswith(f"{key}=")] for key in ("ExecStartPre", "ExecStart")}
    assert [len(found) for found in commands.values()] == [1, 1], commands
    # the cache is compiled before the daemon starts, for the config it runs
    pre, start = (found[0].split("=", 1)[1].split(None, 1)[1] for found in commands.values())
    assert (pre, start) == ("warm -c /etc/controlroom/config.toml", "run -c /etc/controlroom/config.toml")
    for key, arguments in (("ExecStartPre", pre), ("ExecStart", start)):
        text = text.replace(commands[key][0], f"{key}={controlroom_executable()} {arguments}")
    unit = tmp_path / "controlroom.service"
    unit.write_text(text)

    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert complaints == []  # unknown keys, bad values: verify only warns, exit status 0
    assert "Type=notify" in lines and any(line.startswith("WatchdogSec=") for line in lines)
    assert "NotifyAccess=all" in lines  # warm's EXTEND_TIMEOUT_USEC is heard
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines


# --- the notify protocol --------------------------------------------------------------------------


@pytest.fixture
def short_dir():
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer
    path = Path(tempfile.mkdtemp(prefix="cr-notify-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_daemon(tmp_path: Path, notify: str, **env: str) -> DaemonProcess:
    config = write_config(tmp_path / "controlroom.toml", CONFIG.format(state=tmp_path / "state.json"))
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env={"NOTIFY_SOCKET": notify, **env})
    daemon.env.pop("WATCHDOG_PID", None)
    for key, value in env.items():
        daemon.env[key] = value
    return daemon.start()


def status_of(fields: list[str]) -> str | None:
    return next((f[len("STATUS=") :] for f in fields if f.startswith("STATUS=")), None)


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_notify_ready_watchdog_status_stopping(kind, tmp_path, short_dir):
    address = short_dir / "notify.sock" if kind == "path" else f"@controlroom-test-{uuid.uuid4().hex}"
    listener = NotifyListener(address)
    daemon = start_daemon(tmp_path, listener.env_value, WATCHDOG_USEC=str(WATCHDOG_USEC))
    try:
        ready = listener.wait_for(lambda f: "READY=1" in f, what="READY=1")
        assert status_of(ready) == "running: mix on studio at -20.0 dB"
        with daemon.peer() as peer:
            assert peer.query()["engine"]["running"]  # READY means audio runs

            # The watchdog keeps pinging (every WATCHDOG_USEC / 2), with STATUS lines between.
            for _ in range(5):
                listener.wait_for(lambda f: f == ["WATCHDOG=1"], 10.0, "WATCHDOG=1")
            listener.wait_for(lambda f: status_of(f) is not None, 10.0, "STATUS=")

            # STATUS follows the state.
            peer.set("volume", -12.0)
            peer.set("dim", True)
        listener.wait_for(
            lambda f: status_of(f) == "running: mix on studio at -12.0 dB dim", 10.0, "STATUS= with the new state"
        )

        daemon.signal(signal.SIGTERM)
        listener.wait_for(lambda f: "STOPPING=1" in f, 20.0, "STOPPING=1")
        assert daemon.process.wait(scaled(20)) == 0
    finally:
        daemon.close()
        listener.close()
    kinds = [field.split("=")[0] for fields in listener.datagrams for field in fields]
    assert kinds.index("READY") < kinds.index("STOPPING")
    assert kinds.count("READY") == 1


def test_no_watchdog_pings_for_another_process(tmp_path, short_dir):
    # WATCHDOG_PID names the process systemd watches: the pings are not this process's to send.
    listener = NotifyListener(short_dir / "notify.sock")
    daemon = start_daemon(tmp_path, listener.env_value, WATCHDOG_USEC=str(WATCHDOG_USEC), WATCHDOG_PID="1")
    try:
        listener.wait_for(lambda f: "READY=1" in f, what="READY=1")
        # The watch loop's first round (at its 5 s default period) sends STATUS only.
        listener.wait_for(lambda f: f[0].startswith("STATUS="), 20.0, "a periodic STATUS=")
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        listener.close()
    assert not any("WATCHDOG=1" in fields for fields in listener.datagrams)


def test_runs_without_notify_socket(tmp_path):
    config = write_config(tmp_path / "controlroom.toml", CONFIG.format(state=tmp_path / "state.json"))
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        daemon.env.pop(key, None)
    daemon.start()
    try:
        with daemon.peer() as peer:
            daemon.wait_running(peer)
        assert daemon.terminate() == 0
    finally:
        daemon.close()


def test_a_notify_socket_nobody_reads_never_blocks_the_daemon(tmp_path, short_dir):
    # A receiver that stops reading (a stuck supervisor, a relay in a container runtime): its
    # queue is full after net.unix.max_dgram_qlen datagrams (10 by default). The daemon must
    # drop notifications rather than block its event loop on them: OSC keeps answering and
    # SIGTERM still stops it.
    listener = NotifyListener(short_dir / "notify.sock")
    qlen = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    # WATCHDOG=1 and STATUS= every 50 ms (the shortest interval): the queue fills in qlen/40 s
    daemon = start_daemon(tmp_path, listener.env_value, WATCHDOG_USEC="100000")
    try:
        with daemon.peer() as peer:
            daemon.wait_running(peer)
            # keep talking to it until many times the queue's worth of datagrams were due
            until = time.monotonic() + max(2.0, 5 * qlen / 40)
            volume = -30.0
            while time.monotonic() < until:
                volume = -40.0 if volume == -30.0 else -30.0
                assert peer.set("volume", volume)["state"]["volume"] == volume
        assert daemon.terminate(timeout=20) == 0
    finally:
        daemon.close()
        listener.close()
