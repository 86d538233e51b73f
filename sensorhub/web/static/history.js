// History view: an athlete's sessions from the SQLite store, metrics over time as trend plots.
import { api, el, fmt, param, withToken } from "./common.js";

const select = document.getElementById("athlete");
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");

function chart(title, points) {
  const canvas = el("canvas", { class: "chart" });
  const box = el("div", { class: "card" }, el("div", { class: "label" }, title), canvas);
  requestAnimationFrame(() => {
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = w * dpr; canvas.height = h * dpr;
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const vals = points.map((p) => p.mean);
    let lo = Math.min(...vals), hi = Math.max(...vals);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const x = (i) => 30 + (points.length > 1 ? i / (points.length - 1) : 0.5) * (w - 40);
    const y = (v) => h - 16 - (v - lo) / (hi - lo) * (h - 30);
    g.fillStyle = "#8b98a5"; g.font = "10px system-ui";
    g.fillText(fmt(hi, 1), 2, 12); g.fillText(fmt(lo, 1), 2, h - 16);
    g.strokeStyle = "#58a6ff"; g.lineWidth = 2; g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(i), y(p.mean)) : g.moveTo(x(i), y(p.mean))));
    g.stroke(); g.fillStyle = "#58a6ff";
    points.forEach((p, i) => { g.beginPath(); g.arc(x(i), y(p.mean), 3, 0, 2 * Math.PI); g.fill(); });
  });
  return box;
}

async function show(athlete) {
  const h = await api(`/api/athletes/${encodeURIComponent(athlete)}/history`);
  const pain = document.getElementById("pain");
  pain.replaceChildren(el("tr", {}, ...["time", "set", "pain", "threshold", ""].map((t) => el("th", {}, t))));
  for (const p of h.pain) {
    pain.append(el("tr", { class: p.flagged ? "bad pain-row" : "pain-row" }, el("td", {}, when(p.t_s)),
      el("td", {}, p.set_id || "-"), el("td", { class: "pain-value" }, String(p.pain)), el("td", {}, String(p.threshold)),
      el("td", {}, p.flagged ? "above threshold: reduce load, reassess" : "")));
  }
  const charts = document.getElementById("charts");
  charts.replaceChildren();
  if (h.pain.length) charts.append(chart("pain (0-10), each entry", h.pain.map((p) => ({ mean: p.pain }))));
  for (const [type, metrics] of Object.entries(h.trends)) {
    for (const [name, points] of Object.entries(metrics)) charts.append(chart(`${type}: ${name}`, points));
  }
  if (!charts.children.length) charts.append(el("div", { class: "label" }, "no recorded events yet"));
  const sets = document.getElementById("sets");
  sets.replaceChildren(el("tr", {}, ...["started", "drill", "set", "reps"].map((t) => el("th", {}, t))));
  for (const s of h.sets) sets.append(el("tr", {}, el("td", {}, when(s.started_s)), el("td", {}, s.drill),
    el("td", {}, String(s.set_no)), el("td", {}, String(s.reps))));
  document.getElementById("status").textContent = `${h.sessions.length} session(s)`;
}

async function main() {
  document.getElementById("coach-link").href = withToken("/");
  const { athletes } = await api("/api/athletes");
  for (const a of athletes) select.append(el("option", { value: a.athlete }, a.name || a.athlete));
  const chosen = param("athlete") || (athletes[0] && athletes[0].athlete);
  if (chosen) { select.value = chosen; await show(chosen); }
  select.addEventListener("change", () => show(select.value));
}
main().catch((e) => { document.getElementById("status").textContent = String(e.message || e); });
