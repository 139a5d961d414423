// Helpers shared by the desktop and the wallboard: DOM building (text only, never HTML
// from data), JSON calls with the session cookie, and a WebSocket that reconnects.
"use strict";

const SB = (() => {
  const $ = (sel) => document.querySelector(sel);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const resp = await fetch(path, init);
    let data = null;
    const type = resp.headers.get("Content-Type") || "";
    if (type.includes("json")) data = await resp.json();
    return { status: resp.status, ok: resp.ok, data };
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), rr = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${rr}` : `${mm}:${rr}`;
  }

  // A socket that reconnects with backoff; onState(true|false) tells online/offline.
  // Auth rides on the HttpOnly session cookie; a 401/403 at upgrade means: log in again.
  function socket(path, onEvent, onState) {
    let ws = null, retry = 1000, pinger = null, stopped = false;
    const url = () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    function open() {
      if (stopped) return;
      ws = new WebSocket(url());
      ws.onopen = () => {
        retry = 1000;
        onState(true);
        pinger = setInterval(() => { if (ws.readyState === 1) ws.send("ping"); }, 20000);
      };
      ws.onmessage = (msg) => {
        let event;
        try { event = JSON.parse(msg.data); } catch (e) { return; }
        onEvent(event);
      };
      ws.onclose = () => {
        clearInterval(pinger);
        onState(false);
        if (!stopped) setTimeout(open, retry);
        retry = Math.min(retry * 2, 10000);
      };
    }
    open();
    return {
      close() { stopped = true; if (ws) ws.close(); },
      drop() { if (ws) ws.close(); },  // as a network drop: reconnects
    };
  }

  // An analytics event as {kind, text}: the analyzer's own event may come flat (with
  // "event_type"/"kind") or wrapped in "event" inside {"type": "analytics"}.
  function analytics(event) {
    const inner = event.event && typeof event.event === "object" ? event.event : event;
    const kind = inner.type && inner.type !== "analytics" ? inner.type : (inner.event_type || "alert");
    const source = inner.source || event.source || "";
    let text = inner.message || inner.text;
    if (!text) {
      const parts = [inner.kind, inner.name, inner.keyword, inner.value !== undefined ? `= ${inner.value}` : null,
        inner.leg ? `(${inner.leg})` : null].filter((p) => p !== null && p !== undefined && p !== "");
      text = parts.length ? parts.join(" ") : kind;
    }
    return { kind, source, text, t: inner.t };
  }

  // The login card both pages share (#login-view, #login-form, #login-user,
  // #login-password, #login-error): opens the page for a principal `accept` takes.
  async function startPage(accept, refusal, onOpen) {
    const view = $("#login-view"), error = $("#login-error");
    $("#login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const resp = await api("POST", "/api/login", { user: $("#login-user").value.trim(), password: $("#login-password").value });
      $("#login-password").value = "";
      if (!resp.ok) { error.textContent = resp.data ? resp.data.error : `error ${resp.status}`; return; }
      if (!accept(resp.data.user)) { error.textContent = refusal; return; }
      error.textContent = "";
      view.classList.add("hidden");
      onOpen(resp.data.user);
    });
    const me = await api("GET", "/api/me");
    if (me.ok && accept(me.data)) { onOpen(me.data); return; }
    if (me.ok) error.textContent = refusal;
    view.classList.remove("hidden");
  }

  async function logout(sock) {
    await api("POST", "/api/logout");
    if (sock) sock.close();
    location.reload();
  }

  return { $, el, api, duration, socket, analytics, startPage, logout };
})();
