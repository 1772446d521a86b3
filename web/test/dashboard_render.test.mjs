// The dashboard's session parts and campaigns, rendered in headless Chromium (a real DOM): a session's cost by part
// as GET /sessions/{id}'s `cost` gives it (an unpriced model is "not priced", never $0), its bot logs as
// text a page at a time, and the admin actions' confirmation step.
//
//   npm test --prefix web          (tests/web/test_dashboard_render.py runs it in the suite)
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const src = join(dirname(fileURLToPath(import.meta.url)), "..", "src");
const MARKUP = '<img src=x onerror="window.__injected = 1"><b>bold</b>';
let browser;
let page;

before(async () => {
  const bundled = await build({
    stdin: { contents: 'export * from "./session_cost.js"; export * from "./session_logs.js";'
      + ' export * from "./admin_actions.js";'
      + ' export * from "./sip_edges.js"; export * from "./campaigns.js";', resolveDir: src },
    bundle: true, write: false, format: "iife", globalName: "dash", target: "es2022", logLevel: "warning",
  });
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"], timeout: 120000 });  // a loaded machine starts it slowly
  page = await browser.newPage();
  await page.setContent("<!doctype html><body></body>");
  await page.addScriptTag({ content: bundled.outputFiles[0].text });
  // A confirmation's box and outcome in a fresh page body, and a `send` that records what it sent.
  await page.evaluate(() => {
    window.confirming = () => {
      const box = document.createElement("section");
      const said = document.createElement("p");
      document.body.replaceChildren(box, said);
      const sent = [];
      const send = async (method, path) => { sent.push(`${method} ${path}`); return { status: 204, body: null }; };
      return { box, said, sent, send, asker: window.dash.confirmer(box, said) };
    };
  });
});

after(async () => {
  await browser?.close();
});

// A fresh box in the page; `draw` runs there with (dash, box, arg) and the box's rows come back as text.
async function drawn(draw, arg) {
  return page.evaluate(async ([source, value]) => {
    const box = document.createElement("div");
    document.body.replaceChildren(box);
    await new Function("dash", "box", "arg", `return ${source}`)(window.dash, box, value);
    return { rows: [...box.querySelectorAll("tr")].map((row) => [...row.cells].map((c) => c.textContent)),
      text: box.innerText, html: box.innerHTML, elements: box.querySelectorAll("img, b, script").length };
  }, [draw, arg]);
}

const LIVE = {
  currency: "USD", total: 0.014593, machine_usd: 0.01234, session_usd: 0.01, idle_usd: 0.00234,
  machine_seconds: 61.7, session_seconds: 50, idle_seconds: 11.7, price_per_hour: 0.72, provider: "fly",
  size: "1 vCPU, 2 GB", estimated: true,
  services: { reported: true, usd: 0.002253, not_priced: ["tts acme-voice-2"], usage: [
    { kind: "llm", processor: "OpenAILLMService", model: "gpt-4o-mini", prompt_tokens: 1200, completion_tokens: 80,
      usd: 0.000228, price_source: "table" },
    { kind: "tts", processor: "AcmeTTSService", model: "acme-voice-2", characters: 420, priced: "not priced",
      why: "no price for tts model acme-voice-2 in the table (USAGE_PRICES adds one)" },
    { kind: "stt", processor: "DeepgramSTTService", model: "nova-3", audio_seconds: 40.5, usd: 0.002025,
      price_source: "table" },
  ] },
  not_counted: ["Daily room minutes", "tts acme-voice-2: not priced"],
};

