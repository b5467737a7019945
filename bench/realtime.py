"""Benchmark: the daemon's real-time behaviour on a JACK dummy server.

One run, one machine, one JACK server (its own: dummy driver, 48 kHz, 64-frame blocks):

1. baseline: a minimal C JACK client (compiled here with gcc against libjack, like
   ``jack_simple_client`` but counting its callbacks) runs alone; its delivered fraction
   (callbacks / blocks due by JACK's frame clock) is what this machine manages at all;
2. start-up to READY=1 (sd_notify) of ``controlroom run`` with a cold numba cache (an empty
   NUMBA_CACHE_DIR) and then a warm one (the same directory, now filled);
3. idle: the daemon (``examples/studio.toml`` on device ``system``) runs untouched for
   ``--seconds``; the C client runs alongside;
4. flood: the same time under >= ``--rate`` OSC messages/s from two sender processes (volume
   steps, switches, speaker and source changes, state queries, junk) with two subscribed
   clients receiving feedback and meters; the C client runs alongside;
5. OSC-to-audio latency: ``--steps`` volume steps (-40 <-> -20 dB) sent over OSC, seen by a
   JACK client recording the daemon's output (DC on input 1 through set ``crap``, which has no
   EQ: the gain is visible sample by sample), timestamped by JACK's frame clock — when the
   level starts to move (onset) and when it is within 0.1 dB of the new level (done); quiet,
   then under a flood of control traffic that leaves that output alone;
6. the daemon's resident memory (VmRSS, VmHWM) and CPU time per phase.

Callback counts are the daemon's own (``/controlroom/state`` engine statistics, differenced per
phase); callback durations are its histogram since the stream started. Targets (PASS/FAIL):
flood delivers >= 99 % of the idle run's fraction; callback p99 <= 10 % of the block period;
OSC-to-audio p99 <= 2 block periods + ramp_ms; warm start to READY <= 2 s. Absolute numbers are
only indicative on shared VMs; these VMs drop JACK deadlines at random, even for C clients,
hence the baseline.

    python bench/realtime.py [--json] [--seconds 60] [--steps 50] [--rate 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import tomlkit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the JACK dummy-server runner shared with the tests

import jack  # noqa: E402 (tests/ is on the path only from here)
from daemonproc import OscPeer, message  # noqa: E402
from jackutil import JackServer  # noqa: E402

SAMPLERATE = 48000
BLOCKSIZE = 64
BLOCK_US = BLOCKSIZE / SAMPLERATE * 1e6
STUDIO = REPO / "examples" / "studio.toml"
START_TIMEOUT_S = 300.0  # a cold numba cache compiles the whole path
STEP_LOW_DB, STEP_HIGH_DB = -40.0, -20.0
DC_LEVEL = 0.5
LATENCY_OUTPUT = 6  # set "crap": one output, no EQ
SETTLE_DB = 0.1

BASELINE_C = r"""
/* A minimal JACK client like jack_simple_client (copies its input to its output) that counts
   its process callbacks and JACK's frame clock: delivered = callbacks / blocks due. */
#include <jack/jack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static jack_port_t *in, *out;
static jack_client_t *client;
static volatile long callbacks = 0, xruns = 0;
static volatile jack_nframes_t first = 0, last = 0;

static int process(jack_nframes_t n, void *arg) {
    jack_nframes_t t = jack_last_frame_time(client);
    if (callbacks == 0) first = t;
    last = t;
    memcpy(jack_port_get_buffer(out, n), jack_port_get_buffer(in, n), n * sizeof(float));
    callbacks++;
    return 0;
}

