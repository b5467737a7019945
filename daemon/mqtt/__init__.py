"""MQTT: the daemon's state and commands on a broker, Home Assistant discovery, linked rooms.

``MqttBridge`` (``bridge``) is the connection; ``payloads`` says what the topics carry;
``discovery`` builds Home Assistant's device payload. The daemon imports this package only when
the config has an ``[mqtt]`` section, so nothing else pays for aiomqtt.
"""

from controlroom.daemon.mqtt.bridge import MqttBridge

__all__ = ["MqttBridge"]
