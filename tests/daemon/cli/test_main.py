"""The ``controlroom`` console script itself: its version, and what a light command loads."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version


def controlroom(*args: str) -> subprocess.CompletedProcess:
    """``main(args)`` in a fresh Python; on stderr after it, the modules it had loaded."""
    code = (
        "import sys; from controlroom.daemon.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False)


def test_version_is_the_installed_distributions():
    shown = controlroom("--version")
    assert shown.stdout == f"controlroom {version('controlroom')}\n"


def test_a_light_command_loads_neither_the_package_metadata_nor_numpy():
    # ``controlroom ctl`` answers a Stream Deck button or a shell script: importlib.metadata
    # alone took a fifth of its start
    loaded = controlroom("ctl", "--help").stderr.split()
    assert "controlroom.daemon.osc.protocol" in loaded
    assert not {"importlib.metadata", "numpy", "numba", "controlroom.daemon.cli.warmup"} & set(loaded)
