"""The first start: whether numba still has to compile the audio engine, and saying so.

With an empty numba cache (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the source) the
first ``run``, ``demo`` or ``render`` compiles the kernels for tens of seconds before any
sound or output; later starts load the machine code from the cache in about a second.
"""

from __future__ import annotations

import logging

#: What a cold start announces (``run`` logs it, ``demo`` and ``render`` print it on stderr);
#: ``controlroom warm`` compiles ahead so that no start has to.
MESSAGE = "compiling the audio engine (first start only)…"


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
    """Say ``MESSAGE`` when ``kernels`` are to be compiled: as a log line with ``log`` (the
    daemon), else on stderr at once (the interactive commands). True when it was said."""
    if not cold(*kernels):
        return False
    if log is not None:
        log.info(MESSAGE)
    else:
        import sys

        print(f"controlroom: {MESSAGE}", file=sys.stderr, flush=True)
    return True
