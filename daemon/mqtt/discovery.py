"""Home Assistant MQTT device discovery: one retained payload that makes an instance a device.

The payload goes to ``<prefix>/device/controlroom_<id>/config``: the device (``dev``), where the
software comes from (``o``) and its components (``cmps``): volume a slider, the switches, the
choices as selects with the configured names, a button per listening level, and sensors for the
monitor's loudness read from the ``meters`` topic. Availability is the instance's ``status``
topic. Every component has a stable ``unique_id`` and a ``default_entity_id``.
"""

from __future__ import annotations

from typing import Any

from controlroom.daemon.core.targets import BOOL_TARGETS, ENUM_TARGETS, Vocabulary
from controlroom.daemon.mqtt.payloads import OFFLINE, ONLINE, SWITCH_OFF, SWITCH_ON, base_topic

#: The monitor's loudness figures shown as sensors: meters key -> (name, unit).
SENSORS = {
    "momentary_lufs": ("Momentary loudness", "LUFS"),
    "short_term_lufs": ("Short-term loudness", "LUFS"),
    "integrated_lufs": ("Integrated loudness", "LUFS"),
    "true_peak_dbtp": ("True peak", "dBTP"),
}
#: Volume slider step (dB).
VOLUME_STEP_DB = 0.5


def topic(prefix: str, instance: str) -> str:
    """Where the device's discovery payload is published."""
    return f"{prefix}/device/controlroom_{instance}/config"


def components(config, instance: str) -> dict[str, dict[str, Any]]:
    """The components (``cmps``) of ``config``'s device, by component id."""
    vocabulary = Vocabulary(config)
    uid = f"controlroom_{instance}".replace("-", "_")

    def entity(platform: str, key: str, name: str, **options: Any) -> tuple[str, dict[str, Any]]:
        return key, {
            "p": platform,
            "name": name,
            "unique_id": f"{uid}_{key}",
            "default_entity_id": f"{platform}.{uid}_{key}",
            **options,
        }

    monitor = config.monitor
    found = [
        entity(
            "number",
            "volume",
            "Volume",
            state_topic="~/volume",
            command_topic="~/volume/set",
            min=monitor.min_volume_db,
            max=monitor.max_volume_db,
            step=VOLUME_STEP_DB,
            unit_of_measurement="dB",
            mode="slider",
        )
    ]
    for target in BOOL_TARGETS:
        if target == "blind" and config.ab is None:
            continue
        found.append(
            entity(
                "switch",
                target,
                target.capitalize(),
                state_topic=f"~/{target}",
                command_topic=f"~/{target}/set",
                payload_on=SWITCH_ON,
                payload_off=SWITCH_OFF,
            )
        )
    for target in ENUM_TARGETS:
        found.append(
            entity(
                "select",
                target,
                target.capitalize(),
                state_topic=f"~/{target}",
                command_topic=f"~/{target}/set",
                options=list(vocabulary.choices[target]),
            )
        )
    for level in config.levels:
        found.append(
            entity("button", f"level_{level}", f"Level {level}", command_topic="~/level/set", payload_press=level)
        )
    for key, (name, unit) in SENSORS.items():
        found.append(
            entity(
                "sensor",
                key,
                name,
                state_topic="~/meters",
                value_template=f"{{{{ value_json.monitor.{key} }}}}",
                unit_of_measurement=unit,
                state_class="measurement",
            )
        )
    return dict(found)


def payload(config, instance: str, version: str, gone: dict[str, str] | None = None) -> dict[str, Any]:
    """The discovery payload of ``config``'s device; ``gone`` (component id -> platform) lists
    components published before and no longer there, which Home Assistant then removes."""
    cmps: dict[str, dict[str, Any]] = {key: {"p": platform} for key, platform in (gone or {}).items()}
    cmps.update(components(config, instance))
    uid = f"controlroom_{instance}".replace("-", "_")
    return {
        "~": base_topic(instance),
        "dev": {
            "identifiers": [uid],
            "name": f"controlroom {instance}",
            "manufacturer": "controlroom",
            "sw_version": version,
        },
        "o": {"name": "controlroom", "sw_version": version},
        "availability_topic": "~/status",
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "cmps": cmps,
    }
