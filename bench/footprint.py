"""Benchmark: what the idle daemon costs a small machine — CPU per thread, memory, wake-ups.

One run: a JACK dummy server of its own (48 kHz, 64-frame blocks), ``controlroom run`` on
``examples/studio.toml`` (device ``system``, OSC on a free loopback port) with one MIDI surface
whose ports this process offers on JACK, as a studio rack runs it. Once the daemon is idle
(compiled, READY), nobody talks to it for ``--seconds``; then, from ``/proc``:

- per thread: CPU (% of one core, time on a CPU from schedstat), wake-ups/s (context switches, voluntary and
  not) and scheduling policy;
- JACK's process threads (real-time: the audio callback's, and one per MIDI port rtmidi opens
  as a JACK client), woken once per block by the server;
- the control plane: every other thread (the event loop, the MIDI poller, workers): the figure
  to keep low;
- resident memory (VmRSS, and its anonymous and file-backed parts) and the peak (VmHWM);
- the peer, over the same seconds: a bare Python thread of this process that only wakes 100
  times a second. What a wake-up costs differs between machines and days (the same daemon
  measured 0.8 % and 2.0 % on two days of one VM); the control plane against the peer does not.

The numba cache is the usual one (``NUMBA_CACHE_DIR`` or beside the sources): run
``controlroom warm`` first, or the first start compiles. Absolute figures depend on the
machine; compare runs on the same one.

    python bench/footprint.py [--json] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import mido
import tomlkit
from realtime import BLOCKSIZE, REPO, SAMPLERATE, STUDIO, Daemon, settle

sys.path.insert(0, str(REPO / "tests"))  # the JACK dummy-server runner shared with the tests
from jackutil import JackServer  # noqa: E402 (tests/ is on the path only from here)

SURFACE = "footprint-desk"
POLICIES = {0: "OTHER", 1: "FIFO", 2: "RR", 3: "BATCH", 5: "IDLE"}


def config(directory: Path) -> Path:
    """examples/studio.toml on device ``system``, OSC on a free loopback port, one surface."""
    doc = tomlkit.parse(STUDIO.read_text())
    doc["audio"]["device"] = "system"
    doc["audio"]["samplerate"] = SAMPLERATE
    doc["audio"]["blocksize"] = BLOCKSIZE
    doc["osc"]["listen"] = "127.0.0.1:0"
    doc["osc"]["allow"] = ["127.0.0.0/8"]
    doc["osc"]["clients"] = []
    doc["state"]["path"] = str(directory / "state.json")
    surface = tomlkit.table()
    surface.update({"name": "desk", "input": SURFACE, "output": SURFACE, "mapping": "behringer-xtouch-mini"})
    doc["surfaces"] = tomlkit.aot()
    doc["surfaces"].append(surface)
    path = directory / "studio.toml"
    path.write_text(tomlkit.dumps(doc))
    return path


def threads(pid: int) -> dict[int, dict]:
    """Per thread: name, CPU seconds, context switches. CPU time comes from ``schedstat``
    (nanoseconds on a CPU, as the scheduler counts them), not from ``stat``'s user + system
    ticks: at 100 ticks a second, a thread that wakes briefly is charged a whole tick or
    nothing, which over 20 s blurs figures of a few tenths of a per cent."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
            on_cpu_ns = int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:  # ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches:" in line)
        found[int(task.name)] = {
            "name": name,
            "policy": POLICIES.get(int(fields[38]), fields[38]),
            "priority": int(fields[37]),
            "cpu_s": on_cpu_ns / 1e9,
            "switches": switches,
        }
    return found


