"""MQTT for the tests: a real mosquitto broker on loopback, a recording client, and daemon configs
with an ``[mqtt]`` section.

The broker is the Debian ``mosquitto`` (2.x) started with a config of its own on a free port of
127.0.0.1, without persistence: a restarted broker has forgotten every retained message, so what a
subscriber finds after a restart was published again. A test that needs it and finds no
mosquitto skips.

``Recorder`` is an ``aiomqtt`` client that subscribes and keeps every message it receives, in
arrival order. Synchronisation is by events: ``sync()`` publishes a marker to a topic of its own
and waits for it to come back, and the broker delivers to one subscriber in order, so everything
the broker had sent to the recorder before the marker (the retained messages of its subscriptions
included) has arrived when ``sync()`` returns. What a daemon did is awaited as a condition (its
state, a topic's latest payload, a counter of its report), each with a timeout; never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from daemonkit import CONFIG_TOML, until
from timekit import scaled

LOOPBACK = "127.0.0.1"
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin:/sbin")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or shutil.which(
    "mosquitto_passwd", path="/usr/bin:/usr/sbin:/usr/local/bin"
)
BROKER_START_S = 10.0
BROKER_STOP_S = 10.0
#: Longest wait for anything a connected daemon publishes (it answers at once: this is slack).
REPLY_S = 10.0
#: A daemon finds a broker that was absent or went away within this (its backoff is a few s).
RECONNECT_S = 30.0

#: The MQTT reasons of ``report()["engine"]["dropped"]``.
MQTT_DROPS = ("mqtt_malformed", "mqtt_bad_value", "mqtt_unknown_topic")


def need_mosquitto() -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((LOOPBACK, port)) == 0


# --- the broker ---------------------------------------------------------------------------------


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate authority made with openssl: (certificate, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}"]
        + ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True,
        capture_output=True,
    )
    return cert, key


def make_server_certificate(directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 signed by ``ca``: (certificate, key)."""
    openssl = shutil.which("openssl")
    cert, key, request = directory / "server.pem", directory / "server.key", directory / "server.csr"
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    subprocess.run(
        [openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(request), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [openssl, "x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial"]
        + ["-out", str(cert), "-days", "2", "-extfile", str(extensions)],
        check=True,
        capture_output=True,
    )
    return cert, key


class Broker:
    """``mosquitto -c CONF`` listening on ``127.0.0.1:port`` (a free port unless given), its files
    and log in ``directory``. With ``users`` (name -> password), only they may connect; with
    ``tls``, it speaks TLS only, with a certificate for 127.0.0.1 signed by its own CA
    (``ca_file``)."""

    def __init__(
        self, directory: Path, port: int | None = None, users: dict[str, str] | None = None, tls: bool = False
    ) -> None:
        need_mosquitto()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.users = users or {}
        self.log_path = self.directory / "mosquitto.log"
        self.process: subprocess.Popen | None = None
        self.ca_file: Path | None = None
        self.tls_lines: list[str] = []
        if tls:
            ca = make_ca(self.directory, "broker-ca")
            cert, key = make_server_certificate(self.directory, ca)
            self.ca_file = ca[0]
            self.tls_lines = [f"cafile {ca[0]}", f"certfile {cert}", f"keyfile {key}"]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _write_config(self) -> Path:
        lines = [f"listener {self.port} {LOOPBACK}", *self.tls_lines, "persistence false", f"user {getpass.getuser()}"]
        if self.users:
            if MOSQUITTO_PASSWD is None:
                pytest.skip("mosquitto_passwd is not installed")
            passwords = self.directory / "passwd"
            passwords.unlink(missing_ok=True)
            for i, (name, password) in enumerate(self.users.items()):
                create = ["-c"] if i == 0 else []
                subprocess.run([MOSQUITTO_PASSWD, "-b", *create, str(passwords), name, password], check=True)
            passwords.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        conf = self.directory / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> Broker:
        """Start it and return once it accepts connections. On a port of its own choosing that
        another process took meanwhile, it tries another; once started, it keeps its port (a
        restart is on the same one)."""
        for _ in range(5):
            conf = self._write_config()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + scaled(BROKER_START_S)
            while self.process.poll() is None and not listening(self.port):
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"mosquitto did not listen on {self.address}:\n{self.log()}")
                time.sleep(0.02)
            if self.process.poll() is None:
                self.fixed_port = True
                return self
            if self.fixed_port:
                break
            self.port = free_port()
        raise RuntimeError(f"mosquitto exited ({self.process.returncode}):\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it does not exit)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(BROKER_STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


# --- daemon configs -------------------------------------------------------------------------------

#: Added to daemonkit's config: a second speaker set and two ``[levels]`` entries, so that every
#: target has somewhere to go.
MORE_TOML = """
[speakers.consumer]
outputs = [3, 4]

[levels]
reference = -12.0
quiet = -30.0
"""

SPEAKERS = ("studio", "consumer")
#: The targets at start (daemonkit's config: volume -10 dB, [ab] mix/ref with auto matching, the
#: first speaker set) as their topics carry them.
INITIAL_TEXTS = {
    "volume": "-10.0",
    "dim": "OFF",
    "mute": "OFF",
    "mono": "OFF",
    "solo": "off",
    "polarity": "OFF",
    "speakers": "studio",
    "sub": "ON",
    "source": "mix",
    "ab": "a",
    "match": "auto",
    "blind": "OFF",
}
SOURCES = ("mix", "ref", "tape")
LEVELS = {"reference": -12.0, "quiet": -30.0}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, os.PathLike)):
        return json.dumps(os.fspath(value))  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def mqtt_section(port: int | None, **keys: Any) -> str:
    """``[mqtt]`` with ``broker = "127.0.0.1:port"`` (unless ``broker`` is among ``keys``) and
    ``keys`` (None values left out)."""
    if "broker" not in keys:
        keys = {"broker": f"{LOOPBACK}:{port}", **keys}
    lines = [f"{key} = {toml_value(value)}" for key, value in keys.items() if value is not None]
    return "\n[mqtt]\n" + "\n".join(lines) + "\n"


