// Coach view: every athlete at once, live traces, last event vs targets, cues, health, session controls,
// and the rehab workflow: plan (program, phase, pain threshold, side), fatigue, finish session ->
// recommendation with every criterion -> the coach's decision.
import { api, connect, drawTraces, el, fmt, Traces, withToken } from "./common.js";
import { planEditor, showPlan, showRecommendation } from "./rehab.js";

const QUALITY = { 1: "missing input", 2: "heading stale", 4: "implausible" };
const cards = {};
let drills = [];
let athleteLinks = {};

function qualityText(bits) {
  const names = Object.entries(QUALITY).filter(([b]) => bits & Number(b)).map(([, n]) => n);
  return names.length ? names.join(", ") : "ok";
}

function makeCard(state) {
  const id = state.athlete;
  const c = { id, traces: new Traces(), state };
  c.canvas = el("canvas", { class: "trace" });
  c.drill = el("select", { class: "drill", onchange: () => command("drill", { drill: c.drill.value }) });
  c.drillList = "";
  c.setButton = el("button", { class: "set-toggle primary", onclick: () => toggleSet(c) }, "Start set");
  c.setInfo = el("span", { class: "set-info" }, "-");
  c.reps = el("span", { class: "reps big" }, "0");
  c.metrics = el("table", { class: "metrics" });
  c.cues = el("ol", { class: "cues" });
  c.health = el("table", { class: "health" });
  c.flags = el("span", { class: "flags label" }, "");
  c.legs = el("div", { class: "row legs" }, "");
  c.painInput = el("input", { class: "pain-input", type: "number", min: "0", max: "10", step: "1", value: "0" });
  c.painStatus = el("span", { class: "pain-status" }, "");
  c.painContext = el("select", { class: "pain-context" },
    el("option", { value: "after" }, "after set"), el("option", { value: "during" }, "during set"));
  c.fatigue = el("div", { class: "row fatigue" }, "");
  c.plan = el("div", { class: "plan" });
  c.rec = el("div", { class: "recommendation" });
  c.symmetry = el("div", { class: "row symmetry" }, "");
  c.thresholdForm = el("div", { class: "thresholds" });
  const command = async (action, body) => {
    try {
      const path = action === "start" || action === "stop" ? `/api/athletes/${id}/set/${action}` : `/api/athletes/${id}/${action}`;
      return await api(path, action === "thresholds" || action === "plan" ? "PUT" : "POST", body);
    } catch (e) { c.painStatus.textContent = String(e.message || e); return null; }
  };
  c.command = command;
  const painButton = el("button", { class: "pain-submit", onclick: async () => {
    const r = await command("pain", { pain: Number(c.painInput.value), context: c.painContext.value });
    if (r) showPain(c, r);
  } }, "Record pain");
  c.muteButton = el("button", { class: "mute-toggle", onclick: async () => {
    await command("mute", { muted: !(c.state && c.state.muted) });
  } }, "Mute cues");
  const saveThresholds = el("button", { class: "thresholds-save", onclick: async () => {
    const values = {};
    for (const input of c.thresholdForm.querySelectorAll("input")) {
      if (input.value !== "" && Number(input.value) !== Number(input.dataset.current)) values[input.name] = Number(input.value);
    }
    if (Object.keys(values).length) await command("thresholds", values);
  } }, "Save thresholds");
  c.root = el("section", { class: "card", "data-athlete": id },
    el("h2", {}, state.name || id, el("span", { class: "meta" }, id),
      athleteLink(id)),
    c.canvas,
    el("div", { class: "row" },
      el("span", { class: "label" }, "drill"), c.drill, c.setButton, c.setInfo,
      el("span", { class: "label" }, "reps"), c.reps, c.flags),
    c.legs,
    el("div", { class: "row" }, el("div", { style: "flex: 1 1 55%" }, el("div", { class: "label" }, "last event vs target"), c.metrics),
      el("div", { style: "flex: 1 1 35%" }, el("div", { class: "label" }, "last cues"), c.muteButton, c.cues)),
    el("div", { class: "row" }, el("span", { class: "label" }, "pain (0-10)"), c.painContext, c.painInput, painButton, c.painStatus),
    c.fatigue,
    c.symmetry,
    el("div", { class: "row" }, el("button", { class: "finish-session", onclick: async () => {
      c.rec.replaceChildren(el("span", { class: "label" }, "computing the recommendation..."));
      const r = await command("session/finish", {});
      if (r && r.action) showRecommendation(c, r, command);
      else c.rec.replaceChildren(...(r ? [el("span", { class: "label finish-message" }, r.message)] : []));
    } }, "Finish session"), el("span", { class: "label session-info" }, "")),
    c.rec,
    el("details", { class: "plan-editor" }, el("summary", {}, "rehab plan"), c.plan, planEditor(c, command)),
    el("details", {}, el("summary", {}, "sensor health"), c.health),
    el("details", { class: "threshold-editor" }, el("summary", {}, "thresholds"), c.thresholdForm, saveThresholds));
  cards[id] = c;
  document.getElementById("athletes").append(c.root);
  updateState(c, state);
  return c;
}

