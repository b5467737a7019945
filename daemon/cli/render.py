"""``controlroom render``: run an audio file through the monitor path, offline.

The file is processed at its own sample rate, in blocks of the configured blocksize, by the
same compiled kernel as the live engine. The state is the config's defaults plus ``--set``
overrides, applied from the first sample (no start-up cap, no ramp from silence).

OUT's format comes from its extension (IN's without one). It is rendered into a temporary file
beside it and renamed into place once complete, so a failed render leaves OUT as it was; OUT
may not be IN (nor a link to it).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from controlroom.daemon.cli import options, warmup
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
    parser.add_argument(
        "output", metavar="OUT", help="output file; its extension picks the format (none: IN's), e.g. .wav, .flac"
    )


def run(args: argparse.Namespace) -> int:
    import soundfile as sf

    config, _ = options.load(args)
    state = apply_sets(Vocabulary(config), args.sets)
    try:
        info = sf.info(args.input)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise UsageError(f"cannot read {args.input}: {exc}") from None
    out_format = output_format(args.output, info.format)
    _refuse_overwriting_input(args.input, args.output)
    # IN's sample format when OUT's format holds it, else float, else what that format takes
    kinds = (info.subtype, "FLOAT", sf.default_subtype(out_format))
    subtype = next((t for t in kinds if t is not None and sf.check_format(out_format, t)), None)
    if subtype is None:
        raise UsageError(f"cannot write {args.output}: soundfile names no sample format {out_format} takes")
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
    source = config.sources[state.source]
    missing = [c for c in source.channels if c > info.channels]
    if missing:
        print(
            f"controlroom render: warning: source {state.source} uses inputs {', '.join(map(str, source.channels))}, "
            f"but {args.input} ends at channel {info.channels}: "
            f"{'input' if len(missing) == 1 else 'inputs'} {', '.join(map(str, missing))} will be silent",
            file=sys.stderr,
        )
    from controlroom.dsp.path import render

    warmup.announce(render)
    with _replacing(args.output) as fd:
        try:
            dst = sf.SoundFile(
                fd, "w", samplerate=info.samplerate, channels=spec.n_out, subtype=subtype, format=out_format
            )
        except sf.LibsndfileError as exc:
            raise UsageError(
                f"cannot write {args.output} as {out_format} with {spec.n_out} channels: {exc.error_string}"
            ) from None
        with dst:
            peak = render_file(args.input, dst, spec, controls(config, state), config.audio.blocksize)
    peak_db = 20 * np.log10(peak) if peak > 0 else float("-inf")
    print(
        f"{args.output}: {info.frames} frames at {info.samplerate} Hz, {spec.n_out} outputs, "
        f"source {state.source}, speakers {state.speakers}, peak {peak_db:.2f} dBFS",
        file=sys.stderr,
    )
    return 0


#: Extensions that name a format by another name than soundfile's (which is the extension).
_ALIASES = {"AIF": "AIFF"}


def output_format(path: str, fallback: str) -> str:
    """The soundfile format OUT's extension names (``fallback``, IN's format, without one);
    UsageError for an extension soundfile cannot write."""
    import soundfile as sf

    extension = Path(path).suffix.lstrip(".")
    if not extension:
        return fallback
    formats = sf.available_formats()
    name = _ALIASES.get(extension.upper(), extension.upper())
    if name not in formats:
        writable = sorted([f.lower() for f in formats] + [a.lower() for a in _ALIASES])
        raise UsageError(
            f"cannot write {path}: no sound file format is called .{extension} "
            f"(soundfile writes {', '.join('.' + w for w in writable)})"
        )
    return name


def _refuse_overwriting_input(inp: str, out: str) -> None:
    # samefile compares st_dev and st_ino: a symlink or a hard link to IN is IN too
    if os.path.exists(out) and os.path.samefile(inp, out):
        raise UsageError(f"OUT {out} is IN {inp}: the output would overwrite the input (name another file)")


@contextlib.contextmanager
def _replacing(path: str) -> Iterator[int]:
    """A descriptor of a new temporary file beside ``path``, renamed to ``path`` when the block
    ends normally and removed when it does not. UsageError (with the OS's reason) when ``path``
    cannot be written: a missing directory, a directory, a file system that takes no files."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"cannot write {path}: {os.strerror(errno.EISDIR)}")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        # mkstemp makes the file private (0600); OUT gets the mode any new file would
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        yield fd
        os.replace(temporary, target)
    except OSError as exc:
        os.unlink(temporary)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        os.unlink(temporary)
        raise


def render_file(inp: str, dst, spec, ctl, blocksize: int) -> float:
    """Stream ``inp`` through the path into ``dst`` (a soundfile.SoundFile open for writing
    with ``spec.n_out`` channels); returns the output's sample peak (linear)."""
    import soundfile as sf

    from controlroom.dsp.control import PathBuffers
    from controlroom.dsp.path import render

    buffers = PathBuffers(spec, ctl)
    buffers.settle()
    x = np.zeros((CHUNK_FRAMES, spec.n_in), dtype=np.float32)
    y = np.zeros((CHUNK_FRAMES, spec.n_out), dtype=np.float32)
    peak = 0.0
    with sf.SoundFile(inp) as src:
        used = min(src.channels, spec.n_in)
        for block in src.blocks(blocksize=CHUNK_FRAMES, dtype="float32", always_2d=True):
            n = block.shape[0]
            x[:n, :used] = block[:, :used]
            render(x[:n], y[:n], blocksize, *buffers.arrays)
            dst.write(y[:n])
            peak = max(peak, float(np.max(np.abs(y[:n]), initial=0.0)))
    return peak
