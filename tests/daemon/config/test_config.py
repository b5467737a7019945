"""The configuration file and ``controlroom check``.

Valid files become the documented objects with the documented defaults; broken files are
rejected by the real command line with exit status 2, one ``FILE: key.path: reason`` line per
problem, all problems at once, and never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from controlroom.daemon.config import (
    AbConfig,
    AudioConfig,
    MidiConfig,
    MonitorConfig,
    OscConfig,
    SourceConfig,
    SpeakerOutput,
    SpeakerSetConfig,
    StateConfig,
    SubConfig,
    default_config,
    find_config,
    load_config,
    loader,
    parse_config,
)
from controlroom.daemon.core.path import path_spec
from controlroom.daemon.errors import ConfigError
from controlroom.dsp.bands import Biquad

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))

#: The smallest valid file; broken cases below add to or replace parts of it.
MINIMAL = """
[sources.mix]
channels = [1, 2]
[speakers.studio]
outputs = [1, 2]
"""


def check(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``controlroom check -c path``, as a user runs it (GPIO on gpiozero's mock pins, as on a
    machine without GPIO the manual says to try a config)."""
    return subprocess.run(
        [sys.executable, "-m", "controlroom", "check", "-c", str(path)],
        cwd=cwd,
        env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- valid files ---------------------------------------------------------------------------------


def test_a_minimal_file_takes_every_documented_default():
    config = parse_config(MINIMAL, "minimal.toml")

    assert config.source == "minimal.toml"
    assert config.audio == AudioConfig(
        backend="portaudio", device=None, samplerate=48000, blocksize=64, input_channels=2, output_channels=2
    )
    assert config.monitor == MonitorConfig(
        volume_db=-20.0,
        min_volume_db=-80.0,
        max_volume_db=0.0,
        startup_max_volume_db=-20.0,
        dim_db=-20.0,
        ramp_ms=20.0,
        crossfade_ms=20.0,
        ceiling_dbfs=-0.3,
        reference_spl_db=None,
    )
    assert config.sources == {"mix": SourceConfig("mix", (1, 2), 0.0)}
    assert config.speakers == {
        "studio": SpeakerSetConfig("studio", (SpeakerOutput(1), SpeakerOutput(2)), 0.0, 0.0, (), None, None)
    }
    assert config.ab is None
    assert config.osc == OscConfig("127.0.0.1", 9000, (ipaddress.ip_network("127.0.0.0/8"),), ())
    assert config.surfaces == ()
    assert config.midi == MidiConfig(None)
    assert config.state == StateConfig(None)
    assert config.levels == {}


def test_every_section_parses_to_its_dataclass():
    config = parse_config(
        """
        [audio]
        backend = "virtual"
        device = 3
        samplerate = 96000
        blocksize = 128
        [monitor]
        volume_db = -30
        dim_db = -12.0
        reference_spl_db = 79.0
        [sources.mix]
        channels = [1, 2]
        [sources.talkback]
        channels = [7]
        trim_db = 6.0
        [speakers.studio]
        outputs = [1, 2]
        trim_db = -0.5
        delay_ms = 2.5
        eq = [
            { type = "peak", freq_hz = 250.0, gain_db = -2.0, q = 4.0 },
            { type = "highshelf", freq_hz = 30000, gain_db = -1, slope = 0.5 },
            { type = "notch", freq_hz = 60.0 },
        ]
        sub = { output = 8, crossover_hz = 100.0, trim_db = -3.0 }
        [speakers.mono]
        outputs = [3]
        emulate = "cube"
        [ab]
        a = "talkback"
        b = "mix"
        match = "hold"
        max_boost_db = 3
        [osc]
        listen = "[::1]:0"
        allow = ["192.168.1.7/24", "::1"]
        clients = ["tablet.local:9001", "[fe80::1]:9002"]
        [[surfaces]]
        name = "xtouch"
        input = "X-TOUCH MINI"
        mapping = "behringer-xtouch-mini"
        [[surfaces]]
        name = "leds"
        output = "LED bar"
        mapping = "/etc/controlroom/leds.toml"
        [midi]
        backend = "mido.backends.rtmidi/UNIX_JACK"
        [state]
        path = "/var/lib/controlroom/state.json"
        [levels]
        reference = 0
        quiet = -25.5
        """,
        "full.toml",
    )

    assert config.audio == AudioConfig("virtual", 3, 96000, 128, 7, 8)
    assert (config.monitor.volume_db, config.monitor.dim_db, config.monitor.reference_spl_db) == (-30.0, -12.0, 79.0)
    assert isinstance(config.monitor.volume_db, float)  # integers in the file become floats
    assert list(config.sources) == ["mix", "talkback"]  # file order
    assert config.sources["talkback"] == SourceConfig("talkback", (7,), 6.0)
    assert config.speakers["studio"] == SpeakerSetConfig(
        name="studio",
        outputs=(SpeakerOutput(1), SpeakerOutput(2)),
        trim_db=-0.5,
        delay_ms=2.5,
        eq=(
            Biquad("peak", 250.0, -2.0, q=4.0),
            Biquad("highshelf", 30000.0, -1.0, slope=0.5),  # below Nyquist at 96 kHz
            Biquad("notch", 60.0),
        ),
        sub=SubConfig(8, 100.0, -3.0),
        emulate=None,
    )
    assert config.speakers["mono"].emulate == "cube"
    assert config.ab == AbConfig("talkback", "mix", "hold", 3.0)
    assert config.osc == OscConfig(
        host="::1",
        port=0,
        allow=(ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("::1/128")),
        clients=(("tablet.local", 9001), ("fe80::1", 9002)),
    )
    assert [(s.name, s.input, s.output, s.mapping) for s in config.surfaces] == [
        ("xtouch", "X-TOUCH MINI", None, "behringer-xtouch-mini"),
        ("leds", None, "LED bar", "/etc/controlroom/leds.toml"),
    ]
    assert config.midi.backend == "mido.backends.rtmidi/UNIX_JACK"
    assert config.state.path == Path("/var/lib/controlroom/state.json")
    assert config.levels == {"reference": 0.0, "quiet": -25.5}


def test_the_first_source_and_the_first_speaker_set_are_the_defaults():
    config = parse_config(MINIMAL + "[sources.ref]\nchannels = [3, 4]\n[speakers.crap]\noutputs = [6]\n")
    assert (config.default_source, config.default_speakers) == ("mix", "studio")


def test_an_output_may_carry_its_own_trim_and_delay_and_the_engine_gets_them():
    config = parse_config(
        MINIMAL.replace("outputs = [1, 2]", "outputs = [1, { channel = 2, trim_db = -0.5, delay_ms = 0.3 }]")
    )
    studio = config.speakers["studio"]
    assert studio.outputs == (SpeakerOutput(1), SpeakerOutput(2, -0.5, 0.3))
    assert studio.channels == (1, 2)
    set_spec = path_spec(config).sets[0]
    assert (set_spec.outputs, set_spec.output_trim_db, set_spec.output_delay_ms) == ((1, 2), (0.0, -0.5), (0.0, 0.3))


def test_channel_counts_default_to_the_highest_channel_used_including_the_sub():
    config = parse_config(
        """
        [sources.mix]
        channels = [5]
        [sources.ref]
        channels = [2, 3]
        [speakers.studio]
        outputs = [1, 2]
        sub = { output = 9 }
        [speakers.crap]
        outputs = [4]
        """
    )
    assert (config.audio.input_channels, config.audio.output_channels) == (5, 9)


def test_explicit_channel_counts_may_exceed_what_is_used():
    config = parse_config("[audio]\ninput_channels = 8\noutput_channels = 10\n" + MINIMAL)
    assert (config.audio.input_channels, config.audio.output_channels) == (8, 10)


def test_volume_defaults_are_kept_inside_a_narrowed_volume_range():
    monitor = parse_config("[monitor]\nmin_volume_db = -60\nmax_volume_db = -30\n" + MINIMAL).monitor
    assert (monitor.volume_db, monitor.startup_max_volume_db) == (-30.0, -30.0)


def test_a_source_and_a_speaker_set_may_share_a_name_and_sets_may_share_outputs():
    config = parse_config(
        MINIMAL + '[sources.studio]\nchannels = [3]\n[speakers.phone]\noutputs = [1, 2]\nemulate = "phone"\n'
    )
    assert "studio" in config.sources and config.speakers["phone"].channels == (1, 2)


def test_the_built_in_default():
    config = default_config()

    assert config.source == "<default>"
    assert (config.audio.backend, config.audio.samplerate, config.audio.blocksize) == ("virtual", 48000, 64)
    assert {name: s.channels for name, s in config.sources.items()} == {"mix": (1, 2), "ref": (3, 4)}
    assert config.speakers["studio"].channels == (1, 2)
    assert config.speakers["studio"].sub == SubConfig(3, 80.0, 0.0)
    assert (config.speakers["consumer"].channels, config.speakers["consumer"].trim_db) == ((4, 5), -1.5)
    assert config.speakers["crap"].channels == (6,)
    assert (config.speakers["phone"].channels, config.speakers["phone"].emulate) == ((1, 2), "phone")
    assert config.ab == AbConfig("mix", "ref", "auto", 6.0)
    assert (config.osc.host, config.osc.port) == ("127.0.0.1", 9000)
    assert (config.default_source, config.default_speakers) == ("mix", "studio")


def test_configs_are_frozen():
    config = default_config()
    with pytest.raises(AttributeError):
        config.monitor.volume_db = 0.0  # type: ignore[misc]


#: Networks a copied example must not name: someone's real LAN (RFC 1918), not documentation.
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def test_every_example_is_checked():
    assert {p.name for p in EXAMPLES} >= {
        "minimal.toml",
        "studio.toml",
        "emulations.toml",
        "pi-alsa.toml",
        "outboard.toml",
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_examples_pass_check(example, tmp_path):
    result = check(example, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{example}: ok (")
    warnings = [line for line in result.stdout.splitlines() if "warning" in line]
    # the one warning the check is run to see: GPIO entries on gpiozero's mock pins
    assert all("GPIOZERO_PIN_FACTORY=mock" in line for line in warnings), warnings
    assert result.stderr == ""


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_examples_name_no_private_network(example):
    for address in re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?", example.read_text()):
        network = ipaddress.ip_network(address, strict=False)
        assert not any(network.overlaps(private) for private in PRIVATE), f"{example.name}: {address}"


def test_the_pi_example_opens_its_interface_through_alsa():
    config = load_config(REPO / "examples" / "pi-alsa.toml")
    assert config.audio.backend == "portaudio"
    assert isinstance(config.audio.device, str) and config.audio.device.startswith("hw:")
    assert (config.audio.samplerate, config.audio.blocksize) == (48000, 128)
    assert config.midi.backend is None  # no JACK MIDI: there is no jackd on this box
    assert config.osc.host == "0.0.0.0" and config.osc.clients == ()
    assert ipaddress.ip_network("127.0.0.0/8") in config.osc.allow and len(config.osc.allow) > 1


def test_the_outboard_example_is_the_sequenced_rack_of_the_manual():
    path = REPO / "examples" / "outboard.toml"
    config = load_config(path)
    assert [e.kind for e in config.outboard.values()] == ["gpio"] * 5 + ["mqtt", "midi"]
    pins = {e.gpio for e in config.outboard.values() if e.kind == "gpio"}
    assert all(not e.active_high for e in config.outboard.values() if e.kind == "gpio")
    hat_pins = {2, 3} | set(range(7, 12)) | set(range(18, 22))  # I2C, SPI, I2S: a DAC HAT's
    assert not pins & hat_pins
    # the firmware drives exactly these pins high (off) from boot
    held = re.search(r"gpio=([\d,]+)=op,dh", path.read_text()).group(1)
    assert {int(p) for p in held.split(",")} == pins
    assert config.speakers["mains"].power == ("mains-amp-l", "mains-amp-r")
    assert config.speakers["mains"].recall.program == 3
    assert config.sequencing.power_policy == "selected"


def test_the_studio_example_is_the_full_studio():
    config = load_config(REPO / "examples" / "studio.toml")
    assert (config.audio.input_channels, config.audio.output_channels) == (8, 8)
    assert (len(config.speakers["studio"].eq), len(config.speakers["consumer"].eq)) == (8, 4)
    assert config.speakers["studio"].sub is not None
    assert config.speakers["crap"].channels == (6,)
    assert config.speakers["phone"].emulate == "phone"
    assert config.ab is not None and config.levels


# --- where the config comes from -----------------------------------------------------------------


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Every search-path location redirected into tmp_path, none of them existing yet."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("CONTROLROOM_CONFIG", raising=False)
    monkeypatch.setattr(loader, "SYSTEM_CONFIG", tmp_path / "etc" / "controlroom" / "config.toml")
    return {
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "env.toml",
        "local": cwd / "controlroom.toml",
        "user": home / ".config" / "controlroom" / "config.toml",
        "system": tmp_path / "etc" / "controlroom" / "config.toml",
    }


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MINIMAL)


def test_without_any_file_the_built_in_default_is_used(places):
    assert find_config(None) is None


def test_search_order_is_c_then_environment_then_cwd_then_user_then_system(places, monkeypatch):
    monkeypatch.setenv("CONTROLROOM_CONFIG", str(places["env"]))
    for path in places.values():
        _create(path)
    found = []
    for place in ["explicit", "env", "local", "user", "system"]:
        result = find_config(str(places["explicit"]) if place == "explicit" else None)
        found.append(Path(result).resolve())
        if place == "env":
            monkeypatch.delenv("CONTROLROOM_CONFIG")
        elif place != "explicit":
            places[place].unlink()
    assert found == [p.resolve() for p in places.values()]


def test_xdg_config_home_replaces_dot_config(places, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    _create(places["user"])
    _create(tmp_path / "xdg" / "controlroom" / "config.toml")
    assert find_config(None) == tmp_path / "xdg" / "controlroom" / "config.toml"


@pytest.mark.parametrize("origin", ["-c", "$CONTROLROOM_CONFIG"])
def test_a_named_file_that_does_not_exist_is_an_error_not_a_fallback(places, monkeypatch, origin):
    _create(places["local"])
    missing = str(places["explicit"])
    if origin == "-c":
        with pytest.raises(ConfigError, match=f"no such config file \\(given by {origin}\\)"):
            find_config(missing)
    else:
        monkeypatch.setenv("CONTROLROOM_CONFIG", missing)
        with pytest.raises(ConfigError, match="given by \\$CONTROLROOM_CONFIG"):
            find_config(None)


def test_check_without_a_file_validates_the_built_in_default(places):
    result = subprocess.run(
        [sys.executable, "-m", "controlroom", "check"],
        cwd=places["local"].parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("built-in default (no config file found): ok (2 sources, 4 speaker sets")


def test_check_with_a_missing_file_exits_2(tmp_path):
    result = check(tmp_path / "nope.toml", tmp_path)
    assert result.returncode == 2
    assert "nope.toml: no such config file" in result.stderr
    assert "Traceback" not in result.stderr


LAN_WARNING = "reaches the network, yet only 127.0.0.0/8 may send (osc.allow)"


@pytest.mark.parametrize("listen", ["0.0.0.0:9000", "[::]:9000", "192.0.2.10:9000"])
def test_check_warns_when_osc_listens_on_the_network_but_only_loopback_may_send(tmp_path, listen):
    path = tmp_path / "lan.toml"
    path.write_text(MINIMAL + f'[osc]\nlisten = "{listen}"\n')
    result = check(path, tmp_path)
    assert result.returncode == 0, result.stderr
    warning = result.stdout.splitlines()[-1]
    assert warning.startswith(f'  warning: osc: listen = "{listen}" {LAN_WARNING}')
    assert 'allow = ["127.0.0.0/8", "192.168.1.0/24"]' in warning  # how to let the LAN in
    assert result.stderr == ""


@pytest.mark.parametrize(
    "osc",
    [
        'listen = "127.0.0.1:9000"',  # loopback only: nothing else could send anyway
        'listen = "0.0.0.0:9000"\nallow = ["127.0.0.0/8", "192.0.2.0/24"]',  # the LAN is let in
        'listen = "0.0.0.0:9000"\nallow = ["192.0.2.7"]',
    ],
)
def test_check_does_not_warn_when_who_may_send_fits_where_osc_listens(tmp_path, osc):
    path = tmp_path / "osc.toml"
    path.write_text(MINIMAL + f"[osc]\n{osc}\n")
    result = check(path, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stdout


# --- broken files --------------------------------------------------------------------------------

SUB = "[speakers.studio.sub]\n"
STUDIO_EQ = "[[speakers.studio.eq]]\n"

#: (id, file text, key path, reason): the error line must read "FILE: key path: ...reason..."
BROKEN = [
    (
        "toml-syntax",
        "[sources.mix\nchannels = [1, 2]\n",
        "line 1, column 13",
        "invalid TOML",
    ),
    (
        "unknown-section",
        MINIMAL + "[speaker.crap]\noutputs = [6]\n",
        "speaker",
        "unknown key (did you mean 'speakers'?)",
    ),
    (
        "unknown-key",
        MINIMAL + "[monitor]\ndim_bd = -20.0\n",
        "monitor.dim_bd",
        "unknown key (did you mean 'dim_db'?)",
    ),
    (
        "string-for-number",
        MINIMAL + '[monitor]\ndim_db = "-20"\n',
        "monitor.dim_db",
        '"-20" is a string (expected a number',
    ),
    (
        "bool-is-not-number",
        MINIMAL + "[monitor]\nramp_ms = true\n",
        "monitor.ramp_ms",
        "true is a boolean (expected a number",
    ),
    (
        "dim-not-negative",
        MINIMAL + "[monitor]\ndim_db = 6.0\n",
        "monitor.dim_db",
        "out of range",
    ),
    (
        "nan",
        MINIMAL + "[monitor]\nceiling_dbfs = nan\n",
        "monitor.ceiling_dbfs",
        "not a finite number",
    ),
    (
        "ceiling-above-0",
        MINIMAL + "[monitor]\nceiling_dbfs = 1.0\n",
        "monitor.ceiling_dbfs",
        "out of range (expected a number from -60.0 to 0.0 dBFS)",
    ),
    (
        "max-volume-above-24",
        MINIMAL + "[monitor]\nmax_volume_db = 30\n",
        "monitor.max_volume_db",
        "out of range",
    ),
    (
        "min-not-below-max",
        MINIMAL + "[monitor]\nmin_volume_db = -10.0\nmax_volume_db = -20.0\n",
        "monitor.min_volume_db",
        "is not below max_volume_db",
    ),
    (
        "volume-above-max",
        MINIMAL + "[monitor]\nmax_volume_db = -10.0\nvolume_db = -5.0\n",
        "monitor.volume_db",
        "is above max_volume_db",
    ),
    (
        "ramp-too-long",
        MINIMAL + "[monitor]\ncrossfade_ms = 5000\n",
        "monitor.crossfade_ms",
        "expected a number from 0.0 to 1000.0 ms",
    ),
    (
        "samplerate",
        MINIMAL + "[audio]\nsamplerate = 44000\n",
        "audio.samplerate",
        "44000 is not supported (expected a sample rate in Hz, one of 44100, 48000",
    ),
    (
        "blocksize",
        MINIMAL + "[audio]\nblocksize = 100\n",
        "audio.blocksize",
        "100 is not supported",
    ),
    (
        "backend",
        MINIMAL + '[audio]\nbackend = "portaudo"\n',
        "audio.backend",
        "did you mean 'portaudio'?",
    ),
    (
        "device-bool",
        MINIMAL + "[audio]\ndevice = false\n",
        "audio.device",
        "expected a device name (substring) or index",
    ),
    (
        "no-sources",
        "[speakers.studio]\noutputs = [1, 2]\n",
        "sources",
        "missing (expected at least one [sources.NAME] table)",
    ),
    (
        "no-speakers",
        "[sources.mix]\nchannels = [1, 2]\n",
        "speakers",
        "missing (expected at least one [speakers.NAME] table)",
    ),
    (
        "channels-not-a-list",
        '[sources.mix]\nchannels = "1,2"\n[speakers.studio]\noutputs = [1, 2]\n',
        "sources.mix.channels",
        "expected a list of 1 or 2 1-based channel numbers",
    ),
    (
        "three-channels",
        "[sources.mix]\nchannels = [1, 2, 3]\n[speakers.studio]\noutputs = [1, 2]\n",
        "sources.mix.channels",
        "has 3 entries",
    ),
    (
        "channel-zero",
        "[sources.mix]\nchannels = [0, 1]\n[speakers.studio]\noutputs = [1, 2]\n",
        "sources.mix.channels[0]",
        "0 is out of range (expected a 1-based channel number from 1 to 64)",
    ),
    (
        "channel-float",
        "[sources.mix]\nchannels = [1, 2.0]\n[speakers.studio]\noutputs = [1, 2]\n",
        "sources.mix.channels[1]",
        "2.0 is a float",
    ),
    (
        "channel-twice",
        "[sources.mix]\nchannels = [1, 2]\n[speakers.studio]\noutputs = [2, 2]\n",
        "speakers.studio.outputs[1]",
        "2 is listed twice",
    ),
    (
        "channels-missing",
        "[sources.mix]\nchanels = [1, 2]\n[speakers.studio]\noutputs = [1, 2]\n",
        "sources.mix.channels",
        "missing (expected a list",
    ),
    (
        "name-upper-case",
        "[sources.Mix]\nchannels = [1, 2]\n[speakers.studio]\noutputs = [1, 2]\n",
        "sources.Mix",
        "is not a valid name",
    ),
    (
        "name-reserved",
        MINIMAL + "[speakers.next]\noutputs = [3]\n",
        "speakers.next",
        '"next" is reserved',
    ),
    (
        "name-digits",
        MINIMAL + "[sources.2]\nchannels = [3]\n",
        "sources.2",
        "is all digits",
    ),
    (
        "above-input-channels",
        "[audio]\ninput_channels = 2\n" + MINIMAL + "[sources.ref]\nchannels = [3, 4]\n",
        "sources.ref.channels[0]",
        "3 is above audio.input_channels (expected a channel from 1 to 2)",
    ),
    (
        "sub-above-output-channels",
        "[audio]\noutput_channels = 2\n" + MINIMAL + SUB + "output = 3\n",
        "speakers.studio.sub.output",
        "3 is above audio.output_channels",
    ),
    (
        "eq-above-nyquist",
        MINIMAL + STUDIO_EQ + 'type = "peak"\nfreq_hz = 30000.0\ngain_db = -3.0\n',
        "speakers.studio.eq[0].freq_hz",
        "30000.0 is at or above Nyquist (expected a number > 0.0 and < 24000.0 Hz at samplerate 48000)",
    ),
    (
        "eq-type",
        MINIMAL + STUDIO_EQ + 'type = "peek"\nfreq_hz = 100.0\n',
        "speakers.studio.eq[0].type",
        "did you mean 'peak'?",
    ),
    (
        "eq-freq-missing",
        MINIMAL + STUDIO_EQ + 'type = "peak"\n',
        "speakers.studio.eq[0].freq_hz",
        "missing",
    ),
    (
        "eq-q-and-slope",
        MINIMAL + STUDIO_EQ + 'type = "lowshelf"\nfreq_hz = 100.0\nq = 0.7\nslope = 0.5\n',
        "speakers.studio.eq[0]",
        "has both q and slope",
    ),
    (
        "eq-slope-on-peak",
        MINIMAL + STUDIO_EQ + 'type = "peak"\nfreq_hz = 100.0\nslope = 0.5\n',
        "speakers.studio.eq[0].slope",
        "does not apply to a peak band",
    ),
    (
        "eq-gain-on-lowpass",
        MINIMAL + STUDIO_EQ + 'type = "lowpass"\nfreq_hz = 100.0\ngain_db = -3.0\n',
        "speakers.studio.eq[0].gain_db",
        "does not apply to a lowpass band",
    ),
    (
        "eq-slope-steep",
        MINIMAL + STUDIO_EQ + 'type = "highshelf"\nfreq_hz = 8000.0\nslope = 1.5\n',
        "speakers.studio.eq[0].slope",
        "out of range (expected a number > 0.0 and <= 1.0)",
    ),
    (
        "eq-q-zero",
        MINIMAL + STUDIO_EQ + 'type = "notch"\nfreq_hz = 60.0\nq = 0\n',
        "speakers.studio.eq[0].q",
        "out of range",
    ),
    (
        "eq-gain-30",
        MINIMAL + STUDIO_EQ + 'type = "peak"\nfreq_hz = 60.0\ngain_db = 30\n',
        "speakers.studio.eq[0].gain_db",
        "expected a number from -24.0 to 24.0 dB",
    ),
    (
        "eq-17-bands",
        MINIMAL + (STUDIO_EQ + 'type = "notch"\nfreq_hz = 60.0\n') * 17,
        "speakers.studio.eq",
        "has 17 entries (expected a list of up to 16 EQ bands",
    ),
    (
        "eq-not-a-table",
        MINIMAL.replace("outputs = [1, 2]", 'outputs = [1, 2]\neq = ["peak 250"]'),
        "speakers.studio.eq[0]",
        "is a string (expected an EQ band",
    ),
    (
        "sub-on-main-output",
        MINIMAL + SUB + "output = 2\n",
        "speakers.studio.sub.output",
        "2 is also one of the set's outputs",
    ),
    (
        "sub-crossover",
        MINIMAL + SUB + "output = 3\ncrossover_hz = 10.0\n",
        "speakers.studio.sub.crossover_hz",
        "expected a number from 20.0 to 500.0 Hz",
    ),
    (
        "sub-not-a-table",
        MINIMAL.replace("outputs = [1, 2]", "outputs = [1, 2]\nsub = 3"),
        "speakers.studio.sub",
        "3 is an integer (expected a table",
    ),
    (
        "delay",
        MINIMAL + "delay_ms = 60.0\n",
        "speakers.studio.delay_ms",
        "out of range (expected a number from 0.0 to 50.0 ms)",
    ),
    (
        "emulate",
        MINIMAL + 'emulate = "phnoe"\n',
        "speakers.studio.emulate",
        "did you mean 'phone'?",
    ),
    (
        "ab-unknown-source",
        MINIMAL + '[sources.ref]\nchannels = [3, 4]\n[ab]\na = "mxi"\nb = "ref"\n',
        "ab.a",
        "\"mxi\" is not a defined source (did you mean 'mix'?)",
    ),
    (
        "ab-same-source",
        MINIMAL + '[ab]\na = "mix"\nb = "mix"\n',
        "ab.b",
        "expected two different sources",
    ),
    (
        "ab-match",
        MINIMAL + '[sources.ref]\nchannels = [3]\n[ab]\na = "mix"\nb = "ref"\nmatch = "sometimes"\n',
        "ab.match",
        "expected one of: off, auto, hold",
    ),
    (
        "osc-no-port",
        MINIMAL + '[osc]\nlisten = "localhost"\n',
        "osc.listen",
        "has no port number",
    ),
    (
        "osc-port-range",
        MINIMAL + '[osc]\nlisten = "0.0.0.0:70000"\n',
        "osc.listen",
        "70000 is out of range",
    ),
    (
        "osc-allow",
        MINIMAL + '[osc]\nallow = ["10.0.0.300/8"]\n',
        "osc.allow[0]",
        "is not a network",
    ),
    (
        "surface-no-mapping",
        MINIMAL + '[[surfaces]]\nname = "xtouch"\ninput = "X-TOUCH"\n',
        "surfaces[0].mapping",
        "missing",
    ),
    (
        "surface-no-ports",
        MINIMAL + '[[surfaces]]\nname = "xtouch"\nmapping = "x"\n',
        "surfaces[0]",
        "has neither input nor output",
    ),
    (
        "surface-twice",
        MINIMAL
        + '[[surfaces]]\nname = "x"\ninput = "A"\nmapping = "m"\n[[surfaces]]\nname = "x"\ninput = "B"\nmapping = "m"\n',
        "surfaces[1].name",
        '"x" is also surfaces[0]',
    ),
    (
        "surfaces-as-table",
        MINIMAL + '[surfaces]\nname = "x"\n',
        "surfaces",
        "is a table (expected a list of [[surfaces]] tables)",
    ),
    (
        "state-relative",
        MINIMAL + '[state]\npath = "state.json"\n',
        "state.path",
        "is a relative path",
    ),
    (
        "level-above-max",
        MINIMAL + "[levels]\nloud = 6.0\n",
        "levels.loud",
        "6.0 is above max_volume_db",
    ),
    (
        "output-entry-key",
        MINIMAL.replace("outputs = [1, 2]", "outputs = [1, { channel = 2, trim = -0.5 }]"),
        "speakers.studio.outputs[1].trim",
        "unknown key (did you mean 'trim_db'?)",
    ),
    (
        "output-entry-channel",
        MINIMAL.replace("outputs = [1, 2]", "outputs = [1, { trim_db = -0.5 }]"),
        "speakers.studio.outputs[1].channel",
        "missing (expected a 1-based channel number",
    ),
    (
        "output-entry-type",
        MINIMAL.replace("outputs = [1, 2]", 'outputs = [1, "2"]'),
        "speakers.studio.outputs[1]",
        "or a table such as { channel = 2, trim_db = -0.5, delay_ms = 0.3 }",
    ),
    (
        "output-delay-total",
        MINIMAL.replace("outputs = [1, 2]", "outputs = [1, { channel = 2, delay_ms = 20.0 }]\ndelay_ms = 40.0"),
        "speakers.studio.outputs[1].delay_ms",
        "20.0 ms on top of delay_ms 40.0 ms makes 60 ms (expected at most 50 ms together)",
    ),
    (
        "output-twice-as-table",
        MINIMAL.replace("outputs = [1, 2]", "outputs = [1, { channel = 1, trim_db = -1.0 }]"),
        "speakers.studio.outputs[1]",
        "1 is listed twice",
    ),
]


@pytest.mark.parametrize("text, key, reason", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_broken_config_is_rejected_by_check(tmp_path, text, key, reason):
    path = tmp_path / "studio.toml"
    path.write_text(text)

    result = check(path, tmp_path)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"{path}: {key}: ") and reason in line for line in lines), result.stderr
    assert all(line.startswith(f"{path}: ") for line in lines), result.stderr


def test_the_corpus_is_big_and_its_cases_distinct():
    assert len(BROKEN) >= 25
    assert len({case[0] for case in BROKEN}) == len({case[1] for case in BROKEN}) == len(BROKEN)


def test_every_error_is_reported_at_once(tmp_path):
    path = tmp_path / "studio.toml"
    path.write_text(
        """
        [audio]
        samplerate = 44000
        [monitor]
        dim_bd = -20.0
        [sources.mix]
        channels = [1, 2, 3]
        [speakers.studio]
        outputs = [1, 2]
        eq = [{ type = "peak", freq_hz = 250.0, gain_db = -2.0, q = 4.0 },
              { type = "peak", freq_hz = 100.0, gain_db = 1.0 },
              { type = "peak", freq_hz = 0.0, gain_db = -2.0 }]
        sub = { output = 1 }
        [ab]
        a = "mix"
        b = "rfe"
        """
    )

    result = check(path, tmp_path)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    reported = {tuple(line.split(": ", 2)[1:]) for line in result.stderr.splitlines()}
    assert reported == {
        (
            "audio.samplerate",
            "44000 is not supported (expected a sample rate in Hz, one of 44100, 48000, 88200, 96000, 176400, 192000)",
        ),
        ("monitor.dim_bd", "unknown key (did you mean 'dim_db'?)"),
        (
            "sources.mix.channels",
            "[1, 2, 3] has 3 entries (expected a list of 1 or 2 1-based channel numbers, e.g. [1, 2])",
        ),
        ("speakers.studio.eq[2].freq_hz", "0.0 is out of range (expected a number > 0.0 Hz)"),
        ("speakers.studio.sub.output", "1 is also one of the set's outputs (expected an output of its own)"),
        ("ab.b", '"rfe" is not a defined source (expected one of: mix)'),
    }


def test_parse_config_raises_config_error_with_one_line_per_problem():
    with pytest.raises(ConfigError) as caught:
        parse_config("[monitor]\ndim_db = 1\n", "x.toml")
    assert caught.value.errors == [
        "x.toml: monitor.dim_db: 1 is out of range (expected a number >= -80.0 and < 0.0 dB)",
        "x.toml: sources: missing (expected at least one [sources.NAME] table)",
        "x.toml: speakers: missing (expected at least one [speakers.NAME] table)",
    ]


def test_unreadable_and_non_utf8_files_are_config_errors(tmp_path):
    (tmp_path / "latin1.toml").write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="latin1.toml: byte 73 is not UTF-8"):
        load_config(tmp_path / "latin1.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    (tmp_path / "locked.toml").write_text(MINIMAL)
    (tmp_path / "locked.toml").chmod(0)
    if os.access(tmp_path / "locked.toml", os.R_OK):
        return  # root reads anything
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "locked.toml")


def test_insert_returns_count_as_sources_against_the_engines_limit():
    text = "".join(f"[sources.s{i}]\nchannels = [1]\n" for i in range(16))
    text += '[speakers.studio]\noutputs = [1]\n[inserts.comp]\nsend = [3]\nreturn = [3]\nsource = "s0"\n'
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "c.toml")
    assert refused.value.errors == [
        "c.toml: inserts: 1 returns make 17 sources (expected at most 16 sources, insert returns included)"
    ]
