// The campaigns of calls out on the dashboard (docs/phone.md, "Campaigns"): GET /campaigns (with the
// dashboard's admin key: every key's, the newest first, the 100 it lists at most), one row a campaign as
// GET /campaigns/{id} gives its progress, with the key that created it (its name, else its id);
// a running one's Stop and a stopped one's Resume (POST /campaigns/{id}/stop, /resume), each confirmed
// first (admin_actions.js's confirmer); and its results as a CSV file. Every word of a campaign (its
// name, its outcomes) is inserted as text, never HTML.

import { actionButton } from "./admin_actions.js";
import { element, headedTable } from "./dom.js";

export const CAMPAIGN_TITLES = ["campaign", "key", "status", "rows", "placed", "in progress", "retrying", "skipped",
  "outcomes", "pace", ""];

function shown(value) {
  return value === null || value === undefined || value === "" ? "–" : String(value);
}

// Each outcome with its count, as `voicefleet calls campaign show` prints them: "busy 3, no_answer 1".
function outcomes(counts) {
  return Object.entries(counts || {}).map(([outcome, count]) => `${outcome} ${count}`).join(", ") || "–";
}

function pace(campaign) {
  const each = campaign.pace ? `${campaign.pace}/s` : "carrier's pace";
  return `${each} · ${shown(campaign.concurrency)} at once`;
}

export function campaignRows(campaigns) {
  return campaigns.map((c) => [c.name ? `${c.name} (${c.id})` : c.id, shown(c.key ?? c.caller), shown(c.status), shown(c.rows), shown(c.placed),
    shown(c.in_progress), shown(c.retrying), shown(c.skipped), outcomes(c.outcomes), pace(c)]);
}

function change(campaign, send, verb) {
  const label = verb === "stop" ? "Stop the campaign" : "Resume the campaign";
  const say = verb === "stop"
    ? `Stop campaign ${campaign.id}? No new call is placed; the calls in progress go on. It can be resumed.`
    : `Resume campaign ${campaign.id}? Its numbers not yet called are called again, at its pace.`;
  return {
    campaign: campaign.id,
    label,
    say,
    async run() {
      const answer = await send("POST", `/campaigns/${encodeURIComponent(campaign.id)}/${verb}`);
      return `Campaign ${campaign.id}: ${answer.body?.status ?? "changed"}.`;
    },
  };
}

export const stopCampaign = (campaign, send) => change(campaign, send, "stop");
export const resumeCampaign = (campaign, send) => change(campaign, send, "resume");

// The results as a file: a link cannot carry the key (a bearer header), so the page reads them with it
// and hands the browser the text it read as a download.
export async function downloadResults(campaignId, fetchText) {
  const text = await fetchText(`/campaigns/${encodeURIComponent(campaignId)}/results?format=csv`);
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const link = element("a");
  link.href = url;
  link.download = `${campaignId}.csv`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// Draws `campaigns` (GET /campaigns's list) into `box`; `actions`: {asker, send, fetchText, note} (the
// confirmation, the authorised call, the authorised text GET and where a failed download is said).
export function showCampaigns(box, campaigns, actions) {
  box.replaceChildren();
  if (!campaigns.length) {
    box.appendChild(element("p", "No campaigns yet: `POST /campaigns` or `voicefleet calls campaign FILE.csv` "
      + "starts one.", "muted"));
    return;
  }
  const { table, body } = headedTable(CAMPAIGN_TITLES);
  table.setAttribute("aria-label", "each campaign: status, rows, calls placed, outcomes, pace");
  campaignRows(campaigns).forEach((line, i) => {
    const campaign = campaigns[i];
    const row = body.insertRow();
    row.dataset.campaignId = campaign.id;
    for (const text of line) row.insertCell().textContent = text;
    const cell = row.insertCell();
    if (campaign.status === "running") {
      cell.appendChild(actionButton("Stop", actions.asker, () => stopCampaign(campaign, actions.send)));
    } else if (campaign.status === "stopped") {
      cell.appendChild(actionButton("Resume", actions.asker, () => resumeCampaign(campaign, actions.send)));
    }
    const csv = element("button", "Results (CSV)", "link");
    csv.type = "button";
    csv.addEventListener("click", () => downloadResults(campaign.id, actions.fetchText).catch((error) => {
      actions.note.textContent = `Results of ${campaign.id} not read: ${error.message}`;
    }));
    cell.append(" ", csv);
  });
  box.appendChild(table);
}
