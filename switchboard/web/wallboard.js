// The supervisors' wallboard: live queues and agents from /ws/supervisor, the last hour's
// chart from /api/stats/history, recordings with waveform and analytics timeline, and each
// flow drawn as a graph from /api/flows/{name}. Canvas and SVG by hand, no libraries.
"use strict";

const { $, el, api, duration } = SB;
const COLORS = ["#2f6fb3", "#b33a3a", "#2f8f4e", "#a06a16", "#6b3fb3", "#16808a"];
const board = { socket: null, history: [], interval: 10, recording: null, log: [] };
window.sbBoard = board;

$("#logout").addEventListener("click", () => SB.logout(board.socket));

function openBoard(me) {
  $("#board-view").classList.remove("hidden");
  $("#who").textContent = `${me.name} (${me.role})`;
  board.socket = SB.socket("/ws/supervisor", onEvent, (online) => {
    $("#offline").classList.toggle("hidden", online);
    $("#conn").textContent = online ? "live" : "offline";
  });
  loadHistory();
  setInterval(loadHistory, 15000);
  loadRecordings();
  setInterval(loadRecordings, 30000);
  loadFlows();
  $("#audio").addEventListener("timeupdate", movePlayhead);
}

function onEvent(event) {
  if (event.type === "figures" || event.type === "hello") {
    showQueues(event.queues || {});
    showAgents(event.agents || []);
    board.log.push({ t: Date.now() / 1000, type: "figures" });
  } else if (event.type !== "pong") {
    feed(event);
  }
}

// -- queues and agents ----------------------------------------------------------------------

function num(value, digits = 0) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

function showQueues(queues) {
  $("#queues tbody").replaceChildren(...Object.entries(queues).map(([name, q]) => {
    const by = q.agents_by_state || {};
    return el("tr", {}, el("td", {}, name), el("td", { class: "num" }, q.waiting),
      el("td", { class: "num" }, duration(q.longest_wait)), el("td", { class: "num" }, num(q.service_level_pct, 1)),
      el("td", { class: "num" }, duration(q.asa)), el("td", { class: "num" }, duration(q.aht)),
      el("td", { class: "num" }, q.offered), el("td", { class: "num" }, q.answered),
      el("td", { class: "num" }, q.abandoned), el("td", { class: "num" }, by.available || 0),
      el("td", { class: "num" }, by.on_call || 0));
  }));
}

function showAgents(agents) {
  $("#agents tbody").replaceChildren(...agents.map((a) => el("tr", {},
    el("td", {}, `${a.id} ${a.name && a.name !== a.id ? a.name : ""}`),
    el("td", {}, el("span", { class: `pill ${a.status}` }, a.status.replaceAll("_", " ") + (a.reason ? ` (${a.reason})` : ""))),
    el("td", {}, el("span", { class: `pill ${a.state}` }, a.state.replaceAll("_", " "))),
    el("td", { class: "num" }, duration(a.in_state_s)),
    el("td", {}, a.call_id || ""))));
}

// -- the last hour ----------------------------------------------------------------------------

async function loadHistory() {
  const resp = await api("GET", "/api/stats/history");
  if (!resp.ok) return;
  board.history = resp.data.samples;
  board.interval = resp.data.interval_s;
  drawChart();
}

