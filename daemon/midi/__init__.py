"""MIDI control surfaces: mappings, their interpretation, feedback, ports, learn.

Pure modules (no I/O): ``mapping`` (TOML files -> typed controls), ``taper`` (control positions
<-> target values), ``interpret`` (MIDI messages -> controller actions), ``feedback`` (state ->
MIDI messages). I/O: ``ports`` (python-rtmidi), ``surface`` (the daemon's surfaces), ``learn``.
"""
