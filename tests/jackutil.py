"""A JACK dummy server and a recording/playing JACK client for integration tests.

``JackServer`` runs ``jackd -n NAME -S -d dummy`` and can be killed and restarted by a test
(device-loss tests). ``JackHarness`` is a JACK client whose output ports play looped signals
into PortAudio's inputs and whose input ports record PortAudio's outputs.

Two rules keep a test process alive across a killed server:
- A JACK client must be closed while its server lives: libjack frees a dead server's clients
  when the next client opens, and closing one afterwards touches freed memory. ``kill()``
  therefore closes this module's harness clients first; close your own before calling it.
- PortAudio aborts the process if it is terminated after its JACK server died, so ``kill()``
  marks the process's PortAudio instance as lost (``library.server_lost``).
"""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import jack
import numpy as np
from timekit import scaled

SHM = Path("/dev/shm")
#: JACK's table of running servers (jack2 ``shm.h``): a header, then MAX_SERVERS entries of
#: ``{pid_t pid; char name[257]}`` padded to 264 bytes; the name reads ``jack-UID:NAME:``.
REGISTRY = SHM / "jack-shm-registry"
REGISTRY_MAGIC = 0x4A41434B
REGISTRY_SLOTS = 8
REGISTRY_HEADER = 24
REGISTRY_ENTRY = 264
#: The ``[audio]`` table of a daemon on the test server: PortAudio's JACK device, 8 in, 8 out, one
#: period per callback.
JACK_AUDIO = """\
[audio]
backend = "portaudio"
device = "system"
samplerate = 48000
blocksize = 64
input_channels = 8
output_channels = 8
"""
READY_TIMEOUT_S = scaled(10.0)
RECORD_TIMEOUT_S = scaled(10.0)


