"""Compiling a host loop for a given kernel so that numba's on-disk cache still works.

A host loop (the PortAudio callback, the virtual host's thread) calls one njit kernel. Neither
a closure over the kernel nor the kernel passed as an argument can be cached: numba's cache key
hashes closure cells and argument types, and a pickled dispatcher differs in every process. So
the loop is written against a global ``_KERNEL``, and ``bind_kernel`` makes a copy of it whose
globals bind ``_KERNEL`` to the kernel. The copy's name carries a stamp of the kernel's file and
of the other files compiled into the loop, because numba only checks the stamp of the file that
defines the function it caches: without it, an edited kernel would keep running from cache.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable, Iterable
from types import FunctionType, ModuleType


def bind_kernel(template: FunctionType, kernel: Callable, dependencies: Iterable[ModuleType]) -> FunctionType:
    """A copy of ``template`` whose global ``_KERNEL`` is the njit ``kernel``.

    ``dependencies``: the modules of the other numba functions ``template`` calls.
    """
    bound = FunctionType(template.__code__, {**template.__globals__, "_KERNEL": kernel}, template.__name__)
    files = [inspect.getfile(kernel.py_func)] + [inspect.getfile(module) for module in dependencies]
    bound.__qualname__ = f"{template.__name__}_{_stamp(kernel.py_func, files)}"
    return bound


def _stamp(kernel_function: Callable, files: list[str]) -> str:
    identity = [kernel_function.__module__, kernel_function.__qualname__]
    for path in files:
        status = os.stat(path)
        identity += [path, str(status.st_mtime_ns), str(status.st_size)]
    return hashlib.sha256("\0".join(identity).encode()).hexdigest()[:16]
