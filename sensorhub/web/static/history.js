// History view: an athlete's sessions from the SQLite store (home sessions marked), metrics over time as
// trend plots, the rehab plan and phase history, recommendations with decisions, load per week.
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

const head = (...names) => el("tr", {}, ...names.map((t) => el("th", {}, t)));
const pct = (v) => (v === null || v === undefined ? "-" : `${v > 0 ? "+" : ""}${fmt(v, 0)} %`);

function showRehab(h) {
  const r = h.rehab || {};
  const plan = document.getElementById("plan");
  plan.replaceChildren();
  if (r.plan) {
    const p = r.plan;
    plan.append(el("div", { class: "plan-summary" }, `${p.program_title}: phase ${p.phase_index + 1}/${p.phases.length} `,
      el("b", {}, p.phase_title), ` - involved side ${p.involved_side}, pain threshold ${p.pain_threshold}/10`));
  } else {
    plan.append(el("div", { class: "label" }, r.plan_problem || "no rehab plan"));
  }
  const phases = el("ol", { class: "phase-history" });
  for (const c of r.phase_history || []) {
    phases.append(el("li", {}, `${when(c.t_s)}: ${c.from_title || "-"} -> ${c.to_title} (${c.by || "?"}: ${c.reason})`));
  }
  plan.append(phases);

  const kinds = r.session_kinds || {};
  const sessions = document.getElementById("sessions");
  sessions.replaceChildren(head("started", "ended", "kind", "sets"));
  for (const s of h.sessions) {
    const kind = kinds[s.id] || "clinic";
    const n = h.sets.filter((x) => x.session_id === s.id).length;
    sessions.append(el("tr", { class: `session-row session-${kind}` }, el("td", {}, when(s.started_s)), el("td", {}, when(s.ended_s)),
      el("td", { class: "session-kind" }, kind === "home" ? "home (athlete alone)" : kind), el("td", {}, String(n))));
  }

  const load = document.getElementById("load");
  load.replaceChildren(head("week", "sessions", "reps", "landings", "cuts", "impact load g", "vs previous", ""));
  for (const w of r.weekly_load || []) {
    load.append(el("tr", { class: w.flagged ? "bad load-row flagged" : "load-row" }, el("td", {}, w.week),
      el("td", {}, String(w.sessions)), el("td", {}, String(w.reps)), el("td", {}, String(w.landings)),
      el("td", {}, String(w.cuts)), el("td", {}, fmt(w.impact_load_g, 1)),
      el("td", {}, `${pct(w.impact_increase_pct)} load, ${pct(w.events_increase_pct)} events`),
      el("td", {}, w.flagged ? `over the +${r.max_weekly_load_increase_pct} % limit: ${w.reasons.join("; ")}` : w.reasons.join("; "))));
  }
  if (!(r.weekly_load || []).length) load.append(el("tr", {}, el("td", { class: "label" }, "no load recorded yet")));

  const recs = document.getElementById("recommendations");
  recs.replaceChildren(head("time", "phase", "recommended", "criteria not met", "coach decided"));
  for (const x of (r.recommendations || []).slice().reverse()) {
    const unmet = x.reasons.filter((c) => (c.kind === "milestone" || c.kind === "flare_up") && !c.met).map((c) => c.detail);
    const d = x.decision;
    recs.append(el("tr", { class: "rec-row" }, el("td", {}, when(x.t_s)), el("td", {}, String(x.phase_index)),
      el("td", { class: "rec-action" }, x.action), el("td", {}, unmet.join("; ") || "all met"),
      el("td", {}, d ? `${d.decision}${d.decision !== x.action ? " (override)" : ""}${d.note ? " - " + d.note : ""}` : "undecided")));
  }
  return r;
}

async function show(athlete) {
  const h = await api(`/api/athletes/${encodeURIComponent(athlete)}/history`);
  document.getElementById("report-link").href = withToken(`/report/${encodeURIComponent(athlete)}`);
  document.getElementById("export-link").href = withToken(`/export/${encodeURIComponent(athlete)}.csv`);
  const rehab = showRehab(h);
  const fatigue = rehab.set_fatigue || {};
  const pain = document.getElementById("pain");
  pain.replaceChildren(head("time", "when", "set", "pain", "threshold", ""));
  for (const p of rehab.pain || h.pain) {
    pain.append(el("tr", { class: p.flagged ? "bad pain-row" : "pain-row" }, el("td", {}, when(p.t_s)),
      el("td", { class: "pain-context" }, (p.context || "after").replace("_", " ")),
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
  sets.replaceChildren(head("started", "drill", "set", "reps", "fatigue"));
  for (const s of h.sets) {
    const f = fatigue[s.id];
    sets.append(el("tr", {}, el("td", {}, when(s.started_s)), el("td", {}, s.drill),
      el("td", {}, String(s.set_no)), el("td", {}, String(s.reps)),
      el("td", { class: f && f.flagged ? "bad" : "" }, f ? (f.flagged ? f.reasons.join("; ") : "none") : "-")));
  }
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
