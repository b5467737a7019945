"""The MQTT tests' broker: a fresh mosquitto per test (``mqttkit.Broker``), stopped after it."""

from __future__ import annotations

import pytest
from mqttkit import Broker


@pytest.fixture
def broker(tmp_path):
    """A running mosquitto on a free port of 127.0.0.1, anonymous clients allowed."""
    server = Broker(tmp_path / "broker").start()
    yield server
    server.stop()
