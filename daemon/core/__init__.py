"""The monitor controller's logic, with no sockets, threads, tasks or kernel offsets.

``targets`` (the one vocabulary: names, types, value parsing), ``controller`` (where targets
change: apply, commit, the view, listeners), ``comparison`` (blind and ABX tests), ``matching``
(loudness matching arithmetic), ``inserts`` (outboard inserts' measurements and what they set)
and ``path`` (the path parameters a config and a state produce). The modules are imported one
by one: ``controlroom ctl`` needs ``targets`` without the kernel that ``controller`` loads.
"""
