// The coach view's rehab panels: the athlete's plan (and its editor), the recommendation after a
// session with every criterion, and the coach's decision (accept, or override with a note).
import { api, el, fmt } from "./common.js";

const ACTIONS = ["advance", "hold", "step_back"];
const ACTION_TEXT = { advance: "advance a phase", hold: "hold the phase", step_back: "step back a phase" };
let programs = null;  // fetched once, shared by every card

async function programList() {
  if (programs === null) programs = api("/api/programs").then((r) => r.programs).catch(() => []);
  return programs;
}

// The plan editor: program, phase, pain threshold, involved side.
export function planEditor(c, command) {
  c.planProgram = el("select", { class: "plan-program" });
  c.planPhase = el("input", { class: "plan-phase", type: "number", min: "0", step: "1", value: "0" });
  c.planPain = el("input", { class: "plan-pain", type: "number", min: "0", max: "10", step: "1", value: "3" });
  c.planSide = el("select", { class: "plan-side" }, ...["right", "left", "both"].map((s) => el("option", { value: s }, s)));
  c.planStatus = el("span", { class: "plan-status label" }, "");
  programList().then((names) => {
    c.planProgram.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (c.state && c.state.plan) c.planProgram.value = c.state.plan.program;
  });
  const save = el("button", { class: "plan-save", onclick: async () => {
    const r = await command("plan", {
      program: c.planProgram.value, phase: Number(c.planPhase.value),
      pain_threshold: Number(c.planPain.value), side: c.planSide.value,
    });
    c.planStatus.textContent = r ? "saved" : "";
  } }, "Save plan");
  return el("div", { class: "row plan-form" },
    el("label", {}, "program ", c.planProgram), el("label", {}, "phase ", c.planPhase),
    el("label", {}, "pain threshold ", c.planPain), el("label", {}, "side ", c.planSide), save, c.planStatus);
}

export function showPlan(c, plan) {
  const key = JSON.stringify(plan);
  if (key === c.shownPlan) return;
  c.shownPlan = key;
  c.plan.replaceChildren();
  if (!plan) {
    c.plan.append(el("div", { class: "label plan-summary" }, "no rehab plan: drills and targets are the service's defaults"));
    return;
  }
  c.plan.append(el("div", { class: "plan-summary" },
    `${plan.program_title}: phase ${plan.phase_index + 1}/${plan.phases.length} `,
    el("b", { class: "plan-phase-title" }, plan.phase_title),
    ` - involved side ${plan.involved_side}, pain threshold ${plan.pain_threshold}/10`));
  const drills = el("table", { class: "plan-drills" },
    el("tr", {}, ...["drill", "sets x reps", "tempo", "targets"].map((h) => el("th", {}, h))));
  for (const d of plan.drills) {
    drills.append(el("tr", {}, el("td", {}, d.drill + (d.sensed ? "" : " (no sensors)")),
      el("td", {}, `${d.sets} x ${d.reps}`), el("td", {}, d.tempo_eccentric_s ? `${d.tempo_eccentric_s} s down` : ""),
      el("td", {}, d.targets.join(", "))));
  }
  c.plan.append(drills);
  const history = el("ol", { class: "phase-history" });
  for (const p of plan.phase_history) {
    history.append(el("li", {}, `${new Date(p.t_s * 1000).toLocaleString()}: ${p.from_title || "-"} -> ${p.to_title}`,
      el("span", { class: "label" }, ` ${p.by || ""} ${p.reason || ""}`)));
  }
  c.plan.append(el("div", { class: "label" }, "phase history"), history);
  if (document.activeElement && c.root && c.root.querySelector(".plan-form").contains(document.activeElement)) return;
  c.planPhase.value = String(plan.phase_index);
  c.planPhase.max = String(plan.phases.length - 1);
  c.planPain.value = String(plan.pain_threshold);
  c.planSide.value = plan.involved_side;
  if ([...c.planProgram.options].some((o) => o.value === plan.program)) c.planProgram.value = plan.program;
}

function criterionRow(r) {
  const met = r.met ? "met" : "not met";
  return el("tr", { class: `criterion ${r.met ? "good" : "bad"}`, "data-kind": r.kind },
    el("td", {}, r.criterion), el("td", { class: "criterion-met" }, met),
    el("td", {}, fmt(r.value, 2)), el("td", {}, fmt(r.target, 2)), el("td", {}, r.detail || ""));
}

// The recommendation: the action, every criterion (flare-up checks, milestones), flagged sets, advice,
// then the decision controls (or the decision taken).
export function showRecommendation(c, rec, command) {
  c.shownRec = JSON.stringify(rec);
  const checks = rec.reasons.filter((r) => r.kind === "flare_up" || r.kind === "milestone");
  const table = el("table", { class: "criteria" },
    el("tr", {}, ...["criterion", "", "value", "target", "why"].map((h) => el("th", {}, h))), ...checks.map(criterionRow));
  const notes = rec.reasons.filter((r) => r.kind === "flagged_set" || r.kind === "advice")
    .map((r) => el("li", { class: r.kind === "flagged_set" ? "bad" : "" },
      r.kind === "flagged_set" ? `set ${r.set_id || "-"}: pain ${r.pain}/10 ${r.context} - ${r.detail}` : r.detail));
  const head = el("div", { class: "rec-head" }, el("span", { class: "label" }, "recommendation "),
    el("b", { class: `rec-action rec-${rec.action}` }, rec.action),
    ` - ${ACTION_TEXT[rec.action]} (${rec.phase_title}${rec.to_phase !== rec.phase_index ? " -> " + rec.to_phase_title : ""})`);
  const status = el("div", { class: "decision-status" }, "");
  const controls = el("div", { class: "row decision" });
  const decide = async (decision, note) => {
    const r = await command("decision", { recommendation_id: rec.id, decision, note });
    if (r) {
      rec.decision = r;
      showRecommendation(c, rec, command);
    }
  };
  if (rec.decision) {
    const d = rec.decision;
    status.append(el("span", { class: d.overrides ? "warn" : "good" },
      `coach decided: ${d.decision}${d.overrides ? " (override)" : " (accepted)"}${d.note ? " - " + d.note : ""}`));
  } else {
    const override = el("select", { class: "decision-choice" }, ...ACTIONS.map((a) => el("option", { value: a }, a)));
    const note = el("input", { class: "decision-note", type: "text", placeholder: "note (why)" });
    controls.append(
      el("button", { class: "decision-accept primary", onclick: () => decide(rec.action, note.value) }, `Accept (${rec.action})`),
      el("span", { class: "label" }, "or"), override, note,
      el("button", { class: "decision-override", onclick: () => decide(override.value, note.value) }, "Override"));
  }
  c.rec.replaceChildren(head, table, notes.length ? el("ul", { class: "rec-notes" }, ...notes) : "", controls, status);
}
