"""Hostile config and mapping files: read only when they are regular files, within limits of size,
nesting, entries and integers (docs/configuration.md, "Limits"); every crossing is one error line
with its key path (or line and column), exit status 2, and a reload with such a file is rejected
with its message. Never a traceback, never a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from configkit import BASE, refused
from daemonproc import DaemonProcess, write_config

from controlroom.daemon.config import load_config
from controlroom.daemon.errors import ConfigError
from controlroom.daemon.midi.mapping import load_mapping

#: Only a safety net: each command answers at once, a hang is what these tests look for.
PROCESS_TIMEOUT_S = 120.0
INT64 = "(expected integers from -9223372036854775808 to 9223372036854775807)"
TOO_DEEP = "nested deeper than 16 levels (expected arrays and tables at most 16 deep)"


def check(config: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlroom", "check", "-c", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_S,
    )


# --- files that are not files ----------------------------------------------------------------------


def test_a_fifo_as_config_is_refused_at_once(tmp_path):
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)  # nobody writes into it: reading it would wait for ever
    done = check(fifo, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"{fifo}: is a FIFO (expected a regular file)"


def test_dev_zero_as_config_is_refused_at_once(tmp_path):
    done = check("/dev/zero", tmp_path)  # it never ends
    assert done.returncode == 2
    assert done.stderr.strip() == "/dev/zero: is a character device (expected a regular file)"


def test_a_directory_or_a_fifo_as_mapping_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "m.toml")
    with pytest.raises(ConfigError) as fifo:
        load_mapping(str(tmp_path / "m.toml"), tmp_path, "c.toml", "surfaces[0].mapping")
    assert "is neither a preset nor a file" in str(fifo.value)
    with pytest.raises(ConfigError) as directory:
        load_mapping(str(tmp_path), tmp_path, "c.toml", "surfaces[0].mapping")
    assert "is neither a preset nor a file" in str(directory.value)


def test_a_file_over_one_mebibyte_is_refused_unread(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BASE + "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == [f"{path}: is larger than 1024 KiB (expected a file of at most 1024 KiB)"]


# --- what a file may hold --------------------------------------------------------------------------

DEEP_ARRAY = "[" * 1000 + "1" + "]" * 1000
DEEP_TABLE = "{ a = " * 1000 + "1" + " }" * 1000


@pytest.mark.parametrize(
    ("line", "error"),
    [
        # brackets: refused before parsing, at the bracket that goes one level too deep
        (f"clients = {DEEP_ARRAY}", f"line 7, column 27: {TOO_DEEP}"),
        (f"clients = {DEEP_TABLE}", f"line 7, column 107: {TOO_DEEP}"),
        # a dotted key nests without brackets
        ("a" + ".a" * 30_000 + " = 1", "line 7, column 1: a dotted key of more than 16 parts (expected at most 16)"),
        ("a" + ".a" * 14 + " = { b = { c = 1 } }", f"osc.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.b: {TOO_DEEP}"),
        # integers: TOML's are 64-bit; Python's int() refuses more than 4,300 digits
        ("clients = 1" + "0" * 309, f"osc.clients: an integer of 1027 bits {INT64}"),
        ("clients = 0x" + "f" * 2000, f"osc.clients: an integer of 8000 bits {INT64}"),
        ("clients = [1" + "0" * 5000 + "]", f"line 7, column 12: an integer of more than 4300 digits {INT64}"),
        ("clients = 9223372036854775808", f"osc.clients: an integer of 64 bits {INT64}"),
        # entries: the first array or table beyond the limit, by its key path
        ("clients = [" + ", ".join(["1"] * 200_000) + "]", "osc.clients: an array of 200000 entries (expected at most 1024 entries)"),
        ("clients = {" + ", ".join(f"k{i} = 1" for i in range(1025)) + "}", "osc.clients: a table of 1025 entries (expected at most 1024 entries)"),
    ],
    ids=["array", "inline table", "dotted key", "key path", "1e309", "hex", "5000 digits", "2^63", "array", "table"],
)  # fmt: skip
def test_what_crosses_a_limit_is_one_line_with_where_it_is(line, error):
    assert refused(BASE + "[osc]\n" + line + "\n") == [f"c.toml: {error}"]


def test_within_the_limits_the_schema_speaks():
    nested = "[" * 15 + "1" + "]" * 15  # 16 levels with the table [osc] around them
    assert refused(BASE + f"[osc]\nclients = {nested}\n") == [
        'c.toml: osc.clients[0]: [[[[[[[[[[[[[[1]]]]]]]]]]]]]] is an array (expected a "host:port" address such as '
        '"127.0.0.1:9000" or "[::1]:9000")'
    ]
    assert refused(BASE + "[osc]\nclients = 9223372036854775807\n")[0].startswith(
        "c.toml: osc.clients: 9223372036854775807 is an integer"
    )
    errors = refused(BASE + "[osc]\nclients = [" + ", ".join(["1"] * 1024) + "]\n")
    assert errors[0] == "c.toml: osc.clients[0]: 1 is an integer (expected a \"host:port\" address such as \"127.0.0.1:9000\" or \"[::1]:9000\")"  # fmt: skip


def test_a_port_of_thousands_of_digits_is_out_of_range():
    assert refused(BASE + f'[osc]\nlisten = "127.0.0.1:{"9" * 5000}"\n') == [
        'c.toml: osc.listen: port of "127.0.0.1:99999999999999999999999999...: out of range '
        "(expected a UDP port (0 = any free port) from 0 to 65535)"
    ]


def test_a_megabyte_key_is_cut_short_in_its_error_line():
    [line] = refused(BASE + "[osc]\n" + "k" * 500_000 + " = 1\n")
    assert (
        line
        == 'c.toml: osc."kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...": unknown key (expected one of: listen, allow, clients, max_subscribers)'
    )


def test_a_thousand_problems_are_a_hundred_lines_and_a_count():
    errors = refused(BASE + "[osc]\n" + "".join(f"unknown{i} = 1\n" for i in range(1000)))
    assert len(errors) == 101
    assert errors[-1] == "... and 900 more problems"


def test_mapping_files_are_held_to_the_same_limits(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(f"[[control]]\ntarget = {DEEP_ARRAY}\n")
    with pytest.raises(ConfigError) as caught:
        load_mapping(str(path), tmp_path, "c.toml", "surfaces[0].mapping")
    assert caught.value.errors == [f"{path}: line 2, column 26: {TOO_DEEP}"]
    path.write_text(
        "[[control]]\ntarget = 'volume'\nmidi = { type = 'cc', channel = 1, control = 1" + "0" * 400 + " }\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_mapping(str(path), tmp_path, "c.toml", "surfaces[0].mapping")
    assert caught.value.errors == [f"{path}: control[0].midi.control: an integer of 1329 bits {INT64}"]


def test_check_exits_2_with_the_message_not_a_traceback(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(BASE + f"[osc]\nclients = {DEEP_ARRAY}\n")
    done = check(path, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"{path}: line 7, column 27: {TOO_DEEP}"


# --- reload ---------------------------------------------------------------------------------------

RUNNING = """\
[audio]
backend = "virtual"
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
[osc]
listen = "127.0.0.1:0"
"""


@pytest.mark.parametrize(
    ("hostile", "message"),
    [
        (f"clients = {DEEP_ARRAY}", TOO_DEEP),
        ("clients = 1" + "0" * 5000, "an integer of more than 4300 digits"),
    ],
    ids=["nested", "huge integer"],
)
def test_a_reload_with_a_hostile_config_is_rejected_with_its_message(tmp_path, hostile, message):
    config = write_config(tmp_path / "c.toml", RUNNING)
    with DaemonProcess(config, tmp_path / "daemon.log").start() as daemon, daemon.peer() as peer:
        daemon.wait_running(peer)
        write_config(config, RUNNING.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:0"\n{hostile}'))
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(r"reload rejected: keeping the running config", 30.0)
        log = daemon.log()
        assert f"reload rejected: {config}: " in log and message in log
        assert "Task exception was never retrieved" not in log and "Traceback" not in log
        assert peer.set("volume", -30.0)["state"]["volume"] == -30.0  # still in control
        assert daemon.terminate() == 0
