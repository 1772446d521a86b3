// A session's cost by part, as GET /sessions/{id}'s `cost` gives it (dispatcher/sessions/cost.py): its
// machine, each service by kind and model with what it used, a WebRTC call's TURN relay, and the total. Nothing is priced here:
// an amount the answer leaves out (no price for the machine, a model not in the price table) is
// "not priced", never $0. Marks: "estimated" is the answer's `estimated`; "so far" a running session's
// (priced until now). Everything is inserted as text.

import { element, headedTable } from "./dom.js";

export const NOT_PRICED = "not priced";

const ACTIVE = new Set(["starting", "started", "joined"]);
// What each kind of service used, in the order shown (botchannel/usage.py's counts).
const UNITS = {
  prompt_tokens: "prompt tokens", completion_tokens: "completion tokens",
  cache_read_input_tokens: "cache-read tokens", cache_creation_input_tokens: "cache-write tokens",
  reasoning_tokens: "reasoning tokens", input_audio_tokens: "input audio tokens",
  output_audio_tokens: "output audio tokens", cache_read_input_audio_tokens: "cache-read audio tokens",
  characters: "characters", audio_seconds: "seconds of audio",
};

// Dollars as the answer has them (rounded to a millionth): a fraction of a cent keeps its digits.
export function usd(dollars) {
  if (typeof dollars !== "number" || !Number.isFinite(dollars)) return NOT_PRICED;
  const digits = dollars === 0 ? 2 : dollars < 0.01 ? 6 : dollars < 1 ? 4 : 2;
  return `$${dollars.toFixed(digits)}`;
}

function used(row) {
  const counts = Object.keys(UNITS).filter((name) => typeof row[name] === "number")
    .map((name) => `${row[name].toLocaleString("en-US")} ${UNITS[name]}`);
  return counts.join(", ") || "nothing counted";
}

function seconds(value) {
  return typeof value === "number" ? `${value.toFixed(1)} s` : "–";
}

// A WebRTC call's TURN relay (dispatcher/usage/relay_cost.py): relayed and priced, relayed and "not
// priced", or direct and $0; none when the bot reported no transport (not_counted says why).
function relayLine(relay) {
  if (!relay) return null;
  const carried = `${relay.local_candidate} ↔ ${relay.remote_candidate}, `
    + `${Number(relay.bytes_sent).toLocaleString("en-US")} bytes sent, `
    + `${Number(relay.bytes_received).toLocaleString("en-US")} received`;
  if (!relay.relayed) return ["TURN relay", `direct (${carried})`, usd(0)];
  const priced = typeof relay.usd === "number";
  return ["TURN relay", `relayed (${carried})` + (priced ? ` at ${usd(relay.usd_per_gb)} a GB` : ` (${relay.why})`),
    priced ? usd(relay.usd) : NOT_PRICED];
}

// The lines the detail shows: [part, what, amount]; `marks` beside the total; `notCounted` as given.
export function costParts(cost, sessionStatus) {
  if (!cost) return null;
  const machineWhat = [`${seconds(cost.machine_seconds)} (running ${seconds(cost.session_seconds)}`
    + `${cost.idle_seconds ? `, idle in the reserve ${seconds(cost.idle_seconds)}` : ""})`];
  if (typeof cost.price_per_hour === "number") {
    machineWhat.push(`at ${usd(cost.price_per_hour)} an hour${cost.size ? ` (${cost.size})` : ""}`);
  }
  const lines = [["machine", `${cost.provider}: ${machineWhat.join(" ")}`, usd(cost.machine_usd)]];
  const services = cost.services;
  if (!services) {
    lines.push(["services", "not priced on this dispatcher (no price table)", NOT_PRICED]);
  } else if (!services.reported) {
    lines.push(["services", "not reported by the bot", "–"]);
  } else if (!(services.usage || []).length) {
    lines.push(["services", "none: the bot reported no LLM, TTS or STT use", usd(services.usd)]);
  } else {
    for (const row of services.usage) {
      const name = `${row.kind ?? "service"} ${row.model ?? row.processor ?? ""}`.trim();
      const priced = typeof row.usd === "number";
      lines.push([name, used(row) + (priced || !row.why ? "" : ` (${row.why})`), priced ? usd(row.usd) : NOT_PRICED]);
    }
  }
  const relay = relayLine(cost.relay);
  if (relay) lines.push(relay);
  const marks = [];
  if (cost.estimated) marks.push("estimated");
  if (ACTIVE.has(sessionStatus)) marks.push("so far");
  return { lines, total: usd(cost.total), marks, notCounted: [...(cost.not_counted || [])] };
}

export function showCost(box, cost, sessionStatus) {
  box.replaceChildren();
  const parts = costParts(cost, sessionStatus);
  if (!parts) {
    box.appendChild(element("p", "No cost: no machine was launched or claimed for this session.", "muted"));
    return;
  }
  const { table, body } = headedTable(["part", "what it used", "amount"], "cost");
  for (const line of parts.lines) {
    const row = body.insertRow();
    for (const text of line) row.insertCell().textContent = text;
    if (line[2] === NOT_PRICED) row.className = "not-priced";
  }
  const total = table.createTFoot().insertRow();
  total.insertCell().textContent = "total";
  total.insertCell().textContent = parts.marks.join(", ");
  total.insertCell().textContent = parts.total;
  total.className = "total";
  box.appendChild(table);
  if (parts.notCounted.length) {
    box.appendChild(element("p", "Not counted:", "muted"));
    const list = element("ul", null, "not-counted muted");
    for (const what of parts.notCounted) list.appendChild(element("li", what));
    box.appendChild(list);
  }
}
