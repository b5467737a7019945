"""The audio engine hosts: where the compiled monitor-path kernel meets a clock.

``PortAudioHost`` runs the kernel in a GIL-free numba ``@cfunc`` PortAudio callback;
``VirtualHost`` runs it in a self-clocked GIL-free thread with no hardware. Both keep their
statistics in ``counters[HOST_BASE:]`` and offer the same ``start``, ``stop``, ``close``,
``reinitialise``, ``running`` and ``stats()``.
"""

from controlroom.daemon.engine.devices import describe, find_device, list_devices
from controlroom.daemon.engine.portaudio import PortAudioHost
from controlroom.daemon.engine.table import KernelArrays
from controlroom.daemon.engine.virtual import VirtualHost

__all__ = ["KernelArrays", "PortAudioHost", "VirtualHost", "describe", "find_device", "list_devices"]
