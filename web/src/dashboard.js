// The deployment at a glance (GET /dashboard): GET /status (its SIP edges: sip_edges.js), GET /status/history, GET /releases and GET
// /capacity, polled while the tab is visible, one request at a time, slower after each failure; the sessions
// (GET /sessions) and one session's reason, cost, timeline, transcript, recording and bot logs
// (dashboard_sessions.js); the key's campaigns (GET /campaigns: campaigns.js), each stopped or resumed
// confirmed first, its results downloaded as CSV; for the admin (GET /status answered the key), a session's stop and the
// releases' rollback, each confirmed first (admin_actions.js).
// The admin key is asked for only when the dispatcher wants one; it stays in sessionStorage and goes
// out as a bearer token. Text from sessions is inserted as text, never HTML.
import uPlot from "uplot";
import { actionButton, confirmer, rollBack, rolledBackFrom } from "./admin_actions.js";
import { showCampaigns } from "./campaigns.js";
import { sessionList } from "./dashboard_sessions.js";
import { showSipEdges } from "./sip_edges.js";

const POLL_MS = 5000;
const MAX_BACKOFF_MS = 60000;
const KEY = "voicefleet.adminKey";

const $ = (id) => document.getElementById(id);
const view = { state: "loading", polls: 0, status: null, history: null, releases: null, capacity: null,
  problem: null, admin: false,
  sessions: null, detail: null, campaigns: null };
window.voicefleetStatus = view;  // what a test (or a curious operator) reads

let timer = null;
let inflight = false;
let failures = 0;
const charts = {};

function adminKey() {
  return sessionStorage.getItem(KEY) || "";
}

// The dispatcher's answer to `method path` (with `json` as its body, if any) with the key: {status, body},
// or an Error with `status` and `code`.
async function call(method, path, json) {
  const headers = { Accept: "application/json" };
  const key = adminKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const sent = json === undefined ? undefined : JSON.stringify(json);
  const answer = await fetch(path, { method, headers, body: sent, cache: "no-store", credentials: "omit" });
  let body = null;
  try {
    body = await answer.json();
  } catch {
    body = null;
  }
  if (!answer.ok) {
    const error = (body && body.error) || { code: "http_error", message: `HTTP ${answer.status}` };
    throw Object.assign(new Error(error.message), { status: answer.status, code: error.code });
  }
  return { status: answer.status, body };
}

async function get(path) {
  return (await call("GET", path)).body;
}

// A file's text (a campaign's results as CSV) with the key, which a link could not carry.
async function text(path) {
  const key = adminKey();
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const answer = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  if (!answer.ok) {
    const error = await answer.json().then((body) => body.error).catch(() => null);
    throw Object.assign(new Error(error?.message || `HTTP ${answer.status}`), { status: answer.status, code: error?.code });
  }
  return answer.text();
}

function say(problem) {
  view.problem = problem;
  $("problem").hidden = !problem;
  $("problem").textContent = problem || "";
}

function askForKey(message) {
  view.state = "needs-key";
  $("board").hidden = true;
  $("key-form").hidden = false;
  say(message);
  $("admin-key").focus();
}

function rows(table, headers, lines) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const text of headers) {
    const cell = document.createElement("th");
    cell.textContent = text;
    head.appendChild(cell);
  }
  const body = table.createTBody();
  for (const line of lines) {
    const row = body.insertRow();
    for (const text of line) row.insertCell().textContent = String(text);
  }
}

function counted(group, counts) {
  return Object.entries(counts || {}).map(([name, count]) => [group, name, count]);
}

function money(dollars) {
  if (dollars === null || dollars === undefined) return "not priced";
  return `$${dollars.toFixed(dollars > 0 && dollars < 1 ? 4 : 2)}`;  // small machines cost fractions of a cent
}