function drawChart() {
  const canvas = $("#chart"), ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = { l: 36, r: 40, t: 10, b: 24 };
  ctx.clearRect(0, 0, w, h);
  const samples = board.history, now = Date.now() / 1000, from = now - 3600;
  const names = samples.length ? Object.keys(samples[samples.length - 1].queues) : [];
  const maxWait = Math.max(4, ...samples.flatMap((s) => Object.values(s.queues).map((q) => q.waiting)));
  const x = (t) => pad.l + ((t - from) / 3600) * (w - pad.l - pad.r);
  const yWait = (v) => h - pad.b - (v / maxWait) * (h - pad.t - pad.b);
  const ySl = (v) => h - pad.b - (v / 100) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#d8dee6"; ctx.fillStyle = "#66727f"; ctx.font = "11px system-ui"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (i * (h - pad.t - pad.b)) / 4;
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(String(Math.round(maxWait * (1 - i / 4))), 4, y + 4);
    ctx.fillText(`${100 - i * 25}%`, w - pad.r + 4, y + 4);
  }
  for (let m = 0; m <= 60; m += 15) ctx.fillText(m === 60 ? "now" : `-${60 - m}m`, x(from + m * 60) - 10, h - 6);
  names.forEach((name, i) => {
    const color = COLORS[i % COLORS.length];
    line(ctx, samples, (s) => s.queues[name]?.waiting, x, yWait, color, []);
    line(ctx, samples, (s) => s.queues[name]?.service_level_pct, x, ySl, color, [5, 4]);
  });
  $("#chart-legend").replaceChildren(...names.flatMap((name, i) => {
    const color = COLORS[i % COLORS.length];
    const swatch = (dashed) => { const s = el("span", { class: dashed ? "swatch dashed" : "swatch" }); s.style.background = dashed ? "none" : color; s.style.borderColor = color; return s; };
    return [el("span", {}, swatch(false), `${name} waiting`), el("span", {}, swatch(true), `${name} SL %`)];
  }));
}

function line(ctx, samples, pick, x, y, color, dash) {
  ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.setLineDash(dash);
  ctx.beginPath();
  let started = false;
  for (const s of samples) {
    const v = pick(s);
    if (v === null || v === undefined) { started = false; continue; }
    if (started) ctx.lineTo(x(s.t), y(v)); else ctx.moveTo(x(s.t), y(v));
    started = true;
  }
  ctx.stroke(); ctx.setLineDash([]);
}

// -- recordings ---------------------------------------------------------------------------------

async function loadRecordings() {
  let items = [];
  try {
    const resp = await api("GET", "/api/recordings?limit=50");
    if (resp.ok && resp.data && Array.isArray(resp.data.recordings)) items = resp.data.recordings;
  } catch (e) { /* no recordings API on this server: an empty list */ }
  $("#recordings-empty").classList.toggle("hidden", items.length > 0);
  $("#recordings tbody").replaceChildren(...items.map((r) => {
    const row = el("tr", { "data-id": r.id }, el("td", {}, new Date(r.started_at).toLocaleString()),
      el("td", {}, r.account || "—"), el("td", {}, r.queue || "—"), el("td", {}, r.agent || "—"),
      el("td", { class: "num" }, duration(r.duration_s)));
    row.classList.toggle("selected", board.recording === r.id);
    row.addEventListener("click", () => openRecording(r));
    return row;
  }));
}

async function openRecording(summary) {
  board.recording = summary.id;
  for (const row of document.querySelectorAll("#recordings tbody tr")) row.classList.toggle("selected", row.dataset.id === summary.id);
  $("#rec-title").textContent = `${summary.caller || ""} → ${summary.did || ""}, account ${summary.account || "—"}, ` +
    `queue ${summary.queue || "—"}, agent ${summary.agent || "—"}${summary.interrupted ? " (interrupted)" : ""}`;
  const id = encodeURIComponent(summary.id);
  const [side, audio] = await Promise.all([api("GET", `/api/recordings/${id}`),
    fetch(`/api/recordings/${id}/audio`, { credentials: "same-origin" })]);
  if (!audio.ok) { $("#rec-title").textContent += " — audio unavailable"; return; }
  const bytes = await audio.arrayBuffer();
  const player = $("#audio");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(new Blob([bytes], { type: "audio/wav" }));
  const wav = parseWav(bytes);
  drawWave(wav);
  drawTimeline(side.ok ? side.data.timeline || [] : [], wav ? wav.seconds : summary.duration_s || 0);
  board.log.push({ t: Date.now() / 1000, type: "recording", id: summary.id, seconds: wav && wav.seconds });
}

