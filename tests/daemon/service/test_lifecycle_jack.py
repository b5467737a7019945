"""The engine's life cycle end to end: ``controlroom run`` as a subprocess on a JACK dummy
server of its own, which each test kills and starts again at will.

What must hold:
- A daemon whose JACK server dies and comes back plays again, keeps its state, and on SIGTERM
  saves the state and exits 0 — every time, not just once.
- A JACK server that dies while the daemon is still starting (importing, opening its stream)
  does not take the daemon with it: once the server is back, audio runs and OSC answers.
- A SIGHUP that changes ``[audio] blocksize`` rebuilds the stream in place: afterwards there
  is exactly one stream (one set of PortAudio ports on the server), it runs, and the
  engine never saw audio stop (no "audio stopped ... retrying").

Every test runs its own ``JackServer`` (unique name, 48 kHz, 64 frames, 8 in, 8 out) and
passes it to the daemon through ``JACK_DEFAULT_SERVER``. Synchronisation is by the daemon's
log lines and by bounded polls of its ``/controlroom/state`` report; nothing asserts timing.
The bounds are the contract's (audio back within 5 s of the server) plus a margin for
these VMs. Failure messages carry the daemon's exit status and the tail of its log.

This process opens JACK clients on the test's server only briefly (``JackServer.ports``,
the readiness probe), so it never holds a client of a server that is about to be killed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import uuid
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, write_config
from jackutil import JACK_AUDIO, JackServer

pytestmark = [pytest.mark.jack, pytest.mark.slow]

N_CHANNELS = 8
#: Bound for the engine to notice that its server is gone (the supervisor looks every 0.5 s,
#: a hung PortAudio call counts as lost after 2 s).
LOSS_TIMEOUT_S = 10.0
#: Bound for audio to come back after the server does: the longest backoff (4 s), loading a
#: fresh library copy and the server's own start, with a wide margin for a loaded VM.
RESUME_TIMEOUT_S = 20.0
#: Bound for audio to run after a warm start or a reload.
RUNNING_TIMEOUT_S = 20.0
RELOAD_TIMEOUT_S = 15.0

RETRY_LINE = "audio stopped (device gone or stream failed); retrying"
REBUILD_LINE = "reload: audio settings changed (blocksize), reopening the stream"

CONFIG = """\
{audio}
[monitor]
volume_db = -30.0
min_volume_db = -80.0
max_volume_db = 0.0
startup_max_volume_db = -20.0

[sources.mix]
channels = [1, 2]

[speakers.studio]
outputs = [1, 2]

[osc]
listen = "127.0.0.1:0"
allow = ["127.0.0.1/32"]