static int xrun(void *arg) { xruns++; return 0; }

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    jack_status_t status;
    client = jack_client_open("baseline", JackNoStartServer, &status);
    if (!client) { fprintf(stderr, "cannot connect to JACK (status 0x%x)\n", status); return 1; }
    in = jack_port_register(client, "in", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
    out = jack_port_register(client, "out", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    jack_set_process_callback(client, process, NULL);
    jack_set_xrun_callback(client, xrun, NULL);
    if (jack_activate(client)) { fprintf(stderr, "cannot activate\n"); return 1; }
    while (callbacks == 0) usleep(1000);
    usleep((useconds_t)(seconds * 1e6));
    long c = callbacks, x = xruns;
    jack_nframes_t span = last - first;
    jack_nframes_t bs = jack_get_buffer_size(client);
    printf("{\"callbacks\": %ld, \"expected\": %ld, \"xruns\": %ld, \"blocksize\": %u}\n",
           c, (long)(span / bs) + 1, x, bs);
    fflush(stdout);
    jack_deactivate(client);
    jack_client_close(client);
    return 0;
}
"""


# --- results ------------------------------------------------------------------------------------


class Results:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, name: str, value, unit: str = "", target: str | None = None, ok: bool | None = None, **extra) -> None:
        row = {"name": name, "value": value, "unit": unit}
        if target is not None:
            row["target"] = target
            row["pass"] = ok
        row.update(extra)
        self.rows.append(row)
        if not self.quiet:
            print(f"  {format_row(row)}", file=sys.stderr, flush=True)

    quiet = False


def format_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def format_row(row: dict) -> str:
    verdict = "" if "pass" not in row else ("PASS" if row["pass"] else "FAIL")
    target = f"(target {row['target']})" if "target" in row else ""
    return f"{verdict:<5}{row['name']:<52}{format_value(row['value']):>12} {row['unit']:<6}{target}"


# --- helpers ------------------------------------------------------------------------------------


def percentile(values, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def compile_baseline(directory: Path) -> Path:
    needed = (
        "gcc and the JACK headers are needed to build the baseline JACK client "
        "(apt-get install --no-install-recommends gcc libc6-dev libjack-jackd2-dev)"
    )
    if shutil.which("gcc") is None:
        raise SystemExit(needed)
    source = directory / "baseline.c"
    source.write_text(BASELINE_C)
    binary = directory / "baseline"
    built = subprocess.run(["gcc", "-O2", "-o", str(binary), str(source), "-ljack"], capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit(f"{needed}:\n{built.stderr.strip()}")
    return binary


class Baseline:
    """The C client for ``seconds`` in the background; ``result()`` waits for its numbers."""

    def __init__(self, binary: Path, seconds: float) -> None:
        self.process = subprocess.Popen([str(binary), str(seconds)], stdout=subprocess.PIPE, text=True)

    def result(self) -> dict:
        out, _ = self.process.communicate(timeout=600)
        if self.process.returncode != 0:
            raise RuntimeError("the baseline client failed")
        data = json.loads(out)
        data["delivered"] = data["callbacks"] / data["expected"]
        return data


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(daemon: Daemon, busy: float = 0.25, window: float = 1.0, timeout: float = 300.0) -> float:
    """Seconds from the daemon's start until it idles (CPU below ``busy`` of a core over
    ``window`` s): numba compiles functions on first use, some only after READY."""
    deadline = time.monotonic() + timeout
    previous, at = cpu_seconds(daemon.pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(window)
        now, cpu = time.monotonic(), cpu_seconds(daemon.pid)
        if (cpu - previous) / (now - at) < busy:
            return at - daemon.started
        previous, at = cpu, now
    raise RuntimeError(f"the daemon is still busy {timeout:g} s after starting")


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def studio_config(directory: Path) -> Path:
    """examples/studio.toml on device ``system`` with OSC on a free loopback port, no LAN
    client, and its state in ``directory``."""
    doc = tomlkit.parse(STUDIO.read_text())
    doc["audio"]["backend"] = "portaudio"
    doc["audio"]["device"] = "system"
    doc["audio"]["samplerate"] = SAMPLERATE
    doc["audio"]["blocksize"] = BLOCKSIZE
    doc["osc"]["listen"] = "127.0.0.1:0"
    doc["osc"]["allow"] = ["127.0.0.0/8"]
    doc["osc"]["clients"] = []
    doc["state"]["path"] = str(directory / "state.json")
    path = directory / "studio.toml"
    path.write_text(tomlkit.dumps(doc))
    return path


class Daemon:
    """``controlroom run`` with sd_notify going to a socket of ours: start-up time to READY=1."""

    def __init__(self, config: Path, directory: Path, env: dict[str, str]) -> None:
        self.notify_path = directory / f"notify-{uuid.uuid4().hex[:8]}"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.log_path = directory / "daemon.log"
        self.log = open(self.log_path, "ab")
        self.started = started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controlroom", "run", "-c", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**env, "NOTIFY_SOCKET": str(self.notify_path)},
        )
        self.ready_s = self._wait_ready(started)
        self.port = self._port()

    def _wait_ready(self, started: float) -> float:
        deadline = started + START_TIMEOUT_S
        while (remaining := deadline - time.monotonic()) > 0:
            self.notify.settimeout(min(remaining, 1.0))
            try:
                fields = self.notify.recv(4096).decode().split("\n")
            except TimeoutError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the daemon exited: see {self.log_path}") from None
                continue
            if "READY=1" in fields:
                return time.monotonic() - started
        raise RuntimeError(f"no READY=1 within {START_TIMEOUT_S} s: see {self.log_path}")

    def _port(self) -> int:
        import re

        text = self.log_path.read_text(errors="replace")
        return int(re.findall(r"OSC listening on \S+:(\d+)", text)[-1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(60)
        self.notify.close()
        self.notify_path.unlink(missing_ok=True)
        self.log.close()
        return status


# --- control traffic (run as child processes) -------------------------------------------------------


def flood_messages(mode: str, rng: random.Random):
    """Endless OSC datagrams. ``full``: what a busy session sends (volume steps that cancel out,
    switches, speaker and source changes with loudness matching, state queries, junk);
    ``quiet-output``: traffic that changes state and publishes parameters but leaves the
    latency measurement's output alone (match mode, no-op sets, state queries, junk)."""
    up = True
    while True:
        r = rng.random()
        if mode == "full":
            if r < 0.3:
                up = not up
                yield message("/controlroom/volume/step", 0.5 if up else -0.5)
            elif r < 0.4:
                yield message("/controlroom/dim/toggle")
            elif r < 0.5:
                yield message("/controlroom/mono/toggle")
            elif r < 0.6:
                yield message("/controlroom/speakers/next")
            elif r < 0.7:
                yield message("/controlroom/ab", rng.choice(["a", "b"]))
            elif r < 0.8:
                yield message("/controlroom/match", rng.choice(["hold", "auto"]))
            elif r < 0.9:
                yield message("/controlroom/state")
            elif r < 0.95:
                yield message("/controlroom/solo/next")
            else:
                yield message("/controlroom/no/such/address", 1.0)
        else:
            if r < 0.4:
                yield message("/controlroom/match", rng.choice(["hold", "auto"]))
            elif r < 0.6:
                yield message("/controlroom/solo", "off")
            elif r < 0.8:
                yield message("/controlroom/state")
            else:
                yield message("/controlroom/no/such/address", 1.0)


