"""Blind comparison and ABX: random labels, nothing that tells them before the reveal, switches
that sound alike whichever source a label stands for, ABX scoring, the p-value and the log.

Daemons run on the virtual backend with OSC on a free loopback port; ``Peer.barrier()`` (a state
query answered after everything sent before it) is the synchronisation.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import numpy as np
import pytest
from daemonkit import SAMPLERATE, Levels, OutputTap, config, program, running, windows_full
from osckit import Peer, ctl, errors, run
from scipy.stats import binomtest

from controlroom.daemon.config import parse_config
from controlroom.daemon.core.comparison import p_value
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.errors import TargetError

PAIR = re.compile(r"\b(mix|ref)\b")
BOTH_MAPPINGS = ({"x": "mix", "y": "ref"}, {"x": "ref", "y": "mix"})
SESSIONS = 40
PROCESS_TIMEOUT_S = 60


def names_in(messages: list[tuple[str, list[Any]]]) -> list[tuple[str, list[Any]]]:
    """The messages that name a source of the pair, in their address or a string argument."""
    return [(a, p) for a, p in messages if PAIR.search(a) or any(isinstance(v, str) and PAIR.search(v) for v in p)]


def not_meters(messages: list[tuple[str, list[Any]]]) -> list[tuple[str, tuple]]:
    return [(a, tuple(p)) for a, p in messages if not a.startswith("/controlroom/meters/")]


def since(messages: list[tuple[str, list[Any]]], first: tuple[str, list[Any]]) -> list[tuple[str, list[Any]]]:
    """``messages`` from ``first`` on: meters sent before the daemon handled a command may
    arrive after the command was sent."""
    return messages[messages.index(first) :]


# --- blind ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_blind_labels_are_random_and_nothing_tells_them_before_the_reveal():
    async def scenario():
        async with running(config("window_s = 2.0"), program=program()) as daemon:
            await windows_full(daemon)  # real offsets and meters, all worth hiding
            peer = await Peer.open(daemon.osc.port)
            peer.send("/controlroom/subscribe")
            await peer.barrier()
            mappings, sessions = [], set()
            for _ in range(SESSIONS):
                await peer.barrier()  # what came before this session
                for address, *args in (
                    ("/controlroom/blind", 1),
                    ("/controlroom/ab/next",),
                    ("/controlroom/ab", "x"),
                    ("/controlroom/source", "y"),
                    ("/controlroom/source", "tape"),
                    ("/controlroom/subscribe",),
                    ("/controlroom/ab", "b"),  # a and b pick x and y: A/B buttons keep working
                ):
                    peer.send(address, *args)
                blind = since(await peer.barrier(), ("/controlroom/blind", [1]))
                report = peer.last_report
                assert errors(blind) == []
                assert names_in(blind) == []
                assert not PAIR.search(json.dumps(report)), report
                assert (report["state"]["source"], report["state"]["ab"]) == ("y", "y")
                assert set(report["state"]["match_db"]) == {"tape"}
                assert report["state"]["blind_mapping"] is None
                sessions.add(tuple(not_meters(blind)))

                peer.send("/controlroom/blind/reveal")
                revealed = await peer.barrier()
                [(x, mapping_x, y, mapping_y)] = [p for a, p in revealed if a == "/controlroom/blind/reveal"]
                mapping = {x: mapping_x, y: mapping_y}
                assert mapping in BOTH_MAPPINGS
                state = peer.last_report["state"]
                assert state["blind"] is False and state["blind_mapping"] == mapping
                assert state["source"] == mapping["y"]  # what was playing as y, by name
                assert set(state["match_db"]) == {"mix", "ref", "tape"}
                mappings.append(mapping)
            assert all(m in mappings for m in BOTH_MAPPINGS), mappings
            assert len(sessions) == 1  # the same feedback whichever source each label stood for

    run(scenario, timeout=300)


def test_matching_works_blind_alike_for_either_assignment_and_stays_hidden():
    cfg = config()
    levels = {"mix": -20.0, "ref": -14.0}
    c = Controller(cfg, Vocabulary(cfg).initial(), measure=Levels(**levels))
    heard: list = []
    c.add_listener(lambda changes, origin: c.state.blind and heard.append(changes))
    announced = {}  # mapping -> what listeners heard during the test
    for _ in range(SESSIONS):
        heard.clear()
        c.apply("blind", "set", True)
        assert c.apply("ab", "set", "y") == {"source": "y", "ab": "y"}
        c.apply("ab", "set", "x")
        mapping = c.comparison.reveal()
        announced[tuple(mapping.items())] = list(heard)
        # the labels were matched both ways: each plays at the loudness of the other
        assert levels[mapping["x"]] + c.match_db[mapping["x"]] == pytest.approx(
            levels[mapping["y"]] + c.match_db[mapping["y"]], abs=0.011
        )
    first, second = announced.values()  # both assignments came up
    assert first == second
    assert all(set(changes.get("match_db", {})) <= {"tape"} for changes in first)


def test_a_restart_ends_a_blind_test():
    cfg = config()
    state = Vocabulary(cfg).initial()
    state.blind = True  # e.g. saved while a test ran
    c = Controller(cfg, state)
    assert c.state.blind is False and c.comparison.concealment is None
    assert c.view()["source"] == "mix"


def test_a_reload_that_changes_the_pair_ends_the_test():
    cfg = config()
    c = Controller(cfg, Vocabulary(cfg).initial())
    c.apply("blind", "set", True)
    heard = []
    c.add_listener(lambda changes, origin: heard.append((changes, origin)))
    c.reload(parse_config(CONFIG_WITH_PAIR.format(b="tape")))
    assert c.state.blind is False and c.comparison.concealment is None
    assert heard[0][1] == "reload" and heard[0][0]["blind"] is False
    assert c.comparison.revealed is not None and set(c.comparison.revealed.values()) == {"mix", "ref"}


CONFIG_WITH_PAIR = """
[audio]
backend = "virtual"
[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]
[sources.tape]
channels = [5]
[speakers.studio]
outputs = [1, 2]
[ab]
a = "mix"
b = "{b}"
"""


def test_blind_and_abx_need_a_pair():
    cfg = parse_config(CONFIG_WITH_PAIR.split("[ab]")[0])
    c = Controller(cfg, Vocabulary(cfg).initial())
    with pytest.raises(TargetError, match=r"blind needs an \[ab\] pair"):
        c.apply("blind", "toggle")
    with pytest.raises(TargetError, match=r"abx needs an \[ab\] pair"):
        c.comparison.abx_start(4)
    assert c.state.blind is False


# --- switches through silence -----------------------------------------------------------------

DIP_WINDOW = SAMPLERATE // 1000  # 1 ms
DIP_DB = 20.0  # a crossfade between two sources of about equal loudness keeps the power level


def has_dip(x: np.ndarray) -> bool:
    """Whether the output's level fell more than ``DIP_DB`` below its median in some 1 ms
    window of ``x``: a fade out to silence and back in."""
    frames = len(x) // DIP_WINDOW * DIP_WINDOW
    energy = np.square(x[:frames].astype(float)).reshape(-1, DIP_WINDOW * x.shape[1]).sum(axis=1)
    return bool(energy.min() < np.median(energy) * 10 ** (-DIP_DB / 10))


@pytest.mark.slow
def test_every_switch_in_a_test_goes_through_silence_whatever_the_label_stands_for():
    """Without the way through silence, a -> x would be silent when X is A and a crossfade when
    X is B: the switch itself would give X away."""

    async def scenario():
        async with running(config(), program=program()) as daemon:
            c = daemon.controller
            tap = OutputTap(daemon)
            assert not has_dip(await tap.record(SAMPLERATE // 10))  # mix plays
            c.apply("blind", "set", True)  # x is mix or ref: silence either way
            assert has_dip(await tap.record(SAMPLERATE // 4))
            c.apply("blind", "set", False)
            c.comparison.abx_start(20)
            await tap.record(SAMPLERATE // 4)  # A plays, after a silence of its own
            seen = set()
            while seen != {"a", "b"}:
                seen.add(c.comparison.abx.x)
                tap = OutputTap(daemon)
                c.comparison.abx_play("x")  # from a
                x = await tap.record(SAMPLERATE // 4)
                assert has_dip(x), c.comparison.abx.x
                assert not has_dip(x[-SAMPLERATE // 10 :])  # and X plays after it
                tap = OutputTap(daemon)
                c.comparison.abx_answer("a")  # the next trial begins with A, through silence too
                assert has_dip(await tap.record(SAMPLERATE // 4))
            # outside a test a switch is a plain crossfade
            c.comparison.abx_stop()
            tap = OutputTap(daemon)
            c.apply("source", "set", "ref" if c.state.source == "mix" else "mix")
            assert not has_dip(await tap.record(SAMPLERATE // 4))

    run(scenario)


# --- ABX --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trials", [1, 5, 10, 16, 25])
def test_p_value_is_the_one_sided_binomial(trials):
    for correct in range(trials + 1):
        expected = binomtest(correct, trials, 0.5, alternative="greater").pvalue
        assert p_value(correct, trials) == pytest.approx(expected, rel=1e-12)
    assert p_value(0, 0) == 1.0


def test_abx_scores_reports_and_logs(tmp_path):
    trials = 12
    right = [t % 4 != 3 for t in range(trials)]  # 9 of 12

    async def scenario():
        async with running(config(), state_path=tmp_path / "state.json") as daemon:
            c = daemon.controller
            peer = await Peer.open(daemon.osc.port)
            peer.send("/controlroom/abx/start", trials)
            assert errors(await peer.barrier()) == []
            state = peer.last_report["state"]
            assert state["abx"] == {
                "running": True,
                "a": "mix",
                "b": "ref",
                "trials": trials,
                "done": 0,
                "correct": 0,
                "p_value": 1.0,
            }
            assert (state["source"], state["ab"]) == ("a", "a") and set(state["match_db"]) == {"tape"}
            drawn = []
            for t in range(trials):
                drawn.append(c.comparison.abx.x)
                peer.send("/controlroom/abx/play", "x")
                played = await peer.barrier()
                assert names_in(played) == [] and peer.last_report["state"]["source"] == "x"
                peer.send("/controlroom/abx/play", "b")
                peer.send("/controlroom/abx/answer", drawn[-1] if right[t] else {"a": "b", "b": "a"}[drawn[-1]])
                assert errors(await peer.barrier()) == []
                abx = peer.last_report["state"]["abx"]
                done, correct = t + 1, sum(right[: t + 1])
                assert (abx["done"], abx["correct"]) == (done, correct)
                expected = binomtest(correct, done, 0.5, alternative="greater").pvalue
                assert abx["p_value"] == pytest.approx(expected, rel=1e-12)
            state = peer.last_report["state"]
            assert state["abx"]["running"] is False and state["source"] in ("mix", "ref")
            assert set(state["match_db"]) == {"mix", "ref", "tape"}
            return drawn

    drawn = asyncio.run(asyncio.wait_for(scenario(), 120))
    lines = (tmp_path / "abx.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["trial"] for r in records] == list(range(1, trials + 1))
    assert [r["x"] for r in records] == drawn
    assert [r["correct"] for r in records] == right
    assert len({r["test"] for r in records}) == 1 and {r["trials"] for r in records} == {trials}
    assert records[-1]["score"] == 9
    assert records[-1]["p_value"] == pytest.approx(binomtest(9, trials, 0.5, alternative="greater").pvalue)


def test_no_abx_log_without_persistence(tmp_path, monkeypatch):
    for variable in ("HOME", "XDG_STATE_HOME", "STATE_DIRECTORY"):
        monkeypatch.setenv(variable, str(tmp_path))

    async def scenario():
        async with running(config(), state_path=None) as daemon:
            c = daemon.controller
            assert c.abx_log is None
            c.comparison.abx_start(2)
            c.comparison.abx_answer("a")
            c.comparison.abx_answer("b")
            assert c.comparison.abx.done == 2

    run(scenario)
    assert list(tmp_path.rglob("*.jsonl")) == []


def test_refusals_say_why_and_change_nothing():
    async def scenario():
        async with running(config()) as daemon:
            peer = await Peer.open(daemon.osc.port)
            for address, *args in (
                ("/controlroom/abx/answer", "a"),
                ("/controlroom/abx/play", "x"),
                ("/controlroom/abx/stop",),
                ("/controlroom/abx/start", 0),
                ("/controlroom/abx/start", 1.5),
                ("/controlroom/abx/start", 101),
                ("/controlroom/abx/start", "many"),
                ("/controlroom/abx/start",),
                ("/controlroom/blind/reveal",),
            ):
                peer.send(address, *args)
            refused = errors(await peer.barrier())
            assert len(refused) == 9, refused
            assert "no ABX test is running" in refused[0] and "no blind test to reveal" in refused[-1]
            assert peer.last_report["state"]["abx"] is None

            peer.send("/controlroom/blind", "on")
            peer.send("/controlroom/abx/start", 4)
            peer.send("/controlroom/source", "mix")
            peer.send("/controlroom/ab", "z")
            refused = errors(await peer.barrier())
            assert len(refused) == 3 and "blind is on" in refused[0]
            assert "expected one of x, y, tape" in refused[1] and "expected one of x, y" in refused[2]

            peer.send("/controlroom/blind", "off")
            peer.send("/controlroom/abx/start", 4)
            peer.send("/controlroom/blind", "on")
            peer.send("/controlroom/abx/answer", "x")
            refused = errors(await peer.barrier())
            assert len(refused) == 2 and "ABX test is running" in refused[0] and "expected one of a, b" in refused[1]
            assert peer.last_report["state"]["blind"] is False

    run(scenario)


def test_ctl_drives_blind_tests_and_abx():
    async def scenario():
        async with running(config()) as daemon:
            port = daemon.osc.port

            async def say(*args: str) -> str:
                result = await asyncio.to_thread(ctl, port, *args)
                assert result.returncode == 0, result.stderr
                return result.stdout.strip()

            assert await say("blind", "on") == "blind on"
            assert await say("ab", "y") == "ab y"
            revealed = await say("blind", "reveal")
            assert revealed in (f"blind off\nblind_mapping x={m['x']}  y={m['y']}" for m in BOTH_MAPPINGS)
            assert await say("abx") == "abx: no test yet"
            assert await say("abx", "start", "3") == "abx mix vs ref running: 0 of 0 correct (3 trials), p = 1"
            await say("abx", "play", "x")
            x = daemon.controller.comparison.abx.x
            assert await say("abx", "answer", x) == "abx mix vs ref running: 1 of 1 correct (3 trials), p = 0.5"
            await say("abx", "answer", x)  # the next X is a new draw: maybe wrong
            summary = json.loads(await say("--json", "abx", "stop"))["abx"]
            assert summary["running"] is False and summary["done"] == 2
            assert (
                await say("abx") == f"abx mix vs ref stopped: {summary['correct']} of 2 correct (3 trials), "
                f"p = {p_value(summary['correct'], 2):.4g}"
            )
            bad = await asyncio.to_thread(ctl, port, "abx", "answer", "a")
            assert bad.returncode == 1 and "no ABX test is running" in bad.stderr

    run(scenario)
