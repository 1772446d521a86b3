// A session's bot logs on the dashboard: `logs.jsonl`, which the dispatcher keeps with the session's
// recording once it ends (dispatcher/artifacts/bot_logs.py: checked, masked, at most 5000 lines), read
// through the download URL GET /sessions/{id}/artifacts gave the key (its own sessions; an admin's,
// any, audited). Shown the last PAGE lines first, a page at a time. A line is the bot's text, untrusted:
// inserted as text, never HTML.

import { element, headedTable } from "./dom.js";

export const PAGE = 50;
const MAX_LINES = 5000;  // the dispatcher keeps no more; a longer file is read from its end
// Nor more bytes (botchannel/recording.py's MAX_LOG_BYTES): a larger body is not this dispatcher's
// logs.jsonl, and is not read past this (a tab holding 100 MB of someone's text).
export const MAX_BYTES = 2 * 1024 * 1024;

// The body as text, or null once it passes `limit` bytes (the rest is never read).
async function boundedText(answer, limit) {
  const reader = answer.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return new Blob(chunks).text();
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
}

// The lines of a logs.jsonl body, the last MAX_LINES; one that is not a JSON object is shown as it is.
export function parseLogs(text) {
  const raw = String(text).split("\n").filter((line) => line.trim());
  const skipped = Math.max(0, raw.length - MAX_LINES);
  const lines = raw.slice(skipped).map((line) => {
    try {
      const parsed = JSON.parse(line);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed;
    } catch {
      // shown as it came
    }
    return { message: line };
  });
  return { lines, skipped };
}

// Page `page` counted from the end (0: the last PAGE lines), in time order.
export function logPage(lines, page, size = PAGE) {
  const pages = Math.max(1, Math.ceil(lines.length / size));
  const shown = Math.min(Math.max(0, page), pages - 1);
  const end = lines.length - shown * size;
  const start = Math.max(0, end - size);
  return { page: shown, start, end, lines: lines.slice(start, end), earlier: start > 0, later: shown > 0 };
}

// The record's logs (session_record.js's `logsUrl`, and what report.json says of them): read them,
// or say why there are none.
export async function loadLogs(record) {
  if (!record?.kept) return { lines: null, why: record?.why || "nothing kept for this session" };
  const said = record.report?.bot_logs;
  if (!record.logsUrl) {
    return { lines: null, why: said && said.kept === false && said.why ? said.why : "the session kept no bot logs" };
  }
  try {
    const answer = await fetch(record.logsUrl, { credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const text = await boundedText(answer, MAX_BYTES);
    if (text === null) {
      return { lines: null, why: `logs.jsonl is larger than the ${MAX_BYTES} bytes the dispatcher writes: not shown` };
    }
    const { lines, skipped } = parseLogs(text);
    return { lines, skipped, report: said || null };
  } catch (error) {
    return { lines: null, why: `logs.jsonl could not be read: ${error.message}` };
  }
}

function text(value) {
  return value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
}

// Draws `logs` (loadLogs's answer) into `box` at `page`; the pager's buttons draw the next one.
export function showLogs(box, logs, page = 0) {
  box.replaceChildren();
  if (!logs.lines) {
    box.appendChild(element("p", `No bot logs: ${logs.why}.`, "muted"));
    return;
  }
  if (!logs.lines.length) {
    box.appendChild(element("p", "The bot's log is empty.", "muted"));
    return;
  }
  const shown = logPage(logs.lines, page);
  const pager = element("p", null, "pager");
  const earlier = element("button", "Earlier");
  earlier.type = "button";
  earlier.disabled = !shown.earlier;
  earlier.addEventListener("click", () => showLogs(box, logs, shown.page + 1));
  const later = element("button", "Later");
  later.type = "button";
  later.disabled = !shown.later;
  later.addEventListener("click", () => showLogs(box, logs, shown.page - 1));
  const dropped = logs.report ? (logs.report.dropped_by_bot || 0) + (logs.report.dropped_here || 0) : 0;
  const note = `lines ${shown.start + 1}–${shown.end} of ${logs.lines.length}`
    + (dropped || logs.skipped ? ` (${dropped + (logs.skipped || 0)} earlier lines not kept)` : "");
  pager.append(earlier, " ", later, " ", element("span", note, "muted"));
  box.appendChild(pager);
  const { table, body } = headedTable(["time", "level", "logger", "message"], "logs");
  for (const line of shown.lines) {
    const row = body.insertRow();
    const level = text(line.level);
    if (level === "error" || level === "critical") row.className = "failed";
    for (const value of [line.time, level, line.logger, line.message]) row.insertCell().textContent = text(value);
  }
  box.appendChild(table);
}
