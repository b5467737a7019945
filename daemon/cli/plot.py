"""``controlroom plot``: the magnitude response of each speaker set, as the path plays it.

The curves are computed from the parameter vector the kernel runs (``dsp.control.pack``), not
from the config: the set's EQ with any emulation bands, its trim with the emulation's loudness
compensation and, with a sub, the mains' LR4 high-pass and the sub's LR4 low-pass as separate
curves. Levels are per output, in dB relative to the input, for a signal identical on L and R
(a centre-panned source) at master 0 dB, so a sub fed by two mains reads 6 dB above its
low-pass: the room adds the two mains acoustically and the sub electrically. The limiter acts
only near the ceiling and the delay does not change the magnitude, so neither is drawn.
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from controlroom.daemon.cli import options
from controlroom.daemon.config import SAMPLERATES, Config
from controlroom.daemon.core.path import emulation_profile, path_spec
from controlroom.daemon.errors import UsageError
from controlroom.dsp import layout
from controlroom.dsp.biquad import cascade_response
from controlroom.dsp.control import Controls, PathSpec, pack

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NEEDS_MATPLOTLIB = "controlroom plot needs matplotlib: pip install 'controlroom[plot]'"
#: The audible band drawn (Hz) and the number of log-spaced points on it.
LOW_HZ, HIGH_HZ, POINTS = 20.0, 20000.0, 1000
#: The y axis spans this much (dB) below its top, which sits just above the loudest curve.
Y_SPAN_DB = 48.0
_TICKS_HZ = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


@dataclass(frozen=True)
class Curve:
    """One output's magnitude response: ``level_db`` (dB) at ``freqs_hz`` (Hz).

    ``group`` numbers the speaker set (one colour per set); ``sub`` marks the sub output.
    """

    label: str
    freqs_hz: np.ndarray
    level_db: np.ndarray
    group: int
    sub: bool = False


def set_responses(spec: PathSpec, index: int, freqs_hz: np.ndarray) -> dict[str, np.ndarray]:
    """Complex responses of set ``index`` of ``spec`` at ``freqs_hz`` (Hz), read back from the
    packed parameters: ``{"mains": ...}``, plus ``"sub"`` when the set has a sub."""
    p = pack(spec, Controls(speakers=index))
    base = layout.SETS_BASE + index * layout.SET_STRIDE
    fs = spec.samplerate
    n_bands = int(p[base + layout.K_NBANDS])
    bands = p[base + layout.K_BANDS : base + layout.K_BANDS + 5 * n_bands].reshape(-1, 5)
    shaped = p[base + layout.K_GAIN] * cascade_response(bands, freqs_hz, fs)
    # the curve is the set's first output, with its own trim; the sub is fed before that trim
    first = p[base + layout.K_LANE_GAIN]
    if p[base + layout.K_SUB_OUT] < 0.0:
        return {"mains": first * shaped}
    high = p[base + layout.K_HIGHPASS : base + layout.K_HIGHPASS + 10].reshape(2, 5)
    low = p[base + layout.K_LOWPASS : base + layout.K_LOWPASS + 10].reshape(2, 5)
    # the sub is fed the sum of the mains' lanes: L + R with two outputs, the mono lane with one
    feed = p[base + layout.K_NOUT] * p[base + layout.K_SUB_GAIN]
    return {
        "mains": first * shaped * cascade_response(high, freqs_hz, fs),
        "sub": feed * shaped * cascade_response(low, freqs_hz, fs),
    }


def curves(config: Config, names: list[str]) -> list[Curve]:
    """The curves of the speaker sets ``names`` of ``config``, at the config's sample rate."""
    spec = path_spec(config)
    freqs = np.geomspace(LOW_HZ, HIGH_HZ, POINTS)
    order = list(config.speakers)
    result = []
    for group, name in enumerate(names):
        responses = set_responses(spec, order.index(name), freqs)
        labels = _labels(config, name)
        for kind, response in responses.items():
            level = 20.0 * np.log10(np.maximum(np.abs(response), 1e-12))
            result.append(Curve(labels[kind], freqs, level, group, sub=kind == "sub"))
    return result


