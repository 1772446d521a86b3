// voicefleet local page, on Pipecat's official client (@pipecat-ai/client-js) and its SmallWebRTC
// transport: RTVI events, transcripts and reconnect handling come from the maintained library.
// Bundled into dispatcher/api/static/talk.js by `npm run build` in web/ (the bundle is committed).
// WavMediaManager keeps every request on this host (the default media manager loads code from
// Daily's CDN). `window.voicefleet` exposes the state for tests.
import { PipecatClient } from "@pipecat-ai/client-js";
import { SmallWebRTCTransport, WavMediaManager } from "@pipecat-ai/small-webrtc-transport";
import { loadRecord, showRecord } from "./session_record.js";

const $ = (id) => document.getElementById(id);
const state = (window.voicefleet = {
  status: "idle", sessionId: null, transportState: null, botAudioStartedAt: null,
  maxBotLevel: 0, maxMicLevel: 0, events: [], errors: [], readyIn: null, readyInShown: [], problem: null,
  waitFirstTold: null, waitSince: null, waitOverdue: false,
  record: null, recordFor: null,
});
let client = null;
let watching = null; // the AbortController of the session's watch (watchSession)
let countdown = null;
let audioContext = null;
let metering = false;
let hangingUp = false;

function log(message) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${message}`;
  $("log").prepend(item);
}

function render() {
  const waiting = state.readyIn !== null && ["starting", "connecting"].includes(state.status);
  if (waiting && state.waitOverdue) {
    const since = Math.round((performance.now() - state.waitSince) / 1000);
    $("status").textContent = `connecting, longer than the ${state.waitFirstTold} s estimated (${since} s so far)`;
    return;
  }
  $("status").textContent = waiting ? `connecting, about ${state.readyIn} s` : state.status;
}

function setStatus(status) {
  state.status = status;
  render();
  $("connect").disabled = !["idle", "ended", "failed"].includes(status);
  $("hangup").disabled = ["idle", "ended", "failed"].includes(status);
}

// Why the session failed, from its own record (the bot's error: file, line, exception, the way out):
// the client's own error says only that an offer was refused or the peer left.
function showProblem(detail, failed = true) {
  state.problem = detail;
  $("problem").textContent = detail ? `${failed ? "The bot failed" : "The bot reported an error"}: ${detail}` : "";
  $("problem").hidden = !detail;
}

async function explainEnd(sessionId) {
  if (!sessionId) return;
  try {
    const response = await fetch(`/sessions/${sessionId}`, { headers: apiHeaders() });
    if (!response.ok) return;
    const session = await response.json();
    const detail = session.status === "failed" ? session.detail ?? session.error : session.error;
    if (detail) {
      showProblem(detail, session.status === "failed");
      log(`session ${session.status}: ${detail}`);
    }
  } catch (error) {
    log(`reading the session: ${error.message}`);
  }
}

function apiHeaders() {
  const key = $("api-key").value.trim();
  return new Headers(key ? { Authorization: `Bearer ${key}` } : {});
}

function event(name, detail) {
  state.events.push(name);
  log(detail ? `${name}: ${detail}` : name);
}

// A level meter on a track: RMS of the waveform, sampled every animation frame.
function meter(track, element, onLevel) {
  audioContext ??= new AudioContext();
  const analyser = audioContext.createAnalyser();
  analyser.fftSize = 1024;
  audioContext.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const tick = () => {
    if (!metering) return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const level = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    element.value = level;
    onLevel(level);
    requestAnimationFrame(tick);
  };
  tick();
}

function onTrackStarted(track, participant) {
  if (track.kind !== "audio") return;
  if (participant?.local) {
    meter(track, $("mic-level"), (level) => { state.maxMicLevel = Math.max(state.maxMicLevel, level); });
    return;
  }
  $("bot-audio").srcObject = new MediaStream([track]); // WebAudio sees remote audio only while it plays
  meter(track, $("bot-level"), (level) => {
    state.maxBotLevel = Math.max(state.maxBotLevel, level);
    if (level > 0.05 && state.botAudioStartedAt === null) {
      state.botAudioStartedAt = performance.now();
      log("bot audio");
    }
  });
}

// A cold bot takes a while: the dispatcher says how long (`ready_in_seconds`, 90 % of its measured
// cold starts are ready within it). A long-poll answers as soon as the bot is up, and every few
// seconds meanwhile with the rest of the wait (the server's estimate grows if the start runs late);
// between answers the page counts down, never below 1 s. Past the first estimate it told, the page
// says so with the time waited, rather than "about 1 s" for as long as the bot takes.
function showWait(seconds) {
  clearInterval(countdown);
  countdown = null;
  if (seconds == null) {
    state.readyIn = null;
    state.waitFirstTold = state.waitSince = null;
    state.waitOverdue = false;
    render();
    return;
  }
  if (state.waitSince === null) {
    state.waitSince = performance.now();
    state.waitFirstTold = Math.max(1, Math.ceil(seconds));
  }
  const until = performance.now() + seconds * 1000;
  const tick = () => {
    state.readyIn = Math.max(1, Math.ceil((until - performance.now()) / 1000));
    state.waitOverdue = performance.now() - state.waitSince > state.waitFirstTold * 1000;
    state.readyInShown.push(state.readyIn);
    render();
  };
  tick();
  countdown = setInterval(tick, 1000);
}

// The session, watched from its start to its end: while it is `starting` a long-poll (the wait
// above); then a plain read every WATCH_EVERY_MS. A bot that dies before its peer connection is up
// leaves the client "connecting" until ICE gives up (15-30 s): the session's own record says it
// failed, and why, at once, so the page shows that and hangs up. An error the bot reports while the
// session goes on is shown as it arrives.
const WATCH_EVERY_MS = 1000;
const FINAL = ["ended", "failed"];

async function watchSession(sessionId) {
  watching?.abort();
  const controller = (watching = new AbortController());
  const pause = () => new Promise((resolve) => setTimeout(resolve, WATCH_EVERY_MS));
  let session = null;
  try {
    // The first look answers at once: a cold start of a few seconds would otherwise be over before
    // the first long-poll answered, and the caller would never see how long it takes.
    let query = "";
    while (!controller.signal.aborted) {
      const response = await fetch(`/sessions/${sessionId}${query}`,
        { headers: apiHeaders(), signal: controller.signal });
      if (!response.ok) break;
      session = await response.json();
      if (FINAL.includes(session.status)) break;
      // A joined session whose bot reported an error (a speech service that cannot reach its
      // model) goes on, often silent: the page says why, as the session's record does.
      if (session.error && session.error !== state.problem) showProblem(session.error, false);
      if (session.status === "starting" && session.ready_in_seconds != null) {
        showWait(session.ready_in_seconds);
        query = "?wait=started&timeout=3";
        continue;
      }
      showWait(null);
      query = "";
      await pause();
    }
  } catch (error) {
    if (error?.name !== "AbortError") log(`watching the session: ${error.message}`);
  }
  if (watching !== controller) return;
  showWait(null);
  if (!FINAL.includes(session?.status) || FINAL.includes(state.status) || state.sessionId !== sessionId) return;
  if (session.status === "failed") showProblem(session.detail ?? session.error ?? "the session failed");
  log(`session ${session.status}`);
  await hangUp(session.status);
}

// An RTVI error's text: the bot's `error` message carries it in `data.error` (Pipecat's RTVI
// `ErrorData`); the client's own errors in `data.message` as well. Never "[object Object]".
function errorText(message) {
  const data = message?.data;
  const text = data?.error ?? data?.message;
  if (typeof text === "string") return data?.fatal ? `${text} (fatal)` : text;
  if (typeof message === "string") return message;
  return JSON.stringify(data ?? message) ?? String(message);
}

async function connect() {
  setStatus("starting");
  state.errors = [];
  state.readyInShown = [];
  state.waitFirstTold = state.waitSince = null;
  state.waitOverdue = false;
  state.events = [];
  state.sessionId = null;
  showProblem(null);
  metering = true;
  client = new PipecatClient({
    transport: new SmallWebRTCTransport({ mediaManager: new WavMediaManager() }),
    enableMic: true,
    enableCam: false,
    callbacks: {
      onBotStarted: (answer) => {
        state.sessionId = answer?.sessionId ?? null;
        $("session").textContent = state.sessionId ?? "–";
        log(`session ${state.sessionId}`);
        if (state.sessionId) watchSession(state.sessionId); // runs beside the connection, not before it
      },
      onTransportStateChanged: (transportState) => {
        state.transportState = transportState;
        if (["connecting", "connected"].includes(transportState)) setStatus("connecting");
        if (transportState === "ready") setStatus("connected");
      },
      onTrackStarted,
      onBotReady: () => event("bot-ready"),
      onUserStartedSpeaking: () => event("user-started-speaking"),
      onUserStoppedSpeaking: () => event("user-stopped-speaking"),
      onBotStartedSpeaking: () => event("bot-started-speaking"),
      onBotStoppedSpeaking: () => event("bot-stopped-speaking"),
      onUserTranscript: (data) => data.final && event("user-transcript", data.text),
      onBotOutput: (data) => event("bot-output", data.text),
      onDisconnected: () => {
        if (!["ended", "failed"].includes(state.status)) hangUp();
      },
      onError: (message) => {
        const text = errorText(message);
        state.errors.push(text);
        log(`error: ${text}`);
      },
    },
  });
  try {
    // Pipecat's shape: the answer holds only what the transport reads (no warnings).
    await client.startBotAndConnect({
      endpoint: "/start",
      requestData: { transport: "webrtc", body: { client: "browser" } },
      headers: apiHeaders(),
    });
  } catch (error) {
    if (error?.status === 401) $("key-row").hidden = false;
    const text = String(error?.message ?? error);
    if (!state.errors.includes(text)) state.errors.push(text);
    log(`error: ${text}`);
    await hangUp("failed");
  }
}

async function hangUp(finalStatus = "ended") {
  if (hangingUp) return; // disconnect() below reports onDisconnected, which calls us again
  hangingUp = true;
  metering = false;
  const current = client;
  client = null;
  watching?.abort();
  showWait(null);
  await current?.disconnect().catch(() => {});
  if (state.sessionId && ["starting", "connecting", "connected"].includes(state.status)) {
    // The bot ends with its peer; stopping the session as well frees its slot at once.
    await fetch(`/sessions/${state.sessionId}`, { method: "DELETE", headers: apiHeaders() })
      .catch((error) => log(`hang up: ${error.message}`));
  }
  const ended = state.sessionId;
  setStatus(finalStatus);
  hangingUp = false;
  await explainEnd(ended);
  await showSessionRecord(ended, 60);  // the recording is completed once the session has ended
}

// The session's transcript and recording once the dispatcher has kept them (RECORDING=on), or why
// there are none: the artifacts route's answer and the session's timeline say (session_record.js).
async function api(path) {
  const answer = await fetch(path, { headers: apiHeaders(), cache: "no-store", credentials: "omit" });
  const body = await answer.json().catch(() => null);
  if (!answer.ok) {
    const error = body?.error ?? { code: "http_error", message: `HTTP ${answer.status}` };
    throw Object.assign(new Error(error.message), { status: answer.status, code: error.code });
  }
  return body;
}

async function recordingPolicy() {
  // A keyless local dispatcher answers its loopback caller's /status; with keys, a client key is
  // refused it, and the artifacts route's answer alone says why nothing was kept.
  return api("/status").then((status) => status.recordings?.policy ?? null).catch(() => null);
}

async function showSessionRecord(sessionId, waitSeconds) {
  if (!sessionId) return;
  state.recordFor = sessionId;
  state.record = null;
  $("record").hidden = false;
  $("record-session").textContent = sessionId;
  $("record-box").replaceChildren();
  $("record-status").textContent = waitSeconds ? "waiting for its recording…" : "reading…";
  const record = await loadRecord(api, sessionId, { waitSeconds, recordingPolicy: await recordingPolicy() });
  if (state.recordFor !== sessionId) return;  // another session was asked for meanwhile
  state.record = record;
  $("record-status").textContent = "";
  showRecord($("record-box"), record);
}

async function showRecent() {
  try {
    const page = await api("/sessions?limit=10");
    $("recent-list").replaceChildren(...page.sessions.map((session) => {
      const item = document.createElement("li");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "link";
      open.textContent = session.session_id;
      open.addEventListener("click", () => showSessionRecord(session.session_id, 0));
      item.append(open, ` ${session.status}${session.error ? ` (${session.error})` : ""}`);
      return item;
    }));
  } catch (error) {
    if (error.status === 401) $("key-row").hidden = false;
    log(`listing the sessions: ${error.message}`);
  }
}

$("recent").addEventListener("click", showRecent);
$("connect").addEventListener("click", connect);
$("hangup").addEventListener("click", () => hangUp());
setStatus("idle");
