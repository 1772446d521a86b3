// The SIP edges as GET /status's `sip_edges` gives them (null without SIP_EDGE_URL): one row an edge, as
// `voicefleet status` shows it (docs/sip.md, "Is the edge up?"): answering or why not, its calls over its
// slots, each registering trunk's registration (a refusal with the registrar's code, a failure with PJSUA's
// reason), the requests it refused over the last minute and the code it runs. Text only, never HTML: an
// edge's answer (a registrar's reason, an error) is inserted as text.

import { headedTable } from "./dom.js";

export const SIP_EDGE_TITLES = ["edge", "answering", "calls", "registrations", "refused (1 min)", "version"];

function answering(edge) {
  if (!edge.answering) return edge.error || "not answering";
  const workers = edge.workers ? ` · ${edge.workers.answering}/${edge.workers.total} workers` : "";
  return (edge.ready ? "yes" : "yes, its SIP not up yet") + workers;
}

function registration(trunk) {
  if (trunk.registration === "refused") return `${trunk.name} refused ${trunk.code ?? ""} ${trunk.reason ?? ""}`.trim();
  if (trunk.registration === "failed") return `${trunk.name} failed: ${trunk.reason || "no REGISTER sent"}`;
  return `${trunk.name} ${trunk.registration}`;
}

export function sipEdgeRows(edges) {
  return edges.map((edge) => {
    if (!edge.answering) return [edge.url, answering(edge), "–", "–", "–", "–"];
    const registering = (edge.trunks || []).filter((t) => t.registration !== "not_registering").map(registration);
    if (edge.trunks_cut) registering.push(`${edge.trunks_cut} more trunks not shown`);
    return [edge.url, answering(edge), `${edge.calls?.in_progress ?? "–"}/${edge.calls?.total ?? "–"}`,
      registering.join("; ") || "none", String(edge.refused_last_minute ?? "–"), edge.version || "–"];
  });
}

// Draws `edges` into `box` (a table of text, each edge not answering marked), and `note` says how many answer;
// `section` is hidden when the dispatcher lists no edge.
export function showSipEdges(section, box, note, edges) {
  section.hidden = !Array.isArray(edges);
  box.replaceChildren();
  if (!Array.isArray(edges)) return;
  const { table, body } = headedTable(SIP_EDGE_TITLES);
  table.setAttribute("aria-label", "each SIP edge: answering, calls, registrations, refusals, version");
  sipEdgeRows(edges).forEach((line, i) => {
    const row = body.insertRow();
    if (!edges[i].answering) row.className = "failed";
    for (const text of line) row.insertCell().textContent = text;
  });
  box.appendChild(table);
  note.textContent = `${edges.filter((e) => e.answering).length} of ${edges.length} answering`;
}
