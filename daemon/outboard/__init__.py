"""Outboard gear: relays and amplifier power on GPIO pins or MQTT smart plugs, presets recalled
over MIDI, and the sequences that switch them safely.

``Outboard`` (``sequencer``) is the one owner of these outputs in the daemon; ``outputs`` holds
the switches and MIDI devices it drives. ``gpio_errors`` tells ``check`` and ``run`` when a
config names GPIO pins on a machine without any, ``mock_pins`` when they are mock pins. The
daemon imports this package only when the config has ``[[outboard]]`` entries, so nothing else
pays for gpiozero.
"""

from controlroom.daemon.outboard.outputs import gpio_errors, mock_pins
from controlroom.daemon.outboard.sequencer import Outboard

__all__ = ["Outboard", "gpio_errors", "mock_pins"]
