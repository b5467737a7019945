"""The web remote's page in a headless Chromium, against ``controlroom demo`` (the studio config
with generated programme on the virtual backend, so its meters move).

What a click does is read back from the daemon's OSC report, the independent oracle; what the
daemon does (a change over OSC, the meters) is read from the page's ``data-meter`` and
``aria-pressed`` attributes. The page must load nothing from another host, log no console
error, and fit a phone's screen.

One daemon and one browser serve the module; each test loads the page afresh and brings the
daemon back to ``webkit.BASELINE`` over OSC first.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from configkit import SWITCHES
from webkit import (
    BASELINE,
    INSERT,
    LEVELS,
    MIN_VOLUME_DB,
    Browser,
    DemoDaemon,
    need_chromium,
    png_size,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

#: Every choice button the studio config makes.
CHOICE_VALUES = {
    "speakers": ("studio", "consumer"),
    "source": ("mix", "ref", INSERT),
    "solo": ("off", "left", "right", "side"),
    "ab": ("a", "b"),
    "match": ("off", "auto", "hold"),
}
OUTPUTS = 8  # studio 1-2 (sub 3), consumer 4-5, the insert's sends 7-8
MONITOR_METERS = ("momentary_lufs", "short_term_lufs", "integrated_lufs", "loudness_range_lu", "true_peak_dbtp")
DECIMAL = re.compile(r"-?\d+\.\d")
#: Long enough for the page to hear of a change (the daemon sends it at once).
FOLLOW_S = 5.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    need_chromium()
    daemon = DemoDaemon(tmp_path_factory.mktemp("demo"))
    try:
        yield daemon.start()
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    need_chromium()
    chromium = Browser()
    yield chromium
    chromium.quit()


@pytest.fixture
def page(demo, browser):
    """The page loaded afresh and connected, the daemon at the baseline."""
    with demo.peer() as peer:
        state = peer.query()["state"]
        if state["abx"] is not None and state["abx"]["running"]:
            peer.send("/controlroom/abx/stop")
        for target, value in BASELINE.items():
            peer.send(f"/controlroom/{target}", value)
        report = peer.query()
    assert {k: report["state"][k] for k in BASELINE} == BASELINE
    browser.viewport(1280, 800, mobile=False)
    browser.open(demo.url)
    browser.wait_meter("connection", "connected", FOLLOW_S)
    browser.wait_meter("volume", f"{BASELINE['volume']:.1f}", FOLLOW_S)
    browser.collect()
    browser.mark = len(browser.console)
    return browser


# --- what the page shows --------------------------------------------------------------------------------


def test_the_page_has_a_control_for_every_target_and_a_meter_for_every_reading(demo, page):
    for switch in SWITCHES:
        assert page.pressed(switch) in ("true", "false"), switch
    for target, values in CHOICE_VALUES.items():
        for value in values:
            assert page.pressed(target, value) in ("true", "false"), (target, value)
    for level in LEVELS:
        page.control("level", level)
    assert page.control("volume").get_attribute("type") == "range"
    for step in ("-1", "1"):
        page.control("volume", step, "step")
    page.control("blind", action="reveal")
    for action, values in (("start", (None,)), ("play", ("a", "b", "x")), ("answer", ("a", "b")), ("stop", (None,))):
        for value in values:
            page.control("abx", value, action)
    assert len(page.find('[data-field="abx-trials"]')) == 1
    page.control("insert", INSERT, "measure")

    meters = page.meters()
    expected = {"volume", "connection", "abx", f"insert.{INSERT}", "engine.running", "engine.xruns"}
    expected |= {"engine.callback_p99_us"} | {f"monitor.{m}" for m in MONITOR_METERS}
    expected |= {f"output.{n}.{kind}" for n in range(1, OUTPUTS + 1) for kind in ("peak_dbfs", "rms_dbfs")}
    assert expected <= set(meters), sorted(expected - set(meters))


def test_the_page_shows_the_daemons_state_as_it_stands(demo, page):
    """The page loaded after changes made elsewhere shows them (the baseline and one more)."""
    demo.set("volume", -27.5)
    demo.set("dim", True)
    demo.set("solo", "left")
    page.open(demo.url)
    page.wait_meter("connection", "connected", FOLLOW_S)
    page.wait_meter("volume", "-27.5", FOLLOW_S)
    report = demo.report()
    state = report["state"]
    assert page.meter("volume") == f"{state['volume']:.1f}"
    for switch in SWITCHES:
        assert page.pressed(switch) == str(state[switch]).lower(), switch
    for target, values in CHOICE_VALUES.items():
        assert {v: page.pressed(target, v) for v in values} == {
            v: "true" if v == state[target] else "false" for v in values
        }, target
    assert page.meter("engine.running") == "true"


def test_every_number_reads_as_a_decimal_with_one_digit_or_nothing(demo, page):
    page.wait(lambda: page.meter("output.1.peak_dbfs"), "a reading of output 1", FOLLOW_S)
    meters = page.meters()
    numbers = [n for n in meters if n.startswith(("output.", "monitor.")) or n in ("volume", "engine.callback_p99_us")]
    for name in numbers:
        assert meters[name] == "" or DECIMAL.fullmatch(meters[name]), (name, meters[name])
    assert re.fullmatch(r"\d+(\.\d)?", meters["engine.xruns"]), meters["engine.xruns"]
    assert meters["engine.running"] in ("true", "false")
    assert meters["connection"] == "connected"


# --- clicks reach the daemon --------------------------------------------------------------------------------


def test_a_click_on_a_switch_toggles_it_in_the_daemon_and_the_page_shows_it(demo, page):
    for switch in ("mute", "dim", "mono", "polarity", "sub"):
        was = demo.report()["state"][switch]
        page.click(switch)
        demo.wait_report(lambda r, s=switch, w=was: r["state"][s] is (not w), f"{switch} toggled")
        page.wait_pressed(switch, None, str(not was).lower())
        page.click(switch)
        demo.wait_report(lambda r, s=switch, w=was: r["state"][s] is w, f"{switch} back")
        page.wait_pressed(switch, None, str(was).lower())
    assert page.severe() == []


def test_a_click_on_a_choice_sets_it_and_only_it_shows_pressed(demo, page):
    clicks = [("speakers", "consumer"), ("solo", "side"), ("match", "hold"), ("source", "ref"), ("ab", "a")]
    for target, value in clicks:
        page.click(target, value)
        demo.wait_report(lambda r, t=target, v=value: r["state"][t] == v, f"{target} = {value}")
        for other in CHOICE_VALUES[target]:
            page.wait_pressed(target, other, "true" if other == value else "false")
    # A/B moves the source with it
    page.click("ab", "b")
    demo.wait_report(lambda r: (r["state"]["ab"], r["state"]["source"]) == ("b", "ref"), "ab = b plays ref")
    page.wait_pressed("source", "ref", "true")
    assert page.severe() == []


def test_a_level_button_sets_its_volume(demo, page):
    for level, db in LEVELS.items():
        page.click("level", level)
        demo.wait_report(lambda r, d=db: r["state"]["volume"] == d, f"level {level}")
        page.wait_meter("volume", f"{db:.1f}")


def test_the_step_buttons_move_the_volume_by_a_db(demo, page):
    page.click("volume", "1", "step")
    demo.wait_report(lambda r: r["state"]["volume"] == BASELINE["volume"] + 1, "one dB up")
    page.wait_meter("volume", f"{BASELINE['volume'] + 1:.1f}")
    page.click("volume", "-1", "step")
    page.click("volume", "-1", "step")
    demo.wait_report(lambda r: r["state"]["volume"] == BASELINE["volume"] - 1, "two dB down")
    page.wait_meter("volume", f"{BASELINE['volume'] - 1:.1f}")


def test_moving_the_volume_slider_sets_the_volume(demo, page):
    from selenium.webdriver.common.keys import Keys

    slider = page.control("volume")
    page.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
    slider.send_keys(Keys.ARROW_LEFT * 3)
    report = demo.wait_report(lambda r: r["state"]["volume"] < BASELINE["volume"], "a lower volume")
    down = report["state"]["volume"]
    assert MIN_VOLUME_DB <= down
    page.wait_meter("volume", f"{down:.1f}")
    slider.send_keys(Keys.ARROW_RIGHT * 6)
    demo.wait_report(lambda r: r["state"]["volume"] > down, "a higher volume")


# --- the daemon reaches the page ----------------------------------------------------------------------------


def test_a_change_over_osc_is_followed_by_the_page_as_it_stays_open(demo, page):
    for volume in (-27.5, -41.0, -12.3):
        demo.set("volume", volume)
        page.wait_meter("volume", f"{volume:.1f}", FOLLOW_S)
    demo.set("mute", True)
    page.wait_pressed("mute", None, "true", FOLLOW_S)
    demo.set("speakers", "consumer")
    page.wait_pressed("speakers", "consumer", "true", FOLLOW_S)
    page.wait_pressed("speakers", "studio", "false", FOLLOW_S)


def test_the_meters_move_with_the_programme(demo, page):
    seen: dict[str, set[str]] = {
        "output.1.peak_dbfs": set(),
        "output.1.rms_dbfs": set(),
        "monitor.momentary_lufs": set(),
    }

    def moved() -> bool:
        meters = page.meters()
        for name in seen:
            if meters.get(name):
                seen[name].add(meters[name])
        return all(len(values) >= 3 for values in seen.values())

    page.wait(moved, f"three readings of each of {sorted(seen)}", 15.0)
    assert all(DECIMAL.fullmatch(v) for values in seen.values() for v in values), seen
    # the demo plays its programme into the studio set at -20 dB: real levels, below full scale
    assert all(-80.0 < float(v) < 0.0 for v in seen["output.1.peak_dbfs"]), seen
    assert page.meter("engine.running") == "true"


def test_the_page_asks_for_meters_at_10_hz_or_more(demo, page):
    page.collect()
    asked = []
    for payload in page.ws_sent:
        try:
            body = json.loads(payload)
        except ValueError:
            continue
        if isinstance(body, dict) and "meters" in body:
            asked.append(body["meters"])
    assert asked, f"the page sent no meters request (frames sent: {page.ws_sent[:5]})"
    assert asked[-1] >= 10, asked


# --- tests of the pair -------------------------------------------------------------------------------------


def test_an_abx_test_end_to_end_on_the_page(demo, page):
    trials = page.find('[data-field="abx-trials"]')[0]
    trials.clear()
    trials.send_keys("3")
    page.click("abx", action="start")
    demo.wait_report(
        lambda r: r["state"]["abx"] is not None and r["state"]["abx"]["running"] and r["state"]["abx"]["trials"] == 3,
        "an ABX test of 3 trials",
    )
    for trial in range(1, 4):
        for label in ("b", "x"):
            page.click("abx", label, "play")
            demo.wait_report(lambda r, lb=label: r["state"]["ab"] == lb, f"trial {trial}: {label} plays")
            assert demo.report()["state"]["source"] in ("a", "b", "x")  # concealed while it runs
        page.click("abx", "a", "answer")
        demo.wait_report(lambda r, t=trial: r["state"]["abx"]["done"] == t, f"trial {trial} answered")
    report = demo.wait_report(lambda r: r["state"]["abx"]["running"] is False, "the test over")
    abx = report["state"]["abx"]
    assert (abx["trials"], abx["done"]) == (3, 3) and 0 <= abx["correct"] <= 3
    page.wait(lambda: page.meter("abx") and json.loads(page.meter("abx")) == abx, "the page's abx reading", FOLLOW_S)

    # another test, stopped from the page
    trials.clear()
    trials.send_keys("10")
    page.click("abx", action="start")
    demo.wait_report(lambda r: r["state"]["abx"]["running"] and r["state"]["abx"]["trials"] == 10, "a test of 10")
    page.click("abx", action="stop")
    report = demo.wait_report(lambda r: r["state"]["abx"]["running"] is False, "the test stopped")
    assert report["state"]["source"] in ("mix", "ref")
    page.wait(lambda: json.loads(page.meter("abx") or "null") == report["state"]["abx"], "the stopped test shown")
    assert page.severe() == []


def test_an_abx_answer_given_while_a_plays_is_shown_on_the_page(demo, page):
    """A listener may answer at once, A still playing; the next trial starts with A again, so
    nothing but the score changes, and the page must show that too."""
    trials = page.find('[data-field="abx-trials"]')[0]
    trials.clear()
    trials.send_keys("4")
    page.click("abx", action="start")
    demo.wait_report(lambda r: r["state"]["abx"] and r["state"]["abx"]["trials"] == 4, "a test of 4")
    page.wait(lambda: json.loads(page.meter("abx") or "null") == demo.report()["state"]["abx"], "the test shown")
    page.click("abx", "b", "answer")
    abx = demo.wait_report(lambda r: r["state"]["abx"]["done"] == 1, "the answer counted")["state"]["abx"]
    try:
        page.wait(lambda: json.loads(page.meter("abx") or "null") == abx, f"the page showing {abx}", FOLLOW_S)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it shows {page.meter('abx')}") from None
    page.click("abx", action="stop")
    demo.wait_report(lambda r: r["state"]["abx"]["running"] is False, "the test stopped")


def test_a_blind_test_started_and_revealed_on_the_page(demo, page):
    page.click("blind")
    report = demo.wait_report(lambda r: r["state"]["blind"] is True, "blind on")
    assert report["state"]["source"] in ("x", "y")
    page.wait_pressed("blind", None, "true")
    page.click("blind", action="reveal")
    report = demo.wait_report(lambda r: r["state"]["blind"] is False and r["state"]["blind_mapping"], "revealed")
    assert set(report["state"]["blind_mapping"].values()) == {"mix", "ref"}
    page.wait_pressed("blind", None, "false")
    assert page.severe() == []


def test_the_insert_measure_button_starts_a_measurement(demo, page):
    page.click("insert", INSERT, "measure")
    demo.wait_report(lambda r: r["state"]["measuring"] == INSERT, "the insert being measured")
    # the demo patches nothing into it: it fails, and the daemon goes on
    report = demo.wait_report(lambda r: r["state"]["measuring"] is None, "the measurement over", 30.0)
    assert report["engine"]["running"]
    assert page.meter(f"insert.{INSERT}") is not None


# --- screens, console, network -----------------------------------------------------------------------------


@pytest.mark.parametrize("width, height, mobile", [(390, 844, True), (1280, 800, False)], ids=["phone", "desktop"])
def test_a_screenshot_without_console_errors(demo, page, tmp_path, width, height, mobile):
    page.viewport(width, height, mobile)
    page.open(demo.url)
    page.wait_meter("connection", "connected", FOLLOW_S)
    page.wait(lambda: page.meter("output.1.peak_dbfs"), "meters on the page", FOLLOW_S)
    shot = tmp_path / f"remote-{width}x{height}.png"
    assert page.driver.save_screenshot(str(shot))
    assert png_size(shot) == (width, height)
    print(f"screenshot: {shot}")
    assert page.severe() == []


def test_the_page_fits_a_phone_without_scrolling_sideways(demo, page):
    page.viewport(390, 844, True)
    page.open(demo.url)
    page.wait_meter("connection", "connected", FOLLOW_S)
    widths = page.driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert max(widths[0], widths[2]) <= widths[1], widths


def test_no_request_leaves_for_another_host(demo, page):
    host = urlsplit(demo.url).netloc
    page.open(demo.url)
    page.wait_meter("connection", "connected", FOLLOW_S)
    page.wait(lambda: page.meter("output.1.peak_dbfs"), "meters on the page", FOLLOW_S)
    page.click("mute")
    demo.wait_report(lambda r: r["state"]["mute"] is True, "mute")
    page.collect()
    assert page.requests, "no request seen (is the performance log on?)"
    elsewhere = [
        url for url in page.requests if not url.startswith(("data:", "blob:")) and urlsplit(url).netloc != host
    ]
    assert elsewhere == []
    assert any(urlsplit(url).scheme == "ws" and urlsplit(url).path == "/ws" for url in page.requests), page.requests


# --- the daemon goes away and comes back -------------------------------------------------------------------


def test_the_page_shows_reconnecting_while_the_daemon_is_away_and_catches_up_after(demo, page):
    demo.set("volume", -33.0)
    page.wait_meter("volume", "-33.0", FOLLOW_S)
    demo.stop()
    page.wait_meter("connection", "reconnecting", FOLLOW_S)
    demo.start()  # the same ports; the demo saves nothing: it starts at the config's volume
    page.wait_meter("connection", "connected", 30.0)
    page.wait_meter("volume", f"{BASELINE['volume']:.1f}", FOLLOW_S)
    page.click("mute")
    demo.wait_report(lambda r: r["state"]["mute"] is True, "a click after the reconnection")
