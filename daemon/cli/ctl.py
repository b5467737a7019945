"""``controlroom ctl``: control a running daemon over OSC.

``ctl TARGET VALUE`` sends ``/controlroom/TARGET VALUE``; ``toggle``, ``next``, ``prev`` and
``step DELTA`` send ``/controlroom/TARGET/<action>``; ``ctl TARGET`` alone only asks. Each is
followed by ``/controlroom/state`` from the same socket, and the target's value in the answer is
printed: what the daemon made of the command. A refusal (``/controlroom/error``) is printed and
exits 1, as does no answer. ``ctl status`` prints the whole report.

``ctl level NAME`` prints the volume it set. ``ctl blind reveal`` ends a blind test and prints
its labels -> sources. ``ctl abx [start TRIALS|play a|b|x|answer a|b|stop]`` drives an ABX test
and prints its score. ``ctl insert measure NAME`` measures an outboard insert and prints its
latency and gain once done; ``ctl insert`` prints the measurements so far. ``ctl loudness``
prints the monitor's loudness; ``ctl loudness reset`` restarts its integrated loudness and LRA.
``ctl calibrate [SET ...]`` calibrates the speakers with the measurement mic, printing each
step, then the results; ``ctl calibrate status|stop|reset|mic`` shows them, stops a run,
removes them, or reads the mic on a 94 dB SPL calibrator.

Values go out as OSC doubles when they read as a finite number (``-12``, ``-12.3``, an enum
index ``2``; a double keeps ``-12.3`` exact where float32 would store -12.300000190734863) and as
strings otherwise (``on``, ``crap``); the daemon's parsing is forgiving.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any

from controlroom.daemon.cli import liveview, options
from controlroom.daemon.cli.formats import (
    format_abx,
    format_calibration,
    format_inserts,
    format_loudness,
    format_measurement,
    format_outboard,
    format_report,
    format_value,
    monitor_loudness,
    waiting_for,
)
from controlroom.daemon.cli.remote import DEFAULT_OSC, TIMEOUT_S, exchange, parse_endpoint, query
from controlroom.daemon.core.targets import TARGETS, WRITE_ONLY_TARGETS
from controlroom.daemon.errors import ControlroomError, RemoteError, UsageError
from controlroom.daemon.osc.protocol import (
    CALIBRATE_ADDRESS,
    CALIBRATE_MIC_ADDRESS,
    CALIBRATE_PROGRESS_ADDRESS,
    CALIBRATE_STEP_TIMEOUT_S,
    INSERT_MEASURE_ADDRESS,
    LOUDNESS_RESET_ADDRESS,
    MEASURE_TIMEOUT_S,
    PREFIX,
    TRIGGER_ACTIONS,
    build_message,
)

STATUS = "status"
WATCH = "watch"
ABX = "abx"
INSERT = "insert"
LOUDNESS = "loudness"
OUTBOARD = "outboard"
CALIBRATE = "calibrate"
_DOUBLE = "d"
#: What argparse takes for a negative number rather than an option: its own ``-12`` and
#: ``-12.3``, and exponents too (``-1e9``), so that ``ctl volume -1e9`` is a value to refuse.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # argparse offers no public hook for this; ctl has no option that looks like a number
    parser._negative_number_matcher = _NEGATIVE_NUMBER
    parser.usage = (
        "controlroom ctl [--osc HOST:PORT] [--json] [--timeout S] {TARGET [VALUE|toggle|next|prev|step DELTA] "
        "| blind reveal | abx [start N|play L|answer L|stop] | insert [measure NAME] | loudness [reset] | outboard [NAME on|off] | calibrate [SET...|status|stop|reset|mic] | status "
        "| watch [--seconds S]}"
    )
    parser.add_argument("--osc", metavar="HOST:PORT", help="the daemon's OSC address (default: 127.0.0.1:9000)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for the answer (default: 2)")
    parser.add_argument(
        "--seconds",
        type=options.positive_seconds,
        metavar="S",
        help="watch: stop after S seconds (default: q or Ctrl-C)",
    )
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="volume, dim, mute, mono, solo, polarity, speakers, sub, source, ab, match, blind, level; "
        "or abx, insert, loudness, outboard, calibrate, status, watch",
    )
    parser.add_argument(
        "words",
        nargs="*",
        default=[],  # without a default argparse lists an optional '*' among the required arguments
        metavar="VALUE",
        help="a value, toggle, next, prev or step DELTA; none: print the current value",
    )


def run(args: argparse.Namespace) -> int:
    endpoint = parse_endpoint(args.osc or DEFAULT_OSC)
    timeout = TIMEOUT_S if args.timeout is None else args.timeout
    if not timeout > 0:
        raise UsageError(f"--timeout {timeout:g}: expected a positive number of seconds")
    if args.seconds is not None and args.target != WATCH:
        raise UsageError(f"--seconds is for watch (not {args.target})")
    if args.target == WATCH:
        if args.words or args.json:
            raise UsageError("watch takes no value and no --json (ctl status --json prints the report once)")
        return liveview.watch(endpoint, timeout, args.seconds)
    if args.target == STATUS:
        if args.words:
            raise UsageError(f"status takes no value (got {' '.join(args.words)})")
        report = query(endpoint, [], timeout)
        print(json.dumps(report, indent=2) if args.json else format_report(report))
        return 0
    if args.target == INSERT:
        print(insert(endpoint, args.words, timeout, args.json))
        return 0
    if args.target == LOUDNESS:
        print(loudness(endpoint, args.words, timeout, args.json))
        return 0
    if args.target == OUTBOARD:
        print(outboard(endpoint, args.words, timeout, args.json))
        return 0
    if args.target == CALIBRATE:
        print(calibrate(endpoint, args.words, timeout, args.json))
        return 0
    if args.target == ABX:
        command = abx_message(args.words)
        abx = query(endpoint, [command] if command else [], timeout).get("state", {}).get(ABX)
        print(json.dumps({ABX: abx}) if args.json else format_abx(abx))
        return 0
    if args.target not in TARGETS:
        raise UsageError(
            f"unknown target {args.target!r} (expected {STATUS}, {WATCH}, {ABX}, {INSERT}, {LOUDNESS}, {OUTBOARD}, {CALIBRATE} "
            f"or one of {', '.join(TARGETS)})"
        )
    command = command_message(args.target, args.words)
    state = query(endpoint, [command] if command else [], timeout).get("state", {})
    shown = {key: state.get(key) for key in _shown(args.target, args.words)}
    print(json.dumps(shown) if args.json else _applied(args.target, shown, state))
    return 0


def _applied(target: str, shown: dict[str, Any], state: dict[str, Any]) -> str:
    """What a command left, as a person reads it; ``ab`` and ``source`` also name the source
    now heard and, with matching on, its match offset (dB): ``ab b: ref, matched -4.5 dB``."""
    if target == "ab":
        label, source = state.get("ab"), state.get("source")
        # in a blind test the source is shown as its label: nothing more to tell
        heard = "" if source == label else f": {source}{_offset(state)}"
        return f"ab {format_value('ab', label)}{heard}"
    if target == "source":
        return f"source {state.get('source')}{_offset(state)}"
    return "\n".join(f"{k} {format_value(k, v)}" for k, v in shown.items())


def _offset(state: dict[str, Any]) -> str:
    """``, matched -4.5 dB`` for the source heard while matching is on (``, not matched:
    measuring 4 of 10 s`` while it cannot act); empty otherwise."""
    db = (state.get("match_db") or {}).get(state.get("source"))
    if state.get("match", "off") == "off" or db is None:
        return ""
    waiting = waiting_for(state.get("matching") or {})
    return f", not matched: {waiting}" if waiting else f", matched {db:.1f} dB"


def _shown(target: str, words: list[str]) -> tuple[str, ...]:
    """What to print after a command: the target's value (a write-only target's: what it set)."""
    if target in WRITE_ONLY_TARGETS:
        return ("volume",)
    return (target, "blind_mapping") if words == ["reveal"] else (target,)


def command_message(target: str, words: list[str]) -> bytes | None:
    """The OSC message for ``TARGET [VALUE|toggle|next|prev|step DELTA]``; None: only ask."""
    match words:
        case []:
            return None
        case [action] if action in TRIGGER_ACTIONS:
            return build_message(f"{PREFIX}{target}/{action}")
        case ["reveal"] if target == "blind":
            return build_message(f"{PREFIX}blind/reveal")
        case ["step", delta] | ["step" as delta]:
            number = _number(delta)
            if number is None:
                raise UsageError(f"{target} step: expected a number DELTA (dB for volume, places for the others)")
            return build_message(f"{PREFIX}{target}/step", number, float_tag=_DOUBLE)
        case [value] if value.startswith("+") and _number(value) is not None:
            raise UsageError(f"{target} {value}: a value sets the target; did you mean `step {value}`?")
        case [value]:
            number = _number(value)
            return build_message(PREFIX + target, value if number is None else number, float_tag=_DOUBLE)
    raise UsageError(f"{target} {' '.join(words)}: expected VALUE, toggle, next, prev or step DELTA")


def abx_message(words: list[str]) -> bytes | None:
    """The OSC message for ``abx [start TRIALS|play a|b|x|answer a|b|stop]``; None: only ask."""
    match words:
        case []:
            return None
        case ["start", trials]:
            number = _number(trials)
            return build_message(f"{PREFIX}abx/start", trials if number is None else number, float_tag=_DOUBLE)
        case ["play" | "answer" as action, label]:
            return build_message(f"{PREFIX}abx/{action}", label)
        case ["stop"]:
            return build_message(f"{PREFIX}abx/stop")
    raise UsageError(f"abx {' '.join(words)}: expected start TRIALS, play a|b|x, answer a|b or stop")


def insert(endpoint: tuple[str, int], words: list[str], timeout: float, as_json: bool) -> str:
    """``insert`` (the measurements so far) or ``insert measure NAME`` (measure, then show it)."""
    match words:
        case []:
            inserts = query(endpoint, [], timeout).get("state", {}).get("inserts") or {}
            return json.dumps({"inserts": inserts}) if as_json else format_inserts(inserts)
        case ["measure", name]:
            # the daemon answers once the measurement is done: allow for it on top of the timeout
            params = exchange(
                endpoint,
                [build_message(INSERT_MEASURE_ADDRESS, name)],
                INSERT_MEASURE_ADDRESS,
                timeout + MEASURE_TIMEOUT_S,
            )
            if len(params) != 6:
                raise RemoteError(f"the daemon's measurement answer has {len(params)} values, expected 6")
            name, latency, latency_ms, gain_db, coherence, inverted = params
            # OSC floats are float32: print the figures to the precision they carry
            result = {
                "name": name,
                "latency": latency,
                "latency_ms": round(latency_ms, 3),
                "gain_db": round(gain_db, 2),
                "coherence": round(coherence, 3),
                "inverted": bool(inverted),
            }
            return json.dumps(result) if as_json else format_measurement(result)
    raise UsageError(f"insert {' '.join(words)}: expected nothing (show the measurements) or measure NAME")


def loudness(endpoint: tuple[str, int], words: list[str], timeout: float, as_json: bool) -> str:
    """``loudness`` (the monitor's loudness now) or ``loudness reset`` (restart its integrated
    loudness and LRA; the daemon does it at its meters' next 100 ms step)."""
    match words:
        case []:
            meters = query(endpoint, [], timeout).get("meters") or {}
            figures = monitor_loudness(meters)
            return json.dumps({LOUDNESS: figures}) if as_json else format_loudness(meters)
        case ["reset"]:
            query(endpoint, [build_message(LOUDNESS_RESET_ADDRESS)], timeout)  # a refusal raises
            return json.dumps({LOUDNESS: "reset"}) if as_json else "loudness reset: integrated and LRA start afresh"
    raise UsageError(f"loudness {' '.join(words)}: expected nothing (show the loudness) or reset")


def outboard(endpoint: tuple[str, int], words: list[str], timeout: float, as_json: bool) -> str:
    """``ctl outboard``: the outboard outputs and the running sequence; ``ctl outboard NAME
    on|off`` switches one by hand first (refused while a sequence runs)."""
    if words and len(words) != 2:
        raise UsageError(f"outboard takes NAME on|off or nothing (got {' '.join(words)})")
    messages = [build_message(f"{PREFIX}{OUTBOARD}/{words[0]}", words[1])] if words else []
    report = query(endpoint, messages, timeout)
    shown = {key: report.get(key) for key in (OUTBOARD, "sequence")}
    if shown[OUTBOARD] is None:
        raise RemoteError("the daemon has no [[outboard]] outputs")
    return json.dumps(shown) if as_json else format_outboard(shown[OUTBOARD], shown["sequence"])


def calibrate(endpoint: tuple[str, int], words: list[str], timeout: float, as_json: bool) -> str:
    """``calibrate [SET ...]`` (calibrate, printing each step; then the results), ``calibrate
    status`` (the results), ``stop`` (abort a run), ``reset`` (remove the results), ``mic``
    (the config line for a mic with a 94 dB SPL calibrator on it)."""
    match words:
        case ["status"]:
            state = query(endpoint, [], timeout).get("state", {})
            shown = {"calibration": state.get("calibration"), "calibrating": state.get("calibrating")}
            return json.dumps(shown) if as_json else format_calibration(shown["calibration"], shown["calibrating"])
        case ["stop"]:
            query(endpoint, [build_message(f"{CALIBRATE_ADDRESS}/stop")], timeout)  # a refusal raises
            return (
                json.dumps({CALIBRATE: "stopped"}) if as_json else "calibration stopped (if one ran): nothing applied"
            )
        case ["reset"]:
            query(endpoint, [build_message(f"{CALIBRATE_ADDRESS}/reset")], timeout)
            return (
                json.dumps({CALIBRATE: "reset"}) if as_json else "calibration reset: the config's trims and delays only"
            )
        case ["mic"]:
            params = exchange(
                endpoint,
                [build_message(CALIBRATE_MIC_ADDRESS)],
                CALIBRATE_MIC_ADDRESS,
                timeout + CALIBRATE_STEP_TIMEOUT_S,
            )
            dbfs = round(float(params[0]), 1)
            if as_json:
                return json.dumps({"mic_dbfs_at_94_db_spl": dbfs})
            return f"[calibration]\nmic_dbfs_at_94_db_spl = {dbfs}"
    # calibrate [SET ...]: each step is printed as it comes, the results at the end
    shown = (lambda params: None) if as_json else (lambda params: print(params[0], flush=True))
    try:
        params = exchange(
            endpoint,
            [build_message(CALIBRATE_ADDRESS, *words)],
            CALIBRATE_ADDRESS,
            timeout + CALIBRATE_STEP_TIMEOUT_S,
            progress=(CALIBRATE_PROGRESS_ADDRESS, shown),
        )
    except KeyboardInterrupt:
        # Ctrl-C ends the run it started, not only the waiting for it
        try:
            query(endpoint, [build_message(f"{CALIBRATE_ADDRESS}/stop")], timeout)
        except ControlroomError as exc:
            print(f"controlroom: could not stop the calibration: {exc}", file=sys.stderr)
        raise
    try:
        report = json.loads(params[0])
    except (IndexError, TypeError, ValueError):
        raise RemoteError("the daemon's calibration answer is not valid JSON") from None
    return json.dumps({"calibration": report}) if as_json else format_calibration(report, None)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
