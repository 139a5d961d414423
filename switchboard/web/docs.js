// Renders /api/openapi.json and sends requests with the session cookie (no libraries).
"use strict";

const { $, el } = SB;

function example(schema) {
  if (!schema || typeof schema !== "object") return null;
  if (schema.type === "object" || schema.properties) {
    const out = {};
    for (const [k, v] of Object.entries(schema.properties || {})) out[k] = example(v);
    return out;
  }
  if (schema.enum) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  return { string: "", integer: 0, number: 0, boolean: false, array: [] }[type] ?? null;
}

async function send(method, path, op, form, out) {
  let url = path;
  const query = new URLSearchParams();
  for (const p of op.parameters || []) {
    const value = form.querySelector(`[name="${p.in}:${p.name}"]`).value;
    if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(value));
    else if (value) query.set(p.name, value);
  }
  if ([...query].length) url += "?" + query;
  const init = { method: method.toUpperCase(), credentials: "same-origin", headers: {} };
  const body = form.querySelector("textarea");
  if (body) { init.body = body.value; init.headers["Content-Type"] = "application/json"; }
  out.textContent = `${init.method} ${url} …`;
  try {
    const resp = await fetch(url, init);
    const text = await resp.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
    out.textContent = `${resp.status} ${resp.statusText}\n\n${shown}`;
  } catch (err) {
    out.textContent = String(err);
  }
}

function operation(method, path, op) {
  const form = el("form");
  for (const p of op.parameters || []) {
    form.append(el("label", {}, `${p.name} (${p.in}${p.required ? ", required" : ""}) `,
      el("input", { name: `${p.in}:${p.name}`, placeholder: p.description || "" })));
  }
  const schema = op.requestBody?.content?.["application/json"]?.schema;
  if (schema) {
    const area = el("textarea", { name: "body" });
    area.value = JSON.stringify(example(schema), null, 2);
    form.append(el("label", {}, "JSON body"), area);
  }
  const out = el("pre");
  const ws = path.startsWith("/ws/");
  form.append(el("button", ws ? { disabled: "" } : {}, ws ? "WebSocket (see docs/events.md)" : "Send"));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); send(method, path, op, form, out); });
  const codes = Object.keys(op.responses || {}).join(", ");
  return el("details", { class: "op" },
    el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()),
      el("span", { class: "path" }, path), el("span", {}, op.summary || ""),
      el("span", { class: "role" }, op["x-switchboard-role"])),
    el("div", { class: "body" }, el("p", { class: "muted" }, (op.description || "").trim()),
      el("p", { class: "muted" }, `Responses: ${codes}`), form, out));
}

async function load() {
  const spec = await (await fetch("/api/openapi.json")).json();
  const groups = {};
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      (groups[op.tags?.[0] || "other"] ||= []).push(operation(method, path, op));
    }
  }
  const ops = $("#ops");
  ops.replaceChildren(el("p", { class: "muted" }, spec.info.description));
  for (const name of Object.keys(groups).sort()) {
    ops.append(el("h2", {}, name), ...groups[name]);
  }
}

async function whoami() {
  const resp = await fetch("/api/me", { credentials: "same-origin" });
  $("#who").textContent = resp.ok ? `logged in: ${(await resp.json()).name}` : "not logged in";
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const resp = await fetch("/api/login", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: $("#user").value, password: $("#password").value }),
  });
  $("#password").value = "";
  if (!resp.ok) $("#who").textContent = (await resp.json()).error; else whoami();
});

load();
whoami();
