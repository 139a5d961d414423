// The agent desktop: log in, ready / not ready, the screen pop (before the phone rings),
// the call while talking, hang up, wrap-up note, live analytics alerts. Events come from
// /ws/agents/{id} (docs/events.md); everything shown is set as text, never as HTML.
"use strict";

const { $, el, api, duration } = SB;

const desk = {
  me: null,        // {name, role, agent}
  call: null,      // the offer event of the call on screen, plus answeredAt / ended
  socket: null,
  timer: null,
  log: [],         // what the page did and when (read by the browser tests)
};
window.sbDesk = desk;

function record(type, extra = {}) {
  desk.log.push({ t: Date.now() / 1000, type, ...extra });
}

function show(id, visible) { $(id).classList.toggle("hidden", !visible); }

// -- login --------------------------------------------------------------------------------

$("#logout").addEventListener("click", () => SB.logout(desk.socket));

async function openDesk(me) {
  desk.me = me;
  show("#desk-view", true);
  $("#agent-name").textContent = `Agent ${me.agent}`;
  const codes = await api("GET", "/api/reason-codes");
  $("#reason").replaceChildren(...(codes.ok ? codes.data.reason_codes : []).map((c) => el("option", { value: c }, c.replaceAll("_", " "))));
  await refreshAgent();
  desk.socket = SB.socket(`/ws/agents/${encodeURIComponent(me.agent)}`, onEvent, onConnection);
}

async function refreshAgent() {
  const resp = await api("GET", `/api/agents/${encodeURIComponent(desk.me.agent)}`);
  if (resp.status === 401) { location.reload(); return; }
  if (resp.ok) showStatus(resp.data);
}

function onConnection(online) {
  show("#offline", !online);
  $("#conn").textContent = online ? "online" : "offline";
  record(online ? "online" : "offline");
  if (online) refreshAgent();
}

// -- status -------------------------------------------------------------------------------

function showStatus(agent) {
  const pill = $("#status-pill");
  pill.className = `pill ${agent.status}`;
  pill.textContent = agent.status.replaceAll("_", " ") + (agent.reason ? ` (${agent.reason})` : "");
  const state = $("#state-pill");
  state.className = `pill ${agent.state}`;
  state.textContent = agent.state.replaceAll("_", " ");
}

async function setStatus(status, reason) {
  const resp = await api("POST", `/api/agents/${encodeURIComponent(desk.me.agent)}/status`, { status, reason });
  $("#status-error").textContent = resp.ok ? "" : (resp.data ? resp.data.error : `error ${resp.status}`);
  if (resp.ok) showStatus(resp.data);
}

$("#go-ready").addEventListener("click", () => setStatus("ready", null));
$("#go-not-ready").addEventListener("click", () => setStatus("not_ready", $("#reason").value));
$("#go-logged-out").addEventListener("click", () => setStatus("logged_out", null));

// -- events -------------------------------------------------------------------------------

function onEvent(event) {
  const handlers = { offer: onOffer, offer_cancelled: onCancelled, answered: onAnswered,
    ended: onEnded, state: showStatus, analytics: onAnalytics };
  const handler = handlers[event.type];
  if (handler) handler(event);
}

function onOffer(offer) {
  desk.call = { ...offer, answeredAt: null, ended: false };
  show("#idle-text", false);
  show("#wrapup", false);
  show("#pop", true);
  show("#hangup", false);
  $("#call-message").textContent = "";
  $("#pop-account").textContent = offer.account || "none given";
  $("#pop-caller").textContent = offer.caller || "unknown";
  $("#pop-queue").textContent = offer.queue;
  $("#pop-wait").textContent = duration(offer.wait_seconds);
  $("#pop-did").textContent = offer.did || "";
  setCallState("ringing", "Ringing");
  const vars = Object.entries(offer.vars || {});
  $("#pop-vars tbody").replaceChildren(...(vars.length ? vars : [["—", "nothing collected"]])
    .map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, String(v)))));
  $("#pop-history").replaceChildren(...historyItems(offer.history || []));
  record("pop", { call_id: offer.call_id, account: $("#pop-account").textContent });
}

