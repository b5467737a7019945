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
import logging
import sys
from functools import partial
from typing import TYPE_CHECKING

from controlroom.daemon.cli import logsetup, options, warmup
from controlroom.daemon.cli.ctl import format_loudness, format_offsets
from controlroom.daemon.cli.program import demo_inputs
from controlroom.daemon.cli.run import leave
from controlroom.daemon.config import Config, default_config
from controlroom.daemon.errors import PortInUse
from controlroom.daemon.service import Daemon
from controlroom.dsp.path import process

if TYPE_CHECKING:
    from controlroom.daemon.osc.server import OscServer

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
    block size and channel counts are kept."""
    return dataclasses.replace(config, audio=dataclasses.replace(config.audio, backend="virtual", device=None))


async def _main(daemon: Daemon, seconds: float | None) -> int:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds if seconds is not None else None
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    # a daemon that fails to start (its OSC port taken) never gets ready: its error ends the demo
    await asyncio.wait({task, ready}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    tty = sys.stdout.isatty()
    last_line = 0.0
    while not task.done():
        now = loop.time()
        if end is not None and now >= end:
            daemon.stop()
            break
        if tty:
            sys.stdout.write("\x1b[H\x1b[J" + view(daemon.report(), daemon.osc))
            sys.stdout.flush()
        elif now - last_line >= 1.0:
            print(one_line(daemon.report()), flush=True)
            last_line = now
        await asyncio.sleep(VIEW_INTERVAL_S)
    return await task


def _bar(db: float | None, width: int = 30, floor: float = -60.0) -> str:
    if db is None:
        return "." * width
    filled = int(round(width * (max(floor, min(0.0, db)) - floor) / -floor))
    return "#" * filled + "." * (width - filled)


def _fmt(db: float | None) -> str:
    return "  -inf" if db is None else f"{db:6.1f}"


def view(report: dict, osc: OscServer) -> str:
    s, e, m = report["state"], report["engine"], report["meters"]
    # a wildcard address is reached on loopback, the way ctl would be typed on this machine
    host = "127.0.0.1" if osc.config.host in ("0.0.0.0", "") else osc.config.host
    lines = [
        f"controlroom demo — OSC on {host}:{osc.port} (try: controlroom ctl --osc {host}:{osc.port} volume -30),"
        " Ctrl-C quits",
        "",
        f"  source {s['source']:<8} ab {s['ab']}  match {s['match']}   speakers {s['speakers']:<9} "
        f"sub {'on' if s['sub'] else 'off'}",
        f"  volume {s['volume']:6.1f} dB   dim {'ON ' if s['dim'] else 'off'}  mute {'ON ' if s['mute'] else 'off'}"
        f"  mono {'ON ' if s['mono'] else 'off'}  solo {s['solo']}  polarity {'inv' if s['polarity'] else 'norm'}",
        f"  {format_offsets(s)}",
        f"  {format_loudness(m)}",
        "",
        "  sources (RMS dBFS, after trim)",
    ]
    for name, level in m.get("sources", {}).items():
        for ch, rms in enumerate(level["rms_dbfs"], 1):
            lines.append(f"    {name:>6} {ch}  {_fmt(rms)}  {_bar(rms)}")
    lines.append("  outputs (RMS dBFS, after the limiter)")
    for out, level in m.get("outputs", {}).items():
        lines.append(f"    out {out:>3}  {_fmt(level['rms_dbfs'])}  {_bar(level['rms_dbfs'])}")
    lines += [
        "",
        f"  engine: {'running' if e.get('running') else 'STOPPED'}, callbacks {e.get('callbacks', 0)}, "
        f"limiter {m.get('limiter_gain_reduction_db', 0.0):.1f} dB, dropped {sum(e.get('dropped', {}).values())}",
    ]
    return "\n".join(lines) + "\n"


def one_line(report: dict) -> str:
    s, m = report["state"], report["meters"]
    outs = " ".join(
        f"{k}:{_fmt(v['rms_dbfs']).strip()}" for k, v in m.get("outputs", {}).items() if v["rms_dbfs"] is not None
    )
    return (
        f"{s['source']} on {s['speakers']} at {s['volume']:.1f} dB | outputs RMS dBFS {outs or 'silent'} | "
        f"{format_offsets(s)} | {format_loudness(m)}"
    )
