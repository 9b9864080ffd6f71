// patchwave dashboard: reads the operator API of this origin and draws it. Every value from
// the API goes into the page as text (textContent, text nodes, attributes), never as markup.
"use strict";

const KEY = new URLSearchParams(window.location.search).get("code");
const TERMINAL = ["Completed", "RolledBack", "Cancelled", "Failed"];
const PAUSABLE = ["Pending", "PatchingInfrastructure", "Deploying", "Soaking", "AwaitingApproval"];
const OUTCOMES = [
  ["succeeded", "succeeded"], ["inProgress", "in progress"], ["pending", "pending"],
  ["unhealthy", "unhealthy"], ["timedOut", "timed out"], ["failed", "failed"],
];
const FAST_MS = 3000;
const SLOW_MS = 15000;
const PAGE_SIZE = 25;

const view = {
  me: null, rollouts: [], selected: null, rollout: null, command: null,
  deviceLink: null, nextLink: null, timer: null, readError: false,
};

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function fill(container, nodes) {
  container.replaceChildren(...nodes);
}

/** The API error as one line: the problem's title and detail, and its listed errors. */
async function problemText(response) {
  const text = await response.text();
  try {
    const problem = JSON.parse(text);
    const parts = [`${response.status} ${problem.title || response.statusText}`];
    if (problem.detail) parts.push(problem.detail);
    if (Array.isArray(problem.errors) && problem.errors.length) parts.push(problem.errors.join("; "));
    return parts.join(": ");
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

class ApiError extends Error {}

/** Calls the API on this origin with the page's credentials (its key, or App Service's cookie). */
async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (KEY) headers["x-functions-key"] = KEY;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (!response.ok) throw new ApiError(await problemText(response));
  return response.json();
}

function showAlert(message, info) {
  const box = $("alert");
  box.textContent = message;
  box.className = info ? "alert info" : "alert";
  box.hidden = !message;
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function updateName(update) {
  return update ? `${update.provider}/${update.name}/${update.version}` : "—";
}

function percent(part, whole) {
  return whole ? ((100 * part) / whole).toFixed(1) : "0.0";
}

function stateBadge(state) {
  return el("span", { class: `state ${state}` }, state);
}

/* ---------- the rollout list ---------- */

function drawList() {
  const rows = view.rollouts.map((r) =>
    el("tr", { dataset: { id: r.id }, class: r.id === view.selected ? "selected" : "" },
      el("td", {}, el("div", {}, r.name), el("div", { class: "small" }, updateName(r.update)),
        el("div", { class: "muted mono" }, r.id)),
      el("td", {}, stateBadge(r.state)),
      el("td", { class: "small" }, el("div", {}, r.createdBy || "—"), el("div", { class: "muted nowrap" }, when(r.createdAt)))));
  fill($("rollouts").tBodies[0], rows);
  $("no-rollouts").hidden = view.rollouts.length > 0;
}

$("rollouts").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-id]");
  if (row) window.location.hash = encodeURIComponent(row.dataset.id);
});

function selectedFromHash() {
  const raw = window.location.hash.slice(1);
  return raw ? decodeURIComponent(raw) : null;
}

/* ---------- one rollout ---------- */

function bar(counts, marks) {
  const total = counts.total || 0;
  const finished = counts.succeeded + counts.failed + counts.timedOut + (counts.unhealthy || 0);
  const values = {
    succeeded: counts.succeeded, inProgress: counts.inProgress,
    pending: Math.max(0, total - finished - counts.inProgress),
    unhealthy: counts.unhealthy || 0, timedOut: counts.timedOut, failed: counts.failed,
  };
  const node = el("div", { class: "bar", role: "img" });
  node.setAttribute("aria-label", OUTCOMES.map(([k, label]) => `${values[k]} ${label}`).join(", "));
  for (const [key, label] of OUTCOMES) {
    if (!values[key] || !total) continue;
    const seg = el("span", { class: `seg ${key}`, title: `${values[key]} ${label}` });
    seg.style.width = `${(100 * values[key]) / total}%`;
    node.append(seg);
  }
  for (const mark of marks) {
    const line = el("span", { class: `mark ${mark.kind}`, title: mark.title });
    line.style.left = `${mark.at}%`;
    node.append(line);
  }
  return { node, values, total, finished };
}

