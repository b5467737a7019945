"""``controlroom meter``: output formats, --album, --target and exit statuses.

Expected figures come from how the test files are built (1 kHz sines at known levels read
their level in LUFS: EBU Tech 3341 cases 1-2), never from earlier output of this command.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from controlroom.daemon.cli import main

SR = 48_000
FIELDS = {
    "path",
    "channels",
    "samplerate",
    "duration_s",
    "integrated_lufs",
    "loudness_range_lu",
    "true_peak_dbtp",
    "sample_peak_dbfs",
    "momentary_max_lufs",
    "short_term_max_lufs",
}


def tone(path, dbfs: float, seconds: float = 6.0, sr: int = SR, channels: int = 2, subtype: str = "PCM_24"):
    """A 1 kHz sine of peak ``dbfs`` on every channel; stereo reads ``dbfs`` LUFS (Tech 3341)."""
    n = int(seconds * sr)
    x = 10 ** (dbfs / 20) * np.sin(2 * np.pi * 1000.0 * np.arange(n) / sr)
    soundfile.write(path, np.repeat(x[:, None], channels, axis=1), sr, subtype=subtype)
    return str(path)


def meter_json(capsys, *args) -> tuple[int, object]:
    status = main(["meter", "--json", *args])
    return status, json.loads(capsys.readouterr().out)


def run_cli(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "controlroom", "meter", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_json_for_one_file_is_an_object(tmp_path, capsys):
    path = tone(tmp_path / "a.wav", -23.0, seconds=5.0)
    status, out = meter_json(capsys, path)
    assert status == 0
    assert set(out) == FIELDS
    assert out["path"] == path and out["channels"] == 2 and out["samplerate"] == SR
    assert out["duration_s"] == pytest.approx(5.0)
    assert out["integrated_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert out["momentary_max_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert out["short_term_max_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert out["loudness_range_lu"] == pytest.approx(0.0, abs=0.1)
    assert out["sample_peak_dbfs"] == pytest.approx(-23.0, abs=0.01)
    assert -23.4 <= out["true_peak_dbtp"] <= -22.8


def test_json_for_several_files_is_an_array_in_order(tmp_path, capsys):
    paths = [tone(tmp_path / "a.wav", -20.0), tone(tmp_path / "b.flac", -30.0, subtype="PCM_16")]
    status, out = meter_json(capsys, *paths)
    assert status == 0
    assert [o["path"] for o in out] == paths
    assert [o["integrated_lufs"] for o in out] == pytest.approx([-20.0, -30.0], abs=0.1)


def test_any_channel_count_and_aiff(tmp_path, capsys):
    path = tone(tmp_path / "six.aiff", -30.0, channels=6)
    status, out = meter_json(capsys, path)
    assert status == 0 and out["channels"] == 6
    # L R C at weight 1, LFE 0, Ls Rs at +1.5 dB: 3 + 2 * 10 ** 0.15 stereo halves
    expected = -30.0 + 10 * math.log10((3 + 2 * 10**0.15) / 2)
    assert out["integrated_lufs"] == pytest.approx(expected, abs=0.1)


def test_album_adds_the_files_played_in_sequence(tmp_path, capsys):
    a = tone(tmp_path / "a.wav", -20.0, seconds=10.0)
    b = tone(tmp_path / "b.wav", -26.0, seconds=10.0)
    status, out = meter_json(capsys, "--album", a, b)
    assert status == 0
    assert len(out) == 3 and out[2]["path"] is None and set(out[2]) == FIELDS
    album = out[2]
    # equal durations: the gated mean of the two levels' energies (-26 is above the -10 LU gate)
    expected = 10 * math.log10((10**-2.0 + 10**-2.6) / 2)
    assert album["integrated_lufs"] == pytest.approx(expected, abs=0.1)
    assert album["duration_s"] == pytest.approx(20.0)
    assert album["true_peak_dbtp"] == pytest.approx(out[0]["true_peak_dbtp"], abs=0.05)
    assert album["loudness_range_lu"] == pytest.approx(6.0, abs=1.0)


def test_album_of_one_file_is_still_an_array(tmp_path, capsys):
    status, out = meter_json(capsys, "--album", tone(tmp_path / "a.wav", -20.0))
    assert status == 0 and len(out) == 2 and out[1]["path"] is None
    assert out[1]["integrated_lufs"] == out[0]["integrated_lufs"]


def test_album_of_different_formats_is_refused(tmp_path, capsys):
    a = tone(tmp_path / "a.wav", -20.0)
    b = tone(tmp_path / "b.wav", -20.0, sr=44_100)
    assert main(["meter", "--album", a, b]) == 2
    assert "--album" in capsys.readouterr().err


def test_target_pass_reports_the_margins(tmp_path, capsys):
    status, out = meter_json(capsys, "--target", "ebu-r128", tone(tmp_path / "a.wav", -23.0))
    assert status == 0
    t = out["target"]
    assert t["name"] == "ebu-r128" and t["pass"] is True
    assert (t["integrated_lufs"], t["tolerance_lu"], t["max_true_peak_dbtp"]) == (-23.0, 0.5, -1.0)
    assert t["integrated_offset_lu"] == pytest.approx(out["integrated_lufs"] + 23.0, abs=0.011)
    assert t["integrated_margin_lu"] == pytest.approx(0.5 - abs(t["integrated_offset_lu"]), abs=0.011)
    assert t["true_peak_margin_db"] == pytest.approx(-1.0 - out["true_peak_dbtp"], abs=0.011)


@pytest.mark.parametrize(
    "target,dbfs,loudness_ok,peak_ok",
    [
        ("ebu-r128", -20.0, False, True),  # 3 LU too loud
        ("atsc-a85", -25.5, True, True),  # within +-2
        ("atsc-a85", -27.0, False, True),
        ("streaming", -14.5, True, True),
        ("streaming", -12.0, False, True),
        ("apple-music", -16.0, True, True),
        ("apple-music", -0.5, False, False),  # true peak over -1 dBTP too
    ],
)
def test_targets(tmp_path, capsys, target, dbfs, loudness_ok, peak_ok):
    status, out = meter_json(capsys, "--target", target, tone(tmp_path / "a.wav", dbfs))
    t = out["target"]
    assert (t["integrated_pass"], t["true_peak_pass"], t["pass"]) == (loudness_ok, peak_ok, loudness_ok and peak_ok)
    assert status == (0 if loudness_ok and peak_ok else 1)


def test_failing_target_says_by_how_much(tmp_path, capsys):
    status = main(["meter", "--target", "ebu-r128", tone(tmp_path / "loud.wav", -20.0)])
    text = capsys.readouterr().out
    assert status == 1
    assert "FAIL" in text and "loud.wav" in text and "3.0 LU louder" in text


def test_one_failing_file_fails_the_run(tmp_path, capsys):
    good = tone(tmp_path / "good.wav", -23.0)
    bad = tone(tmp_path / "bad.wav", -30.0)
    status, out = meter_json(capsys, "--target", "ebu-r128", good, bad)
    assert status == 1 and [o["target"]["pass"] for o in out] == [True, False]


def test_silence_is_null_in_json_and_fails_a_target(tmp_path, capsys):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros((SR * 4, 2)), SR)
    status, out = meter_json(capsys, "--target", "streaming", str(path))
    for key in FIELDS - {"path", "channels", "samplerate", "duration_s"}:
        assert out[key] is None, key
    assert out["target"]["integrated_pass"] is False and out["target"]["true_peak_pass"] is True
    assert status == 1


def test_table_lists_each_file(tmp_path, capsys):
    paths = [tone(tmp_path / "first.wav", -20.0), tone(tmp_path / "second.wav", -30.0)]
    assert main(["meter", "--album", *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["FILE", "I", "LUFS"]
    assert lines[1].startswith("first.wav") and "-20.0" in lines[1]
    assert lines[2].startswith("second.wav") and "-30.0" in lines[2]
    assert lines[3].startswith("(album)")


def test_cli_subprocess_json_and_exit_status(tmp_path):
    run = run_cli("--json", "--target", "ebu-r128", tone(tmp_path / "a.wav", -23.0))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["target"]["pass"] is True
    run = run_cli("--target", "ebu-r128", tone(tmp_path / "b.wav", -10.0))
    assert run.returncode == 1 and "FAIL" in run.stdout


@pytest.mark.parametrize(
    "make",
    [
        lambda d: ["--target", "no-such-spec", tone(d / "a.wav", -23.0)],
        lambda d: [str(d / "missing.wav")],
        lambda d: [str(d / "text.wav")],
        lambda d: [tone(d / "a.wav", -23.0), str(d)],  # a directory
    ],
    ids=["unknown-target", "missing", "not-audio", "directory"],
)
def test_bad_input_exits_2_without_traceback(tmp_path, make):
    (tmp_path / "text.wav").write_text("this is not a wave file\n")
    run = run_cli(*make(tmp_path))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("controlroom meter: ") and run.stdout == ""
