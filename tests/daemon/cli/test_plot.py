"""``controlroom plot``: a PNG of each speaker set's response, as the path plays it.

The curves are checked against the compiled path itself: an impulse on both inputs rendered by
``dsp.path.render`` through each set, its spectrum evaluated by a direct DFT at the curves'
own frequencies. The command line is run as a user runs it, with and without matplotlib.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from controlroom.daemon.cli import plot
from controlroom.daemon.config import parse_config
from controlroom.daemon.core.path import path_spec
from controlroom.dsp.control import Controls, PathBuffers
from controlroom.dsp.path import render

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "emulations.toml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FS = 48000

#: Sets that exercise every part of a curve: EQ, trim, an output's own trim, emulation and
#: compensation, sub on a pair and on a single output, sub trim.
CONFIG = """
[audio]
backend = "virtual"
samplerate = 48000
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [{ channel = 1, trim_db = -1.25 }, 2]
trim_db = -2.0
eq = [{ type = "peak", freq_hz = 250.0, gain_db = -4.0, q = 2.0 }]
sub = { output = 3, crossover_hz = 90.0, trim_db = 1.5 }
[speakers.phone]
outputs = [1, 2]
emulate = "phone"
[speakers.single]
outputs = [4]
eq = [{ type = "highshelf", freq_hz = 5000.0, gain_db = 3.0 }]
sub = { output = 5, crossover_hz = 60.0 }
[speakers.radio]
outputs = [1, 2]
emulate = "radio"
[emulations.radio]
eq = [{ type = "highpass", freq_hz = 300.0 }, { type = "lowpass", freq_hz = 3500.0 }]
mono = true
"""


def controlroom(*args, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controlroom", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the first chunk after the signature)."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def impulse_spectrum_db(config, speakers: int, output: int, freqs: np.ndarray) -> np.ndarray:
    """Level (dB re input) at ``freqs`` (Hz) of output ``output`` (1-based) when set ``speakers``
    plays an impulse present on both inputs, rendered by the compiled path."""
    spec = path_spec(config)
    buffers = PathBuffers(spec, Controls(speakers=speakers, master_db=0.0))
    buffers.settle()
    amplitude = 0.01  # far below the limiter's ceiling through any gain here
    x = np.zeros((FS, spec.n_in), dtype=np.float32)
    x[0, :2] = amplitude
    y = np.zeros((FS, spec.n_out), dtype=np.float32)
    render(x, y, 256, *buffers.arrays)
    n = np.arange(FS)
    h = [np.sum(y[:, output - 1] * np.exp(-2j * np.pi * f * n / FS)) / amplitude for f in freqs]
    return 20.0 * np.log10(np.abs(h))


def test_every_curve_agrees_with_the_rendered_impulse_response():
    config = parse_config(CONFIG, "plot.toml")
    names = list(config.speakers)
    lines = plot.curves(config, names)
    assert [(c.group, c.sub) for c in lines] == [(0, False), (0, True), (1, False), (2, False), (2, True), (3, False)]
    checked = 0
    for curve in lines:
        s = config.speakers[names[curve.group]]
        output = s.sub.output if curve.sub else s.channels[0]
        at = np.searchsorted(curve.freqs_hz, [30.0, 90.0, 250.0, 1000.0, 3000.0, 8000.0])
        at = at[curve.level_db[at] > -100.0]  # deeper, the float32 output's rounding dominates
        rendered = impulse_spectrum_db(config, curve.group, output, curve.freqs_hz[at])
        np.testing.assert_allclose(curve.level_db[at], rendered, atol=0.1, err_msg=curve.label)
        checked += len(at)
    assert checked >= 25


def test_a_sub_fed_by_two_mains_reads_6_db_above_one_fed_by_a_single_output_trims_aside():
    """Both subs sit in their pass band at 20 Hz; the pair's is fed L + R."""
    config = parse_config(CONFIG, "plot.toml")
    pair, single = [c for c in plot.curves(config, ["studio", "single"]) if c.sub]
    assert pair.level_db[0] - single.level_db[0] == pytest.approx(6.02 - 2.0 + 1.5, abs=0.2)


def test_plot_writes_a_png_of_every_speaker_set(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "emulation.png"
    result = controlroom("plot", "-c", EXAMPLE, out)
    assert result.returncode == 0, result.stderr
    names = "studio, phone, laptop, tv, earbuds, car, cube, bluetooth"
    assert result.stderr == f"{out}: 8 curves of {names}\n"
    data = out.read_bytes()
    assert png_size(data) == (1100, 750)
    assert len(data) > 30_000  # eight curves, a legend and labels, not an empty canvas


def test_plot_draws_the_named_sets_at_the_given_rate(tmp_path):
    pytest.importorskip("matplotlib")
    config, out = tmp_path / "c.toml", tmp_path / "studio.png"
    config.write_text(CONFIG)
    result = controlroom(
        "plot", "-c", config, "--speakers", "studio", "--speakers", "radio", "--samplerate", "96000", out
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"{out}: 3 curves of studio, radio\n"
    assert out.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speakers", "studoi"], "--speakers 'studoi': not a speaker set of {config} (did you mean 'studio'?)"),
        (["--samplerate", "1000"], "--samplerate 1000: expected one of 44100, 48000, 88200, 96000, 176400, 192000"),
    ],
    ids=["unknown-set", "samplerate"],
)
def test_plot_rejects_bad_arguments_without_a_traceback(tmp_path, args, message):
    pytest.importorskip("matplotlib")
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    result = controlroom("plot", "-c", config, *args, tmp_path / "x.png")
    assert result.returncode == 2
    assert result.stderr == "controlroom plot: " + message.format(config=config) + "\n"
    assert not (tmp_path / "x.png").exists()


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path):
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("matplotlib is blocked for this test")\n')
    env = dict(os.environ, PYTHONPATH=str(blocker.parent))
    out = tmp_path / "x.png"
    result = controlroom("plot", "-c", EXAMPLE, out, env=env)
    assert result.returncode == 2
    assert result.stderr == "controlroom plot needs matplotlib: pip install 'controlroom[plot]'\n"
    assert not out.exists()
