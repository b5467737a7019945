"""``controlroom devices``: the audio devices PortAudio sees and the MIDI ports mido sees.

PortAudio (when sounddevice is imported) and rtmidi print their libraries' probing noise
(``ALSA lib ...``, ``Cannot connect to server ...``) on file descriptor 2: it is sent to
/dev/null while they enumerate, and a heading with nothing under it says what to check.
"""

from __future__ import annotations

import argparse
import json
import os

from controlroom.daemon.quiet import quiet_stderr

NONE_FOUND = "(none found: is the interface connected? are you in group audio?)"


def audio_devices() -> list[dict]:
    try:
        with quiet_stderr():  # importing sounddevice initialises PortAudio, which probes every host API
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
        with quiet_stderr():  # ALSA's sequencer and libjack print why they cannot connect
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
    if not audio:
        print(f"  {NONE_FOUND}")
    for d in audio:
        if "error" in d:
            print(f"  {d['error']}")
            continue
        print(
            f"  {d['index']:>3}  {d['name']}  [{d['hostapi']}]  in {d['inputs']}  out {d['outputs']}  "
            f"{d['default_samplerate']:g} Hz"
        )
    print(f"MIDI ports ({midi['backend']}):")
    if not midi["inputs"] and not midi["outputs"]:
        print(f"  {NONE_FOUND}")
    if "error" in midi:
        print(f"  {midi['error']}")
    for kind in ("inputs", "outputs"):
        for port in midi[kind]:
            print(f"  {kind[:-1]:<6}  {port}")
    return 0
