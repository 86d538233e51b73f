// Small canvas charts with real axes: metric units from the name's suffix, nice value ticks, date/time
// ticks on a time axis. Used by the history trends and the live traces.

// The unit a metric's name carries (sensorhub names end in their unit: _deg, _s, _g, _m).
const UNIT_SUFFIXES = [["_deg", "deg"], ["_s", "s"], ["_g", "g"], ["_m", "m"], ["_pct", "%"]];
export function unitOf(name) {
  if (name === "control_score") return "score 0-100";
  if (name === "pain") return "pain 0-10";
  for (const [suffix, unit] of UNIT_SUFFIXES) if (name.endsWith(suffix)) return unit;
  return "";
}

// About n round steps (1, 2, 2.5, 5 x 10^k) covering [lo, hi].
export function niceTicks(lo, hi, n = 4) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toPrecision(12));
  return out;
}

const DAY_S = 86400;
const TIME_STEPS_S = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY_S, 2 * DAY_S, 7 * DAY_S, 14 * DAY_S, 30 * DAY_S];

// Ticks for a span of Unix seconds: local dates when it spans days, clock times within a day.
export function timeTicks(t0, t1, n = 4) {
  const span = Math.max(t1 - t0, 60);
  const step = TIME_STEPS_S.find((s) => span / s <= n) || 30 * DAY_S;
  const offset = new Date(t0 * 1000).getTimezoneOffset() * 60; // align steps on local midnight
  const first = Math.ceil((t0 - offset) / step) * step + offset;
  const days = step >= DAY_S || new Date(t0 * 1000).toDateString() !== new Date(t1 * 1000).toDateString();
  const label = (t) => {
    const d = new Date(t * 1000);
    if (step >= DAY_S) return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    const hm = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    return days ? `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${hm}` : hm;
  };
  const ticks = [];
  for (let t = first; t <= t1; t += step) ticks.push([t, label(t)]);
  return ticks;
}

const AXIS = "#8b98a5", GRID = "#222c37";

// Draws points {t (Unix s), v} as a line with markers; x: dates/times, y: values in `unit`. Returns the
// tick labels drawn (the page keeps them on the chart for tests and screen readers).
export function drawTimeChart(canvas, points, { unit = "", xLabel = "date", colour = "#58a6ff" } = {}) {
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 44, right = 10, top = 8, bottom = 30;
  const vals = points.map((p) => p.v), ts = points.map((p) => p.t);
  let lo = Math.min(...vals), hi = Math.max(...vals);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = 0.08 * (hi - lo); lo -= pad; hi += pad;
  let t0 = Math.min(...ts), t1 = Math.max(...ts);
  if (t1 - t0 < 60) { t0 -= 1800; t1 += 1800; } // one session: half an hour each side
  else { const m = 0.05 * (t1 - t0); t0 -= m; t1 += m; }
  const x = (t) => left + (t - t0) / (t1 - t0) * (w - left - right);
  const y = (v) => h - bottom - (v - lo) / (hi - lo) * (h - top - bottom);
  g.font = "10px system-ui"; g.lineWidth = 1;
  g.fillStyle = AXIS; g.textAlign = "right"; g.textBaseline = "middle";
  for (const v of niceTicks(lo, hi)) {
    g.strokeStyle = GRID; g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w - right, y(v)); g.stroke();
    g.fillText(String(v), left - 4, y(v));
  }
  g.textAlign = "center"; g.textBaseline = "top";
  const xTicks = timeTicks(t0, t1);
  for (const [t, label] of xTicks) {
    g.strokeStyle = GRID; g.beginPath(); g.moveTo(x(t), top); g.lineTo(x(t), h - bottom); g.stroke();
    g.fillText(label, x(t), h - bottom + 4);
  }
  g.strokeStyle = AXIS; g.strokeRect(left + 0.5, top + 0.5, w - left - right - 1, h - top - bottom - 1);
  g.save(); g.translate(10, (top + h - bottom) / 2); g.rotate(-Math.PI / 2);
  g.textAlign = "center"; g.textBaseline = "middle"; g.fillText(unit, 0, 0); g.restore();
  g.textAlign = "right"; g.textBaseline = "bottom"; g.fillText(xLabel, w - right, h);
  g.strokeStyle = colour; g.lineWidth = 2; g.beginPath();
  points.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.v)) : g.moveTo(x(p.t), y(p.v))));
  g.stroke(); g.fillStyle = colour;
  for (const p of points) { g.beginPath(); g.arc(x(p.t), y(p.v), 3, 0, 2 * Math.PI); g.fill(); }
  return { x: xTicks.map(([, label]) => label), y: niceTicks(lo, hi).map(String) };
}
