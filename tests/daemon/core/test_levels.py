"""Named listening levels (the write-only ``level`` target) and the volume in dB SPL."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from daemonkit import running
from osckit import Peer, ctl, errors, run, without_meters

from controlroom.daemon.cli.render import apply_sets
from controlroom.daemon.config import parse_config
from controlroom.daemon.core.controller import Controller
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.errors import ConfigError, TargetError

CONFIG_TOML = """
[audio]
backend = "virtual"

[monitor]
max_volume_db = {max_volume_db}
{calibration}

[sources.mix]
channels = [1, 2]

[speakers.studio]
outputs = [1, 2]

[levels]
reference = 0.0
quiet = -20.0
loud = 6.0

[osc]
listen = "127.0.0.1:0"
"""


def config(max_volume_db: float = 6.0, calibration: str = "reference_spl_db = 83.0"):
    return parse_config(CONFIG_TOML.format(max_volume_db=max_volume_db, calibration=calibration))


def test_a_level_above_max_volume_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        config(max_volume_db=0.0)
    [line] = error.value.errors
    assert "levels.loud" in line and "6.0" in line


def test_a_level_sets_the_volume_and_nothing_else():
    cfg = config()
    vocabulary = Vocabulary(cfg)
    state = vocabulary.initial()
    assert vocabulary.set(state, "level", "quiet") == {}  # -20 dB already
    assert vocabulary.set(state, "level", "reference") == {"volume": 0.0}
    assert vocabulary.set(state, "level", 2) == {"volume": 6.0}  # by index, as enum targets
    assert not hasattr(state, "level")
    for bad in ("nope", 3, 1.5, True):
        with pytest.raises(TargetError):
            vocabulary.set(state, "level", bad)
    assert state.volume == 6.0
    with pytest.raises(TargetError, match="cannot toggle"):
        vocabulary.toggle(state, "level")
    with pytest.raises(TargetError, match="cannot step"):
        vocabulary.step(state, "level", 1)
    assert apply_sets(vocabulary, ["level=quiet"]).volume == -20.0  # render --set, too


def test_level_without_levels_is_refused():
    cfg = parse_config(CONFIG_TOML.split("[levels]")[0].format(max_volume_db=0.0, calibration=""))
    c = Controller(cfg, Vocabulary(cfg).initial())
    with pytest.raises(TargetError, match="none are configured"):
        c.apply("level", "set", "quiet")


def test_levels_and_spl_over_osc():
    async def scenario():
        async with running(config()) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send("/controlroom/subscribe")
            whole = dict((a, p) for a, p in await peer.barrier())
            assert whole["/controlroom/volume_spl_db"] == [63.0]
            assert "/controlroom/level" not in whole

            peer.send("/controlroom/level", "reference")
            assert without_meters(await peer.barrier()) == [
                ("/controlroom/volume", [0.0]),
                ("/controlroom/volume_spl_db", [83.0]),
            ]
            state = peer.last_report["state"]
            assert (state["volume"], state["volume_spl_db"]) == (0.0, 83.0) and "level" not in state

            peer.send("/controlroom/level", 1)
            peer.send("/controlroom/volume/step", -1.5)
            assert without_meters(await peer.barrier()) == [
                ("/controlroom/volume", [-20.0]),
                ("/controlroom/volume_spl_db", [63.0]),
                ("/controlroom/volume", [-21.5]),
                ("/controlroom/volume_spl_db", [61.5]),
            ]
            # dim and mute are targets of their own: the SPL is that of the volume setting
            peer.send("/controlroom/dim", 1)
            assert without_meters(await peer.barrier()) == [("/controlroom/dim", [1])]

            for address, *args in (
                ("/controlroom/level", "nope"),
                ("/controlroom/level/toggle",),
                ("/controlroom/level/next",),
                ("/controlroom/level/step", 1.0),
            ):
                peer.send(address, *args)
            refused = errors(await peer.barrier())
            assert len(refused) == 4 and "expected one of reference, quiet, loud" in refused[0]
            assert peer.last_report["state"]["volume"] == -21.5

    run(scenario)


def test_no_spl_without_calibration():
    async def scenario():
        async with running(config(calibration="")) as daemon:
            peer = await Peer.open(daemon.osc.port)
            peer.send("/controlroom/subscribe")
            peer.send("/controlroom/level", "quiet")
            peer.send("/controlroom/level", "loud")
            received = await peer.barrier()
            assert not any(a.endswith("volume_spl_db") for a, _ in received)
            assert ("/controlroom/volume", [6.0]) in received
            assert "volume_spl_db" not in peer.last_report["state"]

    run(scenario)


def test_ctl_level_prints_the_volume_it_set():
    async def scenario():
        async with running(config()) as daemon:
            port = daemon.osc.port
            result = await asyncio.to_thread(ctl, port, "level", "reference")
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == "volume 0.0 dB"
            result = await asyncio.to_thread(ctl, port, "--json", "level", "quiet")
            assert json.loads(result.stdout) == {"volume": -20.0}
            result = await asyncio.to_thread(ctl, port, "status")
            assert re.search(r"volume_spl_db +63.0\n", result.stdout)
            result = await asyncio.to_thread(ctl, port, "level", "deafening")
            assert result.returncode == 1 and "refused" in result.stderr

    run(scenario)
