"""The daemon's report as a person reads it: ``ctl``, ``ctl watch`` and the demo's view share
these lines."""

from __future__ import annotations

from typing import Any

#: How each report section writes booleans and missing values (a meter with no signal: -inf dB).
_WORDS = {
    "state": ("on", "off", "-"),
    "engine": ("yes", "no", "-"),
    "meters": ("yes", "no", "-inf"),
    "surfaces": ("yes", "no", "-"),
    "mqtt": ("yes", "no", "-"),
    "web": ("yes", "no", "-"),
    "outboard": ("on", "off", "-"),
    "sequence": ("yes", "no", "-"),
}
#: Sections only a daemon configured for them reports.
_OPTIONAL = ("mqtt", "web", "outboard", "sequence")


def format_value(target: str, value: Any) -> str:
    """A target's value as a person reads it: ``-12.0 dB``, ``on``, ``crap``."""
    if target == "volume" and isinstance(value, (int, float)):
        return f"{value:.1f} dB"
    if target.endswith("p_value") and isinstance(value, float):
        return f"{value:.4g}"
    return _text(value, _WORDS["state"])


def format_report(report: dict[str, Any]) -> str:
    """``state``, ``engine``, ``meters``, ``surfaces``, and ``mqtt``, ``web``, ``outboard`` and
    ``sequence`` when the daemon has them, as aligned ``key value`` lines (nested keys dotted)."""
    lines = []
    for section, words in _WORDS.items():
        if section in _OPTIONAL and section not in report:
            continue
        lines.append(section)
        rows = _flatten(report.get(section) or {})
        width = max((len(key) for key in rows), default=0)
        for key, value in rows.items():
            text = format_value(key, value) if section == "state" else _text(value, words)
            lines.append(f"  {key:<{width}}  {text}")
    return "\n".join(lines)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            rows.update(_flatten(value, f"{prefix}{key}."))
        else:
            rows[f"{prefix}{key}"] = value
    return rows


def _text(value: Any, words: tuple[str, str, str]) -> str:
    true, false, missing = words
    if isinstance(value, bool):
        return true if value else false
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list):
        return "  ".join(_text(v, words) for v in value)
    if isinstance(value, dict):  # empty, e.g. no drops, unless asked for one (blind_mapping)
        return "  ".join(f"{k}={_text(v, words)}" for k, v in value.items()) or "-"
    return str(value)


def monitor_loudness(meters: dict[str, Any]) -> dict[str, Any] | None:
    """The monitor's BS.1770 figures in a report's ``meters`` (None before any were measured)."""
    return ((meters or {}).get("loudness") or {}).get("monitor")


def format_loudness(meters: dict[str, Any]) -> str:
    """The monitor's loudness in one line: momentary, short-term and integrated (LUFS),
    loudness range (LU) and true peak (dBTP); ``-`` for a figure that does not exist yet."""
    m = monitor_loudness(meters)
    if not m:
        return "monitor loudness: not measured"

    def fig(key: str) -> str:
        value = m.get(key)
        return "-" if value is None else f"{value:.1f}"

    return (
        f"monitor M {fig('momentary_lufs')} S {fig('short_term_lufs')} I {fig('integrated_lufs')} LUFS, "
        f"LRA {fig('loudness_range_lu')} LU, TP {fig('true_peak_dbtp')} dBTP"
    )


def format_offsets(state: dict[str, Any]) -> str:
    """Each compared source's match offset (dB) and the matching mode: ``match auto: mix
    +0.0 ref -4.5 dB``, then what matching waits for, if anything (``(measuring 4 of 10 s)``)."""
    offsets = " ".join(f"{name} {db:+.1f}" for name, db in (state.get("match_db") or {}).items())
    waiting = waiting_for(state.get("matching") or {})
    return f"match {state.get('match', '-')}: {offsets or 'none'} dB" + (f" ({waiting})" if waiting else "")


def waiting_for(matching: dict[str, Any]) -> str:
    """Why matching cannot act now (``measuring 4 of 10 s``, ``no signal on ref``); empty
    when it can, or when it is not on."""
    if matching.get("status") == "measuring":
        return f"measuring {matching['filled_s']:.0f} of {matching['window_s']:.0f} s"
    if matching.get("status") == "no signal":
        return f"no signal on {', '.join(matching['silent'])}"
    return ""


