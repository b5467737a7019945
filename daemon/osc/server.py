"""The OSC server: control and feedback over UDP, on the daemon's event loop.

What it receives and sends is the protocol (``osc.protocol``, and docs/osc.md for users).
Every datagram is handled synchronously in ``datagram_received``; nothing blocks, nothing
raises out of it, every drop is counted with ``Controller.drop`` by reason. Subscribers get
every change from any origin, and meters at most ``meter_interval_s`` apart.

UDP senders can be forged, so a datagram is answered at most once however many requests it
bundles (one report, one error), replies are metered per sender (``osc.budget``), the
subscriber table is bounded, and a subscriber whose port is closed (ICMP port unreachable) is
forgotten at once. What the kernel drops before the daemon reads it (a burst beyond the
receive buffer) is counted as ``osc_overflow`` whenever a report is asked for.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controlroom.daemon.core import inserts
from controlroom.daemon.core.calibration import CalibrationError
from controlroom.daemon.core.inserts import InsertError, InsertResult
from controlroom.daemon.core.targets import TARGETS, parse_bool
from controlroom.daemon.errors import PortError, PortInUse, TargetError
from controlroom.daemon.osc.budget import ReplyBudget
from controlroom.daemon.osc.protocol import (
    CALIBRATE_ADDRESS,
    CALIBRATE_FAILED,
    CALIBRATE_MIC_ADDRESS,
    CALIBRATE_PROGRESS_ADDRESS,
    ERROR_ADDRESS,
    INSERT_MEASURE_ADDRESS,
    MEASURE_FAILED,
    METERS_PREFIX,
    PREFIX,
    STATE_ADDRESS,
    TRIGGER_ACTIONS,
    Address,
    MalformedPacket,
    build_message,
    parse_packet,
)

if TYPE_CHECKING:
    from controlroom.daemon.config import OscConfig
    from controlroom.daemon.core.controller import Controller
    from controlroom.daemon.service.calibration import Calibrator

log = logging.getLogger(__name__)

SUBSCRIPTION_TTL_S = 60.0
METER_INTERVAL_S = 0.1  # 10 Hz: enough for a meter display, light on Wi-Fi tablets
#: Meters sent for a reading that does not exist (silence) or lies below it, in dB.
METER_FLOOR_DB = -120.0
#: At most one warning per drop reason this often; every drop is logged at debug level.
WARN_INTERVAL_S = 10.0
#: Meters are skipped while this much feedback is still queued in the socket (slow network).
MAX_QUEUED_BYTES = 64 * 1024
#: Longest reason text logged or sent back: a refused value is quoted, and may be a 64 kB string.
MAX_DETAIL_CHARS = 200
#: Reply bytes per second (and at once) for one sender host: a report is a few kB, so about 50
#: reports a second, more than any control surface asks for.
REPLY_BYTES_PER_SENDER_S = 256 * 1024
#: Reply bytes per second for all senders together.
REPLY_BYTES_S = 1024 * 1024
#: Sender hosts whose reply budget is remembered.
MAX_SENDERS = 256
#: Receive buffer asked of the kernel (bytes); it grants at most net.core.rmem_max (doubled).
RECEIVE_BUFFER_BYTES = 1 << 20
# Linux socket options Python's socket module does not name.
_IP_RECVERR = 11
_IPV6_RECVERR = 25
_MSG_ERRQUEUE = 0x2000

DROP_NOT_ALLOWED = "osc_not_allowed"
DROP_MALFORMED = "osc_malformed"
DROP_UNKNOWN_ADDRESS = "osc_unknown_address"
DROP_BAD_VALUE = "osc_bad_value"
DROP_INTERNAL = "osc_internal_error"
DROP_REPLY_LIMITED = "osc_reply_limited"
DROP_SUBSCRIBERS_FULL = "osc_subscribers_full"
DROP_OVERFLOW = "osc_overflow"


#: The ``/controlroom/error`` reason of an insert measurement that failed (not a dropped message).
class _Drop(Exception):
    """A message that is dropped for ``reason`` (a ``DROP_*`` code); ``str()`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _Answer:
    """What one datagram gets back, however many messages it bundles: the report once, the
    whole state once (a subscription), each reply, and the first error."""

    def __init__(self) -> None:
        self.report = False
        self.state = False
        self.replies: list[tuple[str, tuple[Any, ...]]] = []
        self.error: tuple[str, str] | None = None


def feedback_messages(view: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(address, value)`` per entry of a controller view or change: ``/controlroom/<key>``,
    and ``/controlroom/match_db/<source>`` (dB) per offset."""
    for key, value in view.items():
        if key == "match_db":
            for source, db in value.items():
                yield f"{PREFIX}match_db/{source}", float(db)
        else:
            yield PREFIX + key, value


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as ``None``, so that strict JSON parsers accept it."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- meters -----------------------------------------------------------------------------------


def flatten_meters(meters: dict[str, Any], prefix: str = "") -> dict[str, list[float | None]]:
    """``{"sources": {"mix": {"peak_dbfs": [a, b]}}}`` -> ``{"sources/mix/peak_dbfs": [a, b]}``.

    A missing or non-finite reading is ``None``.
    """
    flat: dict[str, list[float | None]] = {}
    for key, value in meters.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_meters(value, path + "/"))
        else:
            values = value if isinstance(value, (list, tuple)) else [value]
            flat[path] = [_reading(v) for v in values]
    return flat


def _reading(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _louder(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def merge_meters(held: dict[str, list[float | None]], new: dict[str, list[float | None]]) -> None:
    """Keep the highest reading per value in ``held`` (peaks between two sends are not lost);
    forget meters ``new`` no longer has (a blind test hides the compared sources' meters)."""
    for path in held.keys() - new.keys():
        del held[path]
    for path, values in new.items():
        old = held.get(path)
        held[path] = values if old is None or len(old) != len(values) else list(map(_louder, old, values))


# --- the server -------------------------------------------------------------------------------


class OscServer(asyncio.DatagramProtocol):
    """The OSC endpoint of a controller.

    ``report()`` returns ``{"state", "engine", "meters"}`` for ``/controlroom/state``; the
    drop counters are added as ``engine.dropped`` when it has none. ``subscription_ttl_s``:
    how long a subscription lasts without renewal; ``meter_interval_s``: the shortest time
    between two meter sends to a receiver. ``measure_insert(name)``: the daemon's insert
    measurement (None: ``/controlroom/insert/measure`` is refused). ``reset_loudness()``:
    restart integrated loudness and LRA, queued for the meters (None:
    ``/controlroom/loudness/reset`` is refused). ``switch_outboard(name, value)``: the outboard
    sequencer's switch by hand (None: no ``[[outboard]]``, ``/controlroom/outboard/...`` is
    unknown). ``calibrator``: the daemon's speaker calibration (``service.calibration``; None:
    ``/controlroom/calibrate...`` is refused). ``reply_budget``: what replies a sender may get
    (default: ``REPLY_BYTES_PER_SENDER_S``, ``REPLY_BYTES_S``).
    """

    def __init__(
        self,
        controller: Controller,
        osc_config: OscConfig,
        report: Callable[[], dict[str, Any]],
        *,
        subscription_ttl_s: float = SUBSCRIPTION_TTL_S,
        meter_interval_s: float = METER_INTERVAL_S,
        measure_insert: Callable[[str], Awaitable[InsertResult]] | None = None,
        reset_loudness: Callable[[], None] | None = None,
        switch_outboard: Callable[[str, Any], None] | None = None,
        calibrator: Calibrator | None = None,
        reply_budget: ReplyBudget | None = None,
    ) -> None:
        self.controller = controller
        self.switch_outboard = switch_outboard
        self.calibrator = calibrator
        self.measure_insert = measure_insert
        self.reset_loudness = reset_loudness
        self._measurements: set[asyncio.Task] = set()
        self.config = osc_config
        self.report = report
        self.subscription_ttl_s = subscription_ttl_s
        self.meter_interval_s = meter_interval_s
        self._transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self._clients: list[Address] = []
        self._subscribers: dict[Address, float] = {}  # address -> expiry (monotonic s)
        self._held_meters: dict[str, list[float | None]] = {}
        self._meters_sent = -math.inf
        self._last_warning: dict[str, float] = {}
        if reply_budget is None:
            reply_budget = ReplyBudget(REPLY_BYTES_PER_SENDER_S, REPLY_BYTES_S, MAX_SENDERS)
        self._budget = reply_budget
        self._report_bytes = 0  # the last report's size: what the next one is charged up front
        self._kernel_drops = 0  # what the socket's kernel counter said last

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the UDP socket, start feedback to ``[osc] clients`` (with the whole state).

        Raises ``PortInUse`` when another socket holds the address, ``PortError`` when it cannot
        be bound otherwise.
        """
        loop = asyncio.get_running_loop()
        host, port = self.config.host, self.config.port
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                _tune(sock, family)
                sock.bind(sockaddr)
                self._transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            error = PortInUse if exc.errno == errno.EADDRINUSE else PortError
            raise error(f"OSC cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._sock = sock
        self._clients = await self._resolve(self.config.clients, family)
        self.controller.add_listener(self._on_change)
        for client in self._clients:
            self._send_state(client)
        log.info("OSC listening on %s:%d", host, self.port)

    async def _resolve(self, clients: Iterable[tuple[str, int]], family: int) -> list[Address]:
        # resolved once here: a host name given to sendto would be looked up in the event loop
        loop, resolved = asyncio.get_running_loop(), []
        for host, port in clients:
            try:
                infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
                resolved.append(infos[0][4])
            except OSError as exc:
                log.warning("OSC client %s:%d left out: %s", host, port, exc)
        return resolved

    def close(self) -> None:
        """Stop listening and sending; the port is free again when this returns."""
        self.controller.remove_listener(self._on_change)
        self._subscribers.clear()
        for task in self._measurements:
            task.cancel()
        if self._transport is not None:
            self._transport.abort()
            # the transport closes its socket only on the next loop iteration; a reload that
            # binds the same port right after this call needs it closed now
            self._sock.close()
            self._transport = None

    @property
    def port(self) -> int:
        """The bound UDP port (useful when ``[osc] listen`` asks for port 0)."""
        return self._sock.getsockname()[1]

    @property
    def subscribers(self) -> list[Address]:
        """Addresses with a live subscription (expired ones are forgotten)."""
        now = time.monotonic()
        self._subscribers = {a: t for a, t in self._subscribers.items() if t > now}
        return list(self._subscribers)

    def count_kernel_drops(self) -> None:
        """Add what the kernel dropped on this socket since the last call to the controller's
        ``osc_overflow`` count."""
        if self._sock is None:
            return
        drops = udp_drops(self._sock)
        if drops > self._kernel_drops:
            self.controller.dropped[DROP_OVERFLOW] += drops - self._kernel_drops
            self._kernel_drops = drops

    @property
    def sends_meters(self) -> bool:
        """Someone receives meters (a subscriber, or ``[osc] clients``)."""
        return bool(self._clients or self.subscribers)

    def _receivers(self) -> list[Address]:
        """Where feedback goes: ``[osc] clients`` and live subscribers, each once."""
        unique = {a[:2]: a for a in (*self._clients, *self.subscribers)}
        return list(unique.values())

    # --- datagrams ----------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Address) -> None:
        answer = _Answer()
        try:
            self._receive(data, addr, answer)
        except Exception as exc:  # a bug here must cost one packet, never the endpoint
            self._drop(DROP_INTERNAL, f"internal error: {type(exc).__name__}", addr, answer, exc_info=exc)
        self._answer(answer, addr)

    def error_received(self, exc: Exception) -> None:
        # Linux reports an ICMP error (a closed port, an unreachable host) here, without saying
        # whose: IP_RECVERR queues each with the address it was for
        log.debug("OSC socket error: %s", exc)
        if self._sock is None:
            return
        while True:
            try:
                _, _, _, addr = self._sock.recvmsg(1, 512, _MSG_ERRQUEUE)
            except OSError:  # BlockingIOError: the queue is empty
                return
            for subscriber in [a for a in self._subscribers if a[:2] == addr[:2]]:
                del self._subscribers[subscriber]
                log.info("OSC: %s:%d is unreachable; its subscription ends", *subscriber[:2])

    def _receive(self, data: bytes, addr: Address, answer: _Answer) -> None:
        if not self._allowed(addr[0]):
            self._drop(DROP_NOT_ALLOWED, f"sender {addr[0]} is not in [osc] allow", addr)
            return
        try:
            messages = parse_packet(data)
        except MalformedPacket as exc:
            self._drop(DROP_MALFORMED, str(exc), addr, answer)
            return
        for message in messages:
            try:
                self._dispatch(message.address, message.params, addr, answer)
            except _Drop as drop:
                self._drop(drop.reason, f"{message.address}: {drop}", addr, answer)
            except TargetError as exc:
                self._drop(DROP_BAD_VALUE, f"{message.address}: {exc}", addr, answer)

    def _answer(self, answer: _Answer, sender: Address) -> None:
        # the report is charged its last size before it is built: under a flood, refusing must
        # cost less than building it
        if answer.report and self._budget.take(sender[0], self._report_bytes):
            report = build_message(STATE_ADDRESS, self._state_json())
            self._budget.spend(sender[0], len(report) - self._report_bytes)
            self._report_bytes = len(report)
            self._sendto(report, sender)
        elif answer.report:
            self.controller.drop(DROP_REPLY_LIMITED)
        if answer.state:
            for address, value in feedback_messages(self.controller.view()):
                self._reply(sender, address, value)
        for address, args in answer.replies:
            self._reply(sender, address, *args)
        if answer.error is not None:
            self._reply(sender, ERROR_ADDRESS, *answer.error)

    def _allowed(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:  # a dual-stack socket's IPv4 sender
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.config.allow)

    def _dispatch(self, address: str, args: list[Any], sender: Address, answer: _Answer) -> None:
        """Carry out one message, noting in ``answer`` what goes back; raises ``_Drop`` or
        ``TargetError`` to refuse it."""
        if not address.startswith(PREFIX):
            raise _Drop(DROP_UNKNOWN_ADDRESS, "not a /controlroom/ address")
        match address[len(PREFIX) :].split("/"):
            case ["state"]:
                answer.report = _pressed(args) or answer.report
            case ["subscribe"]:
                if _pressed(args):
                    self._subscribe(sender)
                    answer.state = True
            case ["unsubscribe"]:
                if _pressed(args):
                    self._subscribers.pop(sender, None)
            case [target] if target in TARGETS:
                self.controller.apply(target, "set", _one(args), origin="osc")
            case [target, "step"] if target in TARGETS:
                self.controller.apply(target, "step", _one(args), origin="osc")
            case [target, action] if target in TARGETS and action in TRIGGER_ACTIONS:
                if _pressed(args):
                    self.controller.apply(target, action, origin="osc")
            case ["blind", "reveal"]:
                if _pressed(args):
                    labels = self.controller.comparison.reveal(origin="osc")
                    answer.replies.append((PREFIX + "blind/reveal", tuple(w for pair in labels.items() for w in pair)))
            case ["abx", "start"]:
                self.controller.comparison.abx_start(_one(args), origin="osc")
            case ["abx", "play"]:
                self.controller.comparison.abx_play(_one(args), origin="osc")
            case ["abx", "answer"]:
                self.controller.comparison.abx_answer(_one(args), origin="osc")
            case ["abx", "stop"]:
                if _pressed(args):
                    self.controller.comparison.abx_stop(origin="osc")
            case ["insert", "measure"]:
                self._start_measurement(_one(args), sender)
            case ["outboard", name] if self.switch_outboard is not None:
                self.switch_outboard(name, _one(args))
            case ["calibrate", *rest]:
                self._calibrate(rest, args, sender)
            case ["loudness", "reset"]:
                if self.reset_loudness is None:
                    raise _Drop(DROP_UNKNOWN_ADDRESS, "loudness reset needs the audio engine")
                if _pressed(args):
                    self.reset_loudness()
            case _:
                raise _Drop(DROP_UNKNOWN_ADDRESS, "unknown address")

    def _subscribe(self, sender: Address) -> None:
        """Start or renew ``sender``'s subscription; ``_Drop`` when the table is full."""
        limit = self.config.max_subscribers
        if sender not in self._subscribers and len(self.subscribers) >= limit:
            raise _Drop(DROP_SUBSCRIBERS_FULL, f"{limit} senders are subscribed already ([osc] max_subscribers)")
        self._subscribers[sender] = time.monotonic() + self.subscription_ttl_s

    def _start_measurement(self, name: Any, sender: Address) -> None:
        inserts.check(self.controller.config, name)
        if self.measure_insert is None:
            raise _Drop(DROP_UNKNOWN_ADDRESS, "insert measurement needs the audio engine")
        task = asyncio.get_running_loop().create_task(self._measure(name, sender))
        self._measurements.add(task)
        task.add_done_callback(self._measurements.discard)

    async def _measure(self, name: str, sender: Address) -> None:
        """Measure insert ``name`` and answer ``sender`` with the result or the failure."""
        try:
            r = await self.measure_insert(name)
        except InsertError as exc:
            log.warning("insert measurement failed: %s", exc)
            self._reply(sender, ERROR_ADDRESS, MEASURE_FAILED, str(exc))
            return
        self._reply(
            sender, INSERT_MEASURE_ADDRESS, name, r.latency, r.latency_ms, r.gain_db, r.coherence, int(r.inverted)
        )

    def _calibrate(self, action: list[str], args: list[Any], sender: Address) -> None:
        calibrator = self.calibrator
        if calibrator is None:
            raise _Drop(DROP_UNKNOWN_ADDRESS, "calibration needs the audio engine")
        match action:
            case []:
                if not all(isinstance(a, str) for a in args):
                    raise TargetError("expected speaker set names")
                calibrator.start(
                    list(args),
                    progress=lambda line: self._reply(sender, CALIBRATE_PROGRESS_ADDRESS, line),
                    finished=lambda report: self._reply(sender, CALIBRATE_ADDRESS, json.dumps(report)),
                    failed=lambda message: self._reply(sender, ERROR_ADDRESS, CALIBRATE_FAILED, message),
                )
            case ["stop"]:
                if _pressed(args):
                    calibrator.stop("stopped on request")
            case ["reset"]:
                if _pressed(args):
                    calibrator.reset()
            case ["mic"]:
                self._answer_later(calibrator.measure_mic(), CALIBRATE_MIC_ADDRESS, sender, float)
            case _:
                raise _Drop(DROP_UNKNOWN_ADDRESS, "unknown address")

    def _answer_later(self, job: Awaitable[Any], address: str, sender: Address, encode: Callable) -> None:
        """Run ``job`` and answer ``sender`` with ``address <encode(result)>``, or its failure."""

        async def answer() -> None:
            try:
                result = await job
            except CalibrationError as exc:
                log.warning("calibration: %s", exc)
                self._reply(sender, ERROR_ADDRESS, CALIBRATE_FAILED, str(exc))
                return
            self._reply(sender, address, encode(result))

        task = asyncio.get_running_loop().create_task(answer())
        self._measurements.add(task)
        task.add_done_callback(self._measurements.discard)

    def _drop(
        self,
        reason: str,
        detail: str,
        sender: Address,
        answer: _Answer | None = None,
        exc_info: BaseException | None = None,
    ) -> None:
        """Count a dropped message, log it (a warning per reason at most every
        ``WARN_INTERVAL_S``, a traceback only with that warning) and note the datagram's first
        error in ``answer`` (None: no answer, the sender is not allowed)."""
        self.controller.drop(reason)
        if len(detail) > MAX_DETAIL_CHARS:
            detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
        log.debug("OSC %s from %s: %s", reason, sender[0], detail)
        now = time.monotonic()
        if now - self._last_warning.get(reason, -math.inf) >= WARN_INTERVAL_S:
            self._last_warning[reason] = now
            log.warning(
                "OSC: dropped a message from %s (%s): %s (more of these at debug level)",
                sender[0],
                reason,
                detail,
                exc_info=exc_info,
            )
        if answer is not None and answer.error is None:
            answer.error = (reason, detail)

    def _state_json(self) -> str:
        self.count_kernel_drops()
        report = self.report()
        engine = report.get("engine", {})
        if "dropped" not in engine:
            report = {**report, "engine": {**engine, "dropped": dict(self.controller.dropped)}}
        return json.dumps(json_safe(report))

    # --- feedback -----------------------------------------------------------------------------

    def _on_change(self, changes: dict[str, Any], origin: str) -> None:
        receivers = self._receivers()
        for address, value in feedback_messages(changes):
            for receiver in receivers:
                self._send(receiver, address, value)

    def _send_state(self, receiver: Address) -> None:
        for address, value in feedback_messages(self.controller.view()):
            self._send(receiver, address, value)

    def send_meters(self, meters: dict[str, Any]) -> None:
        """Offer a meter reading (call at any rate); receivers get the highest readings since
        the last send, at most every ``meter_interval_s``, as ``/controlroom/meters/<path>``."""
        receivers = self._receivers()
        if not receivers or self._transport is None:
            return
        merge_meters(self._held_meters, flatten_meters(meters))
        now = time.monotonic()
        if now - self._meters_sent < self.meter_interval_s:
            return
        if self._transport.get_write_buffer_size() > MAX_QUEUED_BYTES:
            return  # the network is not keeping up; meters are the feedback that can wait
        self._meters_sent = now
        held, self._held_meters = self._held_meters, {}
        for path, values in held.items():
            args = [METER_FLOOR_DB if v is None else max(v, METER_FLOOR_DB) for v in values]
            for receiver in receivers:
                self._send(receiver, METERS_PREFIX + path, *args)

    def _send(self, receiver: Address, address: str, *args: Any) -> None:
        self._sendto(build_message(address, *args), receiver)

    def _reply(self, sender: Address, address: str, *args: Any) -> None:
        """Send an answer to a request, within the sender's reply budget (else count it)."""
        data = build_message(address, *args)
        if self._budget.take(sender[0], len(data)):
            self._sendto(data, sender)
        else:
            self.controller.drop(DROP_REPLY_LIMITED)

    def _sendto(self, data: bytes, receiver: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(data, receiver)


def _tune(sock: socket.socket, family: int) -> None:
    """A receive buffer for bursts, and ICMP errors queued with the address they concern."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    except OSError:  # not Linux: unreachable subscribers expire by time alone
        pass


def udp_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped on ``sock`` (its receive queue was full): the ``drops``
    column of ``/proc/net/udp`` or ``udp6`` for the socket's inode; 0 where there is none."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 12 and fields[9] == inode:
                return int(fields[12])
    return 0


def _one(args: list[Any]) -> Any:
    if len(args) != 1:
        raise TargetError(f"expected one argument, got {len(args)}")
    return args[0]


def _pressed(args: list[Any]) -> bool:
    """Whether a trigger message acts: no argument or one "on" value (a button press); one
    "off" value is the button's release."""
    if len(args) > 1:
        raise TargetError(f"expected no argument or one button value, got {len(args)}")
    return not args or parse_bool(args[0])
