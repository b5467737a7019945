"""The web remote for the tests: daemons with a ``[web]`` section, WebSocket clients, a headless
Chromium.

Daemons run as subprocesses on the virtual backend, as a user starts them:

- ``WebDaemon`` is ``controlroom run -c FILE`` (``daemonproc.DaemonProcess``): its OSC and web
  ports are port 0 in the config and read from its log (``OSC listening on HOST:PORT``, ``web
  remote on http://HOST:PORT/``). Its inputs are silent.
- ``DemoDaemon`` is ``controlroom demo -c FILE``: the same config with generated programme on
  its sources, so its meters move. The demo logs only warnings, so its ports are chosen here
  (free ports of 127.0.0.1 written into the config) and it is ready once its page is served and
  its OSC report says the engine runs. It can be stopped and started again on the same ports.

``WsClient`` is a WebSocket client of ``/ws`` on aiohttp that reads every frame as it comes and
keeps them in arrival order (``states``, ``meters``, ``errors``); ``SlowReader`` is one that
asks for meters and then never reads another byte (a stalled tablet). ``Browser`` is a headless
Chromium driven by selenium, logging its console and its network requests.

Synchronisation is by events: a state frame that shows a change, a log line, an OSC report (the
daemon handles datagrams in order, so its answer comes after everything sent before it), a
page attribute that follows; each awaited with a bounded timeout, never a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from clikit import Command
from configkit import STATE_TARGETS
from daemonproc import START_TIMEOUT_S, DaemonProcess, OscPeer, wait_for, write_config
from osckit import Peer
from timekit import scaled

LOOPBACK = "127.0.0.1"
#: Loopback holds all of 127/8: a client bound here is outside an allowlist of 127.0.0.1/32.
STRANGER = "127.0.0.2"
#: Longest wait for anything the daemon sends back at once (a state frame, an error): slack.
REPLY_S = 5.0
#: A change made anywhere reaches a connected client within this (a generous bound for a
#: loaded machine: the daemon sends it at once).
PROMPT_S = 2.0
#: The web reasons of ``report["engine"]["dropped"]``.
WEB_DROPS = ("web_malformed", "web_bad_value", "web_unknown_target", "web_flood")
#: The largest message the daemon reads (bytes); one byte more is malformed.
MAX_MESSAGE_BYTES = 4096
#: Most messages per second from one client; the excess is dropped (``web_flood``).
MAX_RATE = 200
#: The fastest meter frames come.
MAX_METER_HZ = 25

MIN_VOLUME_DB, MAX_VOLUME_DB, VOLUME_DB = -60.0, -6.0, -20.0
LEVELS = {"quiet": -30.0, "loud": -12.0}
INSERT = "comp"

#: A studio with everything the remote shows: two speaker sets (a sub on one), an A/B pair, an
#: outboard insert (its return is source ``comp``), listening levels. ``{web}`` is the
#: ``[web]`` section's body, ``{osc}`` the OSC address, ``{state}`` the state file.
CONFIG = """\
[audio]
backend = "virtual"
blocksize = 256

[monitor]
volume_db = {volume_db}
min_volume_db = {min_volume_db}
max_volume_db = {max_volume_db}
startup_max_volume_db = {max_volume_db}

[sources.mix]
channels = [1, 2]
[sources.ref]
channels = [3, 4]

[speakers.studio]
outputs = [1, 2]
sub = {{ output = 3, crossover_hz = 80.0 }}
[speakers.consumer]
outputs = [4, 5]

[inserts.{insert}]
send = [7, 8]
return = [5, 6]
source = "mix"

[ab]
a = "mix"
b = "ref"
match = "auto"

[levels]
{levels}

[osc]
listen = "{osc}"
allow = ["127.0.0.0/8"]
{state}
[web]
{web}
"""

#: The baseline the protocol tests start from: every target with a value, as the config starts.
BASELINE = {
    "volume": VOLUME_DB,
    "dim": False,
    "mute": False,
    "mono": False,
    "solo": "off",
    "polarity": False,
    "speakers": "studio",
    "sub": True,
    "source": "mix",
    "ab": "a",
    "match": "auto",
    "blind": False,
}


def config_text(web: str = 'listen = "127.0.0.1:0"', osc: str = "127.0.0.1:0", state_path: Path | None = None) -> str:
    """The studio's TOML with ``web`` as the body of its ``[web]`` section."""
    state = f'\n[state]\npath = "{state_path}"\n' if state_path is not None else ""
    return CONFIG.format(
        volume_db=VOLUME_DB,
        min_volume_db=MIN_VOLUME_DB,
        max_volume_db=MAX_VOLUME_DB,
        insert=INSERT,
        levels="\n".join(f"{name} = {db}" for name, db in LEVELS.items()),
        osc=osc,
        state=state,
        web=web,
    )