class JackServer:
    """``jackd -n NAME -S -d dummy -r RATE -p PERIOD -C N -P N``; start() waits until ready."""

    def __init__(self, name: str, samplerate: int = 48000, period: int = 64, channels: int = 8) -> None:
        self.name = name
        self.samplerate = samplerate
        self.period = period
        self.channels = channels
        self.log = Path(tempfile.gettempdir()) / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self._harnesses: weakref.WeakSet[JackHarness] = weakref.WeakSet()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start jackd and return once a client can connect (RuntimeError after
        ``READY_TIMEOUT_S`` or if jackd exits)."""
        self.remove_shm()
        make_room()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                jackd_command(self.name, self.samplerate, self.period, self.channels),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if not self.alive:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"jackd exited ({self.process.returncode}): {' / '.join(tail)}")
            try:
                probe = jack.Client("ready-probe", servername=self.name, no_start_server=True)
            except jack.JackOpenError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jackd not ready after {READY_TIMEOUT_S} s: see {self.log}") from None
                time.sleep(0.05)
            else:
                probe.close()
                return

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (after closing this module's clients of it).

        Its slot in JACK's server registry (8 per machine) stays taken until a server of the
        same name starts again or ``stop()`` is called (``start()`` gives back the slots of dead
        test servers when the registry is full).
        """
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server gracefully, freeing its registry slot; start it first if it was
        killed, because only a live server can give its slot back.

        A server that does not exit 0 on SIGTERM has not given its slot back either (jackd
        dies of SIGPIPE when it notifies a client that crashed; one that hangs is killed after
        ``READY_TIMEOUT_S``), so it is started and stopped again (at most twice more)."""
        for _ in range(3):
            if not self.alive:
                self.start()
            self._end(signal.SIGTERM)
            if self.process.returncode == 0:
                return

    def _end(self, signum: int) -> None:
        self.close_harnesses()
        if self.alive:
            self.process.send_signal(signum)
            try:
                self.process.wait(READY_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.remove_shm()
        if "sounddevice" in sys.modules:
            from controlroom.daemon.engine import library

            library.server_lost()

    def restart(self) -> None:
        """``kill()``, then ``start()``: a crash and a comeback."""
        self.kill()
        self.start()

    def remove_shm(self) -> None:
        """Remove what a killed server leaves in /dev/shm, so that NAME can be reused."""
        remove_shm(self.name)

    def ports(self, client_prefix: str) -> list[str]:
        """The names of the audio ports of every client named ``client_prefix``* (JACK names a
        second client of a taken name ``NAME-01``), listed by a client opened and closed here."""
        client = jack.Client("port-lister", servername=self.name, no_start_server=True)
        try:
            pattern = f"^{re.escape(client_prefix)}[^:]*:"
            return sorted(port.name for port in client.get_ports(pattern, is_audio=True))
        finally:
            client.close()

    def harness(self, n_play: int, n_record: int, name: str = "harness") -> JackHarness:
        """A new ``JackHarness`` on this server (closed by ``kill()``)."""
        harness = JackHarness(self.name, n_play, n_record, name)
        self._harnesses.add(harness)
        return harness

    def close_harnesses(self) -> None:
        """Close every ``JackHarness`` made by ``harness()``."""
        for harness in list(self._harnesses):
            harness.close()


def jackd_command(name: str, samplerate: int = 48000, period: int = 64, channels: int = 8) -> list[str]:
    """A dummy JACK server named ``name``: ``samplerate`` Hz, ``period`` frames, ``channels`` in
    and out, synchronous mode."""
    options = {"-r": samplerate, "-p": period, "-C": channels, "-P": channels}
    return ["jackd", "-n", name, "-S", "-d", "dummy", *(str(x) for item in options.items() for x in item)]


def registry() -> dict[str, int]:
    """The servers in JACK's registry, name -> pid of the jackd that registered it (alive or not;
    {} without a registry or with one of another layout).

    A jackd that dies without unregistering (SIGKILL, or SIGPIPE when it notifies a client that
    crashed) keeps its slot until a server of the same name registers: after 8 such names no
    server can start (jackd exits 255)."""
    try:
        data = REGISTRY.read_bytes()
    except OSError:
        return {}
    if (
        len(data) < REGISTRY_HEADER + REGISTRY_SLOTS * REGISTRY_ENTRY
        or struct.unpack_from("<I", data)[0] != REGISTRY_MAGIC
    ):
        return {}
    servers = {}
    for slot in range(REGISTRY_SLOTS):
        offset = REGISTRY_HEADER + slot * REGISTRY_ENTRY
        (pid,) = struct.unpack_from("<i", data, offset)
        name = data[offset + 4 : offset + REGISTRY_ENTRY].split(b"\0")[0].decode(errors="replace")
        if pid:
            servers[re.sub(r"^jack-\d+:(.*):$", r"\1", name)] = pid
    return servers


def make_room() -> None:
    """Call before starting a server: if JACK's registry is full, give back the slots of dead
    test servers (``give_back_dead_slots``)."""
    if len(registry()) >= REGISTRY_SLOTS:
        give_back_dead_slots()


def give_back_dead_slots(prefix: str = "controlroom-") -> None:
    """Free the registry slots of dead servers named ``prefix``*: a jackd of the same name
    takes the slot over, and SIGTERM ends it cleanly (no client ever connects to it). A server
    orphaned by a test session that crashed (its parent is gone) is ended with SIGTERM."""
    for name, pid in registry().items():
        if not name.startswith(prefix):
            continue
        if not _alive(pid):
            _take_over_and_end(name)
        elif _orphaned(pid):
            _end(pid)


def give_back(name: str) -> None:
    """Free the registry slot of the server ``name`` if it died holding it (see
    ``give_back_dead_slots``), and what it left in /dev/shm."""
    pid = registry().get(name)
    if pid is not None and not _alive(pid):
        _take_over_and_end(name)
    remove_shm(name)


def remove_shm(name: str) -> None:
    """Remove what the killed server ``name`` left in /dev/shm, so that the name can be reused."""
    for pattern in (f"jack_{name}_*", f"jack_sem.*_{name}_*"):
        for path in SHM.glob(pattern):
            path.unlink(missing_ok=True)


def _take_over_and_end(name: str) -> None:
    process = subprocess.Popen(jackd_command(name, channels=2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while registry().get(name) != process.pid and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.terminate()
    try:
        process.wait(READY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _orphaned(pid: int) -> bool:
    """The process was re-parented to init: whoever started it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[1] == "1"