test("a live session's cost: each part with its amount, an unpriced model not priced, marked estimated so far", async () => {
  const shown = await drawn("dash.showCost(box, arg, 'joined')", LIVE);
  assert.deepEqual(shown.rows[0], ["part", "what it used", "amount"]);
  assert.equal(shown.rows[1][0], "machine");
  assert.match(shown.rows[1][1], /^fly: 61\.7 s \(running 50\.0 s, idle in the reserve 11\.7 s\) at \$0\.7200 an hour \(1 vCPU, 2 GB\)$/);
  assert.equal(shown.rows[1][2], "$0.0123");
  assert.deepEqual(shown.rows[2], ["llm gpt-4o-mini", "1,200 prompt tokens, 80 completion tokens", "$0.000228"]);
  assert.equal(shown.rows[3][0], "tts acme-voice-2");
  assert.match(shown.rows[3][1], /^420 characters \(no price for tts model acme-voice-2/);
  assert.equal(shown.rows[3][2], "not priced");
  assert.deepEqual(shown.rows[4], ["stt nova-3", "40.5 seconds of audio", "$0.002025"]);
  assert.deepEqual(shown.rows[5], ["total", "estimated, so far", "$0.0146"]);
  assert.match(shown.text, /Not counted:[\s\S]*Daily room minutes[\s\S]*tts acme-voice-2: not priced/);
  assert.doesNotMatch(shown.rows.map((r) => r[2]).join(" "), /\$0(\.0+)?(?![\d.])/);  // nothing unpriced shown as $0
});

test("an ended session reported by its bot: no mark; an unpriced machine leaves the total not priced", async () => {
  const ended = await drawn("dash.showCost(box, arg, 'ended')", { ...LIVE, estimated: false });
  assert.deepEqual(ended.rows.at(-1), ["total", "", "$0.0146"]);
  const unpriced = { machine_seconds: 30, session_seconds: 30, idle_seconds: 0, provider: "acme", estimated: true,
    not_counted: ["the machine: no price for this provider and size"] };
  const shown = await drawn("dash.showCost(box, arg, 'ended')", unpriced);
  assert.equal(shown.rows[1][2], "not priced");
  assert.deepEqual(shown.rows[2], ["services", "not priced on this dispatcher (no price table)", "not priced"]);
  assert.deepEqual(shown.rows.at(-1), ["total", "estimated", "not priced"]);
  const quiet = await drawn("dash.showCost(box, arg, 'ended')",
    { ...LIVE, estimated: false, services: { reported: true, usd: 0, not_priced: [], usage: [] } });
  assert.deepEqual(quiet.rows[2], ["services", "none: the bot reported no LLM, TTS or STT use", "$0.00"]);
  const unreported = await drawn("dash.showCost(box, arg, 'ended')",
    { ...LIVE, services: { reported: false, usd: 0, not_priced: [], usage: [] } });
  assert.deepEqual(unreported.rows[2], ["services", "not reported by the bot", "–"]);
  const none = await drawn("dash.showCost(box, arg, 'failed')", null);
  assert.match(none.text, /No cost: no machine was launched or claimed/);
});

test("a WebRTC call's TURN relay: priced when relayed, not priced without a price, $0 and said when direct", async () => {
  const relay = { relayed: true, local_candidate: "relay", remote_candidate: "prflx", bytes_sent: 120000,
    bytes_received: 100000, packets_sent: 500, packets_received: 450, usd: 0.000012, usd_per_gb: 0.09 };
  const ended = { ...LIVE, estimated: false };
  const relayed = await drawn("dash.showCost(box, arg, 'ended')", { ...ended, relay_usd: 0.000012, relay });
  assert.deepEqual(relayed.rows[5],
    ["TURN relay", "relayed (relay ↔ prflx, 120,000 bytes sent, 100,000 received) at $0.0900 a GB", "$0.000012"]);
  const { usd: _, usd_per_gb: __, ...bare } = relay;
  const unpriced = await drawn("dash.showCost(box, arg, 'ended')",
    { ...ended, relay: { ...bare, priced: "not priced", why: "no egress price for this provider's cloud" } });
  assert.deepEqual(unpriced.rows[5].slice(0, 1).concat(unpriced.rows[5].slice(2)), ["TURN relay", "not priced"]);
  assert.match(unpriced.rows[5][1], /no egress price/);
  const direct = await drawn("dash.showCost(box, arg, 'ended')",
    { ...ended, relay_usd: 0, relay: { ...bare, relayed: false, local_candidate: "host", remote_candidate: "srflx" } });
  assert.deepEqual(direct.rows[5], ["TURN relay", "direct (host ↔ srflx, 120,000 bytes sent, 100,000 received)", "$0.00"]);
});

test("a bot's log lines holding markup are shown as text: no element is made of them, nothing runs", async () => {
  const body = [
    { time: "2026-11-28T00:00:00Z", level: "info", logger: "<b>bot</b>", message: MARKUP },
    { time: "2026-11-28T00:00:01Z", level: "error", logger: "pipecat", message: "</td></tr><script>window.__injected = 2</script>" },
  ].map((line) => JSON.stringify(line)).join("\n") + "\nnot json <img src=y onerror=window.__injected=3>\n";
  const shown = await drawn("dash.showLogs(box, dash.parseLogs(arg))", body);
  assert.equal(shown.elements, 0, shown.html);
  assert.equal(await page.evaluate("window.__injected"), undefined);
  assert.deepEqual(shown.rows[1], ["2026-11-28T00:00:00Z", "info", "<b>bot</b>", MARKUP]);
  assert.equal(shown.rows[2][3], "</td></tr><script>window.__injected = 2</script>");
  assert.deepEqual(shown.rows[3], ["", "", "", "not json <img src=y onerror=window.__injected=3>"]);
});

test("the logs show their last lines first, a page of 50 at a time, Earlier and Later move through them", async () => {
  const body = Array.from({ length: 120 }, (_, n) => JSON.stringify({ time: `t${n + 1}`, level: "info", logger: "bot",
    message: `line ${n + 1}` })).join("\n");
  const pages = await page.evaluate((text) => {
    const box = document.createElement("div");
    document.body.replaceChildren(box);
    window.dash.showLogs(box, window.dash.parseLogs(text));
    const seen = () => {
      const [earlier, later] = box.querySelectorAll("button");
      const messages = [...box.querySelectorAll("tbody tr")].map((row) => row.cells[3].textContent);
      return { first: messages[0], last: messages.at(-1), count: messages.length, note: box.querySelector(".pager span").textContent,
        earlier: !earlier.disabled, later: !later.disabled };
    };
    const shown = [seen()];
    box.querySelectorAll("button")[0].click();
    shown.push(seen());
    box.querySelectorAll("button")[0].click();
    shown.push(seen());
    box.querySelectorAll("button")[1].click();
    shown.push(seen());
    return shown;
  }, body);
  assert.deepEqual(pages[0], { first: "line 71", last: "line 120", count: 50, note: "lines 71–120 of 120", earlier: true, later: false });
  assert.deepEqual(pages[1], { first: "line 21", last: "line 70", count: 50, note: "lines 21–70 of 120", earlier: true, later: true });
  assert.deepEqual(pages[2], { first: "line 1", last: "line 20", count: 20, note: "lines 1–20 of 120", earlier: false, later: true });
  assert.deepEqual(pages[3], pages[1]);
  const many = await page.evaluate(() => {
    const parsed = window.dash.parseLogs(Array.from({ length: 5003 }, (_, n) => `{"message": "m${n}"}`).join("\n"));
    return { count: parsed.lines.length, skipped: parsed.skipped, first: parsed.lines[0].message };
  });
  assert.deepEqual(many, { count: 5000, skipped: 3, first: "m3" });
});

test("logs not kept say why, as the session's report says it", async () => {
  const shown = await drawn("dash.loadLogs(arg).then((logs) => dash.showLogs(box, logs))",
    { kept: true, logsUrl: null, report: { bot_logs: { kept: false, why: "the session withholds its transcript" } } });
  assert.equal(shown.text, "No bot logs: the session withholds its transcript.");
});

test("a logs.jsonl past the bytes the dispatcher writes is not read past them, nor shown", async () => {
  const line = `${JSON.stringify({ level: "info", message: "x".repeat(1000) })}\n`;
  const bodies = { "/big.jsonl": line.repeat(8 * 1024), "/fits.jsonl": line.repeat(2000) };  // 8 MB; 2 MB
  await page.route("http://logs.test/**", (route) => route.fulfill({ body: bodies[new URL(route.request().url()).pathname],
    contentType: "application/x-ndjson", headers: { "Access-Control-Allow-Origin": "*" } }));
  try {
    const big = await drawn("dash.loadLogs(arg).then((logs) => dash.showLogs(box, logs))",
      { kept: true, logsUrl: "http://logs.test/big.jsonl" });
    assert.equal(big.text, "No bot logs: logs.jsonl is larger than the 2097152 bytes the dispatcher writes: not shown.");
    const fits = await drawn("dash.loadLogs(arg).then((logs) => dash.showLogs(box, logs))",
      { kept: true, logsUrl: "http://logs.test/fits.jsonl" });
    assert.match(fits.text, /lines 1951–2000 of 2000/);
  } finally {
    await page.unroute("http://logs.test/**");
  }
});

test("a stop is sent only once confirmed, the confirmation naming the session; Cancel sends nothing", async () => {
  const outcome = await page.evaluate(async () => {
    const { box, said, sent, send, asker } = window.confirming();
    const stop = window.dash.actionButton("Stop session", asker,
      () => ({ ...window.dash.stopSession("s-<b>1</b>", send), after: () => sent.push("read again") }));
    document.body.appendChild(stop);
    const hiddenAtFirst = box.hidden;
    const emptyAtFirst = box.querySelectorAll("button").length === 0;  // no confirmation before it is asked
    stop.click();
    const question = box.querySelector(".confirm-what").textContent;
    const shownAsked = !box.hidden && sent.length === 0;
    box.querySelector(".confirm-no").click();
    const cancelled = [box.hidden, said.textContent, sent.length, box.childElementCount];
    stop.click();
    const yes = box.querySelector(".confirm-yes");
    await new Promise((armed) => setTimeout(armed, window.dash.ARM_MS + 50));
    yes.click();
    yes.click();  // a double click sends it once
    await new Promise((done) => setTimeout(done, 0));
    return { hiddenAtFirst, emptyAtFirst, question, shownAsked, cancelled, sent, said: said.textContent,
      hidden: box.hidden, left: box.childElementCount };
  });
  assert.equal(outcome.hiddenAtFirst, true);
  assert.equal(outcome.emptyAtFirst, true);
  assert.equal(outcome.shownAsked, true);
  assert.match(outcome.question, /^Stop session s-<b>1<\/b>\? Its bot is stopped and its call ends for the caller now\./);
  assert.match(outcome.question, /audit trail under your admin key/);
  assert.deepEqual(outcome.cancelled, [true, "Cancelled: nothing was changed.", 0, 0]);
  assert.deepEqual(outcome.sent, ["DELETE /sessions/s-%3Cb%3E1%3C%2Fb%3E", "read again"]);
  assert.equal(outcome.said, "Session s-<b>1</b>: stopped.");
  assert.equal(outcome.hidden, true);
  assert.equal(outcome.left, 0);
});

test("a rollback's confirmation names what moves where; its button is on the releases it takes traffic from", async () => {
  const canary = { stable: "v1", version: [1700000000000, 3], releases: [{ name: "v1", weight: 80, stable: true }, { name: "v2", weight: 20, stable: false },
    { name: "v0", weight: 0, stable: false }] };
  const promoted = { stable: "v2", version: [1700000000000, 4], releases: [{ name: "v1", weight: 0, stable: false }, { name: "v2", weight: 100, stable: true }] };
  const seen = await page.evaluate(async ([canaryView, promotedView]) => {
    const sent = [];
    const send = async (method, path, body) => {
      sent.push(`${method} ${path} ${JSON.stringify(body)}`);
      return { status: 200, body: { reason: "rolled back to v1 (v2 from 20% to 0%)" } };
    };
    const action = window.dash.rollBack(canaryView, send);
    const said = await action.run();
    const alone = { stable: "v1", releases: [{ name: "v1", weight: 100, stable: true }] };
    // The dispatcher names where a rollback from a stable release taking everything goes (null: nowhere).
    const named = { ...promotedView, previous_stable: "v1" };
    const nowhere = { ...promotedView, previous_stable: null };
    return { from: [window.dash.rolledBackFrom(canaryView), window.dash.rolledBackFrom(promotedView),
      window.dash.rolledBackFrom(alone), window.dash.rolledBackFrom(named), window.dash.rolledBackFrom(nowhere)],
      canary: action.say, promoted: window.dash.rollBack(promotedView, send).say,
      named: window.dash.rollBack(named, send).say, sent, said };
  }, [canary, promoted]);
  assert.deepEqual(seen.from, [["v2"], ["v2"], [], ["v2"], []]);
  assert.match(seen.named, /every new session goes back to v1 \(100 %\), the release that was stable before v2 was promoted, .*v2 from 100 % to 0 %\./);
  assert.match(seen.canary, /every new session goes to the stable release v1 \(100 %\): v2 from 20 % to 0 %\./);
  assert.match(seen.promoted, /back to the release that was stable before v2 was promoted/);
  // Sent with the version it was asked about: the dispatcher refuses it once the traffic is another.
  assert.deepEqual(seen.sent, ['POST /releases/rollback {"version":[1700000000000,3]}']);
  assert.equal(seen.said, "Rolled back: rolled back to v1 (v2 from 20% to 0%).");
});

test("a double event confirms nothing: Enter held on the action's button, or a second click at once, lands on Cancel or on a yes not yet armed", async () => {
  await page.evaluate(() => {
    const { said, sent, send, asker } = window.confirming();
    said.id = "said";
    window.sent = sent;
    const stop = window.dash.actionButton("Stop session", asker, () => window.dash.stopSession("s1", send));
    stop.id = "stop";
    document.body.appendChild(stop);
  });
  await page.focus("#stop");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Enter");  // a key repeat, or Enter pressed twice
  await page.waitForTimeout(50);
  assert.deepEqual(await page.evaluate("window.sent"), []);
  assert.equal(await page.evaluate("document.getElementById('said').textContent"), "Cancelled: nothing was changed.");

  await page.click("#stop");
  await page.click(".confirm-yes", { force: true, noWaitAfter: true, timeout: 1000 }).catch(() => {});  // the second click of a double click
  await page.waitForTimeout(50);
  assert.deepEqual(await page.evaluate("window.sent"), []);
  await page.waitForSelector(".confirm-yes:not([disabled])", { timeout: 5000 });  // armed a moment later
  await page.click(".confirm-yes");
  await page.waitForFunction("window.sent.length === 1");
  assert.deepEqual(await page.evaluate("window.sent"), ["DELETE /sessions/s1"]);
});

test("a stop asked about a session that is no longer the one shown is withdrawn, not sent", async () => {
  const seen = await page.evaluate(async () => {
    const { box, said, sent, send, asker } = window.confirming();
    asker.ask({ ...window.dash.stopSession("s1", send), session: "s1" });
    asker.withdraw((action) => action.session !== undefined && action.session !== "s2");  // s2 opened meanwhile
    return { hidden: box.hidden, buttons: box.querySelectorAll("button").length, said: said.textContent, sent };
  });
  assert.deepEqual(seen, { hidden: true, buttons: 0, said: "Cancelled (what was asked about is no longer shown): nothing was changed.",
    sent: [] });
});

test("the SIP edges: each answering or why not, its registrations (refused, failed), refusals and version", async () => {
  const edges = [
    { url: "http://10.0.1.5:5080", answering: true, ready: true, version: "sipedge-0123456789ab",
      calls: { in_progress: 3, free: 51, total: 54 }, refused_last_minute: 12,
      trunks: [{ name: "twilio", registration: "not_registering" },
        { name: "pbx", registration: "refused", code: 403, reason: "Forbidden" },
        { name: "pbx6", registration: "failed", status: 171060, reason: "Unsupported transport (PJSIP_EUNSUPTRANSPORT)" }] },
    { url: "http://10.0.1.6:5080", answering: false, error: `not answering: connection refused ${MARKUP}` },
  ];
  const shown = await drawn(`(() => { const s = document.createElement("section"), t = document.createElement("div"),
    n = document.createElement("p"); box.append(s, n); s.appendChild(t); s.hidden = true;
    dash.showSipEdges(s, t, n, arg); })()`, edges);
  assert.deepEqual(shown.rows, [
    ["edge", "answering", "calls", "registrations", "refused (1 min)", "version"],
    ["http://10.0.1.5:5080", "yes", "3/54",
      "pbx refused 403 Forbidden; pbx6 failed: Unsupported transport (PJSIP_EUNSUPTRANSPORT)", "12", "sipedge-0123456789ab"],
    ["http://10.0.1.6:5080", `not answering: connection refused ${MARKUP}`, "–", "–", "–", "–"],
  ]);
  assert.match(shown.text, /1 of 2 answering/);
  assert.equal(shown.elements, 0);  // an edge's words are text, never markup
  const none = await drawn(`(() => { const s = document.createElement("section"), t = document.createElement("div");
    box.append(s); s.appendChild(t); dash.showSipEdges(s, t, document.createElement("p"), null); })()`, null);
  assert.equal(none.html, '<section hidden=""><div></div></section>');  // no SIP_EDGE_URL: no part
});

const CAMPAIGNS = [
  { id: "cmp_00000000000000a1", name: `renewals ${MARKUP}`, status: "running", rows: 120, placed: 41, in_progress: 3,
    pending: 70, retrying: 6, skipped: 2, done: 39, outcomes: { answered: 30, busy: 4, [`no_answer ${MARKUP}`]: 5 },
    pace: 2, concurrency: 5, key: `client ${MARKUP}`, caller: "0123456789abcdef" },
  { id: "cmp_00000000000000b2", name: null, status: "stopped", rows: 3, placed: 1, in_progress: 0, pending: 2,
    retrying: 0, skipped: 0, done: 1, outcomes: { voicemail: 1 }, pace: null, concurrency: 1, key: null,
    caller: "admin-0a1b2c3d4e5f" },
  { id: "cmp_00000000000000c3", name: "done", status: "finished", rows: 1, placed: 1, in_progress: 0, pending: 0,
    retrying: 0, skipped: 0, done: 1, outcomes: {}, pace: 1, concurrency: 1 },
];

test("the campaigns: each one's status, rows, calls, outcomes and pace as text; Stop on a running one, Resume on a stopped one", async () => {
  const shown = await drawn(`dash.showCampaigns(box, arg, { asker: dash.confirmer(document.createElement("section"),
    document.createElement("p")), send: async () => ({}), fetchText: async () => "", note: document.createElement("p") })`, CAMPAIGNS);
  assert.deepEqual(shown.rows, [
    ["campaign", "key", "status", "rows", "placed", "in progress", "retrying", "skipped", "outcomes", "pace", ""],
    [`renewals ${MARKUP} (cmp_00000000000000a1)`, `client ${MARKUP}`, "running", "120", "41", "3", "6", "2",
      `answered 30, busy 4, no_answer ${MARKUP} 5`, "2/s · 5 at once", "Stop Results (CSV)"],
    ["cmp_00000000000000b2", "admin-0a1b2c3d4e5f", "stopped", "3", "1", "0", "0", "0", "voicemail 1", "carrier's pace · 1 at once",
      "Resume Results (CSV)"],
    ["done (cmp_00000000000000c3)", "–", "finished", "1", "1", "0", "0", "0", "–", "1/s · 1 at once", " Results (CSV)"],
  ]);
  assert.equal(shown.elements, 0);  // a campaign's words are text, never markup
  const none = await drawn(`dash.showCampaigns(box, [], {})`, null);
  assert.match(none.text, /No campaigns yet/);
});

test("a campaign's stop and resume are sent only once confirmed, each naming the campaign; Cancel sends nothing", async () => {
  const seen = await page.evaluate(async (campaigns) => {
    const until = async (done) => { for (let i = 0; i < 600 && !done(); i += 1) await new Promise((r) => setTimeout(r, 50)); };
    const { box, said, sent, send, asker } = window.confirming();
    const list = document.createElement("div");
    document.body.appendChild(list);
    window.dash.showCampaigns(list, campaigns, { asker, send, fetchText: async () => "", note: said });
    const buttons = [...list.querySelectorAll("button.admin-action")];
    buttons[1].click();  // Resume, then cancelled
    const resumeAsked = box.querySelector(".confirm-what").textContent;
    box.querySelector(".confirm-no").click();
    const afterCancel = [...sent];
    buttons[0].click();  // Stop, confirmed once armed
    const stopAsked = box.querySelector(".confirm-what").textContent;
    const yes = box.querySelector(".confirm-yes");
    await until(() => !yes.disabled);
    yes.click();
    await until(() => sent.length > 0 && said.textContent);
    return { buttons: buttons.map((b) => b.textContent), resumeAsked, afterCancel, stopAsked, sent };
  }, CAMPAIGNS);
  assert.deepEqual(seen.buttons, ["Stop", "Resume"]);
  assert.match(seen.resumeAsked, /^Resume campaign cmp_00000000000000b2\?/);
  assert.deepEqual(seen.afterCancel, []);
  assert.match(seen.stopAsked, /^Stop campaign cmp_00000000000000a1\? No new call is placed; the calls in progress go on/);
  assert.deepEqual(seen.sent, ["POST /campaigns/cmp_00000000000000a1/stop"]);
});

test("a campaign's results download as a CSV file read with the key; a refusal is said", async () => {
  const seen = await page.evaluate(async (campaigns) => {
    const until = async (done) => { for (let i = 0; i < 600 && !done(); i += 1) await new Promise((r) => setTimeout(r, 50)); };
    const { said } = window.confirming();
    const list = document.createElement("div");
    document.body.appendChild(list);
    const asked = [];
    let clicked = null;
    const original = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function () { clicked = { download: this.download, href: this.href }; };
    try {
      window.dash.showCampaigns(list, campaigns.slice(0, 1), { asker: null, send: null, note: said,
        fetchText: async (path) => { asked.push(path); return "to,outcome\n"; } });
      list.querySelector("button.link").click();
      await until(() => clicked);
      const blob = await (await fetch(clicked.href)).text();
      window.dash.showCampaigns(list, campaigns.slice(0, 1), { asker: null, send: null, note: said,
        fetchText: async () => { throw new Error("no campaign of this key"); } });
      list.querySelector("button.link").click();
      await until(() => said.textContent);
      return { asked, download: clicked.download, blob, said: said.textContent };
    } finally {
      HTMLAnchorElement.prototype.click = original;
    }
  }, CAMPAIGNS);
  assert.deepEqual(seen, { asked: ["/campaigns/cmp_00000000000000a1/results?format=csv"],
    download: "cmp_00000000000000a1.csv", blob: "to,outcome\n",
    said: "Results of cmp_00000000000000a1 not read: no campaign of this key" });
});
