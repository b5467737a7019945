"""``controlroom warm``: compile the audio engine into numba's cache before it is needed.

Every compiled function the daemon (on a sound card, JACK or the virtual backend), ``render``
and ``meter`` run is compiled once here, with the array types those commands pass, so that
their first start loads machine code instead of compiling for tens of seconds (minutes on a
Raspberry Pi). The cache is ``NUMBA_CACHE_DIR`` (the systemd unit's ``CacheDirectory``), else
``__pycache__`` beside the installed sources. Machine code is compiled for the CPU it runs on:
``warm`` runs on the machine that plays, after every install or upgrade (``./setup`` and the
unit's ``ExecStartPre`` do).

Run by systemd (``$NOTIFY_SOCKET`` set, the unit's ``NotifyAccess=all``), it asks for more
start-up time (``EXTEND_TIMEOUT_USEC``) before each step and every ``EXTEND_EVERY_S`` while
one compiles, so a cold cache never runs into the unit's tight ``TimeoutStartSec``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from controlroom.daemon.cli import options
from controlroom.daemon.cli.warmup import forget_stale

#: How often warm asks systemd for more start-up time, and for how much (s).
EXTEND_EVERY_S = 10.0
EXTEND_BY_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The compiled code does not depend on the config (array types only): -c checks the file
    # the service will run, so that a broken one fails here with its errors, not later.
    options.add_config(parser, default="the built-in one")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing unless something fails")


def run(args: argparse.Namespace) -> int:
    from controlroom.daemon.config import default_config, load_config

    config = default_config() if args.config is None else load_config(Path(args.config))
    say = (lambda text, end="\n": None) if args.quiet else _printer
    steps = _steps(config)
    if stale := forget_stale():
        say(f"controlroom warm: the engine's sources changed: {stale} cache files of the old ones deleted")
    before = _cache_files()
    started = time.monotonic()
    with _StartExtender() as extender:
        for number, (what, compile_it) in enumerate(steps, 1):
            extender.step(f"warm: compiling {what} ({number}/{len(steps)})")
            say(f"controlroom warm: [{number}/{len(steps)}] {what} …", end="")
            files = _cache_files()
            t0 = time.monotonic()
            compile_it()
            took = time.monotonic() - t0
            say(f" {took:.1f} s" if _cache_files() != files else f" cached ({took:.1f} s)")
    after = _cache_files()
    changed = sum(1 for path, stamp in after.items() if before.get(path) != stamp)
    say(
        f"controlroom warm: the audio engine is compiled ({changed} of {len(after)} cache files written, "
        f"{time.monotonic() - started:.1f} s) in {cache_place()}"
    )
    return 0


class _StartExtender:
    """Keeps systemd's start-up timeout ahead of the compile while ``warm`` runs as
    ``ExecStartPre`` (nothing without ``$NOTIFY_SOCKET``)."""

    def __init__(self) -> None:
        from controlroom.daemon.service.notify import Notifier

        self.notifier = Notifier()
        self.status = "warm"
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep_extending, name="warm-notify", daemon=True)

    def __enter__(self) -> _StartExtender:
        if self.notifier.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        self.notifier.close()

    def step(self, status: str) -> None:
        self.status = status
        self.notifier.extend_start(EXTEND_BY_S, status)

    def _keep_extending(self) -> None:
        # the compiler is Python: this thread gets the GIL between its bytecodes
        while not self._done.wait(EXTEND_EVERY_S):
            self.notifier.extend_start(EXTEND_BY_S, self.status)


def _printer(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


def cache_place() -> str:
    """Where numba keeps the compiled kernels, as the user would look for them."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    return configured if configured else "__pycache__ beside the installed sources (no NUMBA_CACHE_DIR)"


def _cache_roots() -> list[Path]:
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return [Path(configured)]
    import controlroom.daemon
    import controlroom.dsp

    # beside the sources, or numba's per-user place where those cannot be written
    sources = [Path(controlroom.dsp.__file__).parent, Path(controlroom.daemon.__file__).parent]
    return [*sources, Path.home() / ".cache" / "numba"]


def _cache_files() -> dict[str, tuple[int, int]]:
    """Every numba cache file (index ``.nbi``, object code ``.nbc``) with its mtime and size."""
    found = {}
    for root in _cache_roots():
        if not root.is_dir():
            continue
        for path in root.rglob("*.nb[ic]"):
            status = path.stat()
            found[str(path)] = (status.st_mtime_ns, status.st_size)
    return found


def _steps(config) -> list[tuple[str, Callable[[], object]]]:
    """(what, compile it), in the order a first start needs them. Each runs the code the
    commands run, on scratch arrays of the types they pass (numba compiles one version per
    type and layout)."""
    import numpy as np

    from controlroom.daemon.core.path import controls, path_spec
    from controlroom.daemon.core.targets import Vocabulary
    from controlroom.dsp.control import PathBuffers

    spec = path_spec(config)

    def scratch() -> PathBuffers:
        fresh = PathBuffers(spec, controls(config, Vocabulary(config).initial()))
        fresh.settle()
        return fresh

    def monitor_path():
        from controlroom.daemon.cli.render import CHUNK_FRAMES
        from controlroom.dsp.path import render

        x = np.zeros((CHUNK_FRAMES, spec.n_in), dtype=np.float32)
        y = np.zeros((CHUNK_FRAMES, spec.n_out), dtype=np.float32)
        n = 4 * config.audio.blocksize
        render(x[:n], y[:n], config.audio.blocksize, *scratch().arrays)

    def meters():
        from controlroom.daemon.service.loudness import compile_meters

        compile_meters(scratch())

    def callback():
        from controlroom.daemon.engine.callback import make_callback
        from controlroom.dsp.path import process

        make_callback(process)

    def virtual_loop():
        from controlroom.daemon.engine.virtual import VirtualHost
        from controlroom.dsp.path import process

        audio = config.audio
        # compiles in its constructor; never started
        VirtualHost(process, scratch().arrays, audio.samplerate, audio.blocksize, spec.n_in, spec.n_out)

    def offline_meter():
        from controlroom.daemon.cli.meter import READ_FRAMES, report
        from controlroom.dsp.bs1770 import meter_process, new_meter

        block = np.zeros((READ_FRAMES, 2), dtype=np.float32)
        state = new_meter(2, 48_000)
        meter_process(state, block[:4800])
        report("warm", 2, 48_000, 4800, state, None)

    return [
        ("the monitor path (render)", monitor_path),
        ("the live meters and control publishing", meters),
        ("the audio callback (sound card, JACK)", callback),
        ("the virtual backend's loop (demo)", virtual_loop),
        ("the loudness meter (meter)", offline_meter),
    ]
