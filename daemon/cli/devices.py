"""``controlroom devices``: the audio devices PortAudio sees and the MIDI ports mido sees."""

from __future__ import annotations

import argparse
import json
import os


def audio_devices() -> list[dict]:
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        return [{"error": f"PortAudio unavailable: {exc}"}]
    hostapis = sd.query_hostapis()
    return [
        {
            "index": d["index"],
            "name": d["name"],
            "hostapi": hostapis[d["hostapi"]]["name"],
            "inputs": d["max_input_channels"],
            "outputs": d["max_output_channels"],
            "default_samplerate": d["default_samplerate"],
        }
        for d in sd.query_devices()
    ]


def midi_ports(backend: str | None = None) -> dict:
    """MIDI input and output port names through mido's rtmidi backend (``MIDO_BACKEND`` or
    ``backend``, e.g. ``mido.backends.rtmidi/UNIX_JACK``)."""
    import mido

    name = backend or os.environ.get("MIDO_BACKEND") or "mido.backends.rtmidi"
    try:
        b = mido.Backend(name, load=True)
        return {"backend": name, "inputs": b.get_input_names(), "outputs": b.get_output_names()}
    except Exception as exc:  # rtmidi raises its own types for a missing API or server
        return {"backend": name, "inputs": [], "outputs": [], "error": str(exc)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    audio, midi = audio_devices(), midi_ports()
    if args.json:
        print(json.dumps({"audio": audio, "midi": midi}, indent=1))
        return 0
    print("Audio devices (name or index for [audio] device):")
    for d in audio:
        if "error" in d:
            print(f"  {d['error']}")
            continue
        print(
            f"  {d['index']:>3}  {d['name']}  [{d['hostapi']}]  in {d['inputs']}  out {d['outputs']}  "
            f"{d['default_samplerate']:g} Hz"
        )
    print(f"MIDI ports ({midi['backend']}):")
    if "error" in midi:
        print(f"  {midi['error']}")
    for kind in ("inputs", "outputs"):
        for port in midi[kind]:
            print(f"  {kind[:-1]:<6}  {port}")
    return 0