def format_measurement(m: dict[str, Any]) -> str:
    """One insert's measurement in one line."""
    line = (
        f"insert {m['name']}: latency {m['latency']} samples ({m['latency_ms']:.2f} ms), "
        f"gain {m['gain_db']:+.2f} dB, coherence {m['coherence']:.3f}"
    )
    return line + (", polarity inverted" if m["inverted"] else "")


def format_inserts(inserts: dict[str, dict[str, Any]]) -> str:
    """The measurements in the state report, one line each."""
    if not inserts:
        return "inserts: none measured"
    return "\n".join(format_measurement({"name": name, **m}) for name, m in inserts.items())


def format_abx(abx: dict[str, Any] | None) -> str:
    """An ABX test's progress or result in one line."""
    if abx is None:
        return "abx: no test yet"
    state = "running" if abx["running"] else "finished" if abx["done"] == abx["trials"] else "stopped"
    return (
        f"abx {abx['a']} vs {abx['b']} {state}: {abx['correct']} of {abx['done']} correct "
        f"({abx['trials']} trials), p = {abx['p_value']:.4g}"
    )


def running_sequence(sequence: dict[str, Any]) -> str:
    """The report's ``sequence`` in a few words: ``idle``, or ``KIND [TO]: STEP``."""
    kind = sequence.get("kind", "idle")
    if kind == "idle":
        return kind
    to = sequence.get("to")
    return f"{kind} {to}: {sequence.get('step')}" if to else f"{kind}: {sequence.get('step')}"


def format_outboard(outputs: dict[str, str], sequence: dict[str, Any]) -> str:
    """Each outboard switch on or off, one a line, then the sequence running (or idle) and the
    presets last recalled."""
    width = max((len(name) for name in outputs), default=0)
    lines = [f"{name:<{width}}  {state}" for name, state in outputs.items()]
    lines.append(f"sequence {running_sequence(sequence)}")
    for name, recall in (sequence.get("recalled") or {}).items():
        if recall is not None:
            bank = "" if recall.get("bank") is None else f" bank {recall['bank']}"
            lines.append(f"{name}: program {recall['program']}{bank}")
    return "\n".join(lines)


def format_calibration(calibration: dict[str, Any] | None, calibrating: dict[str, Any] | None) -> str:
    """The speaker calibration: a run in progress, then per output its level at the mic (and
    SPL), arrival and trim, per set its delays and SPL at volume 0 dB; with ``measured``
    (a run's answer), how long each output took."""
    lines = []
    if calibrating:
        where = "the room's noise" if calibrating["output"] is None else f"output {calibrating['output']}"
        lines.append(
            f"calibrating {', '.join(calibrating['sets'])}: {where} ({calibrating['step']} of {calibrating['of']})"
        )
    outputs = (calibration or {}).get("outputs") or {}
    if not outputs:
        lines.append("calibration: none")
        return "\n".join(lines)
    measured = (calibration or {}).get("measured") or {}
    for output, r in outputs.items():
        spl = "" if r.get("spl_db") is None else f" ({r['spl_db']:.1f} dB SPL)"
        took = f", measured in {measured[output]['duration_s']:.1f} s" if output in measured else ""
        snr = "no room noise" if r["snr_db"] is None else f"SNR {r['snr_db']:.0f} dB"
        lines.append(
            f"output {output}: {r['level_db']:.1f} dBFS at the mic{spl}, {snr}, "
            f"arrival {r['arrival']} samples ({r['arrival_ms']:.2f} ms), trim {r['trim_db']:+.2f} dB{took}"
        )
    for name, s in ((calibration or {}).get("sets") or {}).items():
        delays = ", ".join(f"output {o} {d:.2f} ms" for o, d in s["delay_ms"].items())
        spl = "" if s.get("spl_db") is None else f"; {s['spl_db']:.1f} dB SPL at volume 0 dB"
        lines.append(f"set {name}: delays {delays}{spl}")
    return "\n".join(lines)
