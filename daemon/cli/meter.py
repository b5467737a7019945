"""``controlroom meter``: offline loudness report of audio files (BS.1770-4 / EBU R128).

Files are streamed through the same compiled meter the live engine uses
(``controlroom.dsp.bs1770``), in large float32 chunks read by a second thread while the
meter runs, so a long file never sits in memory and reading overlaps metering.

Exit status: 0, or 1 when ``--target`` is given and any entry fails it; 2 on bad input
(unreadable file, unknown target, ``--album`` over files of different formats).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import soundfile

from controlroom.daemon.cli import warmup
from controlroom.daemon.errors import UsageError
from controlroom.dsp.bs1770 import meter_process, new_meter, read_meter

#: Frames per read: about 1.4 s at 48 kHz, a few MB of float32.
READ_FRAMES = 65536
#: Files longer than this (s) show progress on stderr when it is a terminal.
PROGRESS_AFTER_S = 30.0
PROGRESS_INTERVAL_S = 0.2
#: JSON and target checks use figures rounded to this many decimals (0.01 dB/LU).
DECIMALS = 2


@dataclass(frozen=True)
class DeliveryTarget:
    """A delivery spec: integrated loudness within a tolerance and a true-peak ceiling."""

    name: str
    integrated_lufs: float
    tolerance_lu: float
    max_true_peak_dbtp: float
    description: str


TARGETS = {
    t.name: t
    for t in (
        DeliveryTarget("ebu-r128", -23.0, 0.5, -1.0, "EBU R128 broadcast"),
        DeliveryTarget("atsc-a85", -24.0, 2.0, -2.0, "ATSC A/85 (US broadcast)"),
        DeliveryTarget("streaming", -14.0, 1.0, -1.0, "streaming platforms (Spotify, YouTube, Tidal)"),
        DeliveryTarget("apple-music", -16.0, 1.0, -1.0, "Apple Music Sound Check"),
    )
}


@dataclass(frozen=True)
class AudioFile:
    """A file found readable: its path and format."""

    path: str
    channels: int
    samplerate: int
    frames: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--target", metavar="NAME", help="check a delivery spec (see docs/loudness.md)")
    parser.add_argument("--album", action="store_true", help="add the figures of all files played in sequence")
    parser.add_argument("files", nargs="+", metavar="FILE")


def run(args: argparse.Namespace) -> int:
    """Meter ``args.files``; print a table or JSON; return the exit status."""
    target = find_target(args.target)
    files = [probe(path) for path in args.files]
    if args.album:
        check_album(files)
    progress = sys.stderr.isatty()
    warmup.announce(meter_process)

    album = new_meter(files[0].channels, files[0].samplerate) if args.album else None
    reports = []
    for f in files:
        state = new_meter(f.channels, f.samplerate)
        meter_file(f, [state] if album is None else [state, album], progress)
        reports.append(report(f.path, f.channels, f.samplerate, f.frames, state, target))
    if album is not None:
        frames = sum(f.frames for f in files)
        reports.append(report(None, files[0].channels, files[0].samplerate, frames, album, target))

    if args.json:
        out = reports[0] if len(reports) == 1 else reports
        print(json.dumps(out, indent=2, allow_nan=False))
    else:
        print(format_table(reports))
        if target is not None:
            print()
            print(format_target_lines(reports, target))
    if target is not None and not all(r["target"]["pass"] for r in reports):
        return 1
    return 0


def find_target(name: str | None) -> DeliveryTarget | None:
    """The delivery target called ``name`` (None for none); UsageError if unknown."""
    if name is None:
        return None
    try:
        return TARGETS[name]
    except KeyError:
        raise UsageError(f"unknown target {name!r} (expected one of: {', '.join(TARGETS)})") from None


def probe(path: str) -> AudioFile:
    """Open ``path`` to learn its format; UsageError  when it cannot be read."""
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not an audio file")
    try:
        with soundfile.SoundFile(path) as f:
            found = AudioFile(path, f.channels, f.samplerate, f.frames)
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read audio ({_reason(exc)})") from None
    if found.samplerate < 1000:
        raise UsageError(f"{path}: sample rate {found.samplerate} Hz is too low to meter")
    return found


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text.splitlines()[-1] if text else type(exc).__name__


def check_album(files: list[AudioFile]) -> None:
    """``--album`` plays files in sequence: all must share channels and sample rate."""
    first = files[0]
    for f in files[1:]:
        if (f.channels, f.samplerate) != (first.channels, first.samplerate):
            raise UsageError(
                f"--album: {f.path} is {f.channels} ch at {f.samplerate} Hz but {first.path} is "
                f"{first.channels} ch at {first.samplerate} Hz (an album needs one format)",
                2,
            )


def meter_file(f: AudioFile, states: list[np.ndarray], progress: bool) -> None:
    """Stream ``f`` through every meter in ``states``; the next chunk is read meanwhile."""
    show = progress and f.frames > PROGRESS_AFTER_S * f.samplerate
    buffers = [np.empty((READ_FRAMES, f.channels), dtype=np.float32) for _ in range(2)]
    done = 0
    shown = 0.0
    try:
        with soundfile.SoundFile(f.path) as sf, ThreadPoolExecutor(1) as reader:
            pending = reader.submit(sf.read, dtype="float32", always_2d=True, out=buffers[0])
            turn = 0
            while True:
                block = pending.result()
                if len(block) == 0:
                    break
                turn ^= 1
                pending = reader.submit(sf.read, dtype="float32", always_2d=True, out=buffers[turn])
                for state in states:
                    meter_process(state, block)
                done += len(block)
                if show and time.monotonic() - shown > PROGRESS_INTERVAL_S:
                    shown = time.monotonic()
                    print(f"\r{f.path}: {100 * done // max(f.frames, 1):3d} %", end="", file=sys.stderr, flush=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise UsageError(f"{f.path}: cannot read audio ({_reason(exc)})") from None
    finally:
        if show:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _figure(value: float | None) -> float | None:
    """A figure for JSON and target checks: rounded; None for absent or infinite values."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, DECIMALS)