def web_section(listen: str = "127.0.0.1:0", allow: tuple[str, ...] = ("127.0.0.1/32",), password_file=None) -> str:
    lines = [f'listen = "{listen}"', "allow = [" + ", ".join(f'"{a}"' for a in allow) + "]"]
    if password_file is not None:
        lines.append(f'password_file = "{password_file}"')
    return "\n".join(lines)


def password_file(directory: Path, password: str, mode: int = 0o600) -> Path:
    """A password file as a user writes one (``echo PASSWORD > FILE``: a trailing newline)."""
    path = directory / "web-password"
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


def web_drops(report: dict[str, Any]) -> dict[str, int]:
    """The web drop counters of a report (reasons never counted are absent)."""
    dropped = report["engine"].get("dropped", {})
    return {reason: n for reason, n in dropped.items() if reason.startswith("web_") and n}


def less(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Counters ``after`` minus ``before``, without the zeros."""
    return {
        k: after.get(k, 0) - before.get(k, 0)
        for k in after.keys() | before.keys()
        if after.get(k, 0) != before.get(k, 0)
    }


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of 127.0.0.1 (TCP, or UDP with ``SOCK_DGRAM``) that nothing holds now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def ws_url(url: str) -> str:
    """The ``/ws`` address of the page at ``url`` (``http://host:port/``)."""
    parts = urlsplit(url)
    return f"ws://{parts.netloc}/ws"


# --- waiting ------------------------------------------------------------------------------------


async def until(condition: Callable[[], Any], what: str, timeout: float = REPLY_S) -> Any:
    """Poll ``condition()`` on the event loop until it returns something true (returned);
    AssertionError naming ``what`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while not (value := condition()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)
    return value


async def osc_report(port: int) -> dict[str, Any]:
    """The daemon's OSC report (``/controlroom/state``), from a peer of its own."""
    peer = await Peer.open(port)
    try:
        await peer.barrier()
        return peer.last_report
    finally:
        peer.close()


async def wait_report(port: int, condition: Callable[[dict[str, Any]], Any], what: str, timeout: float = REPLY_S):
    """Poll the OSC report until ``condition(report)``; that report."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while True:
        report = await osc_report(port)
        if condition(report):
            return report
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last state {report['state']}")
        await asyncio.sleep(0.02)


def targets_of(state: dict[str, Any]) -> dict[str, Any]:
    """The targets with a value of their own, out of a state object."""
    return {t: state[t] for t in STATE_TARGETS}


# --- daemons -------------------------------------------------------------------------------------


class WebDaemon(DaemonProcess):
    """``controlroom run -c FILE`` with a ``[web]`` section; ``url`` is what it logged
    (``http://HOST:PORT/``) once it listens."""

    url: str | None = None

    def start(self) -> WebDaemon:
        super().start()
        found = self.wait_log(r"web remote on (http://\S+?:(\d+)/)", START_TIMEOUT_S)
        self.url, self.web_port = found.group(1), int(found.group(2))
        return self

    @property
    def ws_url(self) -> str:
        return ws_url(self.url)


def start_web_daemon(directory: Path, web: str) -> WebDaemon:
    """A ``WebDaemon`` of the studio config in ``directory`` (its state file there too), audio
    running when this returns."""
    directory.mkdir(parents=True, exist_ok=True)
    path = write_config(directory / "controlroom.toml", config_text(web=web, state_path=directory / "state.json"))
    daemon = WebDaemon(path, directory / "daemon.log")
    try:
        daemon.start()
        with daemon.peer() as peer:
            daemon.wait_running(peer)
    except BaseException:
        daemon.close()
        raise
    return daemon


class DemoDaemon:
    """``controlroom demo -c FILE`` of the studio config with generated programme, on ports
    chosen here (so that it can start again on the same ones)."""

    def __init__(self, directory: Path, web: Callable[[int], str] | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.web = web or (lambda port: web_section(listen=f"{LOOPBACK}:{port}"))
        self.command: Command | None = None
        self.web_port = self.osc_port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.web_port}/"

    def start(self) -> DemoDaemon:
        """Start it (on new free ports the first time, the same ones after) and return once its
        page is served and its engine runs. A port another process took meanwhile: new ones."""
        fixed = bool(self.web_port)
        for _ in range(1 if fixed else 3):
            if not fixed:
                self.web_port, self.osc_port = free_port(), free_port(socket.SOCK_DGRAM)
            text = config_text(web=self.web(self.web_port), osc=f"{LOOPBACK}:{self.osc_port}")
            path = write_config(self.directory / "controlroom.toml", text)
            self.command = Command("demo", "-c", str(path), cwd=self.directory)
            try:
                wait_for(self._ready, START_TIMEOUT_S, f"controlroom demo serving {self.url}")
                return self
            except RuntimeError:
                if fixed:
                    raise
        raise RuntimeError(f"controlroom demo did not start: {self.command.output()}")

    def _ready(self) -> bool:
        if self.command.process.poll() is not None:
            raise RuntimeError(f"controlroom demo exited ({self.command.process.returncode}): {self.command.output()}")
        try:
            with urllib.request.urlopen(self.url, timeout=1.0) as response:
                if response.status != 200:
                    return False
            with self.peer() as peer:
                return bool(peer.query(timeout=1.0)["engine"].get("running"))
        except (OSError, urllib.error.URLError, TimeoutError):
            return False

    def peer(self) -> OscPeer:
        return OscPeer(self.osc_port)

    def report(self) -> dict[str, Any]:
        with self.peer() as peer:
            return peer.query()

    def wait_report(self, condition: Callable[[dict[str, Any]], Any], what: str, timeout: float = REPLY_S):
        """Poll the OSC report until ``condition(report)``; that report."""
        last: list[dict[str, Any]] = []

        def satisfied():
            report = self.report()
            last[:] = [report]
            return report if condition(report) else None

        try:
            return wait_for(satisfied, timeout, what)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last state: {last[0]['state'] if last else None}") from None

    def set(self, target: str, value: Any) -> dict[str, Any]:
        """``/controlroom/<target> value`` over OSC; the report that follows it."""
        with self.peer() as peer:
            return peer.set(target, value)

    def stop(self) -> None:
        if self.command is not None:
            self.command.stop()
            self.command = None


# --- WebSocket clients -----------------------------------------------------------------------------


@dataclass
class Frame:
    """A frame a client received: when (monotonic s), its kind (``state``, ``meters``,
    ``error``, or ``other``) and its JSON body."""

    at: float
    kind: str
    body: Any


@dataclass
class WsClient:
    """A connected ``/ws`` client; a task reads every frame into ``frames`` as it comes."""

    session: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    frames: list[Frame] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)  # frames that were not JSON objects
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        local_host: str | None = None,
    ) -> WsClient:
        """Connect to ``/ws`` of the page at ``url``; raises ``aiohttp.WSServerHandshakeError``
        (its ``status`` is the HTTP answer) when refused."""
        connector = aiohttp.TCPConnector(local_addr=(local_host, 0)) if local_host else None
        session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        try:
            ws = await asyncio.wait_for(
                session.ws_connect(ws_url(url), headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=REPLY_S)),
                REPLY_S,
            )
        except BaseException:
            await session.close()
            raise
        client = cls(session, ws)
        client.reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    self.garbage.append(repr(message))
                    continue
                try:
                    body = json.loads(message.data)
                except ValueError:
                    self.garbage.append(message.data[:200])
                    continue
                if not isinstance(body, dict):
                    self.garbage.append(message.data[:200])
                    continue
                kind = next((k for k in ("state", "meters", "error") if k in body), "other")
                self.frames.append(Frame(time.monotonic(), kind, body))
        finally:
            self.closed.set()

    async def close(self) -> None:
        await self.ws.close()
        await self.reader
        await self.session.close()

    async def __aenter__(self) -> WsClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # --- sending ---------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def act(self, target: str, action: str, value: Any = None) -> None:
        """``{"target", "action", "value"}``, ``value`` left out when None."""
        message = {"target": target, "action": action}
        if value is not None:
            message["value"] = value
        await self.send(message)

    # --- what came -------------------------------------------------------------------------------

    def mark(self) -> int:
        """An index into ``frames``: what arrives from now on is ``frames[mark:]``."""
        return len(self.frames)

    def of(self, kind: str, since: int = 0) -> list[Frame]:
        return [f for f in self.frames[since:] if f.kind == kind]

    def states(self, since: int = 0) -> list[dict[str, Any]]:
        return [f.body["state"] for f in self.of("state", since)]

    def meters(self, since: int = 0) -> list[Frame]:
        return self.of("meters", since)

    def errors(self, since: int = 0) -> list[dict[str, Any]]:
        return [f.body for f in self.of("error", since)]

    @property
    def state(self) -> dict[str, Any] | None:
        """The latest state received (None before the first)."""
        states = self.of("state")
        return states[-1].body["state"] if states else None

    async def wait(self, condition: Callable[[], Any], what: str, timeout: float = REPLY_S) -> Any:
        """Until ``condition()`` holds (its value); AssertionError after ``timeout`` s, or at once
        when the server has closed the connection first."""

        def holds() -> Any:
            value = condition()
            if not value and self.closed.is_set():
                raise AssertionError(f"{what}: the server closed the connection (code {self.ws.close_code})")
            return value

        try:
            return await until(holds, what, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; latest state: {self.state}; errors: {self.errors()[-3:]}") from None

    async def wait_state(self, expected: dict[str, Any], what: str = "", timeout: float = REPLY_S) -> dict[str, Any]:
        """Wait until the latest state frame has every entry of ``expected``; that state."""

        def shows() -> dict[str, Any] | None:
            state = self.state
            return state if state is not None and all(state.get(k) == v for k, v in expected.items()) else None

        return await self.wait(shows, f"{what or 'a state'} with {expected}", timeout)

    async def wait_error(self, since: int, what: str, timeout: float = REPLY_S) -> dict[str, Any]:
        """The first error frame from index ``since`` of ``frames`` on."""
        errors = await self.wait(lambda: self.errors(since), f"an error frame for {what}", timeout)
        return errors[0]


async def connect(url: str, **kwargs) -> WsClient:
    """A ``WsClient`` that has received its first state."""
    client = await WsClient.connect(url, **kwargs)
    try:
        await client.wait(lambda: client.state is not None, "the state on connecting")
    except BaseException:
        await client.close()
        raise
    return client


async def restore(client: WsClient, port: int, baseline: dict[str, Any] = BASELINE) -> None:
    """Bring the daemon back to ``baseline`` (ending any blind or ABX test), through ``client``,
    and wait until its state shows it."""
    report = await osc_report(port)
    state = report["state"]
    if state["abx"] is not None and state["abx"]["running"]:
        await client.act("abx", "stop")
    if state["blind"]:
        await client.act("blind", "set", False)
    for target, value in baseline.items():
        await client.act(target, "set", value)
    await client.wait_state(baseline, "the baseline")


# --- a client that never reads ------------------------------------------------------------------------


def client_frame(text: str, opcode: int = 0x1) -> bytes:
    """A masked WebSocket frame of ``text`` (a client's frames are masked)."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class SlowReader:
    """A WebSocket client of ``/ws`` on a plain socket with a small receive buffer: it connects,
    may send a few frames, and never reads again (a tablet whose app froze)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, host: str, port: int) -> SlowReader:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), REPLY_S)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1024), REPLY_S)
            assert chunk, f"the connection closed during the handshake: {head!r}"
            head += chunk
        assert re.match(rb"HTTP/1\.1 101 ", head), head[:200]
        return cls(sock)

    async def send(self, message: dict[str, Any]) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, client_frame(json.dumps(message)))

    def close(self) -> None:
        self.sock.close()


