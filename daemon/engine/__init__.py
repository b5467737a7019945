"""The audio engine hosts: where the compiled monitor-path kernel meets a clock.

``PortAudioHost`` runs the kernel in a GIL-free numba ``@cfunc`` PortAudio callback;
``VirtualHost`` runs it in a self-clocked GIL-free thread with no hardware. Both keep their
statistics in ``counters[HOST_BASE:]`` and offer the same ``start``, ``stop``, ``close``,
``reinitialise``, ``running`` and ``stats()``.

The names load on first use: importing sounddevice initialises PortAudio, which probes every
host API (and opens a JACK client), and the virtual backend, ``render`` and the tests of the
kernel need none of that.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controlroom.daemon.engine.devices import describe, find_device, list_devices
    from controlroom.daemon.engine.portaudio import PortAudioHost
    from controlroom.daemon.engine.table import KernelArrays
    from controlroom.daemon.engine.virtual import VirtualHost

_HOMES = {
    "KernelArrays": "table",
    "PortAudioHost": "portaudio",
    "VirtualHost": "virtual",
    "describe": "devices",
    "find_device": "devices",
    "list_devices": "devices",
}

__all__ = ["KernelArrays", "PortAudioHost", "VirtualHost", "describe", "find_device", "list_devices"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
