"""[inserts]: the config's send/return pairs become sends in the path and a source to compare."""

import numpy as np

from controlroom.daemon.config import parse_config
from controlroom.daemon.monitor import controls, path_spec
from controlroom.daemon.targets import Vocabulary
from controlroom.dsp.control import PathBuffers
from controlroom.dsp.path import render

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


def test_the_return_is_a_source_and_the_channel_counts_include_sends_and_returns():
    config = parse_config(CONFIG)
    assert list(config.sources) == ["mix", "comp"]
    assert config.sources["comp"].channels == (5, 6)
    assert (config.audio.input_channels, config.audio.output_channels) == (6, 8)


def test_the_source_is_sent_after_its_trim_and_the_return_can_be_heard():
    config = parse_config(CONFIG)
    vocabulary = Vocabulary(config)
    state = vocabulary.initial()
    vocabulary.set(state, "volume", 0.0)
    vocabulary.set(state, "ab", "b")
    x = np.zeros((2048, 6), dtype=np.float32)
    x[:, 0], x[:, 1], x[:, 4], x[:, 5] = 0.5, 0.4, 0.3, 0.2
    buffers = PathBuffers(path_spec(config), controls(config, state))
    buffers.settle()
    y = np.zeros((2048, 8), dtype=np.float32)
    render(x, y, 64, *buffers.arrays)
    half = 10 ** (-6 / 20)
    np.testing.assert_allclose(y[-1], [0.3, 0.2, 0, 0, 0, 0, 0.5 * half, 0.4 * half], atol=1e-6)
