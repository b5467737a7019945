"""The live view of a daemon's report: the screen ``controlroom demo`` and ``controlroom ctl
watch`` draw, and the line a second they print when the output is not a terminal.

``watch`` asks a running daemon for its report over OSC a few times a second and redraws; on a
terminal, ``r`` restarts the monitor's integrated loudness and LRA and ``q`` quits. A daemon that
stops answering is waited for (the last report stays on screen with the reason), so the watch
outlives a service restart.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from typing import Any

from controlroom.daemon.cli.formats import format_loudness, format_offsets, running_sequence
from controlroom.daemon.cli.remote import query
from controlroom.daemon.errors import RemoteError
from controlroom.daemon.osc.protocol import LOUDNESS_RESET_ADDRESS, build_message

#: Redraws per second on a terminal, and seconds between lines otherwise.
REDRAW_S = 0.25
LINE_S = 1.0
CLEAR = "\x1b[H\x1b[J"


def view(report: dict[str, Any], header: str) -> str:
    """The whole screen for ``report``, under ``header``: state, match offsets, monitor
    loudness, source and output meters (RMS dBFS), engine health, surfaces, MQTT, the web
    remote, outboard switches and their sequence."""
    s, e, m = report["state"], report["engine"], report["meters"]
    lines = [
        header,
        "",
        f"  source {s['source']:<8} ab {s['ab']}  match {s['match']}   speakers {s['speakers']:<9} "
        f"sub {'on' if s['sub'] else 'off'}",
        f"  volume {s['volume']:6.1f} dB   dim {'ON ' if s['dim'] else 'off'}  mute {'ON ' if s['mute'] else 'off'}"
        f"  mono {'ON ' if s['mono'] else 'off'}  solo {s['solo']}  polarity {'inv' if s['polarity'] else 'norm'}",
        f"  {format_offsets(s)}",
        f"  {format_loudness(m)}",
        "",
        "  sources (RMS dBFS, after trim)",
    ]
    for name, level in m.get("sources", {}).items():
        for ch, rms in enumerate(level.get("rms_dbfs") or [], 1):
            lines.append(f"    {name:>6} {ch}  {_fmt(rms)}  {_bar(rms)}")
    lines.append("  outputs (RMS dBFS, after the limiter)")
    for out, level in m.get("outputs", {}).items():
        rms = level.get("rms_dbfs")
        lines.append(f"    out {out:>3}  {_fmt(rms)}  {_bar(rms)}")
    lines += ["", f"  {_engine(e, m)}"]
    surfaces = report.get("surfaces") or {}
    if surfaces:
        lines.append("  surfaces: " + ", ".join(_surface(name, s) for name, s in surfaces.items()))
    mqtt = report.get("mqtt")
    if mqtt:
        lines.append(
            f"  mqtt: {mqtt['state']} ({mqtt['broker']}), published {mqtt['published']}, "
            f"received {mqtt['received']}, dropped {mqtt['dropped']}"
        )
    web = report.get("web")
    if web:
        lines.append(f"  web: {web['url']}, {web['clients']} page(s) open")
    outboard = report.get("outboard")
    if outboard is not None:
        sequence = report.get("sequence") or {}
        switches = ", ".join(f"{name} {state}" for name, state in outboard.items())
        lines.append(f"  outboard: {switches or 'no switches'}; sequence {running_sequence(sequence)}")
        if sequence.get("error"):
            lines.append(f"  outboard FAILED: {sequence['error']} (silent until its set or another is selected)")
    return "\n".join(lines) + "\n"


def one_line(report: dict[str, Any]) -> str:
    """``report`` in one line: source, speakers, volume, output levels, offsets, loudness."""
    s, m = report["state"], report["meters"]
    outs = " ".join(
        f"{k}:{_fmt(v['rms_dbfs']).strip()}" for k, v in m.get("outputs", {}).items() if v.get("rms_dbfs") is not None
    )
    return (
        f"{s['source']} on {s['speakers']} at {s['volume']:.1f} dB | outputs RMS dBFS {outs or 'silent'} | "
        f"{format_offsets(s)} | {format_loudness(m)}"
    )


def watch(endpoint: tuple[str, int], timeout: float, seconds: float | None) -> int:
    """Show the report of the daemon at ``endpoint`` live until ``q``, Ctrl-C or ``seconds``
    (s) have passed; 0. The first report must come within ``timeout`` s (``RemoteError``);
    later silences are shown and waited out."""
    host, port = endpoint
    header = f"controlroom ctl watch — {host}:{port}   r: reset integrated loudness   q: quit"
    report = query(endpoint, [], timeout)
    end = None if seconds is None else time.monotonic() + seconds
    drawing = sys.stdout.isatty()
    note = ""
    try:
        with _Keys() as keys:
            while True:
                if drawing:
                    sys.stdout.write(CLEAR + view(report, header) + (f"\n  {note}\n" if note else ""))
                    sys.stdout.flush()
                else:
                    print(note or one_line(report), flush=True)
                pause = REDRAW_S if drawing else LINE_S
                if end is not None:
                    pause = min(pause, end - time.monotonic())
                    if pause <= 0:
                        return 0
                key = keys.wait(pause)
                if key == "q":
                    return 0
                try:
                    if key == "r":
                        query(endpoint, [build_message(LOUDNESS_RESET_ADDRESS)], timeout)
                    report = query(endpoint, [], timeout)
                    note = "loudness reset: integrated and LRA start afresh" if key == "r" else ""
                except RemoteError as exc:
                    note = f"{exc}; still trying"
    except KeyboardInterrupt:
        return 0


class _Keys:
    """Single key presses from a terminal on stdin (cbreak mode, restored on exit); without a
    terminal, ``wait`` only waits."""

    def __enter__(self) -> _Keys:
        self.fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
        if self.fd is not None:
            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.fd is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def wait(self, seconds: float) -> str | None:
        """The key pressed within ``seconds`` (s), or None."""
        if self.fd is None:
            time.sleep(seconds)
            return None
        ready, _, _ = select.select([self.fd], [], [], seconds)
        return os.read(self.fd, 1).decode(errors="replace").lower() if ready else None


def _engine(e: dict[str, Any], m: dict[str, Any]) -> str:
    health = f"engine: {'running' if e.get('running') else e.get('state', 'stopped').upper()}"
    if e.get("error"):
        health += f" ({e['error']})"
    return (
        f"{health}, callbacks {e.get('callbacks', 0)}, restarts {e.get('restarts', 0)}, "
        f"limiter {m.get('limiter_gain_reduction_db', 0.0):.1f} dB, dropped {sum(e.get('dropped', {}).values())}"
    )


def _surface(name: str, status: dict[str, Any]) -> str:
    if status.get("connected"):
        return f"{name} connected"
    return f"{name} waiting ({status.get('waiting', 'not connected')})"


def _bar(db: float | None, width: int = 30, floor: float = -60.0) -> str:
    if db is None:
        return "." * width
    filled = int(round(width * (max(floor, min(0.0, db)) - floor) / -floor))
    return "#" * filled + "." * (width - filled)


def _fmt(db: float | None) -> str:
    return "  -inf" if db is None else f"{db:6.1f}"
