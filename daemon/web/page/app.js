// controlroom's web remote: one WebSocket, the page follows the daemon's state and meters.
// Every control carries data-target (data-value for a choice, data-action for anything but a
// set or toggle); every readout carries data-meter, its reading in data-value.
"use strict";

const METERS_HZ = 15;
const RECONNECT_MS = 1000;
const SWITCHES = ["dim", "mute", "mono", "polarity", "sub", "blind"];
const CHOICES = ["speakers", "source", "solo", "ab", "match"];
let socket = null;
let dragging = false;

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function number(value) {
  return typeof value === "number" && isFinite(value) ? value.toFixed(1) : "";
}

function show(name, value, text) {
  for (const el of document.querySelectorAll(`[data-meter="${name}"]`)) {
    el.dataset.value = value;
    if (el.classList.contains("fill") || el.classList.contains("peak")) {
      // -60 dBFS and below: empty; 0 dBFS: full
      const db = value === "" ? -60 : Math.max(-60, Math.min(0, parseFloat(value)));
      el.style.width = `${((db + 60) / 60) * 100}%`;
    } else {
      el.textContent = text === undefined ? (value === "" ? "–" : value) : text;
    }
  }
}

function showState(state) {
  for (const target of SWITCHES) {
    for (const el of document.querySelectorAll(`button[data-target="${target}"]:not([data-action])`)) {
      el.setAttribute("aria-pressed", String(Boolean(state[target])));
    }
  }
  for (const target of CHOICES) {
    for (const el of document.querySelectorAll(`button[data-target="${target}"][data-value]`)) {
      el.setAttribute("aria-pressed", String(el.dataset.value === String(state[target])));
    }
  }
  show("volume", number(state.volume));
  show("volume_spl_db", number(state.volume_spl_db), state.volume_spl_db == null ? "" : `${number(state.volume_spl_db)} dB SPL`);
  const range = document.querySelector('input[data-target="volume"]');
  if (range && !dragging) range.value = state.volume;
  const offsets = Object.entries(state.match_db || {}).map(([name, db]) => `${name} ${db >= 0 ? "+" : ""}${db.toFixed(1)}`);
  const waiting = state.matching && state.matching.status === "measuring"
    ? ` (measuring ${Math.round(state.matching.filled_s)} of ${Math.round(state.matching.window_s)} s)` : "";
  show("match_db", JSON.stringify(state.match_db || {}), `offsets: ${offsets.join("  ") || "none"} dB${waiting}`);
  const abx = state.abx;
  show("abx", abx ? JSON.stringify(abx) : "", abx
    ? `${abx.correct} of ${abx.done} correct (${abx.trials} trials), p = ${Number(abx.p_value).toPrecision(3)}${abx.running ? ", running" : ""}`
    : "no test yet");
  const running = state.calibrating;
  const calibrated = Object.keys((state.calibration || {}).outputs || {}).length;
  show("calibration", running ? `output ${running.output}` : String(calibrated), running
    ? `calibrating: output ${running.output} (${running.step} of ${running.of})`
    : calibrated ? `${calibrated} outputs calibrated` : "not calibrated");
  for (const [name, m] of Object.entries(state.inserts || {})) {
    show(`insert.${name}`, JSON.stringify(m), `latency ${m.latency} samples, gain ${m.gain_db.toFixed(2)} dB`);
  }
}

function showMeters(meters) {
  for (const [n, level] of Object.entries(meters.outputs || {})) {
    show(`output.${n}.rms_dbfs`, number(level.rms_dbfs));
    show(`output.${n}.peak_dbfs`, number(level.peak_dbfs));
  }
  const monitor = (meters.loudness || {}).monitor || {};
  for (const key of ["momentary_lufs", "short_term_lufs", "integrated_lufs", "loudness_range_lu", "true_peak_dbtp"]) {
    show(`monitor.${key}`, number(monitor[key]));
  }
  const engine = meters.engine || {};
  show("engine.running", String(Boolean(engine.running)));
  show("engine.xruns", String(engine.xruns ?? ""));
  show("engine.callback_p99_us", number(engine.callback_p99_us));
}

function connect() {
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  socket.onopen = () => {
    show("connection", "connected");
    send({ meters: METERS_HZ });
  };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.state) showState(frame.state);
    if (frame.meters) showMeters(frame.meters);
    if (frame.error) show("error", frame.reason, frame.error);
  };
  socket.onclose = () => {
    show("connection", "reconnecting");
    setTimeout(connect, RECONNECT_MS);
  };
}

document.addEventListener("click", (event) => {
  const el = event.target.closest("button[data-target]");
  if (!el) return;
  const target = el.dataset.target;
  const action = el.dataset.action;
  if (action === "step") send({ target, action, value: parseFloat(el.dataset.value) });
  else if (target === "abx" && action === "start") {
    send({ target, action, value: parseInt(document.querySelector('[data-field="abx-trials"]').value, 10) });
  } else if (action) send(el.dataset.value === undefined ? { target, action } : { target, action, value: el.dataset.value });
  else if (el.dataset.value !== undefined) send({ target, action: "set", value: el.dataset.value });
  else send({ target, action: "toggle" });
});

const range = document.querySelector('input[data-target="volume"]');
range.addEventListener("input", () => {
  dragging = true;
  send({ target: "volume", action: "set", value: parseFloat(range.value) });
});
range.addEventListener("change", () => { dragging = false; });

connect();