[state]
path = "{state_path}"
"""


def config_text(state_path, blocksize: int = 64) -> str:
    assert "blocksize = 64\n" in JACK_AUDIO
    audio = JACK_AUDIO.replace("blocksize = 64\n", f"blocksize = {blocksize}\n")
    return CONFIG.format(audio=audio, state_path=state_path)


def new_server(prefix: str) -> JackServer:
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed")
    return JackServer(f"controlroom-{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def end_server(server: JackServer) -> None:
    # stop() starts a killed server first: only a live one gives its registry slot back
    server.stop()
    server.log.unlink(missing_ok=True)


# --- the rig ------------------------------------------------------------------------------------


class Rig:
    """A daemon subprocess on ``server`` (started by the test), its config, state file, log
    and an OSC peer."""

    def __init__(self, server: JackServer, directory) -> None:
        self.server = server
        self.state_path = directory / "state.json"
        self.config = write_config(directory / "controlroom.toml", config_text(self.state_path))
        self.daemon = DaemonProcess(self.config, directory / "daemon.log", env={"JACK_DEFAULT_SERVER": server.name})
        self.peer = None

    def start(self, timeout: float = RUNNING_TIMEOUT_S) -> dict:
        """Start the daemon and wait until its audio runs; the report."""
        self.daemon.start()
        self.peer = self.daemon.peer()
        return self.wait(lambda r: r["engine"]["running"], timeout, "engine.running = true")

    def wait(self, condition, timeout: float, what: str) -> dict:
        return self.daemon.wait_report(self.peer, condition, timeout, what)

    def set(self, target: str, value) -> dict:
        report = self.peer.set(target, value)
        assert report["state"][target] == value, report["state"]
        return report

    def terminate(self) -> str:
        """SIGTERM; the exit status as text (``exit status 0`` when all is well)."""
        try:
            self.daemon.terminate()
        except Exception as exc:  # noqa: BLE001 - reported as the outcome
            return f"no exit after SIGTERM ({exc!r})"
        return self.daemon.exit_status()

    def saved_volume(self) -> float | str:
        """``targets.volume`` in the state file, or what is wrong with the file."""
        try:
            return json.loads(self.state_path.read_text())["targets"]["volume"]
        except (OSError, ValueError, KeyError) as exc:
            return f"unreadable ({exc!r})"

    def portaudio_ports(self) -> list[str]:
        return self.server.ports("PortAudio")

    def log_since(self, offset: int) -> str:
        return self.daemon.log()[offset:]

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()
        self.daemon.close()


def one_stream(ports: list[str]) -> bool:
    """The ports of exactly one PortAudio stream: 8 ``in_N`` and 8 ``out_N`` of one client
    (PortAudio numbers a stream's ports on from the last stream's, so N is not asserted)."""
    clients = {name.split(":", 1)[0] for name in ports}
    inputs = [name for name in ports if re.search(r":in_\d+$", name)]
    outputs = [name for name in ports if re.search(r":out_\d+$", name)]
    return len(clients) == 1 and len(inputs) == len(outputs) == N_CHANNELS and len(ports) == 2 * N_CHANNELS


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """Start a daemon once (audio running) and stop it, so that numba's on-disk cache holds the
    compiled kernel and callback. A cold start compiles for tens of seconds on these VMs; warm,
    the daemon opens its stream within a few seconds of being started, which is the window the
    kill points of ``test_server_killed_while_the_daemon_starts`` are meant to hit."""
    server = new_server("warm")
    server.start()
    rig = Rig(server, tmp_path_factory.mktemp("warm"))
    try:
        rig.start(timeout=300.0)
        rig.terminate()  # its outcome is another test's subject
    finally:
        rig.close()
        end_server(server)


@pytest.fixture
def server(warm_cache):
    server = new_server("life")
    server.start()
    yield server
    end_server(server)


@pytest.fixture
def rig(server, tmp_path):
    rig = Rig(server, tmp_path)
    yield rig
    rig.close()


# --- loss, recovery, SIGTERM ----------------------------------------------------------------------


@pytest.mark.parametrize("run", range(1, 6))
def test_loss_recovery_then_sigterm_saves_and_exits_0(rig, server, run):
    """Server dies -> engine.running false, daemon alive; server back -> running again with
    the state kept; SIGTERM -> the state as last set is saved and the exit status is 0.
    Five runs, each a fresh daemon on a fresh server: the shutdown after a loss must not be
    a matter of luck."""
    before_loss, at_exit = -40.0 - run, -25.0 - run  # distinct per run, inside [-80, -20]
    rig.start()
    rig.set("volume", before_loss)

    server.kill()
    lost = rig.wait(lambda r: not r["engine"]["running"], LOSS_TIMEOUT_S, "engine.running = false after the kill")
    assert lost["state"]["volume"] == before_loss

    server.start()
    back = rig.wait(lambda r: r["engine"]["running"], RESUME_TIMEOUT_S, "audio to resume after the server")
    assert back["state"]["volume"] == before_loss, "the state must survive the loss"
    assert back["engine"]["restarts"] >= 1
    assert RETRY_LINE in rig.daemon.log()

    rig.set("volume", at_exit)  # saved only if the shut-down saves (or the debounce fires)
    status = rig.terminate()
    saved = rig.saved_volume()
    assert (status, saved) == ("exit status 0", at_exit), (
        f"SIGTERM after a loss and recovery: {status}, saved volume {saved} (set {at_exit}); "
        f"the log:\n{rig.daemon.tail()}"
    )
    assert re.search(r"controlroom: stopped$", rig.daemon.log(), re.M), rig.daemon.tail()


LOSSES = 20
#: Losses before the first reading: the first copies of the PortAudio library load, and a lost
#: stream's buffers are kept a few seconds after the loss (its callback may still be in a block).
WARM_LOSSES = 6
#: What the daemon may grow over the remaining losses: the library copies that can never be
#: unloaded (about 0.15 MB each) and the allocator's noise. It grew about 2 MB per loss when
#: every lost stream's buffers were kept.
GROWTH_LIMIT_MB = 8


def test_device_losses_leave_descriptors_and_memory_flat(rig, server):
    """Twenty JACK losses and recoveries: the daemon holds as many file descriptors after the
    last as after the first few, and its resident memory stays within a few megabytes."""
    rig.start()
    readings = []
    for loss in range(1, LOSSES + 1):
        server.kill()
        rig.wait(lambda r: not r["engine"]["running"], LOSS_TIMEOUT_S, f"loss {loss} to be noticed")
        server.start()
        rig.wait(lambda r: r["engine"]["running"], RESUME_TIMEOUT_S, f"audio back after loss {loss}")
        if loss >= WARM_LOSSES:
            readings.append((loss, descriptors(rig.daemon.pid), rss_mb(rig.daemon.pid)))
    (_, fds_before, rss_before), (_, fds_after, rss_after) = readings[0], readings[-1]
    assert fds_after == fds_before, readings
    assert rss_after - rss_before < GROWTH_LIMIT_MB, readings
    assert rig.terminate() == "exit status 0"


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError("no VmRSS")


# --- the server dies while the daemon starts --------------------------------------------------------


#: When the server is killed: seconds after the daemon process was spawned, or as soon as the
#: daemon logs that OSC listens (it opens its stream next). With a warm numba cache (the
#: ``warm_cache`` fixture) the daemon imports its modules, binds OSC and opens its stream within
#: these 1.5 s; on a 2-core VM 0.3-0.6 s usually fall into the imports (before PortAudio looks
#: for the server), 0.9-1.2 s into the opening of the stream, 1.5 s just after audio started.
#: Which phase each run hit, by the daemon's log at the kill, is printed and named in failures.
KILL_POINTS = (0.3, 0.6, 0.9, 1.2, 1.5, "osc")


def phase(log: str) -> str:
    """How far the daemon had got, by its log."""
    if "audio running" in log:
        return "audio running"
    if "OSC listening" in log:
        return "OSC bound, stream not yet running"
    return "starting (nothing logged yet)" if not log.strip() else "starting"


def portaudio_abort(log: str) -> str | None:
    """Where PortAudio aborted the daemon, by its log: its assertion's text, or the stack of
    the thread that was initialising it when the process died (faulthandler's)."""
    if "pa_jack.c" in log:
        return "Pa_OpenStream"
    fatal = log.partition("Fatal Python error: Aborted")[2]
    current = fatal.partition("Current thread")[2].split("\n\n")[0]
    if re.search(r'sounddevice\.py", line \d+ in _initialize|library\.py", line \d+ in _initialise', current):
        return "Pa_Initialize"
    return None


@pytest.mark.parametrize("kill_at", KILL_POINTS, ids=lambda k: "osc-line" if k == "osc" else f"{k}s")
def test_server_killed_while_the_daemon_starts(rig, server, kill_at, capsys):
    """Whenever the server dies during start-up the daemon stays up and keeps retrying; once
    the server is back, audio runs, OSC answers, and SIGTERM exits 0."""
    rig.daemon.spawn()
    spawned = time.monotonic()
    if kill_at == "osc":
        rig.daemon.wait_osc()
    else:
        # The schedule of the stimulus, not a synchronisation: kill at the given point.
        time.sleep(max(0.0, spawned + kill_at - time.monotonic()))
    server.kill()
    hit = phase(rig.daemon.log())
    kill_after_s = time.monotonic() - spawned  # (for the messages)
    with capsys.disabled():
        print(f"\n[server killed {kill_after_s:.2f} s after the spawn: {hit}]", end="")

    if rig.daemon.port is None:
        rig.daemon.wait_osc()  # RuntimeError with the log if the daemon exits first
    rig.peer = rig.daemon.peer()
    # The daemon has tried (at least once) to run audio on the dead server, and lived.
    try:
        lost = rig.wait(
            lambda r: not r["engine"]["running"] and r["engine"]["failed_starts"] >= 1,
            LOSS_TIMEOUT_S,
            f"a retry on the dead server (killed at {kill_after_s:.2f} s: {hit})",
        )
    except RuntimeError:
        if rig.daemon.exit_status() == "killed by SIGABRT":
            # PortAudio 19.6 asserts (and so aborts) when the server dies inside Pa_OpenStream
            # or while PortAudio initialises (its message then goes to the silenced stderr;
            # the log has the threads' stacks): windows of milliseconds no caller can close
            # (docs/design.md); all else counts
            where = portaudio_abort(rig.daemon.log())
            if where:
                pytest.xfail(f"PortAudio's own assertion: the JACK server died inside {where}")
        raise
    assert not lost["engine"]["running"]

    server.start()
    back = rig.wait(
        lambda r: r["engine"]["running"],
        RESUME_TIMEOUT_S,
        f"audio to run once the server is back (killed at {kill_after_s:.2f} s: {hit})",
    )
    assert back["state"]["volume"] == -30.0
    assert rig.daemon.alive and rig.peer.query()["engine"]["running"]
    status = rig.terminate()
    assert status == "exit status 0", (
        f"SIGTERM after the server died at {kill_after_s:.2f} s ({hit}): {status}; the log:\n{rig.daemon.tail()}"
    )


# --- SIGHUP with a new block size --------------------------------------------------------------------


def reload_blocksize(rig, blocksize: int) -> int:
    """Rewrite the config with ``blocksize``, SIGHUP, and wait until the stream was rebuilt and
    audio runs at that block size; the log offset at the signal."""
    write_config(rig.config, config_text(rig.state_path, blocksize))
    offset = len(rig.daemon.log())
    rig.daemon.signal(signal.SIGHUP)
    rig.daemon.wait_log(re.escape(REBUILD_LINE), RELOAD_TIMEOUT_S, after=offset)
    rig.daemon.wait_log(rf"audio running: portaudio, 48000 Hz, {blocksize} frames", RELOAD_TIMEOUT_S, after=offset)
    rig.wait(lambda r: r["engine"]["running"], RUNNING_TIMEOUT_S, f"engine.running after the reload to {blocksize}")
    return offset


def test_ten_blocksize_reloads_leave_one_running_stream(rig):
    """Ten SIGHUPs alternating blocksize 128/64: each rebuilds the stream and audio runs again;
    afterwards the daemon lives, the server holds the ports of exactly one stream (8 in, 8
    out), and the supervisor never saw audio stop."""
    rig.start()
    assert one_stream(rig.portaudio_ports()), rig.portaudio_ports()
    start = len(rig.daemon.log())
    history = []
    for i in range(10):
        blocksize = 128 if i % 2 == 0 else 64
        reload_blocksize(rig, blocksize)
        history.append((blocksize, len(rig.portaudio_ports())))

    assert rig.daemon.alive
    ports = rig.portaudio_ports()
    assert one_stream(ports), (
        f"after ten reloads: {len(ports)} PortAudio ports {ports}; (blocksize, ports) per reload: {history}; "
        f"the log:\n{rig.daemon.tail()}"
    )
    assert RETRY_LINE not in rig.log_since(start), f"the supervisor saw audio stop:\n{rig.daemon.tail()}"
    assert rig.peer.query()["engine"]["running"]


#: How long audio has run before the SIGHUP, in the daemon's own callbacks (750 a second at 64
#: frames): 0 to 0.8 s in steps shorter than the supervisor's 0.5 s period, so that the
#: rebuild meets the supervisor's check at different points of its cycle.
RELOAD_AFTER_CALLBACKS = (0, 150, 300, 450, 600)


@pytest.mark.parametrize("after_callbacks", RELOAD_AFTER_CALLBACKS)
def test_one_blocksize_reload_rebuilds_the_stream_in_place(rig, after_callbacks):
    """One SIGHUP 64 -> 128, whenever it comes: afterwards one stream's ports, audio running and
    counting callbacks, no "audio stopped" on the way; SIGTERM then exits 0."""
    rig.start()
    rig.wait(
        lambda r: r["engine"]["callbacks"] >= after_callbacks,
        RUNNING_TIMEOUT_S,
        f"{after_callbacks} callbacks before the SIGHUP",
    )
    offset = reload_blocksize(rig, 128)

    first = rig.peer.query()["engine"]
    counting = rig.wait(
        lambda r: r["engine"]["running"] and r["engine"]["callbacks"] > first["callbacks"],
        RUNNING_TIMEOUT_S,
        "callbacks to count on after the reload",
    )
    assert counting["engine"]["running"]
    ports = rig.portaudio_ports()
    assert one_stream(ports), f"{len(ports)} PortAudio ports after the reload: {ports}; the log:\n{rig.daemon.tail()}"
    assert RETRY_LINE not in rig.log_since(offset), (
        f"the supervisor saw audio stop during the reload:\n{rig.daemon.tail()}"
    )

    status = rig.terminate()
    assert status == "exit status 0", f"SIGTERM after a blocksize reload: {status}; the log:\n{rig.daemon.tail()}"
