"""The first start: whether numba still has to compile the audio engine, and saying so.

With an empty numba cache (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the source) the
first ``run``, ``demo`` or ``render`` compiles the kernels for tens of seconds before any
sound or output; later starts load the machine code from the cache in about a second.

numba checks a cached kernel against its own source file only, yet each kernel also compiles in
what it takes from its neighbours: ``dsp/layout.py``'s offsets into the buffers, the functions
of other modules it calls. An update that changes only those (a ``git pull`` of a few files)
would leave machine code in the cache that reads the buffers with the old offsets. So every
cache directory of the engine keeps a stamp of all the engine's sources (``STAMP_FILE``), and
its kernels are deleted when that no longer matches (``forget_stale``).
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path
from types import FunctionType

#: What a cold start announces (``run`` logs it, ``demo`` and ``render`` print it on stderr);
#: ``controlroom warm`` compiles ahead so that no start has to.
MESSAGE = "compiling the audio engine (first start only)…"
#: In each cache directory of the engine: the digest of the sources its kernels came from.
STAMP_FILE = "controlroom-sources.stamp"


def _engine_sources() -> list[Path]:
    """The source directories of the compiled engine, found without importing its modules:
    the PortAudio host loads PortAudio (sounddevice initialises it on import, and with it a
    JACK client), which is the runner's to do, in its own thread."""
    import controlroom.daemon
    import controlroom.dsp

    return [Path(controlroom.dsp.__file__).parent, Path(controlroom.daemon.__file__).parent / "engine"]


def sources_stamp() -> str:
    """A digest of every source file of the compiled engine (``dsp/`` and ``daemon/engine/``):
    path, modification time and size of each, as numba compares them for one file."""
    identity = []
    for directory in _engine_sources():
        for path in sorted(directory.glob("*.py")):
            status = path.stat()
            identity += [str(path), str(status.st_mtime_ns), str(status.st_size)]
    return hashlib.sha256("\0".join(identity).encode()).hexdigest()


def _cache_directory(source: Path) -> Path:
    """Where numba keeps the kernels of the modules in ``source``, as its own cache locator
    decides (beside them, under ``NUMBA_CACHE_DIR``, or per user): asked of a dispatcher for a
    probe function that says it comes from that directory. Nothing is compiled."""
    from numba import njit

    code = compile("def probe():\n    pass\n", str(source / "__init__.py"), "exec").co_consts[0]
    return Path(njit(cache=True)(FunctionType(code, {"__name__": "controlroom.probe"}))._cache.cache_path)


def forget_stale() -> int:
    """Delete the engine's cached kernels where they were compiled from other sources than
    these (see the module docstring), and stamp each cache directory with these: the number of
    cache files deleted. Call it before the engine's kernels first run in a process; nothing
    happens where numba's cache cannot be found or written."""
    stamp = sources_stamp()
    deleted = 0
    for source in _engine_sources():
        try:
            directory = _cache_directory(source)
        except AttributeError:  # another numba: its internals moved
            continue
        marker = directory / STAMP_FILE
        try:
            if marker.is_file() and marker.read_text() == stamp:
                continue
            for cached in directory.glob("*.nb[ic]"):
                cached.unlink(missing_ok=True)
                deleted += 1
            directory.mkdir(parents=True, exist_ok=True)
            marker.write_text(stamp)
        except OSError:  # not ours to write: numba cannot cache there either
            continue
    return deleted


def cold(*kernels) -> bool:
    """True when numba's cache holds nothing usable for one of ``kernels`` (``@njit(cache=True)``
    dispatchers): no index, one from another numba, or one of an older source (stale). Asks the
    dispatcher's own cache locator rather than guessing paths; False (nothing to say) when this
    numba's cache cannot be inspected so."""
    for kernel in kernels:
        try:
            # {} when the index is missing, from another numba version, or stale
            usable = kernel._cache._cache_file._load_index()
        except AttributeError:  # another numba: its internals moved; say nothing rather than wrong
            return False
        except Exception:  # an unreadable index: numba recompiles (and rewrites it) too
            return True
        if not usable:
            return True
    return False


def announce(*kernels, log: logging.Logger | None = None) -> bool:
    """Say ``MESSAGE`` when ``kernels`` are to be compiled (after ``forget_stale``): as a log
    line with ``log`` (the daemon), else on stderr at once (the interactive commands). True
    when it was said."""
    forget_stale()
    if not cold(*kernels):
        return False
    if log is not None:
        log.info(MESSAGE)
    else:
        import sys

        print(f"controlroom: {MESSAGE}", file=sys.stderr, flush=True)
    return True


def leave_scipy_unloaded() -> None:
    """Keep SciPy out of a daemon process: numba, as it loads its first kernel, imports all of
    SciPy's linear algebra to look for BLAS wherever SciPy is installed (the test extras, a shared
    environment): about 0.1 s and 12 MB for nothing, since no kernel uses linear algebra. Marked
    missing, SciPy is not imported and numba goes without BLAS."""
    sys.modules.setdefault("scipy", None)
