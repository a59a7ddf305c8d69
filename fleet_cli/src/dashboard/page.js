// The dashboard page: polls its local server for the manager's state and renders it; the
// controls post to the same server, which calls the manager with the operator's identity.
// Text from the manager is only ever set as text, never parsed as HTML; the chart is SVG
// that the server draws from numbers.
"use strict";

const POLL_MS = 1000;
const token = document.querySelector('meta[name="fleet-token"]').content;
let state = null;
let pending = null; // the action the confirmation dialog is about

const $ = (id) => document.getElementById(id);

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fillRows(table, rows, render) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    render(tr, r);
    return tr;
  }));
}

function render(s) {
  state = s;
  const r = s.rollout;
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  $("cycles").textContent = s.cycles.text;
  if (!r) {
    $("title").textContent = "no rollout yet";
    $("phase").textContent = "–";
  } else {
    $("title").textContent = `rollout ${r.id}: ${r.job} to ${r.target}`;
    $("phase").textContent = r.phase;
    $("phase").className = "phase " + r.phase;
    $("halt-cause").textContent = r.halt_cause || "";
    $("hold").textContent = r.hold || "";
    $("in-flight").textContent = r.max_in_flight == null ? `${r.in_flight}` : `${r.in_flight} / ${r.max_in_flight}`;
    $("done").textContent = `${r.done} of ${r.total}`;
    $("failed").textContent = `${r.failed} · ${r.rolled_back} · ${r.deferred}` + (r.waiting_retry ? ` (${r.waiting_retry} waiting to retry)` : "");
    $("pending").textContent = `${r.pending}`;
    $("rate").textContent = r.rate_per_minute.toFixed(1) + (r.starts_per_minute ? ` (limit ${r.starts_per_minute})` : "");
    $("eta").textContent = r.eta || (r.next_wave_in ? `next stage in ${r.next_wave_in}` : "–");
    fillRows($("waves"), r.waves, (tr, w) => {
      tr.dataset.wave = r.waves.indexOf(w);
      tr.className = w.state;
      cell(tr, w.name);
      cell(tr, w.size, "size");
      cell(tr, w.started, "started");
      cell(tr, w.done, "done");
      cell(tr, w.failed, "failed");
      cell(tr, w.rolled_back, "rolled-back");
      cell(tr, w.deferred, "deferred");
      cell(tr, w.causes, "causes");
      cell(tr, w.state, "state");
    });
    $("subnets-card").hidden = r.subnets.length === 0;
    fillRows($("subnets"), r.subnets, (tr, n) => {
      tr.dataset.subnet = n.subnet;
      cell(tr, n.subnet, "mono");
      cell(tr, n.total, "total");
      cell(tr, n.done, "done");
      cell(tr, n.failed, "failed");
      cell(tr, n.rolled_back, "rolled-back");
      cell(tr, n.deferred, "deferred");
      cell(tr, n.in_flight, "in-flight");
      cell(tr, n.pending, "pending");
      cell(tr, n.state, "state");
    });
  }
  $("chart").innerHTML = s.chart_svg;
  $("failures-count").textContent = s.failures_total > s.failures.length ? `(${s.failures.length} of ${s.failures_total})` : `(${s.failures_total})`;
  fillRows($("failures"), s.failures, (tr, f) => {
    tr.dataset.canister = f.canister;
    cell(tr, f.canister, "mono");
    cell(tr, f.wave);
    cell(tr, f.outcome);
    cell(tr, f.cause);
    cell(tr, f.error, "error");
  });
  // The manager's clock (simulated time on ic_sim), in UTC.
  $("events").replaceChildren(...s.events.map((e) => {
    const li = document.createElement("li");
    const at = document.createElement("time");
    at.textContent = new Date(e.at_ns / 1e6).toISOString().slice(11, 19);
    li.append(at, " ", e.text);
    return li;
  }));
  for (const name of ["pause", "resume", "abort"]) $(name).disabled = !s.actions[name].enabled;
  $("rollback").disabled = !s.actions.rollback.enabled;
}

async function poll() {
  try {
    const res = await fetch("/api/state", { cache: "no-store" });
    const body = await res.json();
    if (body.error) {
      $("updated").textContent = "cannot read the manager: " + body.error.message;
    } else {
      render(body);
    }
  } catch (e) {
    $("updated").textContent = "the dashboard's server does not answer";
  }
}

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Fleet-Token": token },
    body: JSON.stringify(body || {}),
  });
  return res.json();
}

function showError(err) {
  const box = $("error");
  box.textContent = `The manager refused ${err.method}: ${err.kind}` + (err.message && err.message !== err.kind ? ` (${err.message})` : "");
  box.hidden = false;
}

function confirmText() {
  const a = state.actions[pending];
  return pending === "rollback" ? a.confirm.replace("{to}", $("rollback-to").value || "?") : a.confirm;
}

function ask(action) {
  if (!state) return;
  pending = action;
  const choice = $("rollback-choice");
  choice.hidden = action !== "rollback";
  if (action === "rollback") {
    $("rollback-to").replaceChildren(...state.rollback_to.map((v) => {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = v;
      return o;
    }));
  }
  $("confirm-text").textContent = confirmText();
  $("confirm").returnValue = "";
  $("confirm").showModal();
}

async function act() {
  const action = pending;
  pending = null;
  $("error").hidden = true;
  try {
    const body = action === "rollback" ? { to: $("rollback-to").value } : {};
    const reply = await post("/api/control/" + action, body);
    if (reply.error) showError(reply.error);
  } catch (e) {
    showError({ method: action, kind: "Unreachable", message: String(e) });
  }
  await poll();
}

async function search(ev) {
  ev.preventDefault();
  const reply = await post("/api/search", { q: $("search").value });
  if (reply.error) {
    showError(reply.error);
    return;
  }
  fillRows($("search-results"), reply.canisters, (tr, c) => {
    tr.dataset.canister = c.canister_id;
    cell(tr, c.canister_id, "mono");
    cell(tr, c.owner, "mono");
    cell(tr, c.status);
    cell(tr, c.release || "–");
    cell(tr, c.last_error || "", "error");
  });
}

for (const name of ["pause", "resume", "abort", "rollback"]) $(name).addEventListener("click", () => ask(name));
$("rollback-to").addEventListener("change", () => { $("confirm-text").textContent = confirmText(); });
$("confirm").addEventListener("close", () => {
  if ($("confirm").returnValue === "yes" && pending) act();
  else pending = null;
});
$("search-form").addEventListener("submit", search);
// One poll at a time: the next one is scheduled when the last has been answered, so a slow
// network never piles requests up.
(async function loop() {
  await poll();
  setTimeout(loop, POLL_MS);
})();
