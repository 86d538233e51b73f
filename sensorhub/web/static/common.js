// Shared helpers: token handling, the v1 websocket (with reconnect), HTTP commands, trace buffers.
export const PROTOCOL = 1;
export const WINDOW_S = 10;

const query = new URLSearchParams(location.search);
export const param = (name) => query.get(name);
const token = query.get("token") || "";

export function withToken(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

export async function api(path, method = "GET", body = undefined) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

// Connects to /ws/v1 and calls onFrame(frame) for each frame; reconnects with backoff.
export function connect(athlete, onFrame, onStatus) {
  let delay = 500;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let path = "/ws/v1" + (athlete ? "?athlete=" + encodeURIComponent(athlete) : "");
    const ws = new WebSocket(proto + "//" + location.host + withToken(path));
    ws.onopen = () => { delay = 500; onStatus && onStatus("connected"); };
    ws.onmessage = (msg) => {
      const frame = JSON.parse(msg.data);
      if (frame.type === "hello" && frame.protocol !== PROTOCOL) {
        onStatus && onStatus("server speaks protocol " + frame.protocol + "; reload the page");
        ws.close();
        return;
      }
      onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (ev.code === 4401) { onStatus && onStatus("access denied: open the link with its token"); return; }
      onStatus && onStatus("reconnecting...");
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 8000);
    };
  };
  open();
}

// Per-leg sample history (seconds on the server clock) and the mapping server clock -> page clock.
export class Traces {
  constructor() { this.legs = {}; this.lead = null; this.quality = {}; }
  add(side, data) {
    let leg = this.legs[side];
    if (!leg) leg = this.legs[side] = { t: [], flex: [], valg: [] };
    for (let i = 0; i < data.t_s.length; i++) {
      leg.t.push(data.t_s[i]); leg.flex.push(data.flexion_deg[i]); leg.valg.push(data.valgus_deg[i]);
    }
    this.quality[side] = data.quality;
    const n = data.t_s.length;
    if (n) {
      const lead = data.t_s[n - 1] - performance.now() / 1000;
      // Follow the newest sample quickly when it is ahead, slowly when behind (network jitter).
      this.lead = this.lead === null ? lead : (lead > this.lead ? lead : this.lead + 0.02 * (lead - this.lead));
    }
    const cut = leg.t.length ? leg.t[leg.t.length - 1] - WINDOW_S - 2 : 0;
    let k = 0;
    while (k < leg.t.length && leg.t[k] < cut) k++;
    if (k) { leg.t.splice(0, k); leg.flex.splice(0, k); leg.valg.splice(0, k); }
  }
  now() { return this.lead === null ? null : performance.now() / 1000 + this.lead - 0.12; }
  latest(side) {
    const leg = this.legs[side];
    if (!leg || !leg.t.length) return null;
    const now = this.now();
    let i = leg.t.length - 1;
    while (i > 0 && leg.t[i] > now) i--;
    return { flex: leg.flex[i], valg: leg.valg[i] };
  }
}

export const SIDE_COLOURS = { right: "#58a6ff", left: "#f0883e" };

// Draws flexion (top) and valgus (bottom) of each leg over the last WINDOW_S seconds, with value ticks
// in degrees and a time axis in seconds before now.
export function drawTraces(canvas, traces) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const now = traces.now();
  const left = 30, bottom = 14, plotH = h - bottom;
  const panels = [
    { key: "flex", lo: -10, hi: 130, ticks: [0, 45, 90], y0: 4, y1: plotH * 0.62 - 4, label: "flexion (deg)" },
    { key: "valg", lo: -20, hi: 20, ticks: [-10, 0, 10], y0: plotH * 0.62 + 4, y1: plotH - 2, label: "valgus (deg)" },
  ];
  const x = (age) => w - age / WINDOW_S * (w - left);
  g.font = "10px system-ui"; g.lineWidth = 1;
  g.fillStyle = "#8b98a5"; g.textAlign = "center"; g.textBaseline = "top";
  for (let age = 0; age <= WINDOW_S; age += 2) {
    g.strokeStyle = "#1b232c"; g.beginPath(); g.moveTo(x(age), 4); g.lineTo(x(age), plotH - 2); g.stroke();
    g.fillText(age ? `-${age} s` : "now", Math.min(x(age), w - 12), plotH + 1);
  }
  for (const p of panels) {
    g.strokeStyle = "#2b3642"; g.strokeRect(left + 0.5, p.y0 + 0.5, w - left - 1, p.y1 - p.y0);
    const y = (v) => p.y1 - (v - p.lo) / (p.hi - p.lo) * (p.y1 - p.y0);
    g.fillStyle = "#8b98a5"; g.textAlign = "left"; g.textBaseline = "top"; g.fillText(p.label, left + 4, p.y0 + 2);
    g.textAlign = "right"; g.textBaseline = "middle";
    for (const v of p.ticks) {
      g.fillText(String(v), left - 3, y(v));
      g.strokeStyle = v === 0 ? "#2b3642" : "#1b232c"; g.beginPath(); g.moveTo(left, y(v)); g.lineTo(w, y(v)); g.stroke();
    }
    if (now === null) continue;
    for (const side of Object.keys(traces.legs)) {
      const leg = traces.legs[side];
      g.strokeStyle = SIDE_COLOURS[side] || "#ccc"; g.lineWidth = 1.6; g.beginPath();
      let pen = false;
      for (let i = 0; i < leg.t.length; i++) {
        const age = now - leg.t[i];
        if (age > WINDOW_S || age < -0.5) { pen = false; continue; }
        const v = leg[p.key][i];
        if (v === null) { pen = false; continue; }
        const yy = Math.max(p.y0, Math.min(p.y1, y(v)));
        if (pen) g.lineTo(x(age), yy); else g.moveTo(x(age), yy);
        pen = true;
      }
      g.stroke(); g.lineWidth = 1;
    }
  }
}

export function fmt(v, digits = 1) {
  return v === null || v === undefined || Number.isNaN(v) ? "-" : Number(v).toFixed(digits);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
