"""``controlroom demo [-c FILE]``: the daemon on the virtual backend with generated programme.

No audio hardware needed: sources ``mix`` and ``ref`` of the built-in default play generated
loops (``ref`` louder and brighter), OSC listens on 127.0.0.1:9000, and the terminal shows state
and meters live. With ``-c FILE`` the demo runs that config instead, so that a studio can be
tried before its interface arrives: on the virtual backend whatever its ``[audio] backend``
says, its first source playing ``mix`` and the others ``ref``, OSC and surfaces as configured.
Nothing is saved: the demo never touches the real state file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import logging
import os
import sys
from functools import partial
from typing import TYPE_CHECKING

from controlroom.daemon.cli import logsetup, options, warmup
from controlroom.daemon.cli.liveview import CLEAR, one_line, view
from controlroom.daemon.cli.program import demo_inputs
from controlroom.daemon.cli.run import leave
from controlroom.daemon.config import Config, WebConfig, default_config
from controlroom.daemon.errors import PortInUse
from controlroom.daemon.service import Daemon
from controlroom.dsp.path import process

if TYPE_CHECKING:
    pass

VIEW_INTERVAL_S = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # no search path: the demo never picks up the studio's own config unasked
    options.add_config(parser, default="the built-in demo studio")
    parser.add_argument(
        "--seconds", type=options.positive_seconds, metavar="S", help="stop after S seconds (default: until Ctrl-C)"
    )


def run(args: argparse.Namespace) -> int:
    logsetup.setup(logging.WARNING)
    config, path = options.load(args) if args.config else (default_config(), None)
    config = virtual(config)
    # the demo needs no hardware: GPIO outboard entries drive gpiozero's mock pins
    os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")
    played = [source.channels for name, source in config.sources.items() if name not in config.inserts]
    program = demo_inputs(config.audio.samplerate, config.audio.input_channels, played)
    # config_path None: a SIGHUP must not re-read the file onto its real backend
    config_dir = path.parent if path is not None else None
    daemon = Daemon(
        config,
        None,
        state_path=None,
        program=program,
        config_dir=config_dir,
        announce=partial(warmup.announce, process),
    )
    try:
        status = asyncio.run(_main(daemon, args.seconds))
    except PortInUse as exc:
        raise options.port_in_use(exc, "demo", path) from None
    return leave(status, daemon)


def virtual(config: Config) -> Config:
    """``config`` on the virtual backend (no device), whatever its ``[audio]`` says; rates,
    block size and channel counts are kept. Without a ``[web]`` section, the web remote is on
    for this machine only (127.0.0.1:8080)."""
    web = config.web or WebConfig(host="127.0.0.1", port=8080, allow=(ipaddress.ip_network("127.0.0.0/8"),))
    return dataclasses.replace(config, audio=dataclasses.replace(config.audio, backend="virtual", device=None), web=web)


def header(daemon: Daemon) -> str:
    """The live view's first line: where OSC listens and how to reach it, the web remote."""
    osc = daemon.osc
    # a wildcard address is reached on loopback, the way ctl would be typed on this machine
    host = "127.0.0.1" if osc.config.host in ("0.0.0.0", "") else osc.config.host
    return (
        f"controlroom demo — OSC on {host}:{osc.port} (try: controlroom ctl --osc {host}:{osc.port} volume -30),"
        f" web remote {daemon.web.url}, Ctrl-C quits"
    )


async def _main(daemon: Daemon, seconds: float | None) -> int:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds if seconds is not None else None
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    # a daemon that fails to start (its OSC port taken) never gets ready: its error ends the demo
    await asyncio.wait({task, ready}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    tty = sys.stdout.isatty()
    if daemon.web is not None and daemon.web.port is not None and not tty:
        print(f"web remote on {daemon.web.url}", flush=True)
    last_line = 0.0
    while not task.done():
        now = loop.time()
        if end is not None and now >= end:
            daemon.stop()
            break
        if tty:
            sys.stdout.write(CLEAR + view(daemon.report(), header(daemon)))
            sys.stdout.flush()
        elif now - last_line >= 1.0:
            print(one_line(daemon.report()), flush=True)
            last_line = now
        await asyncio.sleep(VIEW_INTERVAL_S)
    return await task
