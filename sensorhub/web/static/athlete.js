// Athlete view (a phone): one athlete, a large knee-angle gauge, rep counter, the cue text and its sound;
// home sets run from here (stored as home sessions) and pain is recorded here (during, after, next morning).
import { api, connect, el, param, SIDE_COLOURS, Traces, withToken } from "./common.js";

const athlete = param("athlete");
const traces = new Traces();
const gauge = document.getElementById("gauge");
const cueText = document.getElementById("cue");
let audio = null;
let cueTimer = null;
// What was played (read by the browser tests; also handy when debugging a silent phone).
window.sensorhubAudio = { enabled: false, played: 0, last: null, spoken: 0, clips: 0, log: [] };

document.getElementById("title").textContent = athlete || "no athlete given";
document.getElementById("sound").addEventListener("click", (ev) => {
  audio = audio || new AudioContext();
  audio.resume();
  window.sensorhubAudio.enabled = true;
  ev.target.textContent = "Sound on";
});

// Each cue's audio id maps to a short, distinct tone pattern (no audio files: works offline).
function tonePattern(audioId) {
  let h = 0;
  for (const ch of String(audioId)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const base = 440 + (h % 7) * 70;
  return [base, base * (h & 1 ? 1.25 : 0.8), base];
}

// The server renders every cue phrase once (espeak-ng speech, or distinct tones) and serves it as
// /audio/<audio_id>.wav; clips are fetched once and cached. Without a clip: a local tone pattern.
const clips = new Map();
async function clipFor(id) {
  if (!clips.has(id)) {
    clips.set(id, (async () => {
      const url = withToken(`/audio/${encodeURIComponent(id)}.wav?athlete=${encodeURIComponent(athlete || "")}`);
      const res = await fetch(url);
      if (!res.ok) throw new Error(res.statusText);
      return audio.decodeAudioData(await res.arrayBuffer());
    })());
  }
  return clips.get(id);
}

async function playClip(id) {
  const buffer = await clipFor(id);
  const src = audio.createBufferSource();
  src.buffer = buffer;
  src.connect(audio.destination);
  src.start();
  window.sensorhubAudio.clips += 1;
}

function playCue(cue) {
  const id = cue.audio_id || cue.rule || cue.phrase;
  window.sensorhubAudio.last = id;
  window.sensorhubAudio.played += 1;
  // the last cues played (id, data time): a test tells its own cue from the live demo's by t_s
  window.sensorhubAudio.log = window.sensorhubAudio.log.slice(-19).concat([{ id, t_s: cue.t_s }]);
  if (audio && cue.audio_id) {
    playClip(cue.audio_id).catch(() => playTones(id, cue));
    return;
  }
  playTones(id, cue);
}

function playTones(id, cue) {
  if (audio) {
    let t = audio.currentTime;
    for (const f of tonePattern(id)) {
      const osc = audio.createOscillator(), amp = audio.createGain();
      osc.frequency.value = f; amp.gain.setValueAtTime(0.25, t); amp.gain.exponentialRampToValueAtTime(0.001, t + 0.12);
      osc.connect(amp).connect(audio.destination); osc.start(t); osc.stop(t + 0.13); t += 0.14;
    }
  }
  if (window.speechSynthesis && window.sensorhubAudio.enabled && cue.phrase) {
    window.speechSynthesis.speak(new SpeechSynthesisUtterance(cue.phrase));
    window.sensorhubAudio.spoken += 1;
  }
}

let current = null;
const homeButton = document.getElementById("home-set");
const painValue = document.getElementById("pain-value");
const painStatus = document.getElementById("pain-status");
const base = `/api/athletes/${encodeURIComponent(athlete || "")}`;

painValue.addEventListener("input", () => { document.getElementById("pain-shown").textContent = painValue.value; });

homeButton.addEventListener("click", async () => {
  const running = current && current.set_state === "running";
  try {
    await api(`${base}/set/${running ? "stop" : "start"}`, "POST", running ? {} : { kind: "home" });
  } catch (e) { document.getElementById("set-status").textContent = String(e.message || e); }
});

document.getElementById("pain-submit").addEventListener("click", async () => {
  const context = document.getElementById("pain-context").value;
  try {
    const p = await api(`${base}/pain`, "POST", { pain: Number(painValue.value), context });
    showPain(p);
  } catch (e) { painStatus.replaceChildren(el("span", { class: "flag" }, String(e.message || e))); }
});

function showPain(p) {
  painStatus.replaceChildren();
  if (!p) return;
  const text = `pain ${(p.context || "after").replace("_", " ")}: ${p.pain}/10 (threshold ${p.threshold})`;
  painStatus.append(p.flagged
    ? el("span", { class: "flag pain-flag" }, `${text} - ${p.guidance}`)
    : el("span", { class: "good pain-ok" }, `${text} - recorded`));
}

function showState(s) {
  current = s;
  const running = s.set_state === "running";
  homeButton.textContent = running ? "Stop set" : "Start home set";
  homeButton.className = running ? "stop" : "primary";
  document.getElementById("set-status").textContent = s.session_kind ? `${s.session_kind} session` : "";
  const fatigue = document.getElementById("fatigue");
  fatigue.textContent = s.fatigue && s.fatigue.flagged ? "Tiring: slow down, or rest before the next set." : "";
  if (s.last_pain) showPain(s.last_pain);
  document.getElementById("reps").textContent = String(s.reps);
  document.getElementById("drill").textContent = s.drill ? `${s.drill} - set ${s.set_no || "-"} ${s.set_state}` : "";
  if (s.name) document.getElementById("title").textContent = s.name;
}

function onFrame(f) {
  if (f.type === "hello") { for (const s of f.athletes) showState(s); }
  else if (f.type === "state") showState(f.state);
  else if (f.type === "angles" && f.athletes[athlete]) {
    for (const [side, data] of Object.entries(f.athletes[athlete])) traces.add(side, data);
  } else if (f.type === "cue") {
    cueText.textContent = f.phrase;
    playCue(f);
    clearTimeout(cueTimer);
    cueTimer = setTimeout(() => { cueText.textContent = ""; }, 4000);
  }
}

function drawGauge() {
  const dpr = window.devicePixelRatio || 1;
  const w = gauge.clientWidth, h = gauge.clientHeight;
  if (gauge.width !== w * dpr) { gauge.width = w * dpr; gauge.height = h * dpr; }
  const g = gauge.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const cx = w / 2, cy = h * 0.9, r = Math.min(w / 2, h) * 0.85, max = 140;
  const ang = (deg) => Math.PI + Math.max(0, Math.min(max, deg)) / max * Math.PI;
  g.lineWidth = 18; g.strokeStyle = "#2b3642"; g.beginPath(); g.arc(cx, cy, r, Math.PI, 2 * Math.PI); g.stroke();
  g.fillStyle = "#8b98a5"; g.font = "12px system-ui";
  for (let d = 0; d <= max; d += 20) {
    const a = ang(d);
    g.fillText(String(d), cx + Math.cos(a) * (r - 34) - 8, cy + Math.sin(a) * (r - 34) + 4);
  }
  let y = 28;
  for (const side of ["right", "left"]) {
    const v = traces.latest(side);
    if (!v || v.flex === null) continue;
    const a = ang(v.flex);
    g.strokeStyle = SIDE_COLOURS[side]; g.lineWidth = 6; g.beginPath(); g.moveTo(cx, cy);
    g.lineTo(cx + Math.cos(a) * r, cy + Math.sin(a) * r); g.stroke();
    g.fillStyle = SIDE_COLOURS[side]; g.font = "bold 22px system-ui";
    g.fillText(`${side} ${Math.round(v.flex) || 0}\u00b0`, side === "right" ? 10 : w - 110, y);
  }
  requestAnimationFrame(drawGauge);
}

connect(athlete, onFrame, (s) => { document.getElementById("status").textContent = s; });
requestAnimationFrame(drawGauge);