def run_sender(port: int, mode: str, rate: float, seconds: float, seed: int) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    messages = flood_messages(mode, random.Random(seed))
    sent = 0
    started = time.monotonic()
    while not stop.is_set() and (elapsed := time.monotonic() - started) < seconds:
        while sent < rate * elapsed:
            sock.sendto(next(messages), ("127.0.0.1", port))
            sent += 1
        try:
            while True:
                sock.recv(1 << 16)  # state answers, errors: read and forget
        except BlockingIOError:
            pass
        time.sleep(0.001)
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - started}), flush=True)


def run_subscriber(port: int, seconds: float) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.bind(("127.0.0.1", 0))
    counts = {"feedback": 0, "meters": 0}
    started = renewed = time.monotonic()
    sock.sendto(message("/controlroom/subscribe"), ("127.0.0.1", port))
    while not stop.is_set() and time.monotonic() - started < seconds:
        if time.monotonic() - renewed > 20.0:
            sock.sendto(message("/controlroom/subscribe"), ("127.0.0.1", port))
            renewed = time.monotonic()
        sock.settimeout(0.2)
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            continue
        counts["meters" if data.startswith(b"/controlroom/meters/") else "feedback"] += 1
    sock.sendto(message("/controlroom/unsubscribe"), ("127.0.0.1", port))
    print(json.dumps(counts), flush=True)