def _end(pid: int) -> None:
    """SIGTERM ``pid`` and wait (bounded) until it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + READY_TIMEOUT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sine(frequency: float, amplitude: float, samplerate: int = 48000, periods: int = 100) -> np.ndarray:
    """A float32 sine of a whole number of periods, to be played as a seamless loop."""
    frames = round(periods * samplerate / frequency)
    return (amplitude * np.sin(2 * np.pi * frequency * np.arange(frames) / samplerate)).astype(np.float32)


def rms_db(signal_: np.ndarray) -> np.ndarray:
    """RMS level per column, dBFS (-inf for digital silence)."""
    with np.errstate(divide="ignore"):
        return 20 * np.log10(np.sqrt(np.mean(np.square(signal_, dtype=np.float64), axis=0)))


class JackHarness:
    """A JACK client with ``n_play`` output ports ``play_K`` and ``n_record`` input ports
    ``rec_K`` (K 1-based), processing in JACK's thread."""

    def __init__(self, servername: str, n_play: int, n_record: int, name: str = "harness") -> None:
        self.client = jack.Client(name, servername=servername, no_start_server=True)
        self.outports = [self.client.outports.register(f"play_{k}") for k in range(1, n_play + 1)]
        self.inports = [self.client.inports.register(f"rec_{k}") for k in range(1, n_record + 1)]
        self._loops: list[np.ndarray | None] = [None] * n_play
        self._positions = [0] * n_play
        self._recording: np.ndarray | None = None
        self._recorded = 0
        self._skip = 0
        #: per play port, the loop position playing when the last recording's first frame was
        #: recorded (None: no loop)
        self.recorded_phase: list[int | None] = [None] * n_play
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._outboard: _Outboard | None = None
        self.client.set_process_callback(self._process)
        self.client.activate()
        self._open = True

    def outboard(self, sends: list[int], returns: list[int], delay: int, gain_db: float, b=(1.0,), a=(1.0,)) -> None:
        """Stand in for outboard gear in an insert: what rec ports ``sends`` (1-based) receive
        goes out of play ports ``returns`` exactly ``delay`` samples later, ``gain_db`` (dB)
        louder and filtered by the IIR filter ``b``/``a``.

        The gear lives in this client so that its cables have the same JACK latencies as the
        harness's own: the insert's round trip is the harness's round trip plus ``delay``.
        """
        with self._lock:
            self._outboard = _Outboard(sends, returns, delay, gain_db, b, a)

    def room(self, mic: int, delays: dict[int, int], gains_db: dict[int, float], noise_dbfs: float) -> Room:
        """Stand in for a room with speakers and a measurement mic: what rec port K (a daemon
        output) receives reaches play port ``mic`` ``delays[K]`` samples later and
        ``gains_db[K]`` (dB) louder, plus white noise at ``noise_dbfs`` (dBFS RMS). Like
        ``outboard``'s gear it lives in this client, so its cables add what the harness's do."""
        room = Room(mic, delays, gains_db, noise_dbfs)
        with self._lock:
            self._outboard = room
        return room

    def play(self, channel: int, loop: np.ndarray | None) -> None:
        """Play float32 ``loop`` repeatedly on port play_``channel`` (None: silence)."""
        with self._lock:
            self._loops[channel - 1] = None if loop is None else np.ascontiguousarray(loop, np.float32)
            self._positions[channel - 1] = 0

    def wire(self, client_prefix: str = "PortAudio") -> None:
        """Cut the ports of the client named ``client_prefix``* from everything (PortAudio
        connects them to system:*), then play_K -> its input K and its output K -> rec_K."""
        inputs = self._ports(client_prefix, "in", is_input=True)
        outputs = self._ports(client_prefix, "out", is_output=True)
        for port in inputs + outputs:
            for other in self.client.get_all_connections(port):
                if port.is_input:
                    self.client.disconnect(other, port)
                else:
                    self.client.disconnect(port, other)
        for mine, theirs in zip(self.outports, inputs):
            self.client.connect(mine, theirs)
        for theirs, mine in zip(outputs, self.inports):
            self.client.connect(theirs, mine)

    def record(self, frames: int, skip: int = 0) -> np.ndarray:
        """Skip ``skip`` frames, then record ``frames`` frames from every rec port:
        a float32 (frames, n_record) array."""
        self.begin_recording(frames, skip)
        if not self._done.wait(RECORD_TIMEOUT_S):
            raise TimeoutError(f"recorded {self._recorded} of {frames} frames in {RECORD_TIMEOUT_S} s")
        return self.end_recording()

    def begin_recording(self, frames: int, skip: int = 0) -> None:
        """Start recording (at most ``frames`` frames after skipping ``skip``) and return."""
        with self._lock:
            self._recording = np.zeros((frames, len(self.inports)), dtype=np.float32)
            self._recorded = 0
            self._skip = skip
            self._done.clear()

    def end_recording(self) -> np.ndarray:
        """Stop recording; what was recorded, (frames, n_record) float32."""
        with self._lock:
            recording, self._recording = self._recording, None
            self._done.set()
        return recording[: self._recorded]

    def close(self) -> None:
        """Deactivate and close the client (again: nothing)."""
        if self._open:
            self._open = False
            self.client.deactivate()
            self.client.close()

    def _ports(self, prefix: str, kind: str, **flags) -> list[jack.Port]:
        pattern = re.compile(rf"^{re.escape(prefix)}[^:]*:{kind}_(\d+)$")
        ports = [p for p in self.client.get_ports(is_audio=True, **flags) if pattern.match(p.name)]
        clients = {p.name.split(":")[0] for p in ports}
        if len(clients) != 1:
            raise RuntimeError(f"expected one {prefix} client with {kind} ports, found {sorted(clients)}")
        return sorted(ports, key=lambda p: int(pattern.match(p.name).group(1)))

    def _process(self, frames: int) -> None:
        with self._lock:
            period_start = list(self._positions)
            for k, port in enumerate(self.outports):
                buffer = port.get_array()
                loop = self._loops[k]
                if loop is None:
                    buffer[:] = 0.0
                    continue
                indices = (self._positions[k] + np.arange(frames)) % loop.shape[0]
                buffer[:] = loop[indices]
                self._positions[k] = (self._positions[k] + frames) % loop.shape[0]
            if self._outboard is not None:
                self._outboard.process(self.inports, self.outports, frames)
            if self._recording is not None and not self._done.is_set():
                self._take(frames, period_start)

    def _take(self, frames: int, period_start: list[int]) -> None:
        start = min(self._skip, frames)
        self._skip -= start
        count = min(frames - start, self._recording.shape[0] - self._recorded)
        if self._recorded == 0 and count > 0:
            self.recorded_phase = [
                None if loop is None else (p + start) % loop.shape[0] for p, loop in zip(period_start, self._loops)
            ]
        for k, port in enumerate(self.inports):
            taken = port.get_array()[start : start + count]
            self._recording[self._recorded : self._recorded + count, k] = taken
        self._recorded += count
        if self._recorded == self._recording.shape[0]:
            self._done.set()


