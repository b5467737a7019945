"""The ``[mqtt]`` section: its presence turns MQTT on, its keys take the documented defaults, and
every invalid key is one ``FILE: mqtt.KEY: reason`` line of a ``ConfigError``, all at once.

docs/configuration.md names the TOML keys; the config object is ``config.mqtt`` with one
attribute per key, ``broker`` read into ``host`` and ``port`` as ``[osc] listen`` is.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest
from configkit import BASE, STATE_TARGETS, key_path, refused, with_section

from controlroom.daemon.config import parse_config


def with_mqtt(*lines: str) -> str:
    return with_section("mqtt", *lines)


def broker_of(mqtt) -> tuple[str, int]:
    return mqtt.host, mqtt.port


@pytest.fixture
def password_file(tmp_path):
    def make(mode: int):
        path = tmp_path / f"password-{mode:o}"
        path.write_text("s3cret")
        path.chmod(mode)
        return path

    return make


# --- valid sections --------------------------------------------------------------------------------


def test_without_the_section_mqtt_is_off():
    assert parse_config(BASE).mqtt is None


def test_a_broker_alone_takes_every_documented_default():
    mqtt = parse_config(with_mqtt('broker = "broker.studio.example"')).mqtt

    assert broker_of(mqtt) == ("broker.studio.example", 1883)
    assert (mqtt.username, mqtt.password_file, mqtt.ca_file) == (None, None, None)
    assert mqtt.discovery is True
    assert mqtt.discovery_prefix == "homeassistant"
    assert 0.2 <= mqtt.meters_interval_s <= 60.0
    assert tuple(mqtt.link) == ()
    assert tuple(mqtt.link_targets) == ("volume", "dim", "mute")


def test_the_id_defaults_to_the_host_name_lower_cased():
    host = socket.gethostname().lower()
    if not re.fullmatch(r"[a-z0-9_-]+", host):
        pytest.skip(f"this machine's host name {host!r} is not a valid id as it is")
    assert parse_config(with_mqtt('broker = "127.0.0.1"')).mqtt.id == host


def test_every_key_is_read(password_file, tmp_path):
    secret = password_file(0o600)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    mqtt = parse_config(
        with_mqtt(
            'broker = "10.0.0.5:8883"',
            'id = "control_a-2"',
            'username = "studio"',
            f'password_file = "{secret}"',
            f'ca_file = "{ca}"',
            "discovery = false",
            'discovery_prefix = "ha"',
            "meters_interval_s = 2.5",
            'link = ["control-b", "booth"]',
            'link_targets = ["volume", "speakers", "blind"]',
        )
    ).mqtt

    assert broker_of(mqtt) == ("10.0.0.5", 8883)
    assert mqtt.id == "control_a-2"
    assert mqtt.username == "studio"
    assert mqtt.discovery is False and mqtt.discovery_prefix == "ha"
    assert mqtt.meters_interval_s == 2.5
    assert tuple(mqtt.link) == ("control-b", "booth")
    assert tuple(mqtt.link_targets) == ("volume", "speakers", "blind")


@pytest.mark.parametrize("interval", [0.2, 1, 60])
def test_the_meters_interval_may_be_anything_from_0_2_to_60_s(interval):
    assert parse_config(
        with_mqtt('broker = "127.0.0.1"', f"meters_interval_s = {interval}")
    ).mqtt.meters_interval_s == (interval)


def test_every_target_with_a_value_may_be_linked():
    targets = ", ".join(f'"{t}"' for t in STATE_TARGETS)
    mqtt = parse_config(with_mqtt('broker = "127.0.0.1"', f"link_targets = [{targets}]")).mqtt
    assert tuple(mqtt.link_targets) == STATE_TARGETS


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640])
def test_a_password_file_others_cannot_read_is_accepted(password_file, mode):
    path = password_file(mode)
    parse_config(with_mqtt('broker = "127.0.0.1"', 'username = "studio"', f'password_file = "{path}"'))


# --- invalid keys ------------------------------------------------------------------------------------

INVALID = [
    ('broker = "127.0.0.1:70000"', "broker"),  # no such port
    ('broker = "127.0.0.1:mqtt"', "broker"),
    ('broker = ""', "broker"),
    ("broker = 1883", "broker"),
    ('id = "Control-A"', "id"),  # ids are lower case
    ('id = "control a"', "id"),
    ('id = "a/b"', "id"),  # would be two topic levels
    ('id = "+"', "id"),  # an MQTT wildcard
    ('id = "#"', "id"),
    ('id = ""', "id"),
    ("username = 7", "username"),
    ('username = "studio"\npassword_file = "/nonexistent/controlroom/password"', "password_file"),
    ("ca_file = 7", "ca_file"),
    ('discovery = "yes"', "discovery"),
    ("discovery_prefix = 7", "discovery_prefix"),
    ('discovery_prefix = "ha/#"', "discovery_prefix"),  # wildcards are no part of a topic name
    ('discovery_prefix = "ha/+"', "discovery_prefix"),
    ("meters_interval_s = 0.1", "meters_interval_s"),
    ("meters_interval_s = 61", "meters_interval_s"),
    ("meters_interval_s = 0", "meters_interval_s"),
    ("meters_interval_s = -1", "meters_interval_s"),
    ("meters_interval_s = nan", "meters_interval_s"),
    ('meters_interval_s = "1"', "meters_interval_s"),
    ('link = "control-b"', "link"),  # a list, even of one
    ('link = ["Control B"]', "link"),
    ('link_targets = ["level"]', "link_targets"),  # write-only: it has no value to keep equal
    ('link_targets = ["nosuch"]', "link_targets"),
    ('link_targets = "volume"', "link_targets"),
    ('brokr = "127.0.0.1"', "brokr"),  # an unknown key
]


@pytest.mark.parametrize("line, key", INVALID, ids=[line.split("\n")[-1] for line, _ in INVALID])
def test_an_invalid_key_is_refused_at_its_key_path(line, key):
    lines = [line] if line.startswith("broker") else ['broker = "127.0.0.1"', line]
    errors = refused(with_mqtt(*lines))
    assert [key_path(e) for e in errors] == [f"mqtt.{key}"], errors


def test_a_world_readable_password_file_is_refused(password_file):
    path = password_file(0o644)
    errors = refused(with_mqtt('broker = "127.0.0.1"', 'username = "studio"', f'password_file = "{path}"'))
    assert [key_path(e) for e in errors] == ["mqtt.password_file"], errors
    assert str(path) in errors[0] or "readable" in errors[0], errors


def test_every_error_of_the_section_is_reported_at_once(password_file):
    readable = password_file(0o644)
    errors = refused(
        with_mqtt(
            'broker = "127.0.0.1:0x"',
            'id = "Not Valid"',
            "username = 1",
            f'password_file = "{readable}"',
            "ca_file = false",
            "discovery = 1",
            "discovery_prefix = []",
            "meters_interval_s = 0.01",
            'link = ["UPPER"]',
            'link_targets = ["volume", "level"]',
            "colour = 3",
        )
    )
    assert {key_path(e) for e in errors} == {
        f"mqtt.{key}"
        for key in (
            "broker",
            "id",
            "username",
            "password_file",
            "ca_file",
            "discovery",
            "discovery_prefix",
            "meters_interval_s",
            "link",
            "link_targets",
            "colour",
        )
    }, errors


def test_mqtt_errors_come_with_the_other_sections_errors():
    errors = refused(BASE + '[monitor]\ndim_db = 1\n[mqtt]\nbroker = "127.0.0.1"\nid = "A"\n')
    assert {key_path(e) for e in errors} == {"monitor.dim_db", "mqtt.id"}, errors


@pytest.mark.parametrize(
    "module", ["controlroom.daemon.mqtt", "controlroom.daemon.core.targets", "controlroom.daemon.config"]
)
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    """Reading ``[mqtt]`` brings the target vocabulary into the config reader: no import cycle
    may come of it, whichever module a program imports first (``ctl`` imports ``targets``)."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