def _labels(config: Config, name: str) -> dict[str, str]:
    """Legend texts of set ``name``'s curves: what shapes them, with figures in Hz and dB."""
    s = config.speakers[name]
    parts = []
    if s.emulate:
        profile, compensation_db = emulation_profile(config, s.emulate)
        mono = ", mono" if profile.mono else ""
        # rounded before formatting, so that a tiny negative figure does not read "-0.0"
        parts.append(f"emulates {s.emulate}{mono}, {round(compensation_db, 1) + 0.0:+.1f} dB compensation")
    if s.eq:
        parts.append(f"{len(s.eq)} EQ bands")
    if s.trim_db:
        parts.append(f"trim {s.trim_db:+.1f} dB")
    detail = f" ({'; '.join(parts)})" if parts else ""
    if s.sub is None:
        return {"mains": f"{name}{detail}"}
    return {
        "mains": f"{name} mains, LR4 high-pass {s.sub.crossover_hz:g} Hz{detail}",
        "sub": f"{name} sub (output {s.sub.output}), LR4 low-pass {s.sub.crossover_hz:g} Hz",
    }


def draw(lines: list[Curve], title: str) -> Figure:
    """A matplotlib Figure of ``lines``: dB over log frequency, one colour per set, subs dashed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig = Figure(figsize=(11.0, 7.5), layout="constrained")
    ax = fig.add_subplot()
    for curve in lines:
        ax.plot(
            curve.freqs_hz,
            curve.level_db,
            label=curve.label,
            color=f"C{curve.group % 10}",
            linestyle="--" if curve.sub else "-",
            linewidth=1.6,
        )
    top = 6.0 * math.ceil((max(float(np.max(c.level_db)) for c in lines) + 1.0) / 6.0)
    ax.set(
        xscale="log",
        xlim=(LOW_HZ, HIGH_HZ),
        ylim=(top - Y_SPAN_DB, top),
        title=title,
        xlabel="Frequency (Hz)",
        ylabel="Level per output (dB re input, same signal on L and R)",
    )
    ax.xaxis.set_major_locator(FixedLocator(_TICKS_HZ))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda f, _: f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_locator(FixedLocator(np.arange(top - Y_SPAN_DB, top + 1.0, 6.0)))
    ax.grid(which="major", alpha=0.5)
    ax.grid(which="minor", axis="x", alpha=0.2)
    fig.legend(loc="outside lower center", fontsize="small", ncols=2, frameon=False)
    return fig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument(
        "--speakers",
        action="append",
        default=[],
        metavar="NAME",
        help="plot this speaker set (repeatable; default: every set)",
    )
    parser.add_argument(
        "--samplerate", type=int, metavar="HZ", help="sample rate to design the filters at (default: the config's)"
    )
    parser.add_argument("output", metavar="OUT.png", help="PNG file to write")


def run(args: argparse.Namespace) -> int:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        print(NEEDS_MATPLOTLIB, file=sys.stderr)
        return 2
    config = _config(args)
    names = args.speakers or list(config.speakers)
    for name in names:
        if name not in config.speakers:
            raise UsageError(f"--speakers {name!r}: not a speaker set of {config.source} ({_hint(name, config)})")
    try:
        lines = curves(config, names)
    except ValueError as exc:  # a band valid at the config's rate may not be at --samplerate's
        raise UsageError(f"the config does not fit {config.audio.samplerate} Hz: {exc}") from None
    fig = draw(lines, f"Speaker set responses: {config.source} at {config.audio.samplerate} Hz")
    FigureCanvasAgg(fig)  # renders without a display, whatever backend the environment names
    try:
        fig.savefig(args.output, format="png", dpi=100)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"{args.output}: {len(lines)} curves of {', '.join(names)}", file=sys.stderr)
    return 0


def _config(args: argparse.Namespace) -> Config:
    """The config to plot, at ``--samplerate`` when given."""
    config, _ = options.load(args)
    if args.samplerate is None:
        return config
    if args.samplerate not in SAMPLERATES:
        raise UsageError(f"--samplerate {args.samplerate}: expected one of {', '.join(map(str, SAMPLERATES))}")
    return replace(config, audio=replace(config.audio, samplerate=args.samplerate))


def _hint(name: str, config: Config) -> str:
    close = difflib.get_close_matches(name, list(config.speakers), n=1)
    return f"did you mean {close[0]!r}?" if close else "expected one of: " + ", ".join(config.speakers)