def mqtt_config(port: int | None, *, monitor: str = "", extra: str = "", **keys: Any) -> str:
    """daemonkit's config text (volume -10 dB, sources mix/ref/tape, [ab] mix/ref with auto
    matching, OSC on any free port) with ``MORE_TOML``, ``monitor`` lines added to its
    ``[monitor]`` table, ``extra`` (whole tables) and an ``[mqtt]`` section of ``keys``."""
    text = CONFIG_TOML.format(ab_extra="")
    if monitor:
        anchor = "startup_max_volume_db = -10.0\n"
        text = text.replace(anchor, anchor + monitor.strip() + "\n")
    return text + MORE_TOML + extra + mqtt_section(port, **keys)


# --- topics and payloads ----------------------------------------------------------------------------


def topic(instance: str, *parts: str) -> str:
    return "/".join(("controlroom", instance, *parts))


def text_of(value: Any) -> str:
    """A target value as its topic carries it: ``ON``/``OFF``, the volume's float rounded to
    0.01 dB as Python writes it, a choice by name."""
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return repr(round(value, 2))
    return str(value)


def mqtt_drops(daemon) -> dict[str, int]:
    """The daemon's MQTT drop counters (reason -> count, zeros left out)."""
    dropped = daemon.report()["engine"].get("dropped", {})
    return {reason: n for reason, n in dropped.items() if reason.startswith("mqtt_") and n}


