"""The first start, with an empty numba cache: ``run``, ``demo`` and ``render`` say at once that
they compile the audio engine, and Ctrl-C is honoured while they do.

Each cold test points ``NUMBA_CACHE_DIR`` at a fresh directory, so the compile takes tens of
seconds; the test sends SIGINT as soon as the announcement is read and expects the process to
end well before a compile could finish.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
import soundfile
from clikit import DEMO_PORT, Command, hold_udp
from test_run import VIRTUAL

from controlroom.daemon.cli.warmup import MESSAGE

#: Far less than a cold compile (20 to 75 s), far more than stopping takes.
PROMPT_S = 20.0


def cold(tmp_path) -> dict[str, str]:
    """An environment with an empty numba cache and every config and state place in tmp_path."""
    return {
        "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }


def interrupt_after_announcement(command: Command) -> int:
    """SIGINT as soon as ``command`` says it compiles; its exit status (bounded wait)."""
    command.wait_line("stderr", lambda line: MESSAGE in line)
    command.process.send_signal(signal.SIGINT)
    return command.finish(PROMPT_S)


def test_a_cold_demo_says_it_compiles_and_ctrl_c_stops_it_at_once(tmp_path, demo_ports):
    holder = hold_udp(DEMO_PORT)  # whatever held the port before, the demo must not need it
    config = tmp_path / "studio.toml"
    config.write_text(VIRTUAL.format(port=0, state=tmp_path / "state.json"))
    demo = Command("demo", "-c", str(config), cwd=tmp_path, env=cold(tmp_path))
    try:
        status = interrupt_after_announcement(demo)
    finally:
        demo.kill()
        if holder is not None:
            holder.close()
    assert status == 0, demo.output()
    assert demo.stderr[0] == f"controlroom: {MESSAGE}"
    assert "Traceback" not in "\n".join(demo.stderr)


def test_a_cold_run_logs_it_compiles_and_ctrl_c_stops_it_at_once_saving_the_state(tmp_path):
    config = tmp_path / "studio.toml"
    state = tmp_path / "state.json"
    config.write_text(VIRTUAL.format(port=0, state=state))
    daemon = Command("run", "-c", str(config), cwd=tmp_path, env=cold(tmp_path))
    try:
        status = interrupt_after_announcement(daemon)
    finally:
        daemon.kill()
    assert status == 0, daemon.output()
    assert any(line.endswith(f"INFO controlroom: {MESSAGE}") for line in daemon.stderr)
    assert "Traceback" not in "\n".join(daemon.stderr)
    assert state.exists()


@pytest.mark.cold
def test_a_cold_render_says_first_that_it_compiles(tmp_path):
    mix = tmp_path / "mix.wav"
    soundfile.write(mix, np.zeros((4800, 2)), 48_000)
    config = tmp_path / "studio.toml"
    config.write_text(VIRTUAL.format(port=0, state=tmp_path / "state.json"))
    out = tmp_path / "out.wav"
    render = Command("render", "-c", str(config), str(mix), str(out), cwd=tmp_path, env=cold(tmp_path))
    try:
        status = render.finish(300.0)  # a cold compile on a loaded machine
    finally:
        render.kill()
    assert status == 0, render.output()
    assert render.stderr[0] == f"controlroom: {MESSAGE}"
    assert out.exists()


def test_a_warm_start_says_nothing_about_compiling(tmp_path):
    config = tmp_path / "studio.toml"
    config.write_text(VIRTUAL.format(port=0, state=tmp_path / "state.json"))
    env = {k: v for k, v in cold(tmp_path).items() if k != "NUMBA_CACHE_DIR"}  # the usual cache
    # the first start fills the usual cache if it is not filled yet (audio runs once compiled);
    # the second loads it
    for _ in range(2):
        daemon = Command("run", "-c", str(config), cwd=tmp_path, env=env)
        try:
            daemon.wait_line("stderr", lambda line: "audio running" in line, timeout=300)
        finally:
            status = daemon.stop()
    assert status == 0, daemon.output()
    assert not any(MESSAGE in line for line in daemon.stderr)
