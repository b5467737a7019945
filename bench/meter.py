"""Benchmark: ``controlroom meter`` against pyloudnorm and ffmpeg's ebur128 filter.

Each tool meters the same file (10 minutes of stereo 48 kHz program, 24-bit WAV, made once
and kept in the temp directory) as a whole process, start-up included, best of ``--repeats``:

- ours: ``python -m controlroom meter FILE`` — the full report (integrated, LRA, true and
  sample peak, max momentary/short-term), numba cache warmed by a run beforehand;
- pyloudnorm: reads the file with soundfile, integrated loudness only;
- ffmpeg: ``-af ebur128=peak=true``.

``speedup`` = their time / ours. Also the streaming meter's cost in the real-time shape:
64-frame blocks in a compiled loop, ns per (stereo) frame.

    python bench/meter.py [--json] [--seconds 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from numba import njit

from controlroom.dsp.bs1770 import meter_process, new_meter

FS = 48000
PYLOUDNORM = (
    "import sys, soundfile, pyloudnorm; x, sr = soundfile.read(sys.argv[1]); "
    "print(pyloudnorm.Meter(sr).integrated_loudness(x))"
)


def program_file(seconds: float) -> Path:
    """A stereo program-like WAV of ``seconds``: noise and tones at changing levels (cached)."""
    path = Path(tempfile.gettempdir()) / "controlroom-bench-meter" / f"program-{seconds:g}s.wav"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    partial = path.with_suffix(".part.wav")
    with soundfile.SoundFile(partial, "w", FS, 2, subtype="PCM_24", format="WAV") as f:
        left = int(seconds * FS)
        while left > 0:
            n = min(left, int(FS * rng.uniform(0.5, 8.0)))
            level = 10 ** (rng.uniform(-35.0, -6.0) / 20)
            if rng.random() < 0.5:
                part = rng.standard_normal((n, 2)) * 0.25
            else:
                t = np.arange(n) / FS
                freqs = rng.uniform(50, 5000, 2)
                part = np.sin(2 * np.pi * t[:, None] * freqs + rng.uniform(0, 6, 2))
            f.write((part * level).astype(np.float32))
            left -= n
    partial.rename(path)
    return path


def wall_time(command: list[str], repeats: int) -> float:
    """Best wall-clock time (s) of running ``command`` to completion."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    return best


def integrated_by_each(path: Path, ffmpeg: str) -> dict:
    """Each tool's integrated loudness (LUFS) of ``path``: a check that all measure the same."""
    ours = json.loads(
        subprocess.run(
            [sys.executable, "-m", "controlroom", "meter", "--json", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )["integrated_lufs"]
    pyln = float(
        subprocess.run([sys.executable, "-c", PYLOUDNORM, str(path)], check=True, capture_output=True, text=True).stdout
    )
    err = subprocess.run(
        [ffmpeg, "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    ff = float(re.findall(r"I:\s+(-?[\d.]+) LUFS", err)[-1])
    return {"ours": ours, "pyloudnorm": pyln, "ffmpeg": ff}


@njit(cache=True, nogil=True)
def _stream(state, x, blocksize):
    for start in range(0, x.shape[0] - blocksize + 1, blocksize):
        meter_process(state, x[start : start + blocksize])


def streaming_ns_per_frame(seconds: float = 60.0, blocksize: int = 64, repeats: int = 3) -> float:
    """Cost of the streaming stereo meter fed ``blocksize``-frame blocks, ns per frame."""
    x = (0.1 * np.random.default_rng(2).standard_normal((int(seconds * FS), 2))).astype(np.float32)
    _stream(new_meter(2, FS), x[: 64 * blocksize], blocksize)
    best = float("inf")
    for _ in range(repeats):
        state = new_meter(2, FS)
        t = time.perf_counter()
        _stream(state, x, blocksize)
        best = min(best, time.perf_counter() - t)
    return best / len(x) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the test program (s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool; the best counts")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("bench/meter.py needs ffmpeg")

    path = program_file(args.seconds)
    ours_cmd = [sys.executable, "-m", "controlroom", "meter", str(path)]
    subprocess.run(ours_cmd, check=True, stdout=subprocess.DEVNULL)  # warm the numba cache
    ours = wall_time(ours_cmd, args.repeats)
    pyln = wall_time([sys.executable, "-c", PYLOUDNORM, str(path)], args.repeats)
    ff = wall_time([ffmpeg, "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"], args.repeats)
    streaming = streaming_ns_per_frame()
    result = {
        "name": f"{args.seconds:g} s stereo {FS} Hz 24-bit WAV",
        "seconds_ours": round(ours, 3),
        "seconds_pyloudnorm": round(pyln, 3),
        "seconds_ffmpeg": round(ff, 3),
        "speedup_vs_pyloudnorm": round(pyln / ours, 2),
        "speedup_vs_ffmpeg": round(ff / ours, 2),
        "streaming_ns_per_frame": round(streaming, 2),
    }
    if args.json:
        print(json.dumps({"results": [result]}))
        return
    lufs = integrated_by_each(path, ffmpeg)
    print(f"loudness metering of {result['name']}, whole processes (start-up included), best of {args.repeats}")
    print(f"{'tool':<34} {'seconds':>8} {'speedup':>8} {'integrated':>11}")
    print(f"{'controlroom meter (full report)':<34} {ours:>8.2f} {1.0:>8.2f} {lufs['ours']:>11.2f}")
    print(f"{'pyloudnorm (integrated only)':<34} {pyln:>8.2f} {pyln / ours:>8.2f} {lufs['pyloudnorm']:>11.2f}")
    print(f"{'ffmpeg ebur128=peak=true':<34} {ff:>8.2f} {ff / ours:>8.2f} {lufs['ffmpeg']:>11.2f}")
    print(
        f"streaming meter, 64-frame blocks: {streaming:.1f} ns per stereo frame "
        f"({1e9 / streaming / FS:.0f} x real time on one core)"
    )


if __name__ == "__main__":
    main()
