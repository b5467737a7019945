"""The live view that ``controlroom demo`` and ``controlroom ctl watch`` draw from a report."""

from __future__ import annotations

from controlroom.daemon.cli.liveview import one_line, view

#: A report as the daemon gives it, with match offsets and the monitor's loudness.
REPORT = {
    "state": {
        **dict(source="ref", ab="b", match="auto", speakers="studio", sub=True, volume=-20.0),
        **dict(dim=False, mute=False, mono=False, solo="off", polarity=False),
        "match_db": {"mix": 0.0, "ref": -4.5},
    },
    "engine": {"running": True, "callbacks": 7, "dropped": {}},
    "meters": {
        "outputs": {"1": {"rms_dbfs": -20.0}},
        "loudness": {
            "monitor": {
                "outputs": [1, 2],
                **dict(momentary_lufs=-17.2, short_term_lufs=-18.5, integrated_lufs=-19.0),
                **dict(loudness_range_lu=4.2, true_peak_dbtp=-2.9),
            }
        },
    },
}
SHOWN = ("match auto: mix +0.0 ref -4.5 dB", "monitor M -17.2 S -18.5 I -19.0 LUFS, LRA 4.2 LU, TP -2.9 dBTP")


def test_the_live_view_shows_match_offsets_and_the_monitors_loudness():
    screen = view(REPORT, "header")
    for text in SHOWN:
        assert f"  {text}\n" in screen


def test_the_once_a_second_line_shows_match_offsets_and_the_monitors_loudness():
    assert one_line(REPORT).endswith(" | ".join(SHOWN))


def test_the_view_says_what_matching_waits_for():
    measuring = {"status": "measuring", "filled_s": 4.2, "window_s": 10.0}
    report = {**REPORT, "state": {**REPORT["state"], "matching": measuring}}
    assert "  match auto: mix +0.0 ref -4.5 dB (measuring 4 of 10 s)\n" in view(report, "header")


def test_the_view_shows_engine_health_surfaces_and_mqtt():
    report = {
        **REPORT,
        "engine": {"running": False, "state": "waiting", "error": "device gone", "restarts": 2, "dropped": {"x": 3}},
        "surfaces": {"desk": {"connected": True}, "pad": {"connected": False, "waiting": "MIDI: no server"}},
        "mqtt": {"state": "retrying", "broker": "10.0.0.5:1883", "published": 7, "received": 2, "dropped": 1},
    }
    screen = view(report, "header")
    assert "  engine: WAITING (device gone), callbacks 0, restarts 2, limiter 0.0 dB, dropped 3\n" in screen
    assert "  surfaces: desk connected, pad waiting (MIDI: no server)\n" in screen
    assert "  mqtt: retrying (10.0.0.5:1883), published 7, received 2, dropped 1\n" in screen


def test_the_view_shows_the_outboard_switches_and_the_sequence_running_or_failed():
    outboard = {"amp": "on", "relay-near": "off"}
    running = {"kind": "switch", "to": "near", "step": "settle", "recalled": {}}
    screen = view({**REPORT, "outboard": outboard, "sequence": running}, "header")
    assert "  outboard: amp on, relay-near off; sequence switch near: settle\n" in screen
    failed = {"kind": "idle", "error": "switch: GPIO27: refused", "recalled": {}}
    screen = view({**REPORT, "outboard": outboard, "sequence": failed}, "header")
    assert "  outboard: amp on, relay-near off; sequence idle\n" in screen
    assert "  outboard FAILED: switch: GPIO27: refused (silent until its set or another is selected)\n" in screen
    assert "outboard" not in view(REPORT, "header")


def test_the_view_of_a_daemon_without_audio_has_empty_meters():
    report = {"state": REPORT["state"], "engine": {"running": False, "state": "starting"}, "meters": {}}
    screen = view(report, "header")
    assert "  monitor loudness: not measured\n" in screen
    assert "  engine: STARTING, callbacks 0, restarts 0, limiter 0.0 dB, dropped 0\n" in screen
