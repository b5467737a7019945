"""``controlroom render``: run an audio file through the monitor path, offline.

The file is processed at its own sample rate, in blocks of the configured blocksize, by the
same compiled kernel as the live engine. The state is the config's defaults plus ``--set``
overrides, applied from the first sample (no start-up cap, no ramp from silence).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from controlroom.daemon.cli import options
from controlroom.daemon.core.path import controls, path_spec
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.errors import TargetError, UsageError
from controlroom.dsp.control import pack

#: Frames read, processed and written at a time (the kernel still runs in `blocksize` blocks).
CHUNK_FRAMES = 1 << 16


def apply_sets(vocabulary: Vocabulary, assignments: list[str]):
    """The initial state with ``TARGET=VALUE`` assignments applied, in order."""
    state = vocabulary.initial()
    for assignment in assignments:
        target, sep, value = assignment.partition("=")
        if not sep:
            raise UsageError(f"--set {assignment!r}: expected TARGET=VALUE")
        try:
            vocabulary.set(state, target.strip(), value.strip())
        except TargetError as exc:
            raise UsageError(f"--set {assignment!r}: {exc}") from None
    return state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_config(parser)
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="TARGET=VALUE",
        help="set a target for the whole render (repeatable), e.g. --set speakers=crap",
    )
    parser.add_argument("input", metavar="IN", help="input file (WAV, FLAC, AIFF); channel k is input k")
    parser.add_argument("output", metavar="OUT", help="output file, same format as IN")


def run(args: argparse.Namespace) -> int:
    import soundfile as sf

    config, _ = options.load(args)
    state = apply_sets(Vocabulary(config), args.sets)
    try:
        info = sf.info(args.input)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise UsageError(f"cannot read {args.input}: {exc}") from None
    subtype = info.subtype if sf.check_format(_format_of(args.output, info.format), info.subtype) else "FLOAT"
    config = replace(config, audio=replace(config.audio, samplerate=info.samplerate))
    spec = path_spec(config)
    try:
        pack(spec, controls(config, state))
    except ValueError as exc:  # a band valid at the config's rate may not be at the file's
        raise UsageError(f"the config does not fit {args.input} at {info.samplerate} Hz: {exc}") from None
    if info.channels > spec.n_in:
        print(
            f"controlroom render: {args.input} has {info.channels} channels; "
            f"inputs beyond {spec.n_in} are not used by the config",
            file=sys.stderr,
        )
    peak = render_file(args.input, args.output, subtype, spec, controls(config, state), config.audio.blocksize)
    peak_db = 20 * np.log10(peak) if peak > 0 else float("-inf")
    print(
        f"{args.output}: {info.frames} frames at {info.samplerate} Hz, {spec.n_out} outputs, "
        f"source {state.source}, speakers {state.speakers}, peak {peak_db:.2f} dBFS",
        file=sys.stderr,
    )
    return 0


def _format_of(path: str, fallback: str) -> str:
    ext = Path(path).suffix.lstrip(".").upper()
    return {"WAV": "WAV", "FLAC": "FLAC", "AIFF": "AIFF", "AIF": "AIFF"}.get(ext, fallback)


def render_file(inp: str, out: str, subtype: str, spec, ctl, blocksize: int) -> float:
    """Stream ``inp`` through the path into ``out``; returns the output's sample peak (linear)."""
    import soundfile as sf

    from controlroom.dsp.control import PathBuffers
    from controlroom.dsp.path import render

    buffers = PathBuffers(spec, ctl)
    buffers.settle()
    x = np.zeros((CHUNK_FRAMES, spec.n_in), dtype=np.float32)
    y = np.zeros((CHUNK_FRAMES, spec.n_out), dtype=np.float32)
    peak = 0.0
    with (
        sf.SoundFile(inp) as src,
        sf.SoundFile(
            out,
            "w",
            samplerate=src.samplerate,
            channels=spec.n_out,
            subtype=subtype,
            format=_format_of(out, src.format),
        ) as dst,
    ):
        used = min(src.channels, spec.n_in)
        for block in src.blocks(blocksize=CHUNK_FRAMES, dtype="float32", always_2d=True):
            n = block.shape[0]
            x[:n, :used] = block[:, :used]
            render(x[:n], y[:n], blocksize, *buffers.arrays)
            dst.write(y[:n])
            peak = max(peak, float(np.max(np.abs(y[:n]), initial=0.0)))
    return peak
