// A session's record as both pages show it: its transcript (turns: who, text, when, how fast) and its
// recording in an <audio>, from GET /sessions/{id}/artifacts (docs/recording.md); or why there is
// none, from that route's answer and the session's timeline (recording_off, recording_skipped,
// recording_missing, artifacts_erased). Everything from the session is inserted as text, never HTML.
//
// `api(path)` is the page's own authorised JSON GET (it throws an Error with `status` and `code`).
// The download URLs are fetched with no key and no cookie: a folder store's is a signed path on the
// dispatcher, a bucket's a pre-signed URL to the store (the page's CSP allows that origin alone).

import { element, headedTable } from "./dom.js";

const NOT_KEPT = {
  recording_off: "the start asked for no recording",
  recording_skipped: "the store could not be written when the session started",
  recording_missing: "the session kept no audio",
};

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// An admin's read of another key's session is on the audit trail, each one: while waiting for the
// recording, its listing is asked for every few seconds and its timeline far less often.
const RETRY_MS = 3000;
const TIMELINE_EVERY_MS = 9000;

async function timelineOf(api, sessionId) {
  try {
    return (await api(`/sessions/${encodeURIComponent(sessionId)}/timeline`)).events || [];
  } catch {
    return [];
  }
}

function whyNot(events, problem, recordingPolicy) {
  const said = events.filter((e) => NOT_KEPT[e.event] || e.event === "artifacts_erased").pop();
  if (said?.event === "artifacts_erased") return `its artifacts were erased${said.by ? ` by ${said.by}` : ""}`;
  if (said && NOT_KEPT[said.event]) return `${NOT_KEPT[said.event]}${said.reason ? `: ${said.reason}` : ""}`;
  if (recordingPolicy === "off") return "this dispatcher does not record calls (RECORDING=off)";
  return problem;  // the artifacts route's own answer
}

// The record once it is kept, waiting up to `waitSeconds` while the recording is still being
// uploaded (it is completed after the session ends). `recordingPolicy`: /status's, when known;
// `events`: the session's timeline when the page has just read it.
export async function loadRecord(api, sessionId, { waitSeconds = 0, recordingPolicy = null, events: known = null } = {}) {
  const until = performance.now() + waitSeconds * 1000;
  let events = known;
  let timelineAt = known ? performance.now() : -Infinity;
  for (;;) {
    let listing = null;
    let problem = null;
    try {
      listing = await api(`/sessions/${encodeURIComponent(sessionId)}/artifacts`);
    } catch (error) {
      if (error.status !== 404) return { kept: false, why: `${error.message}${error.code ? ` (${error.code})` : ""}` };
      problem = error.message;
    }
    const names = new Set((listing?.artifacts || []).map((a) => a.name));
    if (names.has("recording.wav") && names.has("report.json")) return readRecord(listing);
    const last = performance.now() >= until;
    // The last look reads it once more, unless it was read a moment ago.
    if (performance.now() - timelineAt >= (last ? RETRY_MS : TIMELINE_EVERY_MS)) {
      events = await timelineOf(api, sessionId);
      timelineAt = performance.now();
    }
    // Said why there is none (or nothing is recorded here at all): no use waiting.
    const ended = recordingPolicy === "off" || events.some((e) => NOT_KEPT[e.event] || e.event === "artifacts_erased");
    if (ended || last) {
      if (listing && names.size) return readRecord(listing);
      const why = whyNot(events, problem, recordingPolicy)
        || "nothing kept yet: the recording is written when the session ends";
      return { kept: false, why };
    }
    await pause(RETRY_MS);
  }
}

async function download(url, as) {
  const answer = await fetch(url, { credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" });
  if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
  return as === "json" ? answer.json() : answer.text();
}

async function readRecord(listing) {
  const url = Object.fromEntries(listing.artifacts.map((a) => [a.name, a.url]));
  const record = { kept: true, audioUrl: url["recording.wav"] || null, logsUrl: url["logs.jsonl"] || null, turns: [],
    report: null, problems: [] };
  if (url["report.json"]) {
    record.report = await download(url["report.json"], "json")
      .catch((error) => { record.problems.push(`report.json: ${error.message}`); return null; });
  }
  if (url["transcript.jsonl"]) {
    const text = await download(url["transcript.jsonl"], "text")
      .catch((error) => { record.problems.push(`transcript.jsonl: ${error.message}`); return ""; });
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try {
        record.turns.push(JSON.parse(line));
      } catch {
        record.problems.push("transcript.jsonl: a line that is not JSON");
      }
    }
  }
  return record;
}

const seconds = (value) => (typeof value === "number" ? `${value.toFixed(2)} s` : "–");

// Draws `record` into `box`: the recording, what the report says of it, and the turns.
export function showRecord(box, record) {
  box.replaceChildren();
  if (!record.kept) {
    box.appendChild(element("p", `Not recorded: ${record.why}.`, "not-recorded"));
    return;
  }
  if (record.audioUrl) {
    const audio = element("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = record.audioUrl;
    audio.className = "recording";
    box.appendChild(audio);
  }
  const kept = record.report?.recording;
  if (kept) {
    const what = `Recording ${kept.status}${kept.seconds != null ? `, ${seconds(kept.seconds)}` : ""}`
      + `${kept.why ? `: ${kept.why}` : ""} (caller left, bot right).`;
    box.appendChild(element("p", what, "muted"));
  }
  for (const problem of record.problems) box.appendChild(element("p", problem, "not-recorded"));
  const transcript = record.report?.transcript;
  if (!record.turns.length) {
    const why = transcript && transcript.kept === false && transcript.why ? `: ${transcript.why}` : "";
    box.appendChild(element("p", `No transcript${why}.`, "muted"));
    return;
  }
  const { table, body } = headedTable(["at", "who", "text", "latency"], "transcript");
  for (const turn of record.turns) {
    const row = body.insertRow();
    row.insertCell().textContent = seconds(turn.start);
    row.insertCell().textContent = String(turn.who ?? "–");
    const text = turn.text ? String(turn.text) : "(no text)";
    row.insertCell().textContent = turn.interrupted ? `${text} (interrupted)` : text;
    row.insertCell().textContent = turn.latency != null ? seconds(turn.latency) : "";
  }
  box.appendChild(table);
}
