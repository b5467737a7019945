"""``controlroom warm``: one command compiles what every audio command runs, so that none of
them compiles (or says it does) afterwards.

The oracle is numba's cache itself: after ``warm`` fills an empty ``NUMBA_CACHE_DIR``, a
``render``, a ``meter`` and a daemon on the virtual backend leave every cache file as it was
(numba writes an index and object file for each function it compiles), and none of them
announces a compile.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile
from clikit import Command
from notifykit import NotifyListener
from test_first_start import cold
from test_run import VIRTUAL

from controlroom.daemon.cli.warm import EXTEND_BY_S
from controlroom.daemon.cli.warmup import MESSAGE

pytestmark = [pytest.mark.slow, pytest.mark.cold]

COMPILE_S = 600.0  # a cold compile of everything on a loaded small machine


def cache_files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*.nb[ic]")}


def finished(command: Command, timeout: float = COMPILE_S) -> Command:
    try:
        status = command.finish(timeout)
    finally:
        command.kill()
    assert status == 0, command.output()
    assert "Traceback" not in command.output()
    return command


def test_warm_fills_an_empty_cache_and_then_render_meter_run_and_warm_compile_nothing(tmp_path):
    env = cold(tmp_path)
    cache = Path(env["NUMBA_CACHE_DIR"])
    config = tmp_path / "studio.toml"
    config.write_text(VIRTUAL.format(port=0, state=tmp_path / "state.json"))
    mix = tmp_path / "mix.wav"
    soundfile.write(mix, np.zeros((4800, 2)), 48_000)

    # as systemd runs it (ExecStartPre): it asks for start-up time before each step
    listener = NotifyListener(f"@controlroom-warm-{uuid.uuid4().hex}")  # abstract: no path
    try:
        warm = Command("warm", "-c", str(config), cwd=tmp_path, env={**env, "NOTIFY_SOCKET": listener.env_value})
        while warm.process.poll() is None:  # read as systemd does: its queue holds 10 datagrams
            with contextlib.suppress(TimeoutError):
                listener.receive(0.2)
        finished(warm)
        with contextlib.suppress(TimeoutError):
            while True:
                listener.receive(0.2)
    finally:
        listener.close()
    extensions = listener.datagrams
    steps = [line for line in warm.stderr if re.match(r"controlroom warm: \[\d/\d\] ", line)]
    assert len(steps) >= 5 and all(re.search(r"… (cached \()?\d+\.\d s\)?$", line) for line in steps), warm.output()
    assert not any(MESSAGE in line for line in warm.stderr)
    assert len(extensions) >= len(steps)
    assert all(fields[0] == f"EXTEND_TIMEOUT_USEC={int(EXTEND_BY_S * 1e6)}" for fields in extensions), extensions
    filled = cache_files(cache)
    assert any(name.endswith(".nbi") for name in filled) and any(name.endswith(".nbc") for name in filled)
    monitor_path_s = float(re.search(r"\(render\) … (\d+\.\d) s", steps[0]).group(1))

    started = time.monotonic()
    render = finished(Command("render", "-c", str(config), str(mix), str(tmp_path / "out.wav"), cwd=tmp_path, env=env))
    render_s = time.monotonic() - started
    meter = finished(Command("meter", str(mix), cwd=tmp_path, env=env))
    daemon = Command("run", "-c", str(config), cwd=tmp_path, env=env)
    try:
        daemon.wait_line("stderr", lambda line: "audio running" in line)
    finally:
        assert daemon.stop() == 0, daemon.output()

    for command in (render, meter, daemon):
        assert not any(MESSAGE in line for line in command.stderr), command.output()
    assert cache_files(cache) == filled  # nothing compiled, nothing rewritten
    # the whole warm render (start, imports, loading the cache, the file) takes a fraction of
    # what compiling its kernel took
    assert render_s < monitor_path_s / 2, (render_s, monitor_path_s)

    # after an upgrade warm compiles again; with nothing changed it finds every step cached
    again = finished(Command("warm", "-c", str(config), cwd=tmp_path, env=env))
    assert all("… cached (" in line for line in again.stderr if "controlroom warm: [" in line), again.output()
    assert re.search(r"compiled \(0 of \d+ cache files written", again.stderr[-1]), again.output()