// PCM16 WAV: find "fmt " and "data" chunks; returns per-channel peaks for drawing.
function parseWav(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < 44 || view.getUint32(0, false) !== 0x52494646) return null;
  let offset = 12, channels = 1, rate = 8000, bits = 16, data = null;
  while (offset + 8 <= buffer.byteLength) {
    const id = view.getUint32(offset, false), size = view.getUint32(offset + 4, true);
    if (id === 0x666d7420) { channels = view.getUint16(offset + 10, true); rate = view.getUint32(offset + 12, true); bits = view.getUint16(offset + 22, true); }
    if (id === 0x64617461) { data = [offset + 8, Math.min(size, buffer.byteLength - offset - 8)]; break; }
    offset += 8 + size + (size % 2);
  }
  if (!data || bits !== 16) return null;
  const frames = Math.floor(data[1] / (2 * channels));
  return { view, start: data[0], channels, frames, seconds: frames / rate };
}

function drawWave(wav) {
  const canvas = $("#wave"), ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.fillStyle = "#0e1621"; ctx.fillRect(0, 0, w, h);
  if (!wav) return;
  const lanes = Math.min(wav.channels, 2), lane = h / lanes, per = Math.max(1, Math.floor(wav.frames / w));
  const colors = ["#6fb0ff", "#7fe0a0"];
  for (let c = 0; c < lanes; c++) {
    ctx.strokeStyle = colors[c];
    const mid = lane * c + lane / 2;
    ctx.beginPath();
    for (let px = 0; px < w; px++) {
      let peak = 0;
      const first = px * per;
      for (let f = first; f < Math.min(first + per, wav.frames); f += 4) {
        const v = Math.abs(wav.view.getInt16(wav.start + 2 * (f * wav.channels + c), true));
        if (v > peak) peak = v;
      }
      const amp = (peak / 32768) * (lane / 2 - 2);
      ctx.moveTo(px + 0.5, mid - amp); ctx.lineTo(px + 0.5, mid + amp);
    }
    ctx.stroke();
    ctx.fillStyle = "#9fb0c2"; ctx.font = "11px system-ui";
    ctx.fillText(c === 0 ? "caller" : "agent / IVR", 6, lane * c + 14);
  }
}

function drawTimeline(events, seconds) {
  const box = $("#timeline"), list = $("#timeline-list");
  box.replaceChildren(); list.replaceChildren();
  for (const event of events) {
    const { kind, source, text } = SB.analytics(event);
    const cls = ["alert", "tag", "score", "summary"].includes(kind) ? kind : "other";
    const t = Number(event.t) || 0;
    const mark = el("span", { class: `mark ${cls}`, title: `${duration(t)} ${source}: ${text}` });
    mark.style.left = `${seconds ? Math.min(100, (100 * t) / seconds) : 0}%`;
    mark.addEventListener("click", () => { $("#audio").currentTime = t; });
    box.append(mark);
    list.append(el("li", {}, el("strong", {}, duration(t)), ` ${kind} — ${source ? `${source}: ` : ""}${text}`));
  }
  if (!events.length) list.append(el("li", { class: "muted" }, "No analytics events on this call."));
}

function movePlayhead() {
  const audio = $("#audio");
  const pct = audio.duration ? (100 * audio.currentTime) / audio.duration : 0;
  $("#playhead").style.left = `${pct}%`;
}

// -- live analytics ---------------------------------------------------------------------------

function feed(event) {
  const list = $("#feed");
  if (list.querySelector(".muted")) list.replaceChildren();
  const { kind, source, text } = SB.analytics(event);
  list.prepend(el("li", { class: kind }, el("strong", {}, new Date((event.at || Date.now() / 1000) * 1000).toLocaleTimeString()),
    ` ${event.call_id ? `[${event.call_id}] ` : ""}${event.agent ? `agent ${event.agent} ` : ""}${source ? `${source}: ` : ""}${text}`));
  while (list.children.length > 100) list.lastChild.remove();
}

// -- flows ------------------------------------------------------------------------------------

async function loadFlows() {
  const resp = await api("GET", "/api/flows");
  if (!resp.ok) return;
  const box = $("#flows");
  box.replaceChildren(...resp.data.diagnostics.map((d) => el("p", { class: "diag" }, d.text)));
  for (const flow of resp.data.flows) {
    const graph = await api("GET", `/api/flows/${encodeURIComponent(flow.name)}`);
    if (!graph.ok) continue;
    box.append(el("div", { class: "flow" },
      el("h3", {}, `${flow.name} — ${flow.description || ""} (DIDs ${flow.dids.join(", ") || "none"}, version ${flow.version.slice(0, 8)})`),
      drawFlow(graph.data)));
  }
}

