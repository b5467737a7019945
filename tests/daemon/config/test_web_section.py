"""The ``[web]`` section: its presence turns the web remote on, ``allow`` defaults to this
machine and the private ranges, and every invalid key is one ``FILE: web.KEY: reason`` line of
a ``ConfigError``, all at once (``controlroom check`` prints the same lines).

The config object is read as ``config.web``: ``listen`` through ``listen_of`` (``host`` and
``port``, as ``[osc] listen`` is read), ``allow`` as networks, ``password_file`` as a path.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from configkit import BASE, key_path, refused, with_section

from controlroom.daemon.config import parse_config


def with_web(*lines: str) -> str:
    return with_section("web", *lines)


def listen_of(web) -> tuple[str, int]:
    if hasattr(web, "host") and hasattr(web, "port"):
        return web.host, web.port
    host, port = web.listen
    return host, port


def admits(web, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in web.allow)


@pytest.fixture
def password_file(tmp_path):
    def make(mode: int) -> Path:
        path = tmp_path / f"password-{mode:o}"
        path.write_text("s3cret\n")
        path.chmod(mode)
        return path

    return make


# --- valid sections --------------------------------------------------------------------------------


def test_without_the_section_the_web_remote_is_off():
    assert parse_config(BASE).web is None


def test_an_empty_section_turns_it_on_for_this_machine_and_the_private_ranges_without_a_password():
    web = parse_config(with_web()).web
    assert web is not None
    assert web.password_file is None
    for inside in ("127.0.0.1", "127.0.1.1", "10.1.2.3", "172.16.0.9", "172.31.255.254", "192.168.1.20"):
        assert admits(web, inside), inside
    for outside in ("8.8.8.8", "172.32.0.1", "192.0.2.10", "100.64.0.1", "11.0.0.1"):
        assert not admits(web, outside), outside
    host, port = listen_of(web)
    assert isinstance(host, str) and host
    assert 0 <= port <= 65535


def test_every_key_is_read(password_file):
    secret = password_file(0o600)
    web = parse_config(
        with_web('listen = "0.0.0.0:8443"', 'allow = ["192.168.1.0/24", "10.0.0.5"]', f'password_file = "{secret}"')
    ).web
    assert listen_of(web) == ("0.0.0.0", 8443)
    assert tuple(web.allow) == (ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("10.0.0.5/32"))
    assert Path(web.password_file) == secret
    assert admits(web, "192.168.1.77") and not admits(web, "127.0.0.1")


@pytest.mark.parametrize(
    "listen, expected",
    [("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:8080", ("::1", 8080)), ("0.0.0.0:65535", ("0.0.0.0", 65535))],
)
def test_listen_is_host_and_port_and_port_0_asks_for_any_free_port(listen, expected):
    assert listen_of(parse_config(with_web(f'listen = "{listen}"')).web) == expected


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640])
def test_a_password_file_others_cannot_read_is_accepted(password_file, mode):
    path = password_file(mode)
    assert Path(parse_config(with_web(f'password_file = "{path}"')).web.password_file) == path


# --- invalid keys ------------------------------------------------------------------------------------

INVALID = [
    ('listen = "localhost"', "listen"),  # no port
    ('listen = "127.0.0.1:70000"', "listen"),
    ('listen = "127.0.0.1:-1"', "listen"),
    ('listen = "127.0.0.1:http"', "listen"),
    ('listen = ""', "listen"),
    ("listen = 8080", "listen"),
    ('allow = "127.0.0.1/32"', "allow"),  # a list, even of one
    ("allow = []", "allow"),  # nobody at all: a mistake
    ('allow = ["10.0.0.300/8"]', "allow"),
    ('allow = ["127.0.0.1/32", "anywhere"]', "allow"),
    ("allow = [10]", "allow"),
    ('password_file = "/nonexistent/controlroom/web-password"', "password_file"),
    ('password_file = "web-password"', "password_file"),  # relative
    ("password_file = 7", "password_file"),
    ('port = "8080"', "port"),  # an unknown key
    ('password = "s3cret"', "password"),  # not in the config file: in a file of its own
]


@pytest.mark.parametrize("line, key", INVALID, ids=[line for line, _ in INVALID])
def test_an_invalid_key_is_refused_at_its_key_path(line, key):
    errors = refused(with_web(line))
    assert [key_path(e) for e in errors] == [f"web.{key}"], errors


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o666])
def test_a_password_file_everyone_may_read_is_refused(password_file, mode):
    path = password_file(mode)
    errors = refused(with_web(f'password_file = "{path}"'))
    assert [key_path(e) for e in errors] == ["web.password_file"], errors


def test_every_error_of_the_section_is_reported_at_once(password_file):
    readable = password_file(0o644)
    errors = refused(
        with_web('listen = "127.0.0.1:99999"', 'allow = ["nowhere"]', f'password_file = "{readable}"', "colour = 3")
    )
    assert {key_path(e) for e in errors} == {"web.listen", "web.allow", "web.password_file", "web.colour"}, errors


def test_web_errors_come_with_the_other_sections_errors():
    errors = refused(BASE + '[monitor]\ndim_db = 1\n[web]\nlisten = "nowhere"\n')
    assert {key_path(e) for e in errors} == {"monitor.dim_db", "web.listen"}, errors


def test_web_is_a_table():
    errors = refused('web = "on"\n' + BASE)
    assert [key_path(e) for e in errors] == ["web"], errors


def test_check_refuses_a_bad_web_section_with_the_same_lines(tmp_path):
    path = tmp_path / "studio.toml"
    path.write_text(with_web('listen = "127.0.0.1:70000"'))
    result = subprocess.run(
        [sys.executable, "-m", "controlroom", "check", "-c", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert [line.split(": ", 2)[1] for line in result.stderr.splitlines()] == ["web.listen"], result.stderr
    assert all(line.startswith(f"{path}: ") for line in result.stderr.splitlines())


def test_check_accepts_a_good_web_section(tmp_path, password_file):
    path = tmp_path / "studio.toml"
    path.write_text(with_web('listen = "127.0.0.1:8080"', f'password_file = "{password_file(0o600)}"'))
    result = subprocess.run(
        [sys.executable, "-m", "controlroom", "check", "-c", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_fifo_as_password_file_is_refused_rather_than_read(tmp_path):
    fifo = tmp_path / "secret"
    os.mkfifo(fifo, 0o600)  # reading it would wait for a writer, and hold the daemon's start
    errors = refused(with_web(f'password_file = "{fifo}"'))
    assert [key_path(e) for e in errors] == ["web.password_file"], errors
    assert "is not a regular file" in errors[0]