function showStatus(status) {
  const region = status.region === "default" ? "one region" : `region ${status.region}`;
  $("where").textContent = `${region} · replica ${status.replica} · ${status.provider}`;
  const { sessions, reserve, cost } = status;
  $("sessions-running").textContent = sessions.running;
  rows($("sessions-table"), ["by", "", "sessions"], [
    ...counted("status", sessions.by_status), ...counted("release", sessions.by_release),
    ...counted("region", sessions.by_region),
  ]);
  $("reserve-total").textContent = reserve.total;
  rows($("reserve-table"), ["by", "", "bots"], [
    ...counted("state", reserve.by_state), ...counted("release", reserve.by_release),
    ...counted("region", reserve.by_region),
  ]);
  $("reserve-note").textContent = reserve.problem || (reserve.enabled ? "" : "no reserve: every start is cold");
  rows($("starts-table"), ["last", "starts", "refused", "refusals by code"],
    Object.entries(status.starts).map(([window, w]) => [
      window, w.starts, w.refused,
      Object.entries(w.refusals).map(([code, n]) => `${code} ${n}`).join(", ") || "–",
    ]));
  $("cost").textContent = money(cost.dollars_per_hour);
  $("cost-note").textContent = `${cost.running_machines} running, ${cost.frozen_machines} frozen machines` +
    (cost.note ? ` · ${cost.note}` : "");
  rows($("places-table"), ["", "name", "reserve", ""], [
    ...status.replicas.map((r) => ["replica", r.id, r.reserve, `sessions: ${r.sessions}`]),
    ...status.regions.map((r) => ["region", r.name, r.reserve ?? "–",
      r.here ? "here" : r.reachable ? "reachable" : "unreachable"]),
  ]);
  showSipEdges($("sip-edges"), $("sip-edges-table"), $("sip-edges-note"), status.sip_edges);
  $("updated").textContent = new Date(status.at * 1000).toLocaleTimeString();
}

// Capacity beside use: GET /capacity's values (each with its setting, its runtime change and what is in
// use, as `voicefleet capacity` shows them); without them (a dispatcher keeping no runtime settings answers
// 404) the running sessions and the reserve alone. And whether calls are recorded.
function number(value) {
  return value === null || value === undefined ? "–" : String(value);
}

function showCapacity(status, capacity, problem) {
  const values = Object.entries(capacity?.values || {});
  if (values.length) {
    rows($("capacity-table"), ["", "value", "in use", "setting", "runtime change"], values.map(([name, row]) =>
      [name, number(row.value), number(row.in_use), number(row.setting), number(row.runtime)]));
  } else {
    rows($("capacity-table"), ["in use", ""], [["sessions running", status.sessions.running],
      ["reserve bots", status.reserve.total]]);
  }
  $("capacity-note").textContent = capacity ? "" : problem || "";
  const recordings = status.recordings;
  $("recordings-note").textContent = !recordings ? "recordings: not reported"
    : `recordings: ${recordings.policy}${recordings.policy === "on" ? ` to ${recordings.destination}` : ""}`
      + (recordings.error ? ` · not kept now: ${recordings.error}` : "");
}

function showReleases(answer) {
  const releases = answer.releases || [];
  const titles = ["release", "weight", "stable", "smoke", "eval", "health", "live", "idle", ...(view.admin ? [""] : [])];
  rows($("releases-table"), titles, releases.map((r) => [
    r.name, `${r.weight} %`, r.stable ? "stable" : "",
    [r.smoke?.status, r.smoke?.reason].filter(Boolean).join(": ") || "–",
    evalCell(r.eval, Date.now() / 1000),
    [r.health?.state, r.health?.reason].filter(Boolean).join(": ") || "–",
    r.live_sessions ?? "–", r.idle_bots ?? "–",
  ]));
  if (view.admin) {
    const from = new Set(rolledBackFrom(answer));
    const lines = $("releases-table").tBodies[0].rows;
    releases.forEach((r, i) => {
      const cell = lines[i].insertCell();
      if (from.has(r.name)) cell.appendChild(actionButton("Roll back", asker, () => rollBack(view.releases, call)));
    });
  }
  const changed = answer.changed_at ? ` · traffic last changed ${new Date(answer.changed_at * 1000).toLocaleString()}` : "";
  $("releases-note").textContent = `stable: ${answer.stable ?? "–"}${changed}`;
}

// A release's last scenario-suite verdict, as `voicefleet releases` shows it: "3/3 ✓ 12m ago".
function evalCell(verdict, now) {
  if (!verdict) return "–";
  const seconds = Math.max(0, Math.floor(now - verdict.at));
  const [unit, size] = [["d", 86400], ["h", 3600], ["m", 60]].find(([, n]) => seconds >= n) || ["s", 1];
  return `${verdict.passed}/${verdict.runs} ${verdict.ok ? "✓" : "✗"} ${Math.floor(seconds / size)}${unit} ago`;
}