// The athlete's own link (its token opens only that athlete's page): the one to send to a phone. Never
// the coach's token, which this page carries and which grants everything.
function athleteLink(id) {
  const url = new URL(athleteLinks[id] || "/athlete?athlete=" + encodeURIComponent(id), location.origin).href;
  const copy = el("button", { class: "copy-link", title: "copy the athlete's link", onclick: async () => {
    try { await navigator.clipboard.writeText(url); copy.textContent = "copied"; }
    catch { window.prompt("The athlete's link:", url); }
  } }, "copy link");
  return el("span", { class: "athlete-link" },
    el("a", { class: "athlete-view", href: url, target: "_blank", rel: "noopener", title: url }, "athlete view"), copy);
}

function showDrills(c, list) {
  const key = list.join(",");
  if (key === c.drillList) return;
  c.drillList = key;
  c.drill.replaceChildren(...list.map((d) => el("option", { value: d }, d)));
}

function showFatigue(c, f) {
  c.fatigue.replaceChildren();
  if (!f) return;
  if (f.flagged) {
    c.fatigue.append(el("span", { class: "flag fatigue-flag" }, "fatigue: " + f.reasons.join("; ")));
  } else if (f.findings.length) {
    c.fatigue.append(el("span", { class: "good label" }, "no fatigue drift"));
  }
}

async function toggleSet(c) {
  const running = c.state.set_state === "running";
  await c.command(running ? "stop" : "start", running ? {} : { drill: c.drill.value });
}

function showPain(c, p) {
  c.painStatus.replaceChildren();
  if (!p) return;
  const text = `pain ${(p.context || "after").replace("_", " ")} ${p.pain}/10 (threshold ${p.threshold})`;
  if (p.flagged) c.painStatus.append(el("span", { class: "flag pain-flag" }, text + " - " + p.guidance));
  else c.painStatus.append(el("span", { class: "good" }, text + " - ok"));
}

// Limb symmetry of the last set (both legs instrumented): >= 90 % is a common return-to-sport criterion.
const LSI_SHOWN = ["peak_flexion_deg", "flexion_excursion_deg", "peak_valgus_deg", "depth_deg", "control_score"];
function showSymmetry(c, entries) {
  const shown = entries.filter((e) => LSI_SHOWN.includes(e.metric));
  c.symmetry.replaceChildren();
  if (!shown.length) return;
  c.symmetry.append(el("span", { class: "label" }, "limb symmetry, last set"));
  for (const e of shown) {
    c.symmetry.append(el("span", { class: e.lsi_pct >= 90 ? "good" : "flag" }, ` ${e.type} ${e.metric} ${e.lsi_pct}%`));
  }
}

function updateState(c, s) {
  c.state = s;
  showDrills(c, s.drills && s.drills.length ? s.drills : drills);
  if (document.activeElement !== c.drill && s.drill) c.drill.value = s.drill;
  const running = s.set_state === "running";
  c.setButton.textContent = running ? "Stop set" : "Start set";
  c.setButton.className = "set-toggle " + (running ? "stop" : "primary");
  c.drill.disabled = running;
  c.setInfo.textContent = s.set_no ? `set ${s.set_no} ${running ? "running" : "done"}` : "no set yet";
  c.reps.textContent = String(s.reps);
  if (s.last_event) showEvent(c, s.last_event);
  c.cues.replaceChildren(...s.last_cues.map((q) => el("li", {}, `${q.phrase} `, el("span", { class: "label" }, `${q.leg.split("/")[1] || ""} ${q.rule}`))));
  showPain(c, s.last_pain);
  showFatigue(c, s.fatigue);
  showPlan(c, s.plan);
  if (s.recommendation && (!c.shownRec || c.shownRec !== JSON.stringify(s.recommendation))) {
    showRecommendation(c, s.recommendation, c.command);
  }
  c.root.querySelector(".session-info").textContent = s.session_id
    ? `${s.session_kind} session open` : (s.last_session_id ? "session finished" : "");
  showSymmetry(c, s.set_symmetry || []);
  c.muteButton.textContent = s.muted ? "Unmute cues" : "Mute cues";
  if (!c.thresholdForm.contains(document.activeElement)) {
    c.thresholdForm.replaceChildren();
    const entries = [["pain_threshold", { value: s.pain_threshold, bound: "max" }], ...Object.entries(s.targets)];
    for (const [name, t] of entries) {
      c.thresholdForm.append(el("label", {}, `${name} (${t.bound})`,
        el("input", { name, type: "number", step: "any", value: String(t.value), "data-current": String(t.value) })));
    }
  }
}