def memory(pid: int) -> dict[str, float]:
    """In MB: VmRSS (= RssAnon + RssFile + RssShmem, the last mostly JACK's port buffers in
    /dev/shm, mapped by every JACK client and counted whole in each), VmHWM, and Pss (each
    shared page divided among the processes mapping it: the daemon's fair share)."""
    values = {}
    for name, wanted in (("status", ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")), ("smaps_rollup", ("Pss",))):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in wanted:
                values[key] = int(rest.split()[0]) / 1024
    return values


class Peer(threading.Thread):
    """A Python thread that does nothing but wake ``rate`` times a second."""

    def __init__(self, rate: float = 100.0) -> None:
        super().__init__(daemon=True)
        self.period = 1.0 / rate
        self.tid = 0
        self.started = threading.Event()

    def run(self) -> None:
        self.tid = threading.get_native_id()
        self.started.set()
        while True:
            time.sleep(self.period)

    def cpu_s(self) -> float:
        return int(Path(f"/proc/self/task/{self.tid}/schedstat").read_text().split()[0]) / 1e9


def measure(pid: int, seconds: float) -> dict:
    peer = Peer()
    peer.start()
    peer.started.wait()
    before, peer_before, t0 = threads(pid), peer.cpu_s(), time.monotonic()
    time.sleep(seconds)
    after, peer_after, elapsed = threads(pid), peer.cpu_s(), time.monotonic() - t0
    rows = []
    for tid, now in after.items():
        was = before.get(tid, {"cpu_s": 0.0, "switches": 0})
        rows.append(
            {
                "tid": tid,
                "name": now["name"],
                "policy": now["policy"],
                "cpu_percent": round(100 * (now["cpu_s"] - was["cpu_s"]) / elapsed, 2),
                "wakeups_per_s": round((now["switches"] - was["switches"]) / elapsed, 1),
            }
        )
    for row in rows:
        row["role"] = "JACK process" if row["policy"] in ("FIFO", "RR") else "control plane"
    jack_threads = [r for r in rows if r["role"] == "JACK process"]
    control = [r for r in rows if r["role"] == "control plane"]
    rows.sort(key=lambda r: -r["cpu_percent"])
    return {
        "seconds": round(elapsed, 1),
        "threads": rows,
        "jack_threads": len(jack_threads),
        "jack_cpu_percent": round(sum(r["cpu_percent"] for r in jack_threads), 2),
        "control_cpu_percent": round(sum(r["cpu_percent"] for r in control), 2),
        "control_wakeups_per_s": round(sum(r["wakeups_per_s"] for r in control), 1),
        "peer_cpu_percent": round(100 * (peer_after - peer_before) / elapsed, 2),
        "memory_mb": {k: round(v, 1) for k, v in memory(pid).items()},
    }


def show(result: dict) -> None:
    print(f"{'thread':<24} {'policy':<7} {'role':<15} {'CPU %':>7} {'wake-ups/s':>11}")
    for r in result["threads"]:
        name = f"{r['name']} {r['tid']}"
        print(f"{name:<24} {r['policy']:<7} {r['role']:<15} {r['cpu_percent']:>7.2f} {r['wakeups_per_s']:>11.1f}")
    print()
    m = result["memory_mb"]
    for label, value in (
        (f"JACK process threads ({result['jack_threads']})", f"{result['jack_cpu_percent']:.2f} % of a core"),
        ("control plane CPU", f"{result['control_cpu_percent']:.2f} % of a core"),
        ("control plane wake-ups", f"{result['control_wakeups_per_s']:.1f} /s"),
        (
            "peer: a thread waking 100/s",
            f"{result['peer_cpu_percent']:.2f} % of a core (control plane "
            f"{result['control_cpu_percent'] / max(result['peer_cpu_percent'], 0.01):.1f} x the peer)",
        ),
        (
            "RSS",
            f"{m['VmRSS']:.1f} MB (anonymous {m['RssAnon']:.1f}, files {m['RssFile']:.1f}, shared {m['RssShmem']:.1f})",
        ),
        ("proportional (PSS)", f"{m['Pss']:.1f} MB"),
        ("peak RSS", f"{m['VmHWM']:.1f} MB"),
        ("start-up to READY", f"{result['ready_s']:.2f} s, idle after {result['idle_after_s']:.1f} s"),
    ):
        print(f"{label:<30} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the idle measurement (default 20)")
    args = parser.parse_args()
    if shutil.which("jackd") is None:
        raise SystemExit("jackd is needed (Debian: jackd2)")

    work = Path(tempfile.mkdtemp(prefix="controlroom-footprint-"))
    server = JackServer(f"controlroom-footprint-{os.getpid()}-{uuid.uuid4().hex[:6]}", SAMPLERATE, BLOCKSIZE, 8)
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    env = {**os.environ, "JACK_DEFAULT_SERVER": server.name}
    daemon = surface_in = surface_out = None
    try:
        server.start()
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        surface_out = backend.open_output(SURFACE, virtual=True)
        surface_in = backend.open_input(SURFACE, virtual=True)
        daemon = Daemon(config(work), work, env)
        idle_after = settle(daemon)
        result = measure(daemon.pid, args.seconds)
        result.update(ready_s=round(daemon.ready_s, 2), idle_after_s=round(idle_after, 1))
    finally:
        if daemon is not None:
            daemon.stop()
        for port in (surface_in, surface_out):
            if port is not None:
                port.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
