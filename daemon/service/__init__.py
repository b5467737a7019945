"""The running service: everything with a socket, a thread, a task or a kernel offset.

``daemon`` (one running controlroom: its life cycle, signals, task group), ``runner`` (the one
owner of the audio host), ``measurement`` (an outboard insert's round trip), ``loudness`` (the
BS.1770 meters fed from the kernel's tap), ``readout`` (sample peak/RMS meters), ``statefile``
(the saved state), ``notify`` (systemd). How they fit together: docs/design.md.
"""

from controlroom.daemon.service.daemon import Daemon
from controlroom.daemon.service.runner import EngineRunner, EngineState

__all__ = ["Daemon", "EngineRunner", "EngineState"]
