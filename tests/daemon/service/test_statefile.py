"""The state file: atomic and durable saves, debouncing, and a daemon that starts
from defaults (with a warning) whatever it finds in the file. No JACK: the ``statefile`` module
directly, or ``controlroom run`` on the ``virtual`` backend.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, wait_for, write_config

from controlroom.daemon.service import statefile


def temp_files(directory: Path) -> list[Path]:
    """What an interrupted save would leave: ``mkstemp``'s ``.state-*.json``."""
    return sorted(directory.glob(".state-*"))


def document(i: int) -> dict:
    # big enough that a write takes several write() calls
    return {"targets": {"volume": -float(i % 80), "speakers": "studio"}, "padding": ["x" * 64] * 200, "i": i}


# --- atomic saves ------------------------------------------------------------------------------------


def test_the_file_always_parses_while_saving_in_a_loop(tmp_path):
    path = tmp_path / "state.json"
    statefile.save(path, document(0))
    saves = 300
    done = threading.Event()
    failures: list[BaseException] = []

    def writer():
        try:
            for i in range(1, saves + 1):
                statefile.save(path, document(i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = set()
    while not done.is_set():
        doc = json.loads(path.read_text())  # never half a file
        assert doc["version"] == statefile.FORMAT_VERSION and len(doc["padding"]) == 200
        seen.add(doc["i"])
    thread.join()
    assert failures == []
    assert json.loads(path.read_text())["i"] == saves
    assert len(seen) > 1  # the reader did overlap the writes
    assert temp_files(tmp_path) == []


def test_a_write_that_fails_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    statefile.save(path, document(1))
    old = path.read_bytes()
    # json.dump streams: the large value is written to the temporary file before the
    # unserialisable one (keys are sorted) makes it fail.
    with pytest.raises(TypeError):
        statefile.save(path, {"aaa": "y" * 100_000, "zzz": object()})
    assert path.read_bytes() == old
    assert temp_files(tmp_path) == []


def test_a_save_that_cannot_write_raises_oserror_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    statefile.save(path, document(1))
    old = path.read_bytes()
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state directory should be")
    with pytest.raises(OSError):
        statefile.save(blocked / "state.json", document(2))
    assert path.read_bytes() == old


SAVER_LOOP = """
import sys
from pathlib import Path
from controlroom.daemon.service import statefile
path = Path(sys.argv[1])
i = 0
while True:
    i += 1
    statefile.save(path, {"targets": {"volume": -float(i % 80)}, "padding": ["x" * 128] * 1000, "i": i})
    print(i, flush=True)
"""


def test_a_process_killed_while_saving_leaves_a_whole_file(tmp_path):
    # A real crash: SIGKILL a process that saves in a loop, at a random point of a write.
    path = tmp_path / "state.json"
    rng = random.Random(1122)
    last = 0
    for _ in range(10):
        child = subprocess.Popen([sys.executable, "-c", SAVER_LOOP, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(rng.randint(1, 30)):  # wait for some saves to complete
                assert child.stdout.readline(), "the saving process stopped"
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
        doc = statefile.load(path)
        assert doc["version"] == statefile.FORMAT_VERSION and len(doc["padding"]) == 1000
        assert doc["i"] >= 1
        last = doc["i"]
    assert last >= 1
    # What a killed save leaves behind is a temporary file, never the state file itself.
    assert all(p.name.startswith(".state-") for p in tmp_path.iterdir() if p != path)


# --- debouncing --------------------------------------------------------------------------------------


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_burst_of_changes_is_written_once(tmp_path):
    path = tmp_path / "state.json"
    value = {"n": 0}

    async def main():
        saver = statefile.Saver(path, lambda: {"targets": {"volume": -float(value["n"])}})
        for n in range(1000):
            value["n"] = n % 80
            saver.changed()
        await saver.flush()
        return saver.saves

    assert run(main()) == 1
    assert json.loads(path.read_text())["targets"]["volume"] == -float(999 % 80)


def test_a_knob_turned_for_a_while_is_written_a_few_times_with_the_last_value(tmp_path):
    path = tmp_path / "state.json"
    changes = 100

    async def main():
        state = {"volume": 0.0}
        saver = statefile.Saver(path, lambda: {"targets": dict(state)})
        for n in range(changes):
            state["volume"] = -n * 0.5
            saver.changed()
            await asyncio.sleep(0.005)  # the pace of an encoder being turned
        await saver.flush()
        return saver.saves

    saves = run(main())
    assert 1 <= saves <= 3  # not one per change
    assert json.loads(path.read_text())["targets"]["volume"] == -(changes - 1) * 0.5


def test_changes_that_never_stop_are_still_saved(tmp_path):
    # MAX_DELAY_S: a change waits for quiet only so long.
    path = tmp_path / "state.json"

    async def main():
        saver = statefile.Saver(path, lambda: {"targets": {"volume": -1.0}})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10 * statefile.MAX_DELAY_S
        changes = 0
        while saver.saves == 0 and loop.time() < deadline:
            saver.changed()
            changes += 1
            await asyncio.sleep(0.01)
        await saver.flush()
        return saver.saves, changes

    saves, changes = run(main())
    assert saves >= 1 and changes > 10 * saves
    assert path.exists()


def test_a_save_that_fails_is_logged_not_raised(tmp_path, caplog):
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")

    async def main():
        saver = statefile.Saver(blocked / "state.json", lambda: {"targets": {}})
        saver.changed()
        await saver.flush()
        return saver.saves

    assert run(main()) == 0
    assert "cannot save state" in caplog.text


# --- what the daemon makes of the file -------------------------------------------------------------

CONFIG = """\
[audio]
backend = "virtual"

[monitor]
volume_db = -25.0
startup_max_volume_db = -20.0

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]

[speakers.studio]
outputs = [1, 2]
[speakers.alt]
outputs = [4, 5]

[osc]
listen = "127.0.0.1:0"

[state]
path = "{state}"
"""

DEFAULTS = {"volume": -25.0, "speakers": "studio", "source": "mix", "mute": False, "dim": False}


@pytest.fixture
def daemon_with_state(tmp_path):
    """``start(state_bytes)``: a daemon on the virtual backend whose state file holds them;
    returns ``(daemon, report)`` once it runs."""
    started: list[DaemonProcess] = []
    path = tmp_path / "state.json"

    def start(content: bytes | None):
        if content is not None:
            path.write_bytes(content)
        config = write_config(tmp_path / "controlroom.toml", CONFIG.format(state=path))
        daemon = DaemonProcess(config, tmp_path / "daemon.log")
        started.append(daemon)
        daemon.start()
        with daemon.peer() as peer:
            report = daemon.wait_running(peer)
        return daemon, report

    yield start
    for daemon in started:
        daemon.close()


def subset(state: dict, expected: dict) -> dict:
    return {key: state[key] for key in expected}


CORRUPT = {
    "not json": b"{not json",
    "empty": b"",
    "truncated": b'{"version": 1, "targets": {"volume": -3',
    "zeros": b"\x00" * 512,  # what a power cut can leave on some file systems
    "invalid utf-8": b"\xff\xfe\x80garbage\xc3",
    "nested too deep": b"[" * 200_000,
    "a list": b"[1, 2, 3]",
    "targets not a table": b'{"version": 1, "targets": 5}',
    "no valid version": b'{"version": "one", "targets": {"volume": -3.0}}',
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_state_file_means_defaults_and_a_warning(daemon_with_state, content, tmp_path):
    daemon, report = daemon_with_state(content)
    assert subset(report["state"], DEFAULTS) == DEFAULTS
    log = daemon.log()
    assert "WARNING controlroom.daemon.service.statefile: state file" in log, log
    assert "Traceback" not in log
    # The daemon writes a whole state file again (its start-up state).
    path = tmp_path / "state.json"

    def saved():
        try:
            doc = json.loads(path.read_text())
        except (ValueError, OSError, RecursionError):
            return None
        return doc if isinstance(doc, dict) and isinstance(doc.get("targets"), dict) else None

    doc = wait_for(saved, 10.0, "a valid state file")
    assert doc["targets"]["volume"] == DEFAULTS["volume"]
    assert daemon.terminate() == 0
    # the unusable file was kept, as it was, for the user to look at
    [aside] = tmp_path.glob("state.json.corrupt.*")
    assert aside.read_bytes() == content
    assert f"kept as {aside}" in log


def test_invalid_saved_values_fall_back_one_by_one(daemon_with_state):
    saved = {
        "version": 1,
        "targets": {"volume": "loud", "speakers": "gone", "mute": "maybe", "dim": True, "source": "ref"},
        "match_db": [1, 2],
    }
    daemon, report = daemon_with_state(json.dumps(saved).encode())
    expected = {**DEFAULTS, "dim": True, "source": "ref"}  # the valid entries are kept
    assert subset(report["state"], expected) == expected
    log = daemon.log()
    for key in ("volume", "speakers", "mute", "match_db"):
        assert f"ignoring saved {key}" in log, log
    assert "Traceback" not in log


def test_unknown_keys_are_ignored(daemon_with_state):
    saved = {
        "version": 99,
        "future_section": {"anything": [1, 2, 3]},
        "targets": {"volume": -23.5, "speakers": "alt", "bogus": 1, "loudness_wars": "won"},
        "match_db": {"mix": 0.0, "retired_source": -4.0},
    }
    daemon, report = daemon_with_state(json.dumps(saved).encode())
    assert subset(report["state"], {"volume": -23.5, "speakers": "alt"}) == {"volume": -23.5, "speakers": "alt"}
    log = daemon.log()
    assert "ignoring unknown saved target 'bogus'" in log
    assert "ignoring unknown saved target 'loudness_wars'" in log
    assert "Traceback" not in log
    assert daemon.terminate() == 0


def test_a_volume_saved_above_the_cap_comes_back_capped(daemon_with_state, tmp_path):
    daemon, report = daemon_with_state(json.dumps({"targets": {"volume": -3.0}}).encode())
    assert report["state"]["volume"] == -20.0
    assert daemon.terminate() == 0
    assert json.loads((tmp_path / "state.json").read_text())["targets"]["volume"] == -20.0


def test_changes_over_osc_are_saved_and_restored(daemon_with_state, tmp_path):
    daemon, _ = daemon_with_state(None)
    with daemon.peer() as peer:
        peer.set("volume", -30.0)
        peer.set("speakers", "alt")
        peer.set("mute", True)
    path = tmp_path / "state.json"

    def saved():  # debounced: shortly after the change, without a shut-down
        try:
            targets = json.loads(path.read_text())["targets"]
        except (ValueError, OSError, KeyError):
            return None
        return targets if (targets["volume"], targets["speakers"], targets["mute"]) == (-30.0, "alt", True) else None

    wait_for(saved, 10.0, "the change in the state file")
    os.kill(daemon.pid, signal.SIGKILL)  # a power cut: no shut-down save
    daemon.process.wait()
    assert temp_files(tmp_path) == []
    daemon, report = daemon_with_state(None)
    assert subset(report["state"], {"volume": -30.0, "speakers": "alt", "mute": True}) == {
        "volume": -30.0,
        "speakers": "alt",
        "mute": True,
    }


def test_an_older_document_is_migrated_when_read(tmp_path, monkeypatch):
    def rename_level(doc):  # a made-up version 2 that renamed a key
        doc["targets"]["volume_db"] = doc["targets"].pop("volume")
        return doc

    monkeypatch.setattr(statefile, "FORMAT_VERSION", 2)
    monkeypatch.setattr(statefile, "MIGRATIONS", {1: rename_level})
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "targets": {"volume": -12.0}}))
    assert statefile.load(path) == {"version": 2, "targets": {"volume_db": -12.0}}
    path.write_text(json.dumps({"targets": {"volume": -6.0}}))  # no version: the first one
    assert statefile.load(path)["targets"] == {"volume_db": -6.0}


# --- files that are not state files ---------------------------------------------------------------


def test_a_fifo_in_place_of_the_state_file_means_defaults_and_a_clean_stop(daemon_with_state, tmp_path):
    os.mkfifo(tmp_path / "state.json")  # nobody ever writes into it: reading it would wait for ever
    daemon, report = daemon_with_state(None)
    assert subset(report["state"], DEFAULTS) == DEFAULTS
    log = daemon.log()
    assert "state file" in log and "is a FIFO (expected a regular file): ignored" in log, log
    assert daemon.terminate() == 0
    log = daemon.log()
    assert "is not a regular file (left as it is)" in log  # the save is refused, said so
    assert (tmp_path / "state.json").is_fifo()
    assert "Traceback" not in log


def test_a_state_file_that_leads_to_dev_zero_is_neither_read_nor_replaced(daemon_with_state, tmp_path):
    (tmp_path / "state.json").symlink_to("/dev/zero")
    daemon, report = daemon_with_state(None)
    assert subset(report["state"], DEFAULTS) == DEFAULTS
    assert "is a character device (expected a regular file): ignored" in daemon.log()
    assert daemon.terminate() == 0
    assert Path("/dev/zero").is_char_device()
    assert "Traceback" not in daemon.log()


HOSTILE = {
    "larger than 1 MiB": b'{"version": 1, "targets": {}, "pad": "' + b"x" * (1 << 20) + b'"}',
    "nested 17 deep": b'{"version": 1, "targets": {"volume": ' + b"[" * 17 + b"]" * 17 + b"}}",
    "200,000 entries": b'{"version": 1, "targets": {"volume": [' + b",".join([b"1"] * 200_000) + b"]}}",
    "an integer beyond 64 bits": b'{"version": 1, "targets": {"volume": 1' + b"0" * 400 + b"}}",
    "an integer of 5,000 digits": b'{"version": 1, "targets": {"volume": 1' + b"0" * 5000 + b"}}",
}


@pytest.mark.parametrize("content", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_state_file_beyond_the_limits_is_set_aside_with_one_short_warning(daemon_with_state, content, tmp_path):
    daemon, report = daemon_with_state(content)
    assert subset(report["state"], DEFAULTS) == DEFAULTS
    warnings = [line for line in daemon.log().splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "kept as" in warnings[0] and len(warnings[0]) < 600, warnings
    assert daemon.terminate() == 0
    [aside] = tmp_path.glob("state.json.corrupt.*")
    assert aside.read_bytes() == content


def test_many_bad_entries_are_one_warning_of_bounded_length(daemon_with_state):
    saved = {
        "version": 1,
        "targets": {f"bogus{i}": "x" * 1000 for i in range(500)}
        | {"volume": "y" * 100_000, "dim": True, "match": "hold"},
        "match_db": {"mix": -1e308, "ref": -3.0},
    }
    daemon, report = daemon_with_state(json.dumps(saved).encode())
    # the valid entries are restored; a match offset deeper than any volume is not
    assert report["state"]["dim"] is True and report["state"]["match_db"] == {"mix": 0.0, "ref": -3.0}
    warnings = [line for line in daemon.log().splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "502 entries not restored" in warnings[0] and len(warnings[0]) < statefile.MAX_WARNING_CHARS + 300
    assert "ignoring saved match_db.mix: -1e+308 dB is below -144 dB" in statefile_warning_in_full(saved)
    assert daemon.terminate() == 0


def statefile_warning_in_full(saved: dict) -> str:
    """What the restore says of ``saved`` match offsets under the fixture's config."""
    from controlroom.daemon.core import matching

    return "; ".join(matching.restore_offsets(saved["match_db"], ("mix", "ref"), 12.0)[1])