# --- HTTP -------------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    """The header of HTTP Basic auth (RFC 7617: ``user:password`` in base64, UTF-8)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def fetch(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    local_host: str | None = None,
) -> tuple[int, dict[str, str], bytes, dict[str, str]]:
    """GET ``url``: (status, headers, body, cookies set), without a cookie jar."""
    connector = aiohttp.TCPConnector(local_addr=(local_host, 0)) if local_host else None
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            cookies = {name: morsel.value for name, morsel in response.cookies.items()}
            return response.status, dict(response.headers), body, cookies


#: URLs in a text (page, script, style sheet).
URL = re.compile(r"""\b(?:https?|wss?)://[^\s"'`()<>]+""")
#: XML namespaces name a URL without fetching it (an inline SVG's ``xmlns``).
NAMESPACES = ("http://www.w3.org/",)


def foreign_urls(text: str, host: str) -> list[str]:
    """The absolute URLs in ``text`` that point anywhere but ``host`` (host:port); XML
    namespace names aside."""
    found = []
    for url in URL.findall(text):
        if url.startswith(NAMESPACES):
            continue
        if urlsplit(url).netloc != host:
            found.append(url)
    return found


def linked_paths(html: str) -> list[str]:
    """The local paths a page loads (``src`` and ``href`` attributes that are paths)."""
    paths = re.findall(r"""(?:src|href)\s*=\s*["']([^"'#?]+)""", html)
    return [p for p in paths if not re.match(r"[a-z]+:", p)]


