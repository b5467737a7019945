"""The controller's hold on the engine: a fade-out for shutdown, and silence holds that count."""

from __future__ import annotations

from controlroom.daemon.config import parse_config
from controlroom.daemon.core.controller import NO_SOURCE, Controller
from controlroom.daemon.core.targets import Vocabulary

CONFIG = """
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
"""


def controller() -> Controller:
    config = parse_config(CONFIG)
    c = Controller(config, Vocabulary(config).initial())
    c.start_buffers()
    return c


def test_after_fade_out_nothing_published_unmutes_until_the_engine_restarts():
    c = controller()
    c.fade_out()
    c.inserts.silenced = "comp"
    c.publish()  # e.g. the end of an insert measurement
    assert c._controls().mute
    c.start_buffers()
    assert not c._controls().mute


def test_sources_stay_silent_until_the_last_hold_is_released():
    c = controller()
    c.hold_silence()
    c.hold_silence()
    c.release_silence()
    assert c._controls().source == NO_SOURCE
    c.release_silence()
    assert c._controls().source == 0


def test_without_an_engine_a_switch_through_silence_plays_the_new_source_at_once():
    config = parse_config(CONFIG + '[sources.ref]\nchannels = [3, 4]\n[ab]\na = "mix"\nb = "ref"\n')
    c = Controller(config, Vocabulary(config).initial())
    c.start_buffers()
    c.apply("blind", "set", True)  # every switch in a blind test goes through silence
    assert c._controls().source in (0, 1)  # the default fader releases at once
