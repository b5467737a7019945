"""``controlroom render`` as a user runs it: where it writes, what it refuses, what it warns about.

What the path does to the audio is tested in tests/dsp/ against scipy; here the files only
need to tell silence from signal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[3]
STUDIO = str(REPO / "examples" / "studio.toml")  # mix is inputs 1-2, ref 3-4; 8 outputs
SR = 48_000
PROCESS_TIMEOUT_S = 300  # the first render compiles the kernel


def render(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "controlroom", "render", "-c", STUDIO, *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)


@pytest.fixture
def mix(tmp_path) -> Path:
    """A stereo noise file at -20 dBFS RMS, 0.5 s."""
    path = tmp_path / "mix.wav"
    noise = np.random.default_rng(1).normal(0.0, 0.1, (SR // 2, 2))
    soundfile.write(path, noise, SR, subtype="PCM_24")
    return path


@pytest.mark.parametrize("link", ["same name", "symlink", "hard link"])
def test_out_that_is_in_is_refused_and_in_is_untouched(tmp_path, mix, link):
    before = mix.read_bytes()
    out = {"same name": mix, "symlink": tmp_path / "link.wav", "hard link": tmp_path / "hard.wav"}[link]
    if link == "symlink":
        out.symlink_to(mix.name)
    elif link == "hard link":
        os.link(mix, out)
    result = render(tmp_path, "mix.wav", out.name)
    assert result.returncode == 2
    assert result.stderr == (
        f"controlroom render: OUT {out.name} is IN mix.wav: the output would overwrite the input (name another file)\n"
    )
    assert mix.read_bytes() == before


@pytest.mark.parametrize(
    ("out", "reason"),
    [("missing/x.wav", "No such file or directory"), ("adir", "Is a directory")],
    ids=["missing directory", "directory"],
)
def test_an_out_that_cannot_be_written_says_why(tmp_path, mix, out, reason):
    (tmp_path / "adir").mkdir()
    result = render(tmp_path, "mix.wav", out)
    assert result.returncode == 2
    assert result.stderr == f"controlroom render: cannot write {out}: {reason}\n"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc")
def test_an_out_in_proc_says_why(tmp_path, mix):
    result = render(tmp_path, "mix.wav", "/proc/x.wav")
    assert result.returncode == 2
    assert result.stderr == "controlroom render: cannot write /proc/x.wav: No such file or directory\n"


@pytest.mark.parametrize("out", ["out.txt", "out.xyz"])
def test_an_extension_soundfile_cannot_write_is_refused_with_what_it_can(tmp_path, mix, out):
    result = render(tmp_path, "mix.wav", out)
    assert result.returncode == 2
    assert result.stderr.startswith(f"controlroom render: cannot write {out}: no sound file format is called .")
    for name in soundfile.available_formats():
        assert f".{name.lower()}" in result.stderr
    assert not (tmp_path / out).exists()


def test_a_failed_render_leaves_out_as_it_was_and_nothing_beside_it(tmp_path, mix):
    # MP3 holds 2 channels at most and the studio has 8 outputs: refused by the extension
    # where libsndfile has no MP3, by libsndfile where it has
    out = tmp_path / "out.mp3"
    out.write_bytes(b"an earlier render")
    result = render(tmp_path, "mix.wav", out.name)
    assert result.returncode == 2
    assert result.stderr.startswith("controlroom render: cannot write out.mp3")
    assert "Traceback" not in result.stderr
    assert out.read_bytes() == b"an earlier render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav", "out.mp3"]


def test_a_render_replaces_out_with_a_file_of_the_extensions_format(tmp_path, mix):
    out = tmp_path / "out.flac"
    out.write_bytes(b"an earlier render")
    result = render(tmp_path, "mix.wav", out.name)
    assert result.returncode == 0, result.stderr
    info = soundfile.info(out)
    assert (info.format, info.channels, info.frames) == ("FLAC", 8, SR // 2)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav", "out.flac"]


def test_a_source_on_inputs_the_file_lacks_is_warned_about_and_still_rendered(tmp_path, mix):
    result = render(tmp_path, "--set", "source=ref", "mix.wav", "out.wav")
    assert result.returncode == 0, result.stderr
    assert (
        "controlroom render: warning: source ref uses inputs 3, 4, but mix.wav ends at channel 2: "
        "inputs 3, 4 will be silent\n"
    ) in result.stderr
    assert not np.any(soundfile.read(tmp_path / "out.wav")[0])


def test_a_source_on_inputs_the_file_has_is_not_warned_about(tmp_path, mix):
    result = render(tmp_path, "--set", "source=mix", "mix.wav", "out.wav")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert np.any(soundfile.read(tmp_path / "out.wav")[0])