const SERIES = {
  "chart-starts": [["starts", "#2f5bd3", (s) => s.starts], ["refused", "#c0392b", (s) => s.refused]],
  "chart-ready": [["p50", "#2f5bd3", (s) => s.ready_p50], ["p95", "#8e44ad", (s) => s.ready_p95]],
  "chart-sessions": [["sessions", "#27ae60", (s) => s.sessions]],
  "chart-reserve": [["idle bots", "#d35400", (s) => s.reserve_idle]],
};

function chartData(samples, series, now) {
  // The whole last hour, a point a minute: a minute with no sample is a gap, not a line across it.
  const last = Math.floor(now / 60) * 60;
  const byMinute = new Map(samples.map((s) => [s.at, s]));
  const minutes = [];
  const columns = series.map(() => []);
  for (let at = last - 3540; at <= last; at += 60) {
    minutes.push(at);
    const sample = byMinute.get(at);
    series.forEach(([, , pick], i) => columns[i].push(sample ? pick(sample) : null));
  }
  return [minutes, ...columns];
}

function showHistory(history, now) {
  for (const [id, series] of Object.entries(SERIES)) {
    const data = chartData(history.samples, series, now);
    const box = $(id);
    const width = Math.max(280, box.clientWidth || 420);
    if (!charts[id]) {
      charts[id] = new uPlot({
        width, height: 160, legend: { show: true }, cursor: { show: true },
        scales: { y: { range: (u, min, max) => [0, Math.max(1, max ?? 1)] } },
        series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2, spanGaps: false, points: { show: true, size: 6 } }))],
        axes: [{}, { size: 40 }],
      }, data, box);
    } else {
      if (Math.abs(charts[id].width - width) > 4) charts[id].setSize({ width, height: 160 });
      charts[id].setData(data);
    }
  }
}

async function poll() {
  timer = null;
  inflight = true;
  try {
    const [status, history] = await Promise.all([get("/status"), get("/status/history")]);
    view.status = status;
    view.history = history;
    view.polls += 1;
    view.state = "ok";
    view.admin = true;  // GET /status answers an admin key only
    failures = 0;
    say(null);
    $("key-form").hidden = true;
    $("board").hidden = false;
    showStatus(status);
    showHistory(history, status.at);
    await Promise.all([
      get("/releases").then((answer) => { view.releases = answer; showReleases(answer); })
        .catch((error) => { $("releases-note").textContent = `${error.message}${error.code ? ` (${error.code})` : ""}`; }),
      get("/capacity").then((answer) => { view.capacity = answer; showCapacity(status, answer, null); })
        .catch((error) => { view.capacity = null; showCapacity(status, null, error.status === 404
          ? "this dispatcher keeps no runtime capacity" : `${error.message}${error.code ? ` (${error.code})` : ""}`); }),
      sessions.refresh(),
      get("/campaigns").then((answer) => {
        view.campaigns = answer.campaigns || [];
        $("campaigns-note").textContent = "";
        showCampaigns($("campaign-list"), view.campaigns, { asker, send: call, fetchText: text, note: $("campaigns-note") });
      }).catch((error) => { $("campaigns-note").textContent = `${error.message}${error.code ? ` (${error.code})` : ""}`; }),
    ]);
  } catch (error) {
    failures += 1;
    if (error.status === 401 || error.status === 403) {
      view.admin = false;
      sessionStorage.removeItem(KEY);
      askForKey(`${error.message} (${error.code})`);
    } else {
      view.state = "error";
      say(`${error.message}${error.code ? ` (${error.code})` : ""}: retrying`);
    }
  } finally {
    inflight = false;
  }
  schedule();
}

function schedule() {
  if (timer !== null || inflight || document.hidden || view.state === "needs-key") return;
  const wait = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(failures, 4));
  timer = setTimeout(poll, wait);
}

// After a confirmed change: the deployment read again now.
const asker = confirmer($("admin-confirm"), $("admin-outcome"), () => {
  if (!inflight) {
    clearTimeout(timer);
    poll();
  }
});
const sessions = sessionList(get, view, () => view.status?.recordings?.policy ?? null,
  { asker, send: call, admin: () => view.admin });

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("admin-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  $("admin-key").value = "";
  view.state = "loading";
  if (!inflight) poll();
});

window.addEventListener("resize", () => {
  if (view.history && view.status) showHistory(view.history, view.status.at);
});

document.addEventListener("visibilitychange", () => {
  if (document.hidden && timer !== null) {
    clearTimeout(timer);
    timer = null;
  } else if (!document.hidden) {
    schedule();
  }
});

poll();