class Traffic:
    """Two senders (``rate`` messages/s between them) and ``subscribers`` subscribed clients."""

    def __init__(self, port: int, mode: str, rate: float, seconds: float, subscribers: int = 2) -> None:
        me = [sys.executable, str(Path(__file__).resolve())]
        self.senders = [
            # 5 % over the rate asked for: what arrives is at least that
            subprocess.Popen(
                [*me, "_sender", str(port), mode, str(1.05 * rate / 2), str(seconds), str(seed)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for seed in (1, 2)
        ]
        self.subscribers = [
            subprocess.Popen([*me, "_subscriber", str(port), str(seconds + 5.0)], stdout=subprocess.PIPE, text=True)
            for _ in range(subscribers)
        ]

    def finish(self) -> dict:
        """Wait for the senders (or stop them), stop the subscribers; the counts."""
        sent = [json.loads(p.communicate(timeout=600)[0]) for p in self.senders]
        for p in self.subscribers:
            p.send_signal(signal.SIGTERM)
        received = [json.loads(p.communicate(timeout=60)[0]) for p in self.subscribers]
        return {"sent": sent, "received": received}

    def stop(self) -> dict:
        for p in self.senders:
            p.send_signal(signal.SIGTERM)
        return self.finish()


# --- JACK clients of the bench ---------------------------------------------------------------------


class Player:
    """Plays DC into the daemon's input 1 (source ``mix`` left) and silence elsewhere."""

    def __init__(self, server: str) -> None:
        self.client = jack.Client("bench-player", servername=server, no_start_server=True)
        self.port = self.client.outports.register("dc")
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        self.port.get_array()[:] = DC_LEVEL

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class Recorder:
    """Records one daemon output into an array indexed by JACK frame time (from ``start()``)."""

    def __init__(self, server: str, seconds: float) -> None:
        self.client = jack.Client("bench-recorder", servername=server, no_start_server=True)
        self.port = self.client.inports.register("rec")
        self.buffer = np.zeros(int(seconds * SAMPLERATE), dtype=np.float32)
        #: CLOCK_MONOTONIC (ns) at the entry of the callback that delivered each block
        self.times = np.zeros(self.buffer.shape[0] // BLOCKSIZE + 1, dtype=np.int64)
        self.origin: int | None = 0
        self.written = 0  # frames since origin recorded so far (contiguous or not)
        self.client.set_process_callback(self._process)
        self.client.activate()

    def start(self) -> None:
        """Record afresh from the next block on: frame 0 = its first frame. Frames JACK
        skipped stay NaN (neither "moved" nor "settled" for the latency measurement)."""
        self.origin = None
        self.written = 0
        self.buffer[:] = np.nan
        self.times[:] = 0
        deadline = time.monotonic() + 10.0
        while self.origin is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the recorder's process callback does not run")
            time.sleep(0.005)

    def _process(self, frames: int) -> None:
        entered = time.monotonic_ns()
        now = self.client.last_frame_time
        if self.origin is None:
            self.origin = now
        index = (now - self.origin) & 0xFFFFFFFF
        if index + frames <= self.buffer.shape[0]:
            self.buffer[index : index + frames] = self.port.get_array()
            self.times[index // BLOCKSIZE] = entered
            self.written = index + frames

    def frame(self) -> int:
        """JACK's current frame time (its estimate of "now"), relative to the origin. A block
        is processed when the clock reaches its first frame, so this may lie a few frames
        before the latest block's start: the difference is signed."""
        delta = (self.client.frame_time - self.origin) & 0xFFFFFFFF
        return delta - (1 << 32) if delta >= 1 << 31 else delta

    def wait_until(self, index: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.written < index:
            if time.monotonic() > deadline:
                raise TimeoutError(f"recording reached frame {self.written}, not {index}")
            time.sleep(0.005)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def wire(client: jack.Client, player: Player, recorder: Recorder) -> None:
    """Cut PortAudio's auto-connections to system:*; player -> in_0, out_<LATENCY_OUTPUT-1> -> recorder."""
    deadline = time.monotonic() + 10.0
    while len(client.get_ports("PortAudio", is_audio=True)) < 16:
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon's JACK ports did not appear")
        time.sleep(0.02)
    for port in client.get_ports("PortAudio", is_audio=True):
        for other in client.get_all_connections(port):
            if port.is_input:
                client.disconnect(other, port)
            else:
                client.disconnect(port, other)
    client.connect(player.port, "PortAudio:in_0")
    client.connect(f"PortAudio:out_{LATENCY_OUTPUT - 1}", recorder.port)


# --- phases ---------------------------------------------------------------------------------------


def engine(peer: OscPeer) -> dict:
    return peer.query(timeout=10.0)["engine"]


def delivered(before: dict, after: dict) -> tuple[float, int, int]:
    callbacks = after["callbacks"] - before["callbacks"]
    expected = after["expected_callbacks"] - before["expected_callbacks"]
    return callbacks / expected, callbacks, expected


def xruns(before: dict, after: dict) -> int:
    return sum(after["xruns"].values()) - sum(before["xruns"].values())


def measure_latency(peer: OscPeer, recorder: Recorder, steps: int, rng: random.Random) -> dict:
    """``steps`` volume steps between STEP_LOW_DB and STEP_HIGH_DB. Per step, in ms from
    CLOCK_MONOTONIC just before the datagram is sent to CLOCK_MONOTONIC at the entry of the
    recorder's process callback that delivered the block in which the output level first
    moved by more than SETTLE_DB (onset), and first came within SETTLE_DB of the new level
    (done: the ramp has run)."""
    recorder.start()

    def steady(volume_db: float) -> float:
        peer.set("volume", volume_db)
        here = max(recorder.frame(), 0)
        recorder.wait_until(here + SAMPLERATE // 10)
        return float(np.mean(recorder.buffer[here + SAMPLERATE // 20 : here + SAMPLERATE // 10]))

    levels = {STEP_LOW_DB: steady(STEP_LOW_DB), STEP_HIGH_DB: steady(STEP_HIGH_DB)}
    onset, done = [], []
    current = STEP_HIGH_DB
    for _ in range(steps):
        target = STEP_LOW_DB if current == STEP_HIGH_DB else STEP_HIGH_DB
        time.sleep(rng.uniform(0.0, 0.004))  # land anywhere within a block
        # JACK's frame-clock estimate may lag the latest block by up to a block: look from
        # two blocks before it (the level there is still the old one)
        first = max(recorder.frame() - 2 * BLOCKSIZE, 0)
        sent_ns = time.monotonic_ns()
        peer.send("/controlroom/volume", float(target))
        recorder.wait_until(first + SAMPLERATE // 10)
        window = recorder.buffer[first : first + SAMPLERATE // 10].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            from_old = np.abs(20 * np.log10(np.abs(window) / abs(levels[current])))
            to_new = np.abs(20 * np.log10(np.abs(window) / abs(levels[target])))
        moved = np.flatnonzero(from_old > SETTLE_DB)
        settled = np.flatnonzero(to_new <= SETTLE_DB)
        if moved.size and settled.size:
            seen = [recorder.times[(first + k) // BLOCKSIZE] for k in (moved[0], settled[0])]
            if min(seen) > 0:
                onset.append((seen[0] - sent_ns) / 1e6)
                done.append((seen[1] - sent_ns) / 1e6)
        current = target
        time.sleep(0.02)
    peer.query()  # drain
    return {"onset_ms": onset, "done_ms": done, "levels": levels}


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_sender":
        port, mode, rate, seconds, seed = sys.argv[2:7]
        run_sender(int(port), mode, float(rate), float(seconds), int(seed))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_subscriber":
        run_subscriber(int(sys.argv[2]), float(sys.argv[3]))
        return 0

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help='print one JSON object {"results": [...]}')
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase (default 60)")
    parser.add_argument("--steps", type=int, default=50, help="volume steps per latency run (default 50)")
    parser.add_argument("--rate", type=float, default=2000.0, help="flood: OSC messages/s in all (default 2000)")
    args = parser.parse_args()
    if shutil.which("jackd") is None:
        raise SystemExit("jackd is needed (Debian: jackd2)")

    results = Results()
    results.quiet = False
    rng = random.Random(11)
    work = Path(tempfile.mkdtemp(prefix="controlroom-bench-"))
    server = JackServer(f"controlroom-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}", SAMPLERATE, BLOCKSIZE, 8)
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    env = {**os.environ, "JACK_DEFAULT_SERVER": server.name, "NUMBA_CACHE_DIR": str(work / "numba")}
    block_ms = BLOCKSIZE / SAMPLERATE * 1e3
    print(
        f"controlroom realtime: JACK dummy {SAMPLERATE} Hz / {BLOCKSIZE} frames "
        f"(block {block_ms * 1e3:.0f} µs), phases of {args.seconds:g} s",
        file=sys.stderr,
        flush=True,
    )
    daemon = harness = player = recorder = None
    try:
        server.start()
        binary = compile_baseline(work)

        # 1. baseline alone
        base = Baseline(binary, args.seconds).result()
        results.add(
            "baseline C client alone: delivered",
            100 * base["delivered"],
            "%",
            callbacks=base["callbacks"],
            expected=base["expected"],
            xruns=base["xruns"],
        )

        # 2. start-up, cold then warm
        config = studio_config(work)
        cold = Daemon(config, work, env)
        results.add("start-up to READY, cold numba cache", cold.ready_s, "s")
        results.add("start-up until idle (compiled), cold numba cache", settle(cold), "s")
        status = cold.stop()
        warm = daemon = Daemon(config, work, env)
        results.add("start-up to READY, warm numba cache", warm.ready_s, "s", "<= 2 s", warm.ready_s <= 2.0)
        results.add("start-up until idle, warm numba cache", settle(warm), "s")
        results.add("exit status after SIGTERM (cold run)", status, "", "0", status == 0)

        peer = OscPeer(daemon.port)
        ramp_ms = float(tomlkit.parse(STUDIO.read_text())["monitor"]["ramp_ms"])

        # 3. idle
        alongside = Baseline(binary, args.seconds)
        cpu0, before = cpu_seconds(daemon.pid), engine(peer)
        time.sleep(args.seconds)
        cpu1, after_idle = cpu_seconds(daemon.pid), engine(peer)
        idle_base = alongside.result()
        idle, idle_cb, idle_exp = delivered(before, after_idle)
        results.add(
            "idle: callbacks delivered",
            100 * idle,
            "%",
            callbacks=idle_cb,
            expected=idle_exp,
            xruns=xruns(before, after_idle),
        )
        results.add("idle: C client alongside delivered", 100 * idle_base["delivered"], "%")
        results.add("idle: daemon CPU", 100 * (cpu1 - cpu0) / args.seconds, "%")

        # 4. flood
        alongside = Baseline(binary, args.seconds)
        traffic = Traffic(daemon.port, "full", args.rate, args.seconds)
        cpu0, before = cpu_seconds(daemon.pid), engine(peer)
        counts = traffic.finish()
        cpu1, after_flood = cpu_seconds(daemon.pid), engine(peer)
        flood_base = alongside.result()
        flood, flood_cb, flood_exp = delivered(before, after_flood)
        sent = sum(s["sent"] for s in counts["sent"])
        seconds = max(s["seconds"] for s in counts["sent"])
        results.add(
            "flood: OSC messages/s sent (2 senders)",
            sent / seconds,
            "msg/s",
            f">= {args.rate:g}",
            sent / seconds >= args.rate,
        )
        for k, got in enumerate(counts["received"], start=1):
            results.add(
                f"flood: subscriber {k} received feedback / meters", f"{got['feedback']} / {got['meters']}", "msgs"
            )
        results.add(
            "flood: callbacks delivered",
            100 * flood,
            "%",
            callbacks=flood_cb,
            expected=flood_exp,
            xruns=xruns(before, after_flood),
        )
        results.add("flood: C client alongside delivered", 100 * flood_base["delivered"], "%")
        results.add("flood: daemon CPU", 100 * (cpu1 - cpu0) / args.seconds, "%")
        results.add("flood delivered / idle delivered", 100 * flood / idle, "%", ">= 99 %", flood >= 0.99 * idle)
        results.add("idle delivered / baseline alone", 100 * idle / base["delivered"], "%")
        results.add("flood delivered / baseline alone", 100 * flood / base["delivered"], "%")
        durations = after_flood["duration_us"]
        results.add("callback duration p50 (since stream start)", durations["p50"], "µs")
        results.add(
            "callback duration p99 (since stream start)",
            durations["p99"],
            "µs",
            f"<= {0.1 * BLOCK_US:.0f} µs",
            durations["p99"] is not None and durations["p99"] <= 0.1 * BLOCK_US,
        )
        results.add("callback duration max (since stream start)", durations["max"], "µs")
        results.add("OSC messages dropped by the daemon (junk)", sum(after_flood["dropped"].values()), "")

        # 5. OSC-to-audio latency: quiet, then under control traffic. The bench's own (Python)
        # JACK clients join the graph only now, so that they cannot cost the daemon callbacks
        # in the phases above.
        harness = jack.Client("bench-wiring", servername=server.name, no_start_server=True)
        player, recorder = Player(server.name), Recorder(server.name, 60.0)
        wire(harness, player, recorder)
        for target, value in [
            ("mute", False),
            ("dim", False),
            ("mono", False),
            ("solo", "off"),
            ("polarity", False),
            ("match", "hold"),
            ("source", "mix"),
            ("speakers", "crap"),
        ]:
            peer.set(target, value)
        budget = 2 * block_ms + ramp_ms
        for label, mode in [("quiet", None), ("under flood", "quiet-output")]:
            traffic = Traffic(daemon.port, mode, args.rate, 3600.0) if mode else None
            try:
                latency = measure_latency(peer, recorder, args.steps, rng)
            finally:
                if traffic is not None:
                    traffic.stop()
            done, onset = latency["done_ms"], latency["onset_ms"]
            p99 = percentile(done, 99)
            results.add(f"OSC-to-audio onset p50 ({label})", percentile(onset, 50), "ms")
            results.add(f"OSC-to-audio onset p99 ({label})", percentile(onset, 99), "ms")
            results.add(f"OSC-to-audio done p50 ({label}, {len(done)} steps)", percentile(done, 50), "ms")
            results.add(
                f"OSC-to-audio done p99 ({label}, {len(done)} steps)",
                p99,
                "ms",
                f"<= {budget:.2f} ms",
                p99 is not None and p99 <= budget and len(done) == args.steps,
            )

        # 6. memory
        memory = memory_kib(daemon.pid)
        results.add("daemon resident memory (VmRSS)", memory["VmRSS"] / 1024, "MiB")
        results.add("daemon peak resident memory (VmHWM)", memory["VmHWM"] / 1024, "MiB")
        peer.close()
        recorder.close()
        player.close()
        harness.close()
        player = recorder = harness = None
        status = daemon.stop()
        daemon = None
        results.add("exit status after SIGTERM", status, "", "0", status == 0)
    finally:
        for client in (recorder, player, harness):
            if client is not None:
                client.close()
        if daemon is not None and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
        server.stop()
        server.log.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps({"results": results.rows}, indent=None))
    else:
        print(f"{'':<5}{'result':<52}{'value':>12} {'unit':<6}target")
        for row in results.rows:
            print(format_row(row))
    return 0 if all(row.get("pass", True) for row in results.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