function layers(graph) {
  const next = {};
  for (const e of graph.edges) (next[e.from] ||= []).push(e.to);
  const depth = { [graph.start]: 0 }, queue = [graph.start];
  while (queue.length) {
    const id = queue.shift();
    for (const to of next[id] || []) if (!(to in depth)) { depth[to] = depth[id] + 1; queue.push(to); }
  }
  const last = Math.max(0, ...Object.values(depth)) + 1;
  for (const n of graph.nodes) if (!(n.id in depth)) depth[n.id] = last;  // unreachable
  return depth;
}

function drawFlow(graph) {
  const NS = "http://www.w3.org/2000/svg", W = 150, H = 46, GX = 60, GY = 26;
  const svg = (tag, attrs = {}, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const depth = layers(graph), rows = {}, pos = {};
  for (const n of graph.nodes) {
    const col = depth[n.id];
    rows[col] = (rows[col] || 0) + 1;
    pos[n.id] = { x: 20 + col * (W + GX), y: 30 + (rows[col] - 1) * (H + GY) };
  }
  const width = 40 + (Math.max(...Object.values(depth)) + 1) * (W + GX);
  const height = 60 + Math.max(...Object.values(rows)) * (H + GY);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `flow ${graph.name}` });
  const defs = svg("defs");
  const marker = svg("marker", { id: `arrow-${graph.name}`, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#6f8399" }));
  defs.append(marker); root.append(defs);
  for (const e of graph.edges) {
    const a = pos[e.from], b = pos[e.to];
    let d, lx, ly;
    if (e.from === e.to) {  // a loop on itself (menu option "replay")
      d = `M ${a.x + W - 30} ${a.y} C ${a.x + W - 30} ${a.y - 30}, ${a.x + W + 10} ${a.y - 30}, ${a.x + W} ${a.y + 10}`;
      lx = a.x + W - 20; ly = a.y - 24;
    } else if (b.x > a.x) {
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      d = `M ${x1} ${y1} C ${x1 + GX / 2} ${y1}, ${x2 - GX / 2} ${y2}, ${x2} ${y2}`;
      lx = (x1 + x2) / 2 - 14; ly = (y1 + y2) / 2 - 4;
    } else {  // back or sideways: arc below
      const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y + H;
      const dip = Math.max(y1, y2) + 30;
      d = `M ${x1} ${y1} C ${x1} ${dip}, ${x2} ${dip}, ${x2} ${y2}`;
      lx = (x1 + x2) / 2; ly = dip - 4;
    }
    root.append(svg("path", { d, class: "edge", "marker-end": `url(#arrow-${graph.name})` }));
    root.append(svg("text", { x: lx, y: ly, class: "edge-label" }, e.label));
  }
  for (const n of graph.nodes) {
    const p = pos[n.id];
    const g = svg("g", { class: `node ${n.type}${n.id === graph.start ? " start" : ""}`, transform: `translate(${p.x} ${p.y})` });
    g.append(svg("title", {}, `${n.id} (${n.type}, line ${n.line})${n.prompts.length ? `\nprompts: ${n.prompts.join(", ")}` : ""}`));
    g.append(svg("rect", { width: W, height: H, rx: 6 }));
    g.append(svg("text", { x: 8, y: 18 }, n.id));
    const detail = n.queue ? `queue ${n.queue}` : n.variable ? `→ ${n.variable}` : n.flow ? `flow ${n.flow}` : "";
    g.append(svg("text", { x: 8, y: 35, class: "type" }, `${n.type}${detail ? ` · ${detail}` : ""}`));
    root.append(g);
  }
  return root;
}

SB.startPage((who) => who.role === "supervisor" || who.role === "admin",
  "The wallboard is for supervisors and admins; agents use the desktop at /.", openBoard);
