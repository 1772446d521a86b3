// The deployment's sessions on the dashboard: GET /sessions (newest first, filtered by state, key
// name and release, a page at a time by its cursor), and one session opened: GET /sessions/{id}
// (its `error`, the reason it failed, and its `cost`: session_cost.js), its timeline, its transcript
// and recording (session_record.js) and its bot's logs (session_logs.js). `api` is the dashboard's
// authorised GET; `view` what a test reads; `admin`: {asker, send, admin()}, the stop button's
// confirmation, the authorised call and whether the key is an admin's (admin_actions.js).
import { actionButton, stoppable, stopSession } from "./admin_actions.js";
import { showCost } from "./session_cost.js";
import { loadLogs, showLogs } from "./session_logs.js";
import { loadRecord, showRecord } from "./session_record.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;

function cell(row, text) {
  row.insertCell().textContent = text === null || text === undefined || text === "" ? "–" : String(text);
}

function when(epoch) {
  return typeof epoch === "number" ? new Date(epoch * 1000).toLocaleString() : "–";
}

export function sessionList(api, view, recordingPolicy, admin) {
  let cursors = [null];  // the cursor of each page shown so far: the last is this page's
  let loading = false;
  let again = false;  // asked for while a page was being read: read again once it is in (new filters)

  function filters() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    const status = $("filter-status").value;
    const key = $("filter-key").value.trim();
    const release = $("filter-release").value.trim();
    if (status) query.set("status", status);
    if (key) query.set("key", key);
    if (release) query.set("release", release);
    return query;
  }

  async function load() {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    again = false;
    const query = filters();
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/sessions?${query}`);
      view.sessions = page;
      showList(page);
      $("sessions-note").textContent = (page.unreachable_regions || [])
        .map((r) => `region ${r.region} not listed: ${r.problem}`).join("; ");
    } catch (error) {
      $("sessions-note").textContent = `${error.message}${error.code ? ` (${error.code})` : ""}`;
    } finally {
      loading = false;
    }
    if (again) await load();
  }

  function showList(page) {
    const table = $("session-list");
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const title of ["started", "session", "state", "release", "key", "region", "error"]) {
      const th = document.createElement("th");
      th.textContent = title;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const session of page.sessions) {
      const row = body.insertRow();
      row.dataset.sessionId = session.session_id;
      row.className = session.status === "failed" ? "failed" : "";
      cell(row, when(session.created));
      const open = document.createElement("button");
      open.type = "button";
      open.className = "link";
      open.textContent = session.session_id;
      open.addEventListener("click", () => openSession(session));
      row.insertCell().appendChild(open);
      for (const value of [session.status, session.release, session.key, session.region, session.error]) cell(row, value);
    }
    if (!page.sessions.length) cell(body.insertRow(), "no sessions on this page");
    $("older").disabled = !page.next_cursor;
    $("newer").disabled = cursors.length < 2;
    $("older").onclick = () => { cursors.push(page.next_cursor); load(); };
  }

  async function openSession(listed) {
    const id = listed.session_id;
    const detail = { id, listed, session: null, events: [], record: null, reason: null, logs: null };
    view.detail = detail;
    // A stop asked about the session shown before is not confirmed under this one.
    admin.asker.withdraw((action) => action.session !== undefined && action.session !== id,
      `session ${id} was opened`);
    $("session-detail").hidden = false;
    $("detail-id").textContent = id;
    $("detail-status").textContent = `${listed.status} · started ${when(listed.created)}`;
    $("detail-error").hidden = true;
    $("detail-timeline").replaceChildren();
    $("detail-actions").replaceChildren();
    for (const box of ["detail-record", "detail-cost", "detail-logs"]) {
      $(box).replaceChildren(Object.assign(document.createElement("p"), { textContent: "reading…" }));
    }
    const [session, timeline] = await Promise.all([
      api(`/sessions/${encodeURIComponent(id)}`).catch(() => null),
      api(`/sessions/${encodeURIComponent(id)}/timeline`).catch((error) => ({ events: [], problem: error.message })),
    ]);
    if (view.detail !== detail) return;  // another session was opened meanwhile
    detail.session = session;
    detail.events = timeline.events || [];
    if (session) $("detail-status").textContent = `${session.status} · started ${when(listed.created)}`;
    if (session) showCost($("detail-cost"), session.cost, session.status);
    else $("detail-cost").firstChild.textContent = "not read: GET /sessions/{id} did not answer";
    if (admin.admin() && stoppable(session)) {
      // Once stopped (or refused), the session is read again, if it is still the one shown: its state
      // and its cost as they are now.
      const after = () => (view.detail?.id === id ? openSession(listed) : undefined);
      const stop = () => ({ ...stopSession(id, admin.send), after });
      $("detail-actions").appendChild(actionButton("Stop session", admin.asker, stop));
    }
    detail.reason = reasonOf(listed, session, detail.events);
    if (detail.reason) {
      $("detail-error").textContent = detail.reason;
      $("detail-error").hidden = false;
    }
    showTimeline(detail.events, timeline.problem);
    // A session that ended a moment ago may still be uploading its recording: wait a little for it
    // (each read of another key's session is audited: no waiting on an old one, nor a live one).
    const recent = typeof listed.ended === "number" && Date.now() / 1000 - listed.ended < 120;
    const record = await loadRecord(api, id, {
      waitSeconds: recent ? 15 : 0, recordingPolicy: recordingPolicy(), events: timeline.problem ? null : detail.events,
    });
    if (view.detail !== detail) return;
    detail.record = record;
    showRecord($("detail-record"), record);
    const logs = await loadLogs(record);
    if (view.detail !== detail) return;
    detail.logs = logs;
    showLogs($("detail-logs"), logs);
  }

  $("session-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    load();
  });
  $("newer").addEventListener("click", () => { cursors.pop(); load(); });
  // Page one follows the deployment as the status does; an older page stays as it was read.
  const refresh = () => (cursors.length === 1 ? load() : undefined);
  return { load, refresh, openSession };
}

// Why it failed, or the error it reported: the session's own `error` and `detail`, else the
// timeline's `failed` (a refused start's message), the bot's `error`, or an `ended` with a detail.
function reasonOf(listed, session, events) {
  const failed = listed.status === "failed" || session?.status === "failed";
  const parts = [];
  if (session?.error) parts.push(String(session.error));
  // An ended session's `detail` is how it ended (`stopped`): news only when it failed.
  if (failed && session?.detail && session.detail !== session.error) parts.push(String(session.detail));
  if (failed && !parts.length) {
    const refused = events.find((e) => e.event === "failed");
    const error = events.find((e) => e.event === "error");
    const ended = events.find((e) => e.event === "ended" && (e.detail || e.exit_code));
    if (refused) parts.push(`${refused.code ?? "failed"}: ${refused.message ?? ""}`);
    else if (error) parts.push(String(error.message ?? error.error ?? JSON.stringify(error)));
    else if (ended) parts.push(`ended: ${ended.detail ?? `exit code ${ended.exit_code}`}`);
  }
  if (!parts.length && listed.error) parts.push(String(listed.error));
  return parts.length ? `${failed ? "Failed" : "Error"}: ${parts.join(" · ")}` : null;
}

const SHOWN_APART = new Set(["event", "at", "replica"]);

function showTimeline(events, problem) {
  const table = $("detail-timeline");
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const title of ["+s", "event", "what"]) {
    const th = document.createElement("th");
    th.textContent = title;
    head.appendChild(th);
  }
  const body = table.createTBody();
  const first = events[0]?.at;
  for (const event of events) {
    const row = body.insertRow();
    cell(row, typeof event.at === "number" && typeof first === "number" ? (event.at - first).toFixed(2) : "");
    cell(row, event.event);
    cell(row, Object.entries(event).filter(([name]) => !SHOWN_APART.has(name))
      .map(([name, value]) => `${name}=${typeof value === "object" ? JSON.stringify(value) : value}`).join(" "));
  }
  if (problem) cell(body.insertRow(), problem);
}
