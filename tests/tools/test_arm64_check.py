"""``tools/arm64-check``'s steps: the same on both sides, the emulated suite's waits scaled."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

from timekit import VARIABLE

TOOL = Path(__file__).resolve().parents[2] / "tools" / "arm64-check"


def load_tool():
    loader = importlib.machinery.SourceFileLoader("arm64_check", str(TOOL))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_only_the_emulated_suite_waits_longer_and_both_sides_run_the_same_steps(tmp_path):
    tool = load_tool()
    emulated = tool.steps(Path("/venv"), tmp_path, tests=True, emulated=True)
    native = tool.steps(Path("/venv"), tmp_path, tests=True, emulated=False)
    assert [name for name, _, _ in emulated] == [name for name, _, _ in native]
    scaled = {name: env[VARIABLE] for name, _, env in emulated if VARIABLE in env}
    suite = [name for name, command, _ in emulated if "pytest" in command]
    assert list(scaled) == suite and float(scaled[suite[0]]) >= 5  # a Pi's factor, at least
    assert not any(VARIABLE in env for _, _, env in native)


def test_a_suites_slowest_tests_are_kept_from_pytests_durations_report(tmp_path):
    report = (
        "........ [100%]\n"
        "============================= slowest 10 durations =============================\n"
        "27.55s call     tests/test_tour.py::test_the_readme_tour_does_what_it_says[warm]\n"
        "2.84s setup    tests/daemon/engine/test_virtual.py::test_program_passes\n"
        "1744 passed in 221.43s (0:03:41)\n"
    )
    printed = tmp_path / "report.txt"
    printed.write_text(report)
    step = load_tool().timed(["cat", str(printed)], env={"PATH": "/usr/bin:/bin"})
    assert step["status"] == 0
    assert step["slowest"] == [
        "  27.55 s  tests/test_tour.py::test_the_readme_tour_does_what_it_says[warm]",
        "   2.84 s  tests/daemon/engine/test_virtual.py::test_program_passes",
    ]


def test_what_the_preparing_commands_print_stays_off_stdout_which_json_keeps_for_itself(capfd):
    load_tool().run(["echo", "Selecting previously unselected package"])
    printed = capfd.readouterr()
    assert printed.out == "" and "Selecting previously unselected package" in printed.err