function numbers(values, total) {
  return el("div", { class: "numbers" },
    OUTCOMES.flatMap(([key, label], i) => [i ? " · " : "", el("b", { dataset: { count: key } }, String(values[key])), ` ${label}`]),
    ` of ${total}`);
}

function lastDecision(decisions, wave, wanted) {
  return decisions.filter((d) => d.wave === wave && wanted(d.kind)).pop();
}

function drawWave(wave, plan, decisions) {
  const failure = plan.failureThresholdPercent;
  const success = plan.successThresholdPercent;
  const { node, values, total, finished } = bar(wave.counts, [
    { kind: "success", at: success, title: `success threshold ${success}%` },
    { kind: "failure", at: 100 - failure, title: `failure threshold ${failure}% (from the right)` },
  ]);
  const failures = values.failed + values.timedOut + values.unhealthy;
  const judged = Math.min(plan.minDevicesJudged, total || plan.minDevicesJudged);
  const summary = el("div", { class: "muted" },
    `failures ${failures} = ${percent(failures, total)}% (fails above ${failure}%, judged after ${judged} finished; ${finished} finished) · `,
    `succeeded ${percent(values.succeeded, total)}% (passes at ${success}%) · on failure: ${plan.onFailure}`,
    wave.approvedBy ? ` · approved by ${wave.approvedBy}` : "");
  const failed = wave.status === "Failed";
  const last = (failed && lastDecision(decisions, wave.name, (k) => ["wave.failed", "wave.unhealthy"].includes(k))) ||
    lastDecision(decisions, wave.name, (k) => k.startsWith("wave.")) ||
    lastDecision(decisions, wave.name, () => true);
  return el("div", { class: "wave", dataset: { wave: wave.name, status: wave.status } },
    el("div", { class: "wave-head" },
      el("span", { class: "name" }, wave.name),
      el("span", { class: "muted" }, `group ${wave.deviceGroup}`),
      stateBadge(wave.status),
      wave.attempt > 1 ? el("span", { class: "muted" }, `attempt ${wave.attempt}`) : null),
    node, numbers(values, total), summary,
    last ? el("div", { class: failed ? "reason failed" : "reason" }, `${last.kind}: ${last.reason}`) : null);
}

function drawRollback(rollout, decisions) {
  const section = $("rollback");
  const rollback = rollout.rollback;
  section.hidden = !rollback;
  if (!rollback) return;
  $("rb-reason").textContent = `opened ${when(rollback.startedAt)}: ${rollback.reason}`;
  const threshold = (rollout.plan.rollback && rollout.plan.rollback.successThresholdPercent) || 100;
  const groups = rollback.groups.map((group) => {
    const { node, values, total } = bar(group.counts, [
      { kind: "success", at: threshold, title: `back on the rollback update: needs ${threshold}%` },
    ]);
    const status = group.passed === true ? "done" : group.passed === false ? "failed" : "running";
    return el("div", { class: "wave", dataset: { group: group.deviceGroup, status } },
      el("div", { class: "wave-head" },
        el("span", { class: "name" }, group.deviceGroup),
        el("span", { class: "muted" }, `back on ${updateName(rollout.plan.rollbackUpdate)}`),
        el("span", { class: `state ${status === "failed" ? "Failed" : status === "done" ? "Completed" : "RollingBack"}` }, status)),
      node, numbers(values, total),
      el("div", { class: "muted" }, `${values.succeeded} of ${total} back = ${percent(values.succeeded, total)}% (needs ${threshold}%)`));
  });
  const finished = decisions.filter((d) => d.kind.startsWith("rollback.") && d.kind !== "rollback.opened").pop();
  if (finished) groups.push(el("div", { class: "reason" }, `${finished.kind}: ${finished.reason}`));
  fill($("rb-groups"), groups);
}