def mqtt_report(daemon) -> dict[str, Any]:
    return daemon.report().get("mqtt") or {}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- the recording client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # event-loop time of arrival

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """An MQTT client of the broker on ``port`` subscribed to ``topics`` (QoS 1), keeping every
    message it receives in ``messages``. ``async with Recorder(port, "controlroom/#") as r``."""

    def __init__(
        self,
        port: int,
        *topics: str,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.port = port
        self.topics = topics
        self.options: dict[str, Any] = {"username": username, "password": password} if username is not None else {}
        if ca_file is not None:
            self.options["tls_params"] = aiomqtt.TLSParameters(ca_certs=str(ca_file))
        self.messages: list[Received] = []
        self.marker_topic = f"controlroom-test/{uuid.uuid4().hex}/sync"
        self.markers: list[bytes] = []
        self.disconnected = False
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> Recorder:
        self._client = aiomqtt.Client(
            LOOPBACK, self.port, identifier=f"recorder-{uuid.uuid4().hex[:12]}", **self.options
        )
        await self._client.__aenter__()
        self._reader = asyncio.create_task(self._read())
        await self._client.subscribe(self.marker_topic, qos=1)
        for t in self.topics:
            await self._client.subscribe(t, qos=1)
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for m in self._client.messages:
                payload = bytes(m.payload) if isinstance(m.payload, (bytes, bytearray)) else str(m.payload).encode()
                if m.topic.value == self.marker_topic:
                    self.markers.append(payload)
                else:
                    self.messages.append(Received(m.topic.value, payload, m.retain, loop.time()))
        except aiomqtt.MqttError:
            self.disconnected = True  # the broker went away

    # --- sending ---------------------------------------------------------------------------

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        await self._client.publish(topic, payload.encode() if isinstance(payload, str) else payload, 1, retain)

    async def sync(self, timeout: float = REPLY_S) -> None:
        """Return once everything the broker sent to this client before now has arrived."""
        marker = uuid.uuid4().hex.encode()
        await self.publish(self.marker_topic, marker)
        await until(lambda: marker in self.markers, "the recorder's own sync marker", timeout)

    # --- what arrived --------------------------------------------------------------------------

    def on(self, topic: str, since: int = 0) -> list[Received]:
        """The messages on ``topic`` (from index ``since`` of ``messages``)."""
        return [m for m in self.messages[since:] if m.topic == topic]

    def last(self, topic: str) -> Received | None:
        found = self.on(topic)
        return found[-1] if found else None

    def text(self, topic: str) -> str | None:
        """The payload last received on ``topic`` (None: nothing yet)."""
        message = self.last(topic)
        return message.text if message is not None else None

    def mark(self) -> int:
        """An index into ``messages``: what arrives from now on is ``messages[mark:]``."""
        return len(self.messages)

    async def wait(self, condition: Callable[[], Any], what: str, timeout: float = REPLY_S) -> None:
        await until(lambda: bool(condition()), what, timeout)

    async def wait_text(self, topic: str, text: str, timeout: float = REPLY_S) -> Received:
        """Wait until the latest message on ``topic`` reads ``text``; that message."""

        def arrived() -> bool:
            return self.text(topic) == text

        try:
            await until(arrived, f"{topic} = {text!r}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (last: {self.text(topic)!r})") from None
        return self.last(topic)


async def ready(daemon, recorder: Recorder, instance: str, timeout: float = RECONNECT_S) -> None:
    """Wait until ``daemon`` is connected, ``recorder`` (subscribed to its topics) has its
    ``online`` status and whole ``state``, and the daemon hears commands: a command that changes
    nothing whatever the state (``volume/step 0``) is sent until ``report()["mqtt"]["received"]``
    counts one. Commands sent after this are not lost to a subscription still on its way."""
    await until(lambda: mqtt_report(daemon).get("state") == "connected", f"{instance} connected", timeout)
    await recorder.wait_text(topic(instance, "status"), "online", timeout)
    await recorder.wait(lambda: recorder.last(topic(instance, "state")), f"{instance}'s state", timeout)
    before = mqtt_report(daemon)["received"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while mqtt_report(daemon)["received"] == before:
        assert loop.time() < deadline, f"{instance} counted no command (report mqtt.received)"
        await recorder.publish(topic(instance, "volume", "step"), "0")
        with contextlib.suppress(AssertionError):
            await until(lambda: mqtt_report(daemon)["received"] != before, "a command", 0.5)
