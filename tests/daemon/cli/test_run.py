"""``controlroom run`` as a user (or systemd) starts it: without any config file, and with its
OSC port taken."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clikit import Command, hold_udp

from controlroom.daemon.config import loader

#: A complete config that needs no hardware; ``{port}`` is where OSC listens.
VIRTUAL = """
[audio]
backend = "virtual"
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
[osc]
listen = "127.0.0.1:{port}"
[state]
path = "{state}"
"""


# a subprocess cannot be pointed away from /etc: where a machine has that file, it is found
@pytest.mark.skipif(loader.SYSTEM_CONFIG.exists(), reason=f"{loader.SYSTEM_CONFIG} exists on this machine")
def test_run_without_any_config_file_warns_where_it_looked_and_that_no_hardware_is_used(tmp_path):
    home = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path)}
    daemon = Command("run", cwd=tmp_path, env=home, drop=("CONTROLROOM_CONFIG",))
    try:
        line = daemon.wait_line("stderr", lambda line: " WARNING " in line)
    finally:
        daemon.stop()
    assert "no config file found" in line
    for place in (
        tmp_path / "controlroom.toml",
        tmp_path / "config" / "controlroom" / "config.toml",
        loader.SYSTEM_CONFIG,
    ):
        assert str(place) in line
    assert "built-in default on the virtual backend, no audio hardware in use" in line
    assert "Traceback" not in "\n".join(daemon.stderr)


@contextlib.contextmanager
def running(tmp_path, until: str) -> Iterator[Command]:
    """``controlroom run`` on a config file of ``VIRTUAL``, once it has logged ``until``;
    stopped afterwards, which must end with status 0."""
    config = tmp_path / "studio.toml"
    config.write_text(VIRTUAL.format(port=0, state=tmp_path / "state.json"))
    daemon = Command("run", "-c", str(config), cwd=tmp_path)
    try:
        daemon.wait_line("stderr", lambda line: until in line)
        yield daemon
    finally:
        status = daemon.stop()
    assert status == 0, daemon.output()


def test_run_with_a_config_file_gives_no_warning_about_it(tmp_path):
    with running(tmp_path, "OSC listening on") as daemon:
        pass
    config = tmp_path / "studio.toml"
    assert any(line.endswith(f"config: {config}") for line in daemon.stderr)
    assert not any("no config file found" in line for line in daemon.stderr)


def test_run_with_its_port_taken_names_it_and_the_config_to_change(tmp_path):
    holder = hold_udp(0)
    port = holder.getsockname()[1]
    config = tmp_path / "studio.toml"
    config.write_text(VIRTUAL.format(port=port, state=tmp_path / "state.json"))
    try:
        daemon = Command("run", "-c", str(config), cwd=tmp_path)
        try:
            status = daemon.finish()
        finally:
            daemon.kill()
    finally:
        holder.close()
    assert status == 1
    assert daemon.stderr[-1] == (
        f"controlroom run: OSC cannot listen on 127.0.0.1:{port}: Address already in use (another controlroom"
        f" running? choose another port with [osc] listen in {config})"
    )
    assert "Traceback" not in "\n".join(daemon.stderr)


#: A process that leaves as ``run`` does after a stop, while another thread is still importing
#: the engine's PortAudio library (a stop during the first start gives that thread up): the
#: module is in ``sys.modules`` without its functions yet. An atexit line tells whether the
#: interpreter finalised.
LEAVE_DURING_IMPORT = """
import atexit, sys, types
from controlroom.daemon.cli.run import leave
sys.modules["controlroom.daemon.engine.library"] = types.ModuleType("controlroom.daemon.engine.library")
class Stopped:
    runner = None
atexit.register(print, "finalised")
sys.exit(leave(0, Stopped()))
"""


def test_a_stop_while_a_thread_still_imports_the_engine_leaves_with_status_0_without_finalising():
    left = subprocess.run([sys.executable, "-c", LEAVE_DURING_IMPORT], capture_output=True, text=True, check=False)
    assert (left.returncode, left.stdout, left.stderr) == (0, "", "")


def test_a_running_daemon_has_not_loaded_scipy(tmp_path):
    # installed here (the test extras): numba's look for BLAS would import its linear algebra
    import scipy  # noqa: F401 (fails the test where SciPy is missing: then it proves nothing)

    with running(tmp_path, "audio running") as daemon:
        mapped = Path(f"/proc/{daemon.process.pid}/maps").read_text()
    assert "/numba/" in mapped and "/scipy/" not in mapped