function drawHosts(rollout) {
  const infra = rollout.infrastructure;
  $("hosts-gate").textContent = !infra
    ? "This plan patches no hosts."
    : infra.gateOpen ? "Hosts done: the devices may go." : "Devices wait for the hosts.";
  const hosts = infra ? infra.hosts : [];
  $("hosts").hidden = hosts.length === 0;
  fill($("hosts").tBodies[0], hosts.map((h) =>
    el("tr", {},
      el("td", { title: h.id }, h.id.split("/").pop()),
      el("td", {}, h.kind),
      el("td", { class: `result-${h.result}` }, h.result))));
}

function drawDecisions(decisions) {
  const rows = decisions.slice().reverse().map((d) =>
    el("tr", { dataset: { kind: d.kind } },
      el("td", {}, when(d.at)),
      el("td", { class: "mono" }, d.kind),
      el("td", {}, d.wave || ""),
      el("td", {}, d.actor || ""),
      el("td", {}, d.reason)));
  fill($("decisions").tBodies[0], rows);
}

function commandAllowed(name, state) {
  if (TERMINAL.includes(state)) return false;
  switch (name) {
    case "pause": return PAUSABLE.includes(state);
    case "resume": return state === "Paused";
    case "approve": return state === "AwaitingApproval";
    case "rollback": return state !== "RollingBack";
    default: return true;
  }
}

function drawCommands(rollout) {
  const names = view.me ? view.me.commands : [];
  fill($("commands"), names.map((name) => {
    const button = el("button", {
      type: "button", class: ["cancel", "rollback"].includes(name) ? "danger" : "",
      dataset: { command: name },
    }, name[0].toUpperCase() + name.slice(1));
    button.disabled = !commandAllowed(name, rollout.state);
    return button;
  }));
}

function drawGroups(rollout) {
  const select = $("f-group");
  const current = select.value;
  const groups = rollout.waves.map((w) => w.deviceGroup);
  if ([...select.options].slice(1).map((o) => o.value).join() === groups.join()) return;
  fill(select, [el("option", { value: "" }, "any"), ...groups.map((g) => el("option", { value: g }, g))]);
  select.value = groups.includes(current) ? current : "";
}

function drawRollout() {
  const rollout = view.rollout;
  $("detail").hidden = !rollout;
  if (!rollout) return;
  const decisions = rollout.decisions || [];
  $("d-name").textContent = rollout.name;
  fill($("d-state"), [rollout.state]);
  $("d-state").className = `state ${rollout.state}`;
  $("d-meta").textContent = `${rollout.id} · ${updateName(rollout.plan.update)} (back to ${updateName(rollout.plan.rollbackUpdate)}) · created by ${rollout.createdBy} ${when(rollout.createdAt)}` +
    (rollout.currentWave && !TERMINAL.includes(rollout.state) ? ` · current wave ${rollout.currentWave}` : "") +
    (rollout.pendingEffects ? ` · ${rollout.pendingEffects} effects pending` : "");
  drawCommands(rollout);
  drawHosts(rollout);
  fill($("waves"), rollout.waves.map((w, i) => drawWave(w, rollout.plan.waves[i], decisions)));
  drawRollback(rollout, decisions);
  drawDecisions(decisions);
  drawGroups(rollout);
}

/* ---------- devices ---------- */

function devicesPath() {
  const query = new URLSearchParams({ rollout: view.selected, limit: String(PAGE_SIZE) });
  if ($("f-status").value) query.set("status", $("f-status").value);
  if ($("f-group").value) query.set("group", $("f-group").value);
  return `/api/compliance/devices?${query}`;
}

