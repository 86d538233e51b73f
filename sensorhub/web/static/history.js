// History view: an athlete's sessions from the SQLite store (home sessions marked), metrics over time as
// trend plots, the rehab plan and phase history, recommendations with decisions, load per week.
import { api, el, fmt, param, withToken } from "./common.js";
import { drawTimeChart, unitOf } from "./plot.js";

const select = document.getElementById("athlete");
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");
// A session without an end is still open (sessions close on finish, after 30 idle minutes, at shutdown).
const ended = (s) => (s.ended_s ? when(s.ended_s) : "open");

// One trend: its points {t: Unix s, v} over time, the unit from the metric's name (y axis label).
function chart(title, name, points, xLabel = "session date") {
  const canvas = el("canvas", { class: "chart" });
  const unit = unitOf(name);
  const box = el("div", { class: "card trend", "data-metric": name, "data-unit": unit, "data-points": String(points.length) },
    el("div", { class: "label" }, unit ? `${title} (${unit})` : title), canvas);
  requestAnimationFrame(() => {
    const ticks = drawTimeChart(canvas, points, { unit, xLabel });
    box.dataset.xTicks = ticks.x.join("|");
    box.dataset.yTicks = ticks.y.join("|");
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
    sessions.append(el("tr", { class: `session-row session-${kind}` }, el("td", {}, when(s.started_s)), el("td", { class: "session-ended" }, ended(s)),
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
  if (h.pain.length) charts.append(chart("pain, each entry", "pain", h.pain.map((p) => ({ t: p.t_s, v: p.pain })), "entry date"));
  for (const [type, metrics] of Object.entries(h.trends)) {
    for (const [name, points] of Object.entries(metrics)) {
      charts.append(chart(`${type}: ${name}, session mean`, name, points.map((p) => ({ t: p.t_s, v: p.mean }))));
    }
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
