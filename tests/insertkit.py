"""An outboard insert as the insert tests wire it: ``comp``, sent from ``mix`` (outputs 7-8),
returning on inputs 5-6; and a measurement of it."""

from __future__ import annotations

from controlroom.daemon.config import Config
from controlroom.daemon.core.inserts import InsertResult

CONFIG = """
[sources.mix]
channels = [1, 2]
trim_db = -6.0
[speakers.studio]
outputs = [1, 2]
[inserts.comp]
send = [7, 8]
return = [5, 6]
source = "mix"
[ab]
a = "mix"
b = "comp"
"""


def measured(config: Config, name: str, latency: int, gain_db: float = 0.0) -> InsertResult:
    """A measurement of insert ``name`` as ``config`` wires it: ``latency`` in samples, gain in
    dB, a clear return (coherence 0.99), polarity kept."""
    insert, audio = config.inserts[name], config.audio
    return InsertResult(
        latency, gain_db, 0.99, False, audio.samplerate, audio.blocksize, insert.send, insert.returns, insert.source
    )