async function loadDevices() {
  if (!view.selected) return;
  const path = view.deviceLink || devicesPath();
  const page = await api(path);
  view.nextLink = page.nextLink || null;
  fill($("devices").tBodies[0], page.value.map((d) =>
    el("tr", { dataset: { device: d.deviceId, status: d.status } },
      el("td", { class: "mono" }, d.deviceId),
      el("td", {}, d.group),
      el("td", { class: `status-${d.status}` }, d.status),
      el("td", {}, updateName(d.installedUpdate)),
      el("td", {}, when(d.lastReportAt)))));
  $("p-next").disabled = !view.nextLink;
  $("p-first").disabled = !view.deviceLink;
  $("p-info").textContent = page.value.length ? `${page.value.length} shown${view.nextLink ? ", more on the next page" : ""}` : "no devices match";
}

function resetDevices() {
  view.deviceLink = null;
  loadDevices().catch((e) => showAlert(e.message));
}

$("f-status").addEventListener("change", resetDevices);
$("f-group").addEventListener("change", resetDevices);
$("p-first").addEventListener("click", resetDevices);
$("p-next").addEventListener("click", () => {
  if (!view.nextLink) return;
  view.deviceLink = view.nextLink;
  loadDevices().catch((e) => showAlert(e.message));
});

/* ---------- commands ---------- */

$("commands").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-command]");
  if (!button || !view.rollout) return;
  view.command = button.dataset.command;
  $("cf-label").textContent = `${view.command} ${view.rollout.name}: why?`;
  $("cf-reason").value = "";
  $("command-form").hidden = false;
  $("cf-reason").focus();
});

$("cf-cancel").addEventListener("click", () => {
  view.command = null;
  $("command-form").hidden = true;
});

$("command-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = $("cf-reason").value.trim();
  if (!view.command || !view.selected || !reason) return;
  const command = view.command;
  $("cf-send").disabled = true;
  try {
    const after = await api(`/api/rollouts/${encodeURIComponent(view.selected)}/${command}`, {
      method: "POST", body: { reason },
    });
    view.command = null;
    $("command-form").hidden = true;
    showAlert(`${command}: accepted; the rollout is ${after.state}`, true);
    await refresh();
  } catch (e) {
    showAlert(`${command} refused: ${e.message}`);
  } finally {
    $("cf-send").disabled = false;
  }
});

/* ---------- refreshing ---------- */

async function refresh() {
  if (!view.me) {
    view.me = await api("/api/me");
    $("who").textContent = `${view.me.name} (${view.me.roles.join(", ") || "no roles"})`;
  }
  const list = await api("/api/rollouts");
  view.rollouts = list.value;
  const wanted = selectedFromHash() || (view.rollouts[0] && view.rollouts[0].id) || null;
  if (wanted !== view.selected) {
    view.selected = wanted;
    view.deviceLink = null;
    view.rollout = null;
    $("command-form").hidden = true;
  }
  drawList();
  if (view.selected) {
    view.rollout = await api(`/api/rollouts/${encodeURIComponent(view.selected)}`);
    drawRollout();
    if (!view.deviceLink) await loadDevices();
  } else {
    drawRollout();
  }
  $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function moving() {
  return view.rollouts.some((r) => !TERMINAL.includes(r.state));
}

async function poll() {
  clearTimeout(view.timer);
  try {
    await refresh();
    if (view.readError) showAlert("");
    view.readError = false;
  } catch (e) {
    view.readError = true;
    showAlert(`cannot read the API: ${e.message}`);
  }
  if ($("auto").checked) view.timer = setTimeout(poll, moving() ? FAST_MS : SLOW_MS);
}

window.addEventListener("hashchange", poll);
$("auto").addEventListener("change", poll);
const legend = OUTCOMES.map(([key, label]) => el("span", {}, el("i", { class: `seg ${key}` }), label));
legend.push(el("span", {}, "dashed lines: success threshold (from the left), failure threshold (from the right)"));
fill($("legend"), legend);
poll();