function showEvent(c, ev) {
  c.metrics.replaceChildren(el("tr", {}, el("th", {}, `${ev.type} (${ev.leg.split("/")[1]})`), el("th", {}, "value"), el("th", {}, "target")));
  for (const m of ev.metrics) {
    c.metrics.append(el("tr", { class: m.grade },
      el("td", {}, m.name), el("td", {}, fmt(m.value, 2)),
      el("td", {}, m.target === null ? "" : `${m.bound === "min" ? ">=" : "<="} ${fmt(m.target, 2)}`)));
  }
}

// Per leg: calibrating (and the movement still needed), tracking, or failed (its processing stopped).
function showLegs(legs) {
  const byAthlete = {};
  for (const [legId, leg] of Object.entries(legs || {})) {
    const cut = legId.lastIndexOf("/");
    (byAthlete[legId.slice(0, cut)] ||= []).push([legId.slice(cut + 1), leg]);
  }
  for (const [athlete, entries] of Object.entries(byAthlete)) {
    const c = cards[athlete];
    if (!c) continue;
    c.legs.replaceChildren(...entries.map(([side, leg]) => {
      if (leg.state === "failed") return el("span", { class: "flag leg-failed", "data-side": side }, `${side} leg failed: ${leg.error}`);
      const text = leg.state === "calibrating" ? `${side} calibrating: ${leg.waiting_for}` : `${side} ${leg.state}`;
      return el("span", { class: "label leg-state", "data-side": side }, text);
    }));
  }
}

function showHealth(health) {
  showLegs(health.legs);
  const byAthlete = {};
  for (const [sid, s] of Object.entries(health.sensors)) (byAthlete[s.athlete] ||= []).push([sid, s]);
  for (const [athlete, sensors] of Object.entries(byAthlete)) {
    const c = cards[athlete];
    if (!c) continue;
    c.health.replaceChildren(el("tr", {}, ...["sensor", "link", "batt %", "Hz", "loss %", "drift ppm", "p99 ms"].map((h) => el("th", {}, h))));
    for (const [sid, s] of sensors) {
      c.health.append(el("tr", { class: s.connected ? "" : "bad" },
        el("td", {}, `${s.side} ${s.segment}`), el("td", {}, s.connected ? "connected" : s.state),
        el("td", {}, fmt(s.battery_pct, 0)), el("td", {}, fmt(s.rate_hz, 0)), el("td", {}, fmt(s.loss_pct, 2)),
        el("td", {}, fmt(s.clock_drift_ppm, 1)), el("td", {}, fmt(s.latency_ms.p99_ms, 2))));
    }
  }
}

function onFrame(f) {
  if (f.type === "hello") {
    drills = f.drills;
    athleteLinks = f.athlete_links || {};
    document.getElementById("athletes").replaceChildren();
    for (const k of Object.keys(cards)) delete cards[k];
    for (const s of f.athletes) makeCard(s);
  } else if (f.type === "angles") {
    for (const [athlete, legs] of Object.entries(f.athletes)) {
      const c = cards[athlete];
      if (!c) continue;
      for (const [side, data] of Object.entries(legs)) c.traces.add(side, data);
      c.flags.textContent = "filter: " + Object.entries(c.traces.quality).map(([s, q]) => `${s} ${qualityText(q)}`).join(", ");
    }
  } else if (f.type === "state") {
    const c = cards[f.athlete];
    if (c) updateState(c, f.state);
  } else if (f.type === "event") {
    const c = cards[f.athlete];
    if (c) showEvent(c, f.event);
  } else if (f.type === "health") {
    showHealth(f.health);
  }
}

document.getElementById("history-link").href = withToken("/history");
connect(null, onFrame, (s) => { document.getElementById("status").textContent = s; });

function frame() {
  for (const c of Object.values(cards)) drawTraces(c.canvas, c.traces);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