def report(
    path: str | None, channels: int, samplerate: int, frames: int, state: np.ndarray, target: DeliveryTarget | None
) -> dict:
    """The JSON object of one file (``path``) or of the album (``path`` None)."""
    m = read_meter(state)
    if m.nonfinite_samples:
        print(
            f"controlroom meter: {path or 'album'}: {m.nonfinite_samples} non-finite samples metered as silence",
            file=sys.stderr,
        )
    out = {
        "path": path,
        "channels": channels,
        "samplerate": samplerate,
        "duration_s": round(frames / samplerate, 3),
        "integrated_lufs": _figure(m.integrated_lufs),
        "loudness_range_lu": _figure(m.loudness_range_lu),
        "true_peak_dbtp": _figure(m.true_peak_dbtp),
        "sample_peak_dbfs": _figure(m.sample_peak_dbfs),
        "momentary_max_lufs": _figure(m.momentary_max_lufs),
        "short_term_max_lufs": _figure(m.short_term_max_lufs),
    }
    if target is not None:
        out["target"] = check_target(target, out["integrated_lufs"], out["true_peak_dbtp"])
    return out


def check_target(target: DeliveryTarget, integrated: float | None, true_peak: float | None) -> dict:
    """How a file's (rounded) figures meet ``target``; margins > 0 pass by that much, < 0 fail.

    ``true_peak`` None means digital silence: no peak, so the ceiling is met.
    """
    offset = None if integrated is None else round(integrated - target.integrated_lufs, DECIMALS)
    loudness_margin = None if offset is None else round(target.tolerance_lu - abs(offset), DECIMALS)
    peak_margin = None if true_peak is None else round(target.max_true_peak_dbtp - true_peak, DECIMALS)
    loudness_ok = loudness_margin is not None and loudness_margin >= 0.0
    peak_ok = peak_margin is None or peak_margin >= 0.0
    return {
        "name": target.name,
        "integrated_lufs": target.integrated_lufs,
        "tolerance_lu": target.tolerance_lu,
        "max_true_peak_dbtp": target.max_true_peak_dbtp,
        "integrated_offset_lu": offset,
        "integrated_margin_lu": loudness_margin,
        "integrated_pass": loudness_ok,
        "true_peak_margin_db": peak_margin,
        "true_peak_pass": peak_ok,
        "pass": loudness_ok and peak_ok,
    }


# --- human-readable output ------------------------------------------------------------------------

COLUMNS = (
    ("integrated_lufs", "I LUFS"),
    ("loudness_range_lu", "LRA LU"),
    ("true_peak_dbtp", "TP dBTP"),
    ("sample_peak_dbfs", "PEAK dBFS"),
    ("momentary_max_lufs", "M max"),
    ("short_term_max_lufs", "S max"),
)


def _name(r: dict) -> str:
    return "(album)" if r["path"] is None else os.path.basename(r["path"])


def _cell(key: str, value: float | None) -> str:
    if value is not None:
        return f"{value:.1f}"
    # None is a gated figure with nothing above its gate, or a level of digital silence
    return "-" if key in ("integrated_lufs", "loudness_range_lu") else "-inf"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60.0)
    return f"{int(minutes)}:{secs:04.1f}"


def format_table(reports: list[dict]) -> str:
    """One aligned row per report."""
    header = ["FILE", *(title for _, title in COLUMNS), "LENGTH", "FORMAT"]
    rows = [
        [
            _name(r),
            *(_cell(key, r[key]) for key, _ in COLUMNS),
            _duration(r["duration_s"]),
            f"{r['channels']} ch {r['samplerate']} Hz",
        ]
        for r in reports
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])] + [row[-1]]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def format_target_lines(reports: list[dict], target: DeliveryTarget) -> str:
    """A verdict per report: PASS/FAIL and by how much."""
    lines = [
        f"{target.name}: {target.integrated_lufs:.1f} LUFS ±{target.tolerance_lu:g} LU, "
        f"true peak ≤ {target.max_true_peak_dbtp:.1f} dBTP"
    ]
    for r in reports:
        t = r["target"]
        if t["integrated_offset_lu"] is None:
            loudness = "no integrated loudness (silence)"
        else:
            offset = t["integrated_offset_lu"]
            if abs(offset) < 0.05:
                where = "on target"
            else:
                where = f"{abs(offset):.1f} LU {'louder' if offset > 0 else 'quieter'} than target"
            inside = "within" if t["integrated_pass"] else "outside"
            loudness = (
                f"integrated {r['integrated_lufs']:.1f} LUFS, {where} "
                f"({inside} tolerance by {abs(t['integrated_margin_lu']):.1f} LU)"
            )
        if t["true_peak_margin_db"] is None:
            peak = "no true peak (silence)"
        else:
            margin = t["true_peak_margin_db"]
            side = "under" if margin >= 0 else "over"
            peak = f"true peak {r['true_peak_dbtp']:.1f} dBTP, {abs(margin):.1f} dB {side} the limit"
        lines.append(f"  {'PASS' if t['pass'] else 'FAIL'}  {_name(r)}: {loudness}; {peak}")
    return "\n".join(lines)
