"""The engine runner owns the audio host: it opens, reopens and closes it one request at a time,
fades through silence on request, and ends with the path ramped to silence and the host closed.

These run the real kernel on the virtual backend (a self-clocked thread); the JACK tests of the
same life cycle are in test_lifecycle_jack.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest
from daemonkit import config as matching_config
from daemonkit import running, until
from osckit import run

from controlroom.daemon.config import diff, parse_config
from controlroom.daemon.core.controller import NO_SOURCE, Controller
from controlroom.daemon.core.targets import Vocabulary
from controlroom.daemon.engine.virtual import VirtualHost
from controlroom.daemon.errors import EngineError
from controlroom.daemon.service import readout
from controlroom.daemon.service.runner import EngineRunner, EngineState
from controlroom.dsp import layout
from controlroom.dsp.path import process

CONFIG = """
[audio]
backend = "virtual"
blocksize = 64

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]

[speakers.studio]
outputs = [1, 2]
"""


class Runner:
    """An ``EngineRunner`` running in a task, on ``config_text``; stopped and awaited after."""

    def __init__(self, config_text: str = CONFIG) -> None:
        config = parse_config(config_text)
        self.controller = Controller(config, Vocabulary(config).initial())
        self.runner = EngineRunner(config, self.controller)

    async def __aenter__(self) -> EngineRunner:
        self.task = asyncio.create_task(self.runner.run())
        await until(lambda: self.runner.running, "audio flowing")
        return self.runner

    async def __aexit__(self, *exc_info) -> None:
        self.runner.request_stop()
        await self.task


def source_fade(runner: EngineRunner, index: int) -> float:
    """How far source ``index`` is faded in, as the kernel plays it (0 = silent)."""
    return runner.controller.buffers.state[layout.T_SOURCES + index * layout.TS_STRIDE + layout.TS_FADE]


# --- fades through silence ----------------------------------------------------------------------------


def test_a_change_through_silence_is_made_while_every_source_is_silent_and_they_play_again_after():
    async def scenario():
        async with Runner() as runner:
            await until(lambda: source_fade(runner, 0) == 1.0, "the source faded in")
            seen = []
            await runner.through_silence(lambda: seen.append((source_fade(runner, 0), source_fade(runner, 1))))
            assert seen == [(0.0, 0.0)]
            assert runner.controller._controls().source == 0
            await until(lambda: source_fade(runner, 0) == 1.0, "the source fading in again")

    run(scenario)


def test_a_fade_whose_waiter_gave_up_changes_nothing_and_the_sources_play_again():
    async def scenario():
        async with Runner() as runner:
            changed = []
            waiter = asyncio.create_task(runner.through_silence(lambda: changed.append(True)))
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await until(lambda: not runner._queue.silences, "the runner to take the request")
            await runner.wait_faded()  # whatever the runner did, it is done once nothing is queued
            assert not changed and runner.controller._controls().source == 0

    run(scenario)


def test_a_blind_switch_and_a_change_through_silence_overlap_without_a_source_playing_between():
    async def scenario():
        async with Runner() as runner:
            controller = runner.controller
            controller.hold_silence()  # a blind switch, still fading
            await runner.through_silence(lambda: None)
            assert controller._controls().source == NO_SOURCE  # the switch still holds them
            controller.release_silence()
            assert controller._controls().source == 0

    run(scenario)


def test_a_change_that_raises_is_raised_to_its_waiter_and_the_sources_play_again():
    async def scenario():
        async with Runner() as runner:

            def refuse() -> None:
                raise ValueError("no")

            with pytest.raises(ValueError, match="no"):
                await runner.through_silence(refuse)
            assert runner.controller._controls().source == 0

    run(scenario)


# --- reloads ---------------------------------------------------------------------------------------------


def loader(*configs):
    """A config loader for ``request_reload`` that counts its reads."""
    reads = []

    async def load():
        reads.append(len(reads))
        return configs[len(reads) - 1]

    return load, reads


def test_a_parameter_reload_keeps_the_stream_and_a_blocksize_reload_reopens_it_once():
    async def scenario():
        async with Runner() as runner:
            first = runner.host
            trimmed = parse_config(CONFIG.replace("channels = [3, 4]", "channels = [3, 4]\ntrim_db = -3.0"))
            load, _ = loader(trimmed)
            runner.request_reload(load)
            await until(lambda: runner.config is trimmed, "the reload")
            assert runner.host is first and runner.restarts == 0

            bigger = parse_config(CONFIG.replace("blocksize = 64", "blocksize = 128"))
            load, _ = loader(bigger)
            runner.request_reload(load)
            await until(lambda: runner.config is bigger and runner.running, "the reopened stream")
            assert runner.host is not first and runner.host.blocksize == 128
            assert runner.restarts >= 1 and runner.failed_starts == 0  # a stall on a busy machine may add one
            assert not first.running  # the old stream was closed, not left beside the new one

    run(scenario)


def test_a_newer_reload_replaces_one_that_waits_and_a_rejected_one_changes_nothing():
    async def scenario():
        async with Runner() as runner:
            old = runner.config
            reads = []

            async def rejected():
                reads.append("rejected")
                return None

            async def slow():
                reads.append("slow")
                await asyncio.sleep(0.2)
                return None

            async def last():
                reads.append("last")
                return None

            runner.request_reload(slow)
            await until(lambda: reads == ["slow"], "the first reload to start")
            runner.request_reload(rejected)  # waits behind the slow one ...
            runner.request_reload(rejected)  # ... and is replaced by this one
            await until(lambda: len(reads) == 2, "the queued reload")
            runner.request_reload(last)  # everything asked before it has been handled once it runs
            await until(lambda: reads[-1] == "last", "the last reload")
            assert reads == ["slow", "rejected", "last"] and runner.config is old and runner.restarts == 0

    run(scenario)


def test_diff_sorts_a_reload_by_what_must_restart():
    base = parse_config(CONFIG + '[osc]\nlisten = "127.0.0.1:9000"\n')
    same = diff(base, parse_config(CONFIG + '[osc]\nlisten = "127.0.0.1:9000"\n'))
    assert same.stream == () and not (same.device or same.sources or same.osc)
    blocks = diff(base, replace(base, audio=replace(base.audio, blocksize=128, samplerate=96000)))
    assert blocks.stream == ("samplerate", "blocksize") and not blocks.device
    device = diff(base, replace(base, audio=replace(base.audio, device="USB")))
    assert device.stream == ("device",) and device.device
    moved = diff(base, parse_config(CONFIG.replace("channels = [3, 4]", "channels = [4, 3]")))
    assert moved.sources and moved.stream == () and not moved.osc
    fewer = diff(base, parse_config(CONFIG.replace("channels = [3, 4]", "channels = [3]")))
    assert fewer.stream == ("input_channels",)  # the interface has one input fewer now
    assert diff(base, parse_config(CONFIG + '[osc]\nlisten = "127.0.0.1:9001"\n')).osc


# --- stopping ----------------------------------------------------------------------------------------


def test_stopping_ramps_to_silence_before_the_host_closes():
    async def scenario():
        holder = Runner()
        async with holder as runner:
            buffers, host = runner.controller.buffers, runner.host
            await until(lambda: buffers.state[layout.T_MASTER] > 0.0, "the start-up ramp")
        assert buffers.state[layout.T_MASTER] == 0.0  # as the kernel last played it
        assert not host.running and runner.host is None and runner.state is EngineState.STOPPED
        assert runner.controller.buffers is None

    run(scenario)


def test_the_engine_reports_its_state_and_counts():
    async def scenario():
        async with Runner() as runner:
            stats = runner.stats()
            assert stats["running"] and stats["state"] == "running"
            assert stats["restarts"] == 0 and stats["failed_starts"] == 0 and "error" not in stats

    run(scenario)


def test_a_background_task_that_fails_is_logged_and_ends_the_service_with_status_1(monkeypatch, caplog):
    def broken(buffers, config):
        raise RuntimeError("meter bug")

    async def scenario():
        from controlroom.daemon.service import Daemon

        monkeypatch.setattr(readout, "read", broken)
        daemon = Daemon(matching_config(), None, state_path=None)
        with caplog.at_level(logging.CRITICAL, logger="controlroom"):
            status = await asyncio.wait_for(daemon.run(), 60)
        assert status == 1
        assert "meters failed; stopping" in caplog.text and "meter bug" in caplog.text
        assert daemon.runner.state is EngineState.STOPPED and daemon.runner.host is None

    run(scenario)


def test_a_daemon_stopped_as_by_sigterm_exits_0():
    async def scenario():
        async with running(matching_config()) as daemon:
            assert daemon.runner.running

    run(scenario)


def test_a_fade_asked_for_after_the_engine_stopped_is_refused():
    async def scenario():
        holder = Runner()
        async with holder as runner:
            pass
        with pytest.raises(EngineError, match="stopped"):
            await runner.through_silence(lambda: None)

    run(scenario)


def test_a_fade_is_answered_even_when_the_runner_is_cancelled_during_it():
    async def scenario():
        holder = Runner()
        async with holder as runner:
            waiter = asyncio.create_task(runner.through_silence(lambda: None))
            await until(lambda: holder.runner.controller._controls().source == NO_SOURCE or waiter.done(), "the fade")
            holder.task.cancel()  # as the task group cancels it when a sibling fails
            try:
                await asyncio.wait_for(waiter, 5.0)  # answered, never left waiting
            except EngineError:
                pass  # cancelled before the change: refused
            with pytest.raises(asyncio.CancelledError):
                await holder.task
            holder.task = asyncio.create_task(asyncio.sleep(0))  # nothing left to stop
        assert runner.host is None and runner.state is EngineState.STOPPED

    run(scenario)


def test_a_stream_that_never_calls_back_is_a_failed_start_and_retries_back_off():
    async def scenario():
        config = parse_config(CONFIG)
        controller = Controller(config, Vocabulary(config).initial())
        runner = EngineRunner(config, controller)
        started = []

        def silent_host(buffers, refresh):  # a real host, never started: no callback comes
            started.append(refresh)
            return VirtualHost(process, buffers.arrays, 48000, 64, 4, 2)

        runner._start_host = silent_host
        task = asyncio.create_task(runner.run())
        await until(lambda: runner.failed_starts >= 1, "the first attempt to fail")
        assert runner.state is EngineState.WAITING and not runner.ready.is_set()
        assert "delivers no audio" in runner.reason and controller.buffers is None
        assert 0.0 < runner._next_check_s() <= 1.0  # waits, instead of turning at once
        await until(lambda: runner.failed_starts >= 2, "the retry to fail")
        assert started == [False, True]  # the retry reads the device list afresh
        assert runner._next_check_s() > 0.5  # and backs off further
        runner.request_stop()
        await task

    run(scenario)