class _Outboard:
    """The gear of ``JackHarness.outboard``: a delay line, a gain and an IIR filter per channel."""

    def __init__(self, sends: list[int], returns: list[int], delay: int, gain_db: float, b, a) -> None:
        from scipy import signal

        self.lfilter = signal.lfilter
        self.sends, self.returns = sends, returns
        self.b, self.a = np.asarray(b, float), np.asarray(a, float)
        self.gain = 10.0 ** (gain_db / 20.0)
        order = max(len(self.a), len(self.b)) - 1
        self.state = [np.zeros(order) for _ in sends]
        self.pending = [np.zeros(delay) for _ in sends]

    def process(self, inports, outports, frames: int) -> None:
        for k, (send, ret) in enumerate(zip(self.sends, self.returns)):
            x = self.gain * inports[send - 1].get_array()
            y, self.state[k] = self.lfilter(self.b, self.a, x, zi=self.state[k])
            line = np.concatenate([self.pending[k], y])
            outports[ret - 1].get_array()[:] = line[:frames]
            self.pending[k] = line[frames:]


class Room:
    """The room of ``JackHarness.room``: per output a delay line and a gain, summed with noise
    into the mic's play port. ``mic_live = False`` unplugs the mic: its port plays only an
    interface's own input noise (DEAD_INPUT_DBFS), as a real input with nothing on it does.

    Args:
        mic: the 1-based harness play port that is the mic.
        delays: 1-based daemon output -> its delay to the mic (samples).
        gains_db: output -> its gain to the mic (dB).
        noise_dbfs: the room's noise at the mic (dBFS RMS, white).
    """

    #: The input noise of an interface's preamp with no mic on it (dBFS RMS).
    DEAD_INPUT_DBFS = -105.0

    def __init__(self, mic: int, delays: dict[int, int], gains_db: dict[int, float], noise_dbfs: float) -> None:
        self.mic, self.delays = mic, dict(delays)
        self.gains = {k: 10.0 ** (db / 20.0) for k, db in gains_db.items()}
        self.noise = 10.0 ** (noise_dbfs / 20.0)
        self.pending = {k: np.zeros(d) for k, d in delays.items()}
        self.rng = np.random.default_rng(11)
        self.mic_live = True
        self._lock = threading.Lock()  # a test moves a speaker while the JACK thread plays

    def move(self, output: int, delay: int, gain_db: float) -> None:
        """Put ``output``'s speaker ``delay`` samples and ``gain_db`` (dB) from the mic."""
        with self._lock:
            self.pending[output] = np.zeros(delay)
            self.gains[output] = 10.0 ** (gain_db / 20.0)

    def process(self, inports, outports, frames: int) -> None:
        heard = self.noise * self.rng.standard_normal(frames)
        with self._lock:
            for k, gain in self.gains.items():
                line = np.concatenate([self.pending[k], gain * inports[k - 1].get_array()])
                heard += line[:frames]
                self.pending[k] = line[frames:]
        if not self.mic_live:
            heard = 10.0 ** (self.DEAD_INPUT_DBFS / 20.0) * self.rng.standard_normal(frames)
        outports[self.mic - 1].get_array()[:] = heard
