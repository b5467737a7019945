"""The web remote: a page for phones, tablets and laptops, served by the daemon on its event loop.

``GET /`` is the page (its buttons made from the config's names), ``/static/`` its script and
style, ``/ws`` a WebSocket of JSON frames: the state on connect and after every change, meters
at the rate the page asks for, an error for a refused message. Nothing is fetched from the
internet: a studio may be offline.

Who may open it: a client outside ``[web] allow`` gets 403 everywhere; with ``password_file``,
HTTP basic auth (any user name), after which a session cookie does.

A slow client never slows anything else: each client has one sender task that sends only the
latest state and the latest meters (a client that cannot keep up gets fewer frames, never a
growing buffer), and a send that stays blocked closes that client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import hmac
import html
import ipaddress
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from controlroom.daemon.config import limits
from controlroom.daemon.core import inserts
from controlroom.daemon.core.targets import BOOL_TARGETS, TARGETS, Vocabulary
from controlroom.daemon.errors import PortError, PortInUse, TargetError
from controlroom.daemon.osc.protocol import CALIBRATE_FAILED, MEASURE_FAILED

log = logging.getLogger(__name__)

#: Drop reasons, counted in ``engine.dropped`` beside OSC's, MIDI's and MQTT's.
DROP_MALFORMED = "web_malformed"
DROP_BAD_VALUE = "web_bad_value"
DROP_UNKNOWN_TARGET = "web_unknown_target"
DROP_FLOOD = "web_flood"
#: Largest frame taken (bytes): a command is a few dozen. Larger ones are refused and counted;
#: beyond ``MAX_SOCKET_FRAME`` the socket itself is closed (1009), so nothing is buffered unbounded.
MAX_FRAME = 4096
MAX_SOCKET_FRAME = 64 * 1024
#: Seconds between looks at the state for what no change announces (an ABX score, an insert
#: being measured, matching that got ready): pages see it this much later at most.
STATE_WATCH_S = 0.1
#: Messages a client may send per second (a token bucket of this size, refilled continuously).
MAX_RATE = 200.0
#: Meter frames per second at most, whatever a page asks for.
MAX_METERS_HZ = 25.0
#: Seconds one send may stay blocked before the client is given up.
SEND_TIMEOUT_S = 10.0
#: Errors kept for a client that does not read them (the oldest go first).
MAX_PENDING_ERRORS = 16
SESSION_COOKIE = "controlroom_session"
ACTIONS = ("set", "step", "toggle", "next", "prev")
_PAGE = resources.files("controlroom.daemon.web") / "page"


class WebServer:
    """The web remote (see the module docstring).

    Args:
        controller: the controller the page shows and drives.
        config: the daemon's configuration; its ``web`` table must be set.
        state: returns the state report's ``state``.
        meters: returns the state report's ``meters``.
        engine: returns the engine statistics (``running``, ``xruns``, ``duration_us``).
        measure_insert: measures an insert by name (``None``: no audio engine to measure with).
        reset_loudness: restarts integrated loudness (``None``: no audio engine).
        calibrator: the speaker calibration (``service.calibration``; ``None``: no audio engine).
    """

    def __init__(
        self,
        controller,
        config,
        state: Callable[[], dict[str, Any]],
        meters: Callable[[], dict[str, Any]],
        engine: Callable[[], dict[str, Any]],
        measure_insert: Callable[[str], Awaitable[Any]] | None = None,
        reset_loudness: Callable[[], None] | None = None,
        calibrator=None,
    ) -> None:
        self.controller = controller
        self.calibrator = calibrator
        self.config = config
        self.settings = config.web
        self.state = state
        self.meters = meters
        self.engine = engine
        self.measure_insert = measure_insert
        self.reset_loudness = reset_loudness
        self.port: int | None = None
        self.clients: set[_Client] = set()
        self._has_clients = asyncio.Event()  # set while a page is connected: watch() runs then
        self._password: str | None = None
        self._sessions: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task] = set()
        self._frame: str | None = None  # the state frame, until the next change
        controller.add_listener(self._changed)

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def status(self) -> dict[str, Any]:
        """The state report's ``web``: the address and the open pages."""
        return {"url": self.url, "clients": len(self.clients)}

    async def start(self) -> None:
        """Listen; ``PortError`` (``PortInUse``) when the address cannot be bound."""
        s = self.settings
        if s.password_file is not None:
            self._password = limits.read_secret(s.password_file)
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_FRAME)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self._socket)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.host, s.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            message = f"the web remote cannot listen on {s.host}:{s.port}: {exc.strerror or exc}"
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(message, "[web] listen") from None
            raise PortError(message) from None
        self.port = site._server.sockets[0].getsockname()[1]  # the port bound when 0 was asked
        log.info("web remote on %s", self.url)

    async def close(self) -> None:
        for client in list(self.clients):
            await client.close()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- who may come in -----------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if not self._allowed(request.remote):
            raise web.HTTPForbidden(text="not in [web] allow\n")
        if self._password is None or request.cookies.get(SESSION_COOKIE) in self._sessions:
            return await handler(request)
        if not self._authorised(request.headers.get("Authorization", "")):
            raise web.HTTPUnauthorized(
                text="password needed\n", headers={"WWW-Authenticate": 'Basic realm="controlroom"'}
            )
        response = await handler(request)
        if isinstance(response, web.Response):  # not the WebSocket: it is under way already
            session = secrets.token_urlsafe(32)
            self._sessions.add(session)
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict")
        return response

    def _allowed(self, remote: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.settings.allow)

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            _, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), self._password.encode())

    # --- the page ------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        text = (_PAGE / "index.html").read_text()
        for placeholder, filled in _placeholders(self.config).items():
            text = text.replace(placeholder, filled)
        return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in types:
            raise web.HTTPNotFound()
        return web.Response(text=(_PAGE / name).read_text(), content_type=types[name])

    # --- the socket ----------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            # another site's page in a browser on the studio network: not ours to obey
            raise web.HTTPForbidden(text="cross-origin WebSocket refused\n")
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_SOCKET_FRAME)
        await ws.prepare(request)
        self._frame = None  # what no listener announced since the last page left
        client = _Client(self, ws)
        self.clients.add(client)
        self._has_clients.set()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    client.received(message.data)
                elif message.type == WSMsgType.BINARY:
                    client.refuse(DROP_MALFORMED, "binary frame (expected JSON text)")
        finally:
            self.clients.discard(client)
            if not self.clients:
                self._has_clients.clear()
            await client.close()
        return ws

    def reload(self, config) -> None:
        """Adopt a reloaded configuration: the page's buttons follow its names at the next load
        (a new ``listen``, ``allow`` or password takes a restart)."""
        if config.web != self.settings:
            log.warning("reload: a changed [web] section takes effect when the daemon restarts")
        self.config = config
        self._state_changed()

    def state_frame(self) -> str:
        """The ``{"state": ...}`` frame, built once per change however many pages are open."""
        if self._frame is None:
            self._frame = json.dumps({"state": self.state()})
        return self._frame

    def _changed(self, changes: dict[str, Any], origin: str) -> None:
        self._state_changed()

    def _state_changed(self) -> None:
        self._frame = None
        for client in self.clients:
            client.state_due()

    async def watch(self) -> None:
        """A service job: pages also get the state when something changes that no listener
        hears of (an ABX answer, an insert measurement, matching getting ready); a page is
        sent a state only when it differs from the last one it got. With no page connected
        it sleeps."""
        while True:
            await self._has_clients.wait()
            await asyncio.sleep(STATE_WATCH_S)
            if self.clients:
                self._state_changed()

    def dispatch(self, message: dict[str, Any], client: _Client) -> None:
        """Carry out one command; raises ``TargetError`` or ``_Refused`` to refuse it."""
        if "meters" in message and "target" not in message:
            client.meters_hz(message["meters"])
            return
        target, action, value = message.get("target"), message.get("action", "set"), message.get("value")
        c = self.controller
        match target, action:
            case str(), str() if target in TARGETS and action in ACTIONS:
                c.apply(target, action, value, origin="web")
            case "blind", "reveal":
                c.comparison.reveal(origin="web")
            case "abx", "start":
                c.comparison.abx_start(value, origin="web")
            case "abx", "play":
                c.comparison.abx_play(value, origin="web")
            case "abx", "answer":
                c.comparison.abx_answer(value, origin="web")
            case "abx", "stop":
                c.comparison.abx_stop(origin="web")
            case "insert", "measure":
                inserts.check(self.config, value)
                if self.measure_insert is None:
                    raise _Refused(DROP_UNKNOWN_TARGET, "insert measurement needs the audio engine")
                self._spawn(self._measure(value, client))
            case "calibrate", "start" | "stop" | "reset":
                self._calibrate(action, value, client)
            case "loudness", "reset":
                if self.reset_loudness is None:
                    raise _Refused(DROP_UNKNOWN_TARGET, "loudness reset needs the audio engine")
                self.reset_loudness()
            case _:
                raise _Refused(DROP_UNKNOWN_TARGET, f"no target {target!r} with action {action!r}")

    def _calibrate(self, action: str, value: Any, client: _Client) -> None:
        """Start (``value``: a list of set names, or none for every set), stop or reset a
        calibration; a run that fails is told to the client that asked."""
        if self.calibrator is None:
            raise _Refused(DROP_UNKNOWN_TARGET, "calibration needs the audio engine")
        if action == "stop":
            self.calibrator.stop("stopped from the web remote")
        elif action == "reset":
            self.calibrator.reset()
        else:
            sets = [] if value is None else value
            if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
                raise TargetError("calibrate start: expected a list of speaker set names, or no value")
            self.calibrator.start(sets, failed=lambda message: client.error(message, CALIBRATE_FAILED))

    async def _measure(self, name: str, client: _Client) -> None:
        try:
            await self.measure_insert(name)
        except TargetError as exc:  # InsertError: the measurement failed
            client.error(str(exc), MEASURE_FAILED)

    def _spawn(self, job: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_frame(data: str) -> dict[str, Any]:
    """A text frame from a page as a command object; refused (``web_malformed``) when larger
    than ``MAX_FRAME`` bytes, not JSON or not a JSON object."""
    size = len(data.encode(errors="replace"))
    if size > MAX_FRAME:
        raise _Refused(DROP_MALFORMED, f"{size} bytes (expected at most {MAX_FRAME})")
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        raise _Refused(DROP_MALFORMED, "not JSON") from None
    if not isinstance(message, dict):
        raise _Refused(DROP_MALFORMED, "not a JSON object")
    return message


class _Client:
    """One open page: its socket, what it waits to be sent, its message budget."""

    def __init__(self, server: WebServer, ws: web.WebSocketResponse) -> None:
        self.server = server
        self.ws = ws
        self._state = True  # the state goes out first
        self._last_state = ""  # the state frame last sent, as sent
        self._errors: deque[dict[str, str]] = deque(maxlen=MAX_PENDING_ERRORS)
        self._meters_s = 0.0  # seconds between meter frames; 0: none
        self._next_meters = 0.0
        self._tokens = MAX_RATE
        self._refilled = time.monotonic()
        self._wake = asyncio.Event()
        self._wake.set()
        self._sender = asyncio.get_running_loop().create_task(self._send())

    def state_due(self) -> None:
        self._state = True
        self._wake.set()

    def meters_hz(self, hz: Any) -> None:
        if isinstance(hz, bool) or not isinstance(hz, int | float) or not math.isfinite(hz) or hz < 0:
            raise _Refused(DROP_BAD_VALUE, f"meters {hz!r}: expected a rate in Hz (0 stops them)")
        self._meters_s = 1.0 / min(hz, MAX_METERS_HZ) if hz > 0 else 0.0
        self._next_meters = time.monotonic()
        self._wake.set()

    def received(self, data: str) -> None:
        """One text frame from the page: within budget, JSON, an object, then carried out."""
        now = time.monotonic()
        self._tokens = min(MAX_RATE, self._tokens + (now - self._refilled) * MAX_RATE)
        self._refilled = now
        if self._tokens < 1.0:
            self.server.controller.drop(DROP_FLOOD)  # no answer: that would feed the flood
            return
        self._tokens -= 1.0
        try:
            self.server.dispatch(parse_frame(data), self)
        except _Refused as exc:
            self.refuse(exc.reason, str(exc))
        except TargetError as exc:
            self.refuse(DROP_BAD_VALUE, str(exc))

    def refuse(self, reason: str, message: str) -> None:
        self.server.controller.drop(reason)
        log.debug("web: dropped a message (%s): %s", reason, message)
        self.error(message, reason)

    def error(self, message: str, reason: str) -> None:
        self._errors.append({"error": message, "reason": reason})
        self._wake.set()

    async def _send(self) -> None:
        try:
            while not self.ws.closed:
                timeout = max(0.0, self._next_meters - time.monotonic()) if self._meters_s else None
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
                self._wake.clear()
                frames = []
                if self._state:
                    self._state = False
                    state = self.server.state_frame()
                    if state != self._last_state:
                        self._last_state = state
                        frames.append(state)
                while self._errors:
                    frames.append(self._errors.popleft())
                now = time.monotonic()
                if self._meters_s and now >= self._next_meters:
                    # a late client skips the frames it missed, it does not catch up on them
                    self._next_meters = max(self._next_meters + self._meters_s, now)
                    frames.append({"meters": {**self.server.meters(), "engine": _health(self.server.engine())}})
                for frame in frames:
                    text = frame if isinstance(frame, str) else json.dumps(frame)
                    await asyncio.wait_for(self.ws.send_str(text), SEND_TIMEOUT_S)
        except (TimeoutError, ConnectionError, RuntimeError):
            log.info("web: a page that stopped reading was closed")
            await self.ws.close()

    async def close(self) -> None:
        self._sender.cancel()
        if not self.ws.closed:
            await self.ws.close()


def _health(stats: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of the engine statistics."""
    return {
        "running": bool(stats.get("running")),
        "xruns": sum((stats.get("xruns") or {}).values()),
        "callback_p99_us": (stats.get("duration_us") or {}).get("p99"),
    }


def _placeholders(config) -> dict[str, str]:
    """What the page takes from the config, by the placeholder it replaces: ``<!--NAME-->`` a
    row of buttons or meters, ``{{NAME}}`` an attribute's value."""
    vocabulary = Vocabulary(config)

    def buttons(target: str, names, css: str = "choice") -> str:
        return "".join(
            f'<button class="{css}" data-target="{target}" data-value="{html.escape(n)}" '
            f'aria-pressed="false">{html.escape(n)}</button>'
            for n in names
        )

    found = {target: buttons(target, vocabulary.choices[target]) for target in ("speakers", "source", "solo", "match")}
    found["ab"] = buttons("ab", ("a", "b"), "choice big")
    found["level"] = "".join(
        f'<button class="level" data-target="level" data-value="{html.escape(n)}">{html.escape(n)} '
        f"<small>{db:g} dB</small></button>"
        for n, db in config.levels.items()
    )
    found["switches"] = "".join(
        f'<button class="switch" data-target="{t}" aria-pressed="false">{t}</button>'
        for t in BOOL_TARGETS
        if t != "blind"
    )
    found["inserts"] = (
        "".join(
            f'<div class="insert"><button data-target="insert" data-action="measure" data-value="{html.escape(n)}">'
            f'measure {html.escape(n)}</button> <span class="readout" data-meter="insert.{html.escape(n)}" '
            'data-value=""></span></div>'
            for n in config.inserts
        )
        or '<p class="readout">none configured</p>'
    )
    outputs = range(1, config.audio.output_channels + 1)
    found["outputs"] = "".join(
        f'<div class="meter"><span class="label">out {n}</span>'
        f'<span class="bar"><span class="fill" data-meter="output.{n}.rms_dbfs" data-value=""></span>'
        f'<span class="peak" data-meter="output.{n}.peak_dbfs" data-value=""></span></span></div>'
        for n in outputs
    )
    found = {f"<!--{marker}-->": text for marker, text in found.items()}
    found["{{volume_min}}"] = f"{config.monitor.min_volume_db:g}"
    found["{{volume_max}}"] = f"{config.monitor.max_volume_db:g}"
    return found
