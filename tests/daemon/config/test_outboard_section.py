"""``[[outboard]]`` entries, the sets' ``power``, ``relays`` and ``recall``, and ``[sequencing]``:
what a valid config holds, one ``FILE: key.path: reason`` line per mistake, and ``check`` and
``run`` refusing GPIO pins on a machine without GPIO unless gpiozero's mock pins are asked for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from configkit import key_path, refused
from daemonproc import DaemonProcess

from controlroom.daemon.config import parse_config

SETS = """
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
{studio}
[speakers.cube]
outputs = [3]
{cube}
"""
RACK = """
[[outboard]]
name = "studio-amp"
gpio = 17
active_high = false
[[outboard]]
name = "relay-a"
gpio = 22
[[outboard]]
name = "dsp-preset"
midi_port = "DSP8024"
min_interval_ms = 20
[[outboard]]
name = "cube-amp"
mqtt_topic = "shellies/cube/relay/0/command"
payload_on = "on"
payload_off = "off"
[mqtt]
broker = "127.0.0.1"
"""
STUDIO = """power = ["studio-amp"]
relays = ["relay-a"]
recall = { outboard = "dsp-preset", program = 3, bank = 130, settle_ms = 80 }"""


def rack(studio: str = STUDIO, cube: str = 'power = ["cube-amp"]', extra: str = "") -> str:
    return SETS.format(studio=studio, cube=cube) + RACK + extra


def test_the_issue_s_rack_reads_into_outputs_of_three_kinds_and_what_each_set_switches():
    config = parse_config(rack(extra='[sequencing]\non_delay_ms = 500\npower_policy = "selected"\n'))
    amp, relay, dsp, plug = config.outboard.values()
    assert (amp.kind, amp.gpio, amp.active_high) == ("gpio", 17, False)
    assert (relay.kind, relay.active_high) == ("gpio", True)
    assert (dsp.kind, dsp.midi_port, dsp.channel, dsp.min_interval_ms) == ("midi", "DSP8024", 1, 20.0)
    assert (plug.kind, plug.mqtt_topic, plug.payload_on, plug.payload_off) == (
        "mqtt",
        "shellies/cube/relay/0/command",
        "on",
        "off",
    )
    studio = config.speakers["studio"]
    assert studio.power == ("studio-amp",) and studio.relays == ("relay-a",)
    assert (studio.recall.outboard, studio.recall.program, studio.recall.bank, studio.recall.settle_ms) == (
        "dsp-preset",
        3,
        130,
        80.0,
    )
    assert config.speakers["cube"].power == ("cube-amp",) and config.speakers["cube"].recall is None
    assert (config.sequencing.on_delay_ms, config.sequencing.power_policy) == (500.0, "selected")


def test_without_outboard_entries_nothing_is_switched_and_amplifiers_stay_on_by_default():
    config = parse_config(SETS.format(studio="", cube=""))
    assert config.outboard == {} and config.speakers["studio"].power == ()
    assert config.sequencing.power_policy == "always"


@pytest.mark.parametrize(
    "text, path, reason",
    [
        (
            rack(extra='[[outboard]]\nname = "x"\n'),
            "outboard",
            "has none (expected exactly one of gpio, midi_port, mqtt_topic)",
        ),
        (rack(extra='[[outboard]]\nname = "x"\ngpio = 5\nmidi_port = "y"\n'), "outboard", "has gpio and midi_port"),
        (rack(extra='[[outboard]]\nname = "x"\ngpio = 28\n'), "outboard[4].gpio", "28 is out of range"),
        (rack(extra='[[outboard]]\nname = "x"\ngpio = 17\n'), "outboard[4].gpio", "17 is also outboard[0]'s pin"),
        (rack(extra='[[outboard]]\nname = "relay-a"\ngpio = 5\n'), "outboard[4].name", '"relay-a" is also outboard[1]'),
        (
            rack(extra='[[outboard]]\nname = "x"\ngpio = 5\npayload_on = "1"\n'),
            "outboard[4].payload_on",
            "applies to a mqtt entry only",
        ),
        (
            rack(extra='[[outboard]]\nname = "x"\nmidi_port = "y"\nchannel = 17\n'),
            "outboard[4].channel",
            "17 is out of range",
        ),
        (rack(extra='[[outboard]]\nname = "x"\nmqtt_topic = "a/+/b"\n'), "outboard[4].mqtt_topic", "is not a topic"),
        (
            rack(extra='[[outboard]]\nname = "x"\ngpio = 5\nactive_low = true\n'),
            "outboard[4].active_low",
            "unknown key (did you mean",
        ),
        (
            rack(studio='power = ["studio-ampp"]'),
            "speakers.studio.power",
            '"studio-ampp" is not a GPIO or MQTT [[outboard]] entry',
        ),
        (rack(studio='relays = ["dsp-preset"]'), "speakers.studio.relays", '"dsp-preset" is not a GPIO or MQTT'),
        (rack(cube='relays = ["studio-amp"]'), "speakers.cube.relays", '"studio-amp" is also in speakers.studio.power'),
        (
            rack(studio='recall = { outboard = "relay-a", program = 1 }'),
            "speakers.studio.recall.outboard",
            "is not a MIDI [[outboard]] entry",
        ),
        (
            rack(studio='recall = { outboard = "dsp-preset", program = 128 }'),
            "speakers.studio.recall.program",
            "128 is out of range",
        ),
        (
            rack(studio='recall = { outboard = "dsp-preset", program = 1, bank = 16384 }'),
            "speakers.studio.recall.bank",
            "out of range",
        ),
        (rack(studio='recall = { outboard = "dsp-preset" }'), "speakers.studio.recall.program", "missing"),
        (
            rack(extra='[sequencing]\npower_policy = "sometimes"\n'),
            "sequencing.power_policy",
            '"sometimes" is not a power policy',
        ),
        (rack(extra="[sequencing]\non_delay_ms = -1\n"), "sequencing.on_delay_ms", "-1 is out of range"),
    ],
)
def test_a_mistake_is_one_line_at_its_key(text, path, reason):
    errors = refused(text)
    assert len(errors) == 1, errors
    assert key_path(errors[0]) == path
    assert reason in errors[0]


def test_an_mqtt_switch_needs_the_mqtt_section():
    errors = refused(rack().replace('[mqtt]\nbroker = "127.0.0.1"\n', ""))
    assert [key_path(e) for e in errors] == ["outboard[3].mqtt_topic"]
    assert "needs an [mqtt] section" in errors[0]


def test_every_mistake_at_once():
    text = rack(studio='power = ["nope"]', extra='[[outboard]]\nname = "x"\n[sequencing]\nsettle_ms = "long"\n')
    assert sorted(key_path(e) for e in refused(text)) == ["outboard", "sequencing.settle_ms", "speakers.studio.power"]


def test_timing_written_in_an_outboard_table_is_pointed_to_the_sequencing_section():
    errors = refused(SETS.format(studio="", cube="") + "[outboard]\non_delay_ms = 1500\n")
    assert [key_path(e) for e in errors] == ["outboard"]
    assert "[[outboard]] entries (double brackets); their timing lives in [sequencing]" in errors[0]


def test_an_outboard_table_beside_outboard_entries_is_invalid_toml_and_says_where_timing_lives():
    errors = refused(rack() + "[outboard]\non_delay_ms = 1500\n")
    assert "invalid TOML" in errors[0]
    assert errors[1] == (
        "c.toml: outboard: [outboard] and [[outboard]] both appear: outboard outputs are [[outboard]] entries "
        "(double brackets); their timing lives in [sequencing] (on_delay_ms, settle_ms, power_policy)"
    )


# --- GPIO on a machine without it -----------------------------------------------------------------


def controlroom(*args: str, factory: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    if factory is not None:
        env["GPIOZERO_PIN_FACTORY"] = factory
    return subprocess.run(
        [sys.executable, "-m", "controlroom", *args], capture_output=True, text=True, env=env, timeout=60
    )


def machine_has_gpio() -> bool:
    """Whether gpiozero finds a pin factory here by itself (a Raspberry Pi with lgpio)."""
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    code = (
        "import warnings; warnings.simplefilter('ignore'); from gpiozero import Device; Device._default_pin_factory()"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60).returncode == 0


without_gpio = pytest.mark.skipif(machine_has_gpio(), reason="this machine has GPIO: nothing to refuse")


@pytest.fixture
def gpio_config(tmp_path):
    path = tmp_path / "rack.toml"
    path.write_text('[audio]\nbackend = "virtual"\n' + rack())
    return path


@without_gpio
def test_check_refuses_gpio_pins_where_gpiozero_finds_no_pin_factory(gpio_config):
    result = controlroom("check", str(gpio_config), factory=None)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == ["outboard[0].gpio", "outboard[1].gpio"]
    assert "no GPIO on this machine for 'studio-amp'" in lines[0]
    assert "GPIOZERO_PIN_FACTORY=mock" in lines[0] and "lgpio" in lines[0]
    assert "Traceback" not in result.stderr


def test_check_accepts_them_on_gpiozero_s_mock_pins_and_warns_that_no_relay_moves(gpio_config):
    result = controlroom("check", str(gpio_config), factory="mock")
    assert result.returncode == 0, result.stderr
    assert "4 outboard outputs, power always" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "  warning: outboard: GPIOZERO_PIN_FACTORY=mock: the GPIO entries drive mock pins in memory, no relay or "
        "amplifier moves (unset it on the rack's machine)"
    )


def test_run_on_mock_pins_logs_that_no_relay_moves(tmp_path):
    config = tmp_path / "rack.toml"
    config.write_text(
        '[audio]\nbackend = "virtual"\n[osc]\nlisten = "127.0.0.1:0"\n'
        + SETS.format(studio='power = ["studio-amp"]', cube="")
        + '[[outboard]]\nname = "studio-amp"\ngpio = 17\n'
    )
    with DaemonProcess(config, tmp_path / "daemon.log", env={"GPIOZERO_PIN_FACTORY": "mock"}) as daemon:
        daemon.spawn()
        daemon.wait_log(r"GPIOZERO_PIN_FACTORY=mock: the GPIO entries drive mock pins in memory", 60)
        daemon.wait_osc()
        assert daemon.terminate() == 0


@without_gpio
def test_run_refuses_to_start_on_gpio_pins_without_gpio(gpio_config):
    result = controlroom("run", "-c", str(gpio_config), factory=None)
    assert result.returncode == 2
    assert "outboard[0].gpio: no GPIO on this machine" in result.stderr


def test_check_of_a_rack_stays_light_no_audio_engine_loaded(gpio_config):
    code = (
        "import sys; from controlroom.daemon.cli import main; status = main(['check', sys.argv[1]]); "
        "print(status, 'numba' in sys.modules, 'numpy' in sys.modules)"
    )
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(gpio_config)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.splitlines()[-1] == "0 False False", result.stderr
