"""pyproject.toml builds with what it asks for."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_license_expression_requires_a_setuptools_that_reads_it():
    # PEP 639: `license = "MIT"` (a string) is read by setuptools 77 and later; older ones
    # (65 on Debian 12) refuse it, e.g. under `pip wheel --no-build-isolation .`
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(pyproject["project"]["license"], str)
    requires = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert len(requires) == 1
    match = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", requires[0])
    assert match is not None, requires[0]
    assert int(match.group(1)) >= 77