# --- a headless Chromium -----------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def need_chromium() -> None:
    if not all(shutil.which(Path(p).name, path=str(Path(p).parent)) for p in (CHROMIUM, CHROMEDRIVER)):
        pytest.skip(f"{CHROMIUM} and {CHROMEDRIVER} are needed (Debian chromium, chromium-driver)")


class Browser:
    """A headless Chromium (selenium) whose console and network requests are logged.

    ``meter(name)`` is the ``data-value`` of the element with ``data-meter=name``;
    ``control(target, value, action)`` the control with those ``data-*`` attributes.
    """

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            options.add_argument(arg)
        options.add_argument("--window-size=1280,800")
        options.binary_location = CHROMIUM
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(30)
        self.console: list[dict[str, Any]] = []
        self.requests: list[str] = []  # every URL the page asked for (HTTP and WebSocket)
        self.ws_sent: list[str] = []  # every WebSocket frame the page sent (payload text)
        self.mark = 0  # where ``severe()`` starts reading ``console``

    def quit(self) -> None:
        self.driver.quit()

    def open(self, url: str) -> None:
        self.driver.get(url)

    # --- logs --------------------------------------------------------------------------------------

    def collect(self) -> None:
        """Move what the browser logged since the last call into ``console``, ``requests`` and
        ``ws_sent`` (the browser gives each entry once)."""
        self.console += self.driver.get_log("browser")
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif method == "Network.webSocketCreated":
                self.requests.append(params["url"])
            elif method == "Network.webSocketFrameSent":
                self.ws_sent.append(params["response"]["payloadData"])

    def severe(self) -> list[dict[str, Any]]:
        """Console entries at level SEVERE (errors) from index ``mark`` of ``console`` on."""
        self.collect()
        return [e for e in self.console[self.mark :] if e.get("level") == "SEVERE"]

    # --- the page ----------------------------------------------------------------------------------

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def control(self, target: str, value: str | None = None, action: str | None = None):
        """The one element with ``data-target=target`` (and ``data-value``, ``data-action``)."""
        css = f'[data-target="{target}"]'
        if value is not None:
            css += f'[data-value="{value}"]'
        found = [e for e in self.find(css) if action is None or e.get_attribute("data-action") == action]
        if action is None:  # a plain switch or choice has no data-action (or "set"/"toggle")
            plain = [e for e in found if e.get_attribute("data-action") in (None, "", "set", "toggle")]
            found = plain or found
        assert len(found) == 1, f"{len(found)} elements match {css} (action {action!r})"
        return found[0]

    def click(self, target: str, value: str | None = None, action: str | None = None) -> None:
        element = self.control(target, value, action)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def pressed(self, target: str, value: str | None = None) -> str | None:
        return self.control(target, value).get_attribute("aria-pressed")

    def meter(self, name: str) -> str | None:
        """The ``data-value`` of ``[data-meter=name]`` (None: no such element)."""
        found = self.find(f'[data-meter="{name}"]')
        assert len(found) <= 1, f"{len(found)} elements have data-meter={name!r}"
        return found[0].get_attribute("data-value") if found else None

    def meters(self) -> dict[str, str]:
        """Every ``data-meter`` of the page and its ``data-value`` (one script call)."""
        return self.driver.execute_script(
            "const m = {}; for (const e of document.querySelectorAll('[data-meter]'))"
            " m[e.dataset.meter] = e.getAttribute('data-value'); return m;"
        )

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = REPLY_S) -> Any:
        try:
            return wait_for(condition, timeout, what)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; console: {self.console[-5:]}") from None

    def wait_meter(self, name: str, value: str, timeout: float = REPLY_S) -> None:
        try:
            self.wait(lambda: self.meter(name) == value, f"data-meter {name} = {value!r}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (it reads {self.meter(name)!r})") from None

    def wait_pressed(self, target: str, value: str | None, pressed: str, timeout: float = REPLY_S) -> None:
        what = f"{target}{'=' + value if value else ''} aria-pressed {pressed}"
        try:
            self.wait(lambda: self.pressed(target, value) == pressed, what, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (it reads {self.pressed(target, value)!r})") from None

    def viewport(self, width: int, height: int, mobile: bool) -> None:
        """Emulate a screen of ``width`` x ``height`` CSS pixels (a phone with ``mobile``)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file, from its header."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])
