"""OSC: ``protocol`` (addresses, packets; stdlib and python-osc only, what ``controlroom ctl``
imports) and ``server`` (control and feedback on the daemon's event loop). The manual is
docs/osc.md."""
