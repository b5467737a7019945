"""What tests of config sections share: a minimal config, reading its refusals, and the target
names as docs/targets.md lists them (an oracle independent of the code's own lists)."""

from __future__ import annotations

import re

import pytest

from controlroom.daemon.config import parse_config
from controlroom.daemon.errors import ConfigError

#: The smallest valid config: one source, one speaker set.
BASE = """
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
"""
#: The targets with a value of their own (the state, its topics and links), as documented.
STATE_TARGETS = (
    "volume",
    "dim",
    "mute",
    "mono",
    "solo",
    "polarity",
    "speakers",
    "sub",
    "source",
    "ab",
    "match",
    "blind",
)
SWITCHES = ("dim", "mute", "mono", "polarity", "sub", "blind")
CHOICES = ("solo", "speakers", "source", "ab", "match")


def with_section(name: str, *lines: str) -> str:
    """``BASE`` and a ``[name]`` table of ``lines``."""
    return BASE + f"[{name}]\n" + "\n".join(lines) + "\n"


def refused(text: str) -> list[str]:
    """The error lines of ``text`` read as ``c.toml`` (it must be refused)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.toml")
    return caught.value.errors


def key_path(line: str) -> str:
    """The key path of an error line ``c.toml: web.key[2]: reason``, without a list index (an
    entry of a list is reported at the list's key)."""
    source, path, _ = line.split(": ", 2)
    assert source == "c.toml", line
    return re.sub(r"(\[\d+\])+$", "", path)
