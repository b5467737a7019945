"""The audio devices of the current PortAudio instance, and finding one by name or index."""

from __future__ import annotations

from controlroom.daemon.engine import library
from controlroom.daemon.errors import EngineError


def list_devices(instance: library.PortAudioLibrary | None = None) -> list[dict]:
    """Every device: ``index``, ``name``, ``hostapi`` (name), ``max_input_channels``,
    ``max_output_channels``, ``default_samplerate`` (Hz) and the ``default_{low,high}_
    {input,output}_latency`` (s), as sounddevice's ``query_devices`` reports them."""
    lib = (instance or library.current()).lib
    devices = []
    for index in range(max(lib.Pa_GetDeviceCount(), 0)):
        info = lib.Pa_GetDeviceInfo(index)
        hostapi = lib.Pa_GetHostApiInfo(info.hostApi)
        devices.append(
            {
                "index": index,
                "name": library.ffi.string(info.name).decode(errors="replace"),
                "hostapi": library.ffi.string(hostapi.name).decode(errors="replace"),
                "max_input_channels": info.maxInputChannels,
                "max_output_channels": info.maxOutputChannels,
                "default_samplerate": info.defaultSampleRate,
                "default_low_input_latency": info.defaultLowInputLatency,
                "default_low_output_latency": info.defaultLowOutputLatency,
                "default_high_input_latency": info.defaultHighInputLatency,
                "default_high_output_latency": info.defaultHighOutputLatency,
            }
        )
    return devices


def describe(device: dict) -> str:
    """One line: ``[0] system (JACK Audio Connection Kit, 8 in, 8 out)``."""
    return (
        f"[{device['index']}] {device['name']} ({device['hostapi']}, "
        f"{device['max_input_channels']} in, {device['max_output_channels']} out)"
    )


def find_device(
    spec: str | int | None, n_in: int, n_out: int, instance: library.PortAudioLibrary | None = None
) -> dict:
    """The device ``spec`` names that has ``n_in`` inputs and ``n_out`` outputs.

    ``spec``: a case-insensitive substring of the device name (or of "name, host API"), an
    index, or None for the default device. Among several matches a device with enough channels
    wins, then an exact name, then the lowest index. EngineError, listing the devices, when
    none fits.
    """
    instance = instance or library.current()
    devices = list_devices(instance)
    if spec is None:
        spec = _default_index(instance, n_out)
        if spec < 0:
            raise EngineError(f"no default audio device; devices:\n{_listing(devices)}")
    if isinstance(spec, int):
        candidates = [d for d in devices if d["index"] == spec]
    else:
        candidates = [d for d in devices if _matches(spec, d)]
    if not candidates:
        raise EngineError(f"no audio device matches {spec!r}; devices:\n{_listing(devices)}")
    fitting = [d for d in candidates if _fits(d, n_in, n_out)]
    if not fitting:
        raise EngineError(
            f"audio device {spec!r} has too few channels for {n_in} in and {n_out} out:\n" + _listing(candidates)
        )
    exact = [d for d in fitting if str(spec).lower() == d["name"].lower()]
    return (exact or fitting)[0]


def _default_index(instance: library.PortAudioLibrary, n_out: int) -> int:
    lib = instance.lib
    return lib.Pa_GetDefaultOutputDevice() if n_out else lib.Pa_GetDefaultInputDevice()


def _matches(spec: str, device: dict) -> bool:
    needle = spec.lower()
    return needle in device["name"].lower() or needle in f"{device['name']}, {device['hostapi']}".lower()


def _fits(device: dict, n_in: int, n_out: int) -> bool:
    return device["max_input_channels"] >= n_in and device["max_output_channels"] >= n_out


def _listing(devices: list[dict]) -> str:
    if not devices:
        return "  (none: is the audio server running?)"
    return "\n".join("  " + describe(device) for device in devices)