function historyItems(calls) {
  if (!calls.length) return [el("li", { class: "muted" }, "First call from this customer.")];
  return calls.map((c) => el("li", {},
    el("strong", {}, new Date(c.when).toLocaleString()), ` — ${c.queue || "no queue"}, `,
    c.agent ? `agent ${c.agent}, ` : "", (c.outcome || "").replaceAll("_", " "),
    ...(c.notes || []).map((n) => el("span", { class: "note" },
      `${n.disposition ? `[${n.disposition}] ` : ""}${n.note}${n.agent ? ` — ${n.agent}` : ""}`))));
}

function setCallState(kind, text) {
  const state = $("#call-state");
  state.className = `pill ${kind}`;
  state.textContent = text;
}

function onCancelled(event) {
  if (!desk.call || desk.call.call_id !== event.call_id || desk.call.answeredAt) return;
  const why = { timeout: "not answered in time", abandoned: "the caller hung up",
    answered_elsewhere: "answered by someone else" }[event.reason] || event.reason;
  clearCall(`Offer withdrawn: ${why}.`);
}

function onAnswered(event) {
  if (!desk.call || desk.call.call_id !== event.call_id) return;
  desk.call.answeredAt = Date.now();
  setCallState("talking", "Talking");
  show("#hangup", true);
  clearInterval(desk.timer);
  const tick = () => { $("#call-timer").textContent = duration((Date.now() - desk.call.answeredAt) / 1000); };
  tick();
  desk.timer = setInterval(tick, 1000);
  record("answered", { call_id: event.call_id });
}

function onEnded(event) {
  if (!desk.call || desk.call.call_id !== event.call_id) return;
  desk.call.ended = true;
  clearInterval(desk.timer);
  setCallState("wrap_up", `Ended by ${event.by}`);
  show("#hangup", false);
  show("#wrapup", true);
  $("#note").focus();
  record("ended", { call_id: event.call_id, by: event.by });
}

$("#hangup").addEventListener("click", async () => {
  if (!desk.call) return;
  const resp = await api("POST", `/api/calls/${encodeURIComponent(desk.call.call_id)}/hangup`);
  if (!resp.ok) $("#call-message").textContent = resp.data ? resp.data.error : `error ${resp.status}`;
});

$("#wrapup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const call = desk.call;
  if (!call) return;
  const body = { note: $("#note").value, disposition: $("#disposition").value };
  if (call.account) body.account = call.account; else body.caller = call.caller;
  const resp = await api("POST", `/api/calls/${encodeURIComponent(call.call_id)}/notes`, body);
  if (!resp.ok) { $("#wrapup-error").textContent = resp.data ? resp.data.error : `error ${resp.status}`; return; }
  record("note_saved", { call_id: call.call_id });
  clearCall("Note saved to the customer's history.");
});

$("#skip-note").addEventListener("click", () => clearCall("Wrap-up skipped."));

function clearCall(message) {
  clearInterval(desk.timer);
  desk.call = null;
  $("#note").value = "";
  $("#wrapup-error").textContent = "";
  $("#call-timer").textContent = "";
  show("#pop", false);
  show("#wrapup", false);
  show("#idle-text", true);
  $("#call-message").textContent = message;
}

// -- analytics ----------------------------------------------------------------------------

function onAnalytics(event) {
  const list = $("#alerts");
  if (list.querySelector(".muted")) list.replaceChildren();
  const { kind, source, text } = SB.analytics(event);
  list.prepend(el("li", { class: kind },
    el("strong", {}, new Date((event.at || Date.now() / 1000) * 1000).toLocaleTimeString()), " ",
    source ? `${source}: ` : "", text));
  while (list.children.length > 50) list.lastChild.remove();
  record("analytics", { kind, text });
}

SB.startPage((who) => who.role === "agent", "That account is not an agent: supervisors use the wallboard.", openDesk);
