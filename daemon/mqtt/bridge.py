"""The daemon's MQTT connection: state out, commands in, Home Assistant discovery, linked rooms.

One ``MqttBridge`` owns the connection (aiomqtt 2.x). It connects, says ``online`` (the will
says ``offline`` if the connection is lost), publishes every target, the state and the discovery
payload, then serves until the daemon stops — publishing ``offline`` itself on the way out,
because a clean disconnect never fires the will. A broker that is absent, refuses the login or
goes away costs nothing but a log line per outage: the bridge retries with backoff, and
everything else of the daemon carries on.

Publishing never waits in a controller listener: a change replaces the pending payload of its
topic (a burst of volume changes leaves one message to send, the last), and one task sends what
is pending.

Linked instances keep ``link_targets`` equal. Only changes made here (by a knob, OSC, MQTT...)
go out on ``link/<target>``, stamped with a hybrid clock (the wall clock's milliseconds, never
behind a stamp seen); a linked change is applied here only if its stamp is newer than the
value's own, ties broken by instance id. So nothing echoes, instances changed at the same moment
all settle on the same value, and after a restart the latest change wins.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import aiomqtt

import controlroom
from controlroom.daemon.config import limits
from controlroom.daemon.core.targets import STATE_TARGETS, TARGETS
from controlroom.daemon.errors import LimitError, TargetError
from controlroom.daemon.mqtt import discovery
from controlroom.daemon.mqtt.payloads import (
    DROP_BAD_VALUE,
    DROP_MALFORMED,
    DROP_OVERFLOW,
    DROP_RETAINED,
    DROP_UNKNOWN_TOPIC,
    OFFLINE,
    ONLINE,
    ROOT,
    Dropped,
    base_topic,
    command,
    decode,
    link_json,
    meters_json,
    parse_link,
    value_text,
)

log = logging.getLogger(__name__)

#: Seconds between connection attempts, growing while the broker stays away.
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
KEEPALIVE_S = 30
#: Messages received and not yet handled; beyond this a flood is dropped (and counted).
MAX_INBOX = 1024
#: Seconds a connection attempt, and the ``offline`` message on the way out, may take.
CONNECT_TIMEOUT_S = 10.0
GOODBYE_TIMEOUT_S = 2.0
#: Home Assistant's start asks for discovery again: answer after a random delay in this range
#: (s), so that a room full of devices does not answer at once.
REDISCOVERY_DELAY_S = (0.5, 2.5)
#: ``Controller.apply`` origin of a change that came from linked instance ``<id>``.
LINK_ORIGIN = "link:"


class _Reconnect(Exception):
    """The connection settings changed: connect again with the new ones."""


class MqttBridge:
    """The daemon's MQTT connection (see the module docstring).

    Args:
        controller: the controller whose targets are published and commanded.
        config: the daemon's configuration; its ``mqtt`` table must be set.
        state: returns the state report's ``state`` (published as the ``state`` topic).
        meters: returns the state report's ``meters`` (published as the ``meters`` topic).
        calibrator: the speaker calibration (``service.calibration``) that
            ``calibrate/set`` drives; None: that topic is refused.
    """

    def __init__(
        self,
        controller,
        config,
        state: Callable[[], dict[str, Any]],
        meters: Callable[[], dict[str, Any]],
        calibrator=None,
    ) -> None:
        self.controller = controller
        self.calibrator = calibrator
        self.config = config
        self.settings = config.mqtt
        self.state = state
        self.meters = meters
        self._state_due = False  # the state topic is built when it is sent: once per burst
        self.connected = False
        self.error: str | None = None
        self.published = self.received = self.dropped = 0
        self._pending: dict[str, tuple[str, int, bool]] = {}  # topic -> (payload, qos, retain)
        self._wake = asyncio.Event()
        self._reconnect = asyncio.Event()
        self._stamps: dict[str, tuple[int, str]] = {}  # link target -> (clock, instance) of its value
        self._discovered: dict[str, str] = {}  # component id -> platform, as last published
        self._commands: dict[str, str] = {}  # topic -> payload: the outboard switches' last commands
        self._sending = False  # a batch is on its way to the broker
        controller.add_listener(self._changed)

    @property
    def base(self) -> str:
        return base_topic(self.settings.id)

    def status(self) -> dict[str, Any]:
        """The state report's ``mqtt``: connected or retrying, the broker, message counts."""
        s = self.settings
        status = {
            "state": "connected" if self.connected else "retrying",
            "broker": f"{s.host}:{s.port}",
            "published": self.published,
            "received": self.received,
            "dropped": self.dropped,
        }
        if not self.connected and self.error:
            status["error"] = self.error
        return status

    def reload(self, config) -> None:
        """Adopt a reloaded configuration: connect again if ``[mqtt]`` changed, else publish
        discovery and state again (names may have changed)."""
        self.config = config
        if config.mqtt is None:
            log.warning("MQTT: [mqtt] was removed; MQTT stays on until the daemon restarts")
            return
        if config.mqtt != self.settings:
            self.settings = config.mqtt
            self._reconnect.set()
        else:
            self._publish_everything()

    # --- the connection ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, and after any loss of the broker connect again, until cancelled."""
        attempt = 0
        while True:
            try:
                async with self._client() as client:
                    attempt = 0
                    await self._serve(client)
            except _Reconnect:
                log.info("MQTT: settings changed; connecting to %s:%d", self.settings.host, self.settings.port)
                continue
            except (aiomqtt.MqttError, OSError, LimitError) as exc:
                self._lost(exc, attempt)
            await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            attempt += 1

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        password = limits.read_secret(s.password_file) if s.password_file is not None else None
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=password,
            identifier=f"controlroom-{s.id}",
            will=aiomqtt.Will(f"{self.base}/status", OFFLINE, qos=1, retain=True),
            keepalive=KEEPALIVE_S,
            timeout=CONNECT_TIMEOUT_S,
            tls_params=aiomqtt.TLSParameters(ca_certs=str(s.ca_file)) if s.ca_file is not None else None,
            logger=log,
            queue_type=partial(Inbox, lambda message: self._drop(DROP_OVERFLOW, message.topic.value, "inbox full")),
            max_queued_incoming_messages=MAX_INBOX,
            # small messages both ways: without it Nagle and delayed ACKs add 40 ms per command
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    def _lost(self, error: BaseException, attempt: int) -> None:
        """Log a lost or refused connection once per outage (then at debug level)."""
        was_connected, self.connected = self.connected, False
        self.error = str(error) or type(error).__name__
        where = f"{self.settings.host}:{self.settings.port}"
        if was_connected:
            log.warning("MQTT: lost the broker at %s (%s); reconnecting", where, self.error)
        elif attempt == 0:
            log.warning("MQTT: cannot connect to %s (%s); retrying in the background", where, self.error)
        else:
            log.debug("MQTT: still no broker at %s (%s)", where, self.error)

    async def _serve(self, client: aiomqtt.Client) -> None:
        s = self.settings
        self.connected, self.error = True, None
        self._reconnect.clear()
        log.info("MQTT: connected to %s:%d as %s", s.host, s.port, s.id)
        await client.publish(f"{self.base}/status", ONLINE, qos=1, retain=True)
        for topic in (f"{self.base}/+/set", f"{self.base}/+/step", f"{s.discovery_prefix}/status"):
            await client.subscribe(topic, qos=1)
        for instance in (s.id, *s.link):
            await client.subscribe(f"{base_topic(instance)}/link/+", qos=1)
        self._publish_everything()
        jobs = [
            asyncio.create_task(job)
            for job in (self._send(client), self._send_meters(client), self._receive(client), self._until_reconnect())
        ]
        try:
            # the first job to end (a lost connection, new settings) ends the connection
            done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                job.result()
        except asyncio.CancelledError:
            # the daemon stops: say so before leaving, the will only speaks for a lost connection
            try:
                await client.publish(f"{self.base}/status", OFFLINE, qos=1, retain=True, timeout=GOODBYE_TIMEOUT_S)
            except aiomqtt.MqttError:
                pass
            raise
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)

    async def _until_reconnect(self) -> None:
        await self._reconnect.wait()
        raise _Reconnect

    # --- out ------------------------------------------------------------------------------------

    def _queue(self, topic: str, payload: str, qos: int = 1, retain: bool = True) -> None:
        self._pending[topic] = (payload, qos, retain)
        self._wake.set()

    def command(self, topic: str, payload: str) -> None:
        """Send ``payload`` to another device's command ``topic`` (an outboard switch, e.g. a
        smart plug): not retained, and sent again after every reconnect, so that the device
        follows once the broker is back."""
        self._commands[topic] = payload
        self._queue(topic, payload, retain=False)

    async def drained(self, timeout_s: float) -> bool:
        """Until everything queued has been sent (True), at most ``timeout_s`` (False: the
        broker is away)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending or self._sending:
            if loop.time() >= deadline or not self.connected:
                return False
            await asyncio.sleep(0.01)
        return True

    def _queue_state(self) -> None:
        self._state_due = True
        self._wake.set()

    def state_changed(self) -> None:
        """Publish the state topic again: it changed without a target changing (a
        calibration's progress or results)."""
        self._queue_state()

    def _publish_everything(self) -> None:
        """Queue every target, the state, the linked targets and the discovery payload (after
        a (re)connect, a reload, or Home Assistant's start): a broker that restarted without
        its retained messages gets them all back."""
        view = self.controller.view()
        for target in STATE_TARGETS:
            self._queue(f"{self.base}/{target}", value_text(view[target]))
        for topic, payload in self._commands.items():
            self._queue(topic, payload, retain=False)
        if self.settings.link:
            for target in self.settings.link_targets:
                clock = self._stamps.get(target, (0, ""))[0]
                self._queue(f"{self.base}/link/{target}", link_json(view[target], clock))
        self._queue_state()
        s = self.settings
        if s.discovery:
            now = {key: c["p"] for key, c in discovery.components(self.config, s.id).items()}
            gone = {key: platform for key, platform in self._discovered.items() if key not in now}
            payload = discovery.payload(self.config, s.id, controlroom.__version__, gone)
            self._queue(discovery.topic(s.discovery_prefix, s.id), json.dumps(payload))
            self._discovered = now

    def _changed(self, changes: dict[str, Any], origin: str) -> None:
        """A controller listener: queue the targets that changed and the state; a local change
        of a linked target also goes to the linked instances."""
        for target, value in changes.items():
            if target in STATE_TARGETS:
                self._queue(f"{self.base}/{target}", value_text(value))
        self._queue_state()
        if origin.startswith(LINK_ORIGIN) or not self.settings.link:
            return
        for target in self.settings.link_targets:
            if target in changes:
                # a hybrid clock: the wall clock's milliseconds, never behind a stamp seen
                clock = max(self._stamps.get(target, (0, ""))[0] + 1, int(time.time() * 1000))
                self._stamps[target] = (clock, self.settings.id)
                self._queue(f"{self.base}/link/{target}", link_json(changes[target], clock))

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._state_due:
                self._state_due = False
                self._queue(f"{self.base}/state", json.dumps(self.state()))
            pending, self._pending = self._pending, {}
            self._sending = True
            try:
                for topic, (payload, qos, retain) in list(pending.items()):
                    try:
                        await client.publish(topic, payload, qos=qos, retain=retain)
                    except aiomqtt.MqttError:
                        # not sent: back in the queue, unless a newer payload took its place
                        unsent = {t: p for t, p in pending.items() if t not in self._pending}
                        self._pending.update(unsent)
                        raise
                    del pending[topic]
                    self.published += 1
            finally:
                self._sending = False

    async def _send_meters(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.settings.meters_interval_s)
            meters = self.meters()
            if meters:
                await client.publish(f"{self.base}/meters", meters_json(meters), qos=0, retain=False)
                self.published += 1

    # --- in -------------------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.received += 1
            topic, payload = message.topic.value, message.payload
            data = payload if isinstance(payload, bytes) else b"" if payload is None else str(payload).encode()
            try:
                self._handle(topic, data, message.retain)
            except Dropped as exc:
                self._drop(exc.reason, topic, str(exc))
            except TargetError as exc:
                self._drop(DROP_BAD_VALUE, topic, str(exc))
            except Exception:  # whatever a message does, the connection and the daemon go on
                log.exception("MQTT: a message on %s could not be handled", topic)
                self._drop(DROP_MALFORMED, topic, "internal error")

    def _handle(self, topic: str, payload: bytes, retained: bool) -> None:
        s = self.settings
        if topic == f"{s.discovery_prefix}/status":
            if payload.strip() == ONLINE.encode():
                asyncio.get_running_loop().call_later(random.uniform(*REDISCOVERY_DELAY_S), self._publish_everything)
            return
        match topic.split("/"):
            case [root, instance, "link", target] if root == ROOT:
                if target in s.link_targets:  # another instance may link more targets than we do
                    self._linked(instance, target, payload, retained)
            case [root, instance, "calibrate", "set"] if root == ROOT and instance == s.id:
                if retained:
                    raise Dropped(DROP_RETAINED, "a retained command (publish commands without retain)")
                self._calibrate(decode(payload))
            case [root, instance, target, "set" | "step" as kind] if root == ROOT and instance == s.id:
                if retained:  # a command left on the broker must not replay at every start
                    raise Dropped(DROP_RETAINED, "a retained command (publish commands without retain)")
                if target not in TARGETS or (kind == "step" and target not in STATE_TARGETS):
                    raise Dropped(DROP_UNKNOWN_TOPIC, f"no target {target!r} to {kind}")
                action, value = command(kind, decode(payload))
                self.controller.apply(target, action, value, origin="mqtt")
            case _:
                raise Dropped(DROP_UNKNOWN_TOPIC, "not a controlroom command topic")

    def _calibrate(self, command: str) -> None:
        """``start [SET ...]``, ``stop`` or ``reset`` a speaker calibration; a run that fails is
        logged (the state topic shows the results)."""
        if self.calibrator is None:
            raise Dropped(DROP_UNKNOWN_TOPIC, "calibration needs the audio engine")
        match command.split():
            case ["start", *sets]:
                self.calibrator.start(sets)
            case ["stop"]:
                self.calibrator.stop("stopped over MQTT")
            case ["reset"]:
                self.calibrator.reset()
            case _:
                raise TargetError(f"calibrate: {command!r} (expected start [SET ...], stop or reset)")

    def _linked(self, instance: str, target: str, payload: bytes, retained: bool) -> None:
        """A linked target's value from ``instance`` (ours: only its clock counts). A retained
        one was left before we connected: a volume from it is taken at most at the start-up
        limit, as a saved volume is."""
        if not payload:  # a retained link message being cleared
            return
        value, clock = parse_link(payload)
        stamp = (clock, instance)
        if stamp <= self._stamps.get(target, (0, "")):
            return
        self._stamps[target] = stamp
        if instance == self.settings.id:
            return
        cap = self.config.monitor.startup_max_volume_db
        if retained and target == "volume" and isinstance(value, int | float) and value > cap:
            value = cap
        self.controller.apply(target, "set", value, origin=LINK_ORIGIN + instance)

    def _drop(self, reason: str, topic: str, detail: str) -> None:
        self.dropped += 1
        self.controller.drop(reason)
        log.debug("MQTT: dropped a message on %s (%s): %s", topic, reason, detail)


class Inbox(asyncio.Queue):
    """aiomqtt's queue of received messages: bounded (``maxsize``), a message that finds it
    full is handed to ``overflow`` and dropped rather than queued (aiomqtt would log a warning
    per message)."""

    def __init__(self, overflow: Callable[[aiomqtt.Message], None], maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._overflow = overflow

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if self.full():
            self._overflow(item)
        else:
            super().put_nowait(item)
