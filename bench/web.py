"""Benchmark: the web remote's WebSocket end to end.

Runs a whole Daemon on the ``virtual`` audio backend with ``[web]`` in this process.

- latency: a client sends ``{"target": "volume", "action": "set"}`` and times the state frame
  that carries the new volume: aiohttp -> controller (kernel parameters published) -> the
  page's sender -> aiohttp. The floor is the same trip through a bare aiohttp WebSocket server
  on the same event loop that answers each frame with a frame. ``ratio`` = ours / floor.
- pages: audio callbacks the engine delivers with 10 pages open taking meters at 25 Hz, against
  none, over runs of equal length (``ratio`` 1.0 = no effect), and the process's CPU time in
  each (``ratio``: what 10 pages cost on top of an idle daemon).

    python bench/web.py [--json] [--trips 300] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
from aiohttp import web
from benchkit import latency_rows, report

from controlroom.daemon.config import parse_config
from controlroom.daemon.service import Daemon

PAGES = 10
#: Seconds between two timed commands: well within the 200 frames/s a page may send.
PACE_S = 0.01
METERS_HZ = 25
CONFIG = """
[audio]
backend = "virtual"
samplerate = 48000
blocksize = 64
[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]
[speakers.studio]
outputs = [1, 2]
[speakers.crap]
outputs = [3]
[osc]
listen = "127.0.0.1:0"
[web]
listen = "127.0.0.1:0"
"""


async def trips(ws: aiohttp.ClientWebSocketResponse, count: int, start: float) -> list[float]:
    """Volume sets alternating below ``start`` (dB, the volume now) and back, so that each is a
    change, each timed until the state frame that carries it."""
    times = []
    for i in range(count):
        volume = start - 1.0 + (i % 2)
        sent = time.perf_counter()
        await ws.send_json({"target": "volume", "action": "set", "value": volume})
        while True:
            frame = json.loads((await asyncio.wait_for(ws.receive(), 2.0)).data)
            if frame.get("state", {}).get("volume") == volume:
                times.append(time.perf_counter() - sent)
                break
        await asyncio.sleep(PACE_S)
    return times


async def echo_server() -> tuple[web.AppRunner, int]:
    """The floor: a bare aiohttp WebSocket server answering each frame."""

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            command = json.loads(message.data)
            await ws.send_str(json.dumps({"state": {"volume": command["value"]}}))
        return ws

    app = web.Application()
    app.router.add_get("/ws", socket)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def page(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> int:
    """An open page: meters at METERS_HZ, every frame (meters and states) read; how many."""
    frames = 0
    async with session.ws_connect(url) as ws:
        await ws.send_json({"meters": METERS_HZ})
        while not stop.is_set():
            try:
                await asyncio.wait_for(ws.receive(), 0.5)
                frames += 1
            except TimeoutError:
                pass
    return frames


async def run_for(daemon: Daemon, seconds: float, url: str | None) -> tuple[int, float, int]:
    """Audio callbacks delivered, CPU seconds of this process and meter frames read by PAGES
    pages (``url`` None: none open) over ``seconds``."""
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        pages = [asyncio.create_task(page(session, url, stop)) for _ in range(PAGES)] if url else []
        await asyncio.sleep(0.5)  # the pages are open
        callbacks, cpu = daemon.runner.stats()["callbacks"], time.process_time()
        await asyncio.sleep(seconds)
        callbacks, cpu = daemon.runner.stats()["callbacks"] - callbacks, time.process_time() - cpu
        stop.set()
        frames = sum(await asyncio.gather(*pages))
    return callbacks, cpu, frames


async def measure(count: int, seconds: float) -> list[dict]:
    daemon = Daemon(parse_config(CONFIG, "bench"), state_path=False)
    serving = asyncio.create_task(daemon.run())
    echo, echo_port = await echo_server()
    try:
        while not (daemon.ready.is_set() and daemon.web is not None and daemon.web.port):
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{daemon.web.port}/ws"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                start = json.loads((await ws.receive()).data)["state"]["volume"]  # the state on connecting
                ours = await trips(ws, count, start)
            async with session.ws_connect(f"http://127.0.0.1:{echo_port}/ws") as ws:
                floor = await trips(ws, count, start)
        idle_callbacks, idle_cpu, _ = await run_for(daemon, seconds, None)
        busy_callbacks, busy_cpu, frames = await run_for(daemon, seconds, url)
    finally:
        await echo.cleanup()
        daemon.stop()
        await serving
    results = latency_rows("command_to_state", ours, floor)
    results.append(
        {
            "name": f"audio_callbacks_{PAGES}_pages_vs_none",
            "ours": busy_callbacks,
            "floor": idle_callbacks,
            "ratio": round(busy_callbacks / idle_callbacks, 3),
        }
    )
    results.append(
        {
            "name": f"cpu_percent_{PAGES}_pages_vs_none",
            "ours": round(100 * busy_cpu / seconds, 1),
            "floor": round(100 * idle_cpu / seconds, 1),
            "ratio": round(busy_cpu / idle_cpu, 2) if idle_cpu else None,
        }
    )
    results.append(
        {
            "name": "frames_per_page_per_s",  # meters at 25 Hz, and a state when it changes
            "ours": round(frames / PAGES / seconds, 1),
            "floor": METERS_HZ,
            "ratio": round(frames / PAGES / seconds / METERS_HZ, 2),
        }
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object with a results list")
    parser.add_argument("--trips", type=int, default=300, help="command round trips per side (default 300)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run (default 5)")
    args = parser.parse_args()
    results = asyncio.run(measure(args.trips, args.seconds))
    report(results, args.json, "floor/none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
