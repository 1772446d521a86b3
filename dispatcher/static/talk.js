// voicefleet local page: POST /start, then Pipecat SmallWebRTC signalling through the dispatcher.
// No library and no request to any other host. `window.voicefleet` exposes the state for tests.
"use strict";

const $ = (id) => document.getElementById(id);
const state = (window.voicefleet = {
  status: "idle", sessionId: null, pcState: null, botAudioStartedAt: null,
  maxBotLevel: 0, maxMicLevel: 0, errors: [],
});
let pc = null, channel = null, pinger = null, audioContext = null, micStream = null, metering = false;

function log(message) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${message}`;
  $("log").prepend(item);
}

function setStatus(status) {
  state.status = status;
  $("status").textContent = status;
  $("connect").disabled = !["idle", "ended", "failed"].includes(status);
  $("hangup").disabled = ["idle", "ended", "failed"].includes(status);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  const payload = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401) $("key-row").hidden = false;
  if (!response.ok) {
    const error = payload?.error ?? { code: String(response.status), message: response.statusText };
    throw new Error(`${error.code}: ${error.message}`);
  }
  return payload;
}

// A level meter on a stream: RMS of the waveform, sampled every animation frame.
function meter(stream, element, onLevel) {
  audioContext ??= new AudioContext();
  const analyser = audioContext.createAnalyser();
  analyser.fftSize = 1024;
  audioContext.createMediaStreamSource(stream).connect(analyser);
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

function waitForIceGathering(connection) {
  // Signalling is not trickled: the offer carries every candidate.
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (connection.iceGatheringState === "complete") {
        connection.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    connection.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000); // enough host candidates by then; do not hang on a slow interface
  });
}

async function connect() {
  setStatus("starting");
  state.errors = [];
  metering = true;
  try {
    const session = await api("POST", "/start", { body: { client: "browser" } });
    state.sessionId = session.session_id;
    $("session").textContent = session.session_id;
    log(`session ${session.session_id} ${session.status}`);

    micStream = await navigator.mediaDevices.getUserMedia({ audio: true });
    meter(micStream, $("mic-level"), (level) => { state.maxMicLevel = Math.max(state.maxMicLevel, level); });

    pc = new RTCPeerConnection();
    // Transceiver 0 is audio for Pipecat's SmallWebRTC transport.
    pc.addTransceiver(micStream.getAudioTracks()[0], { direction: "sendrecv" });
    // The bot treats a peer as gone when its data channel stops pinging.
    channel = pc.createDataChannel("chat");
    channel.onopen = () => { pinger = setInterval(() => channel.readyState === "open" && channel.send(`ping: ${Date.now()}`), 1000); };
    pc.onconnectionstatechange = () => {
      state.pcState = pc?.connectionState ?? "closed";
      log(`peer ${state.pcState}`);
      if (state.pcState === "connected") setStatus("connected");
      if (["failed", "closed"].includes(state.pcState)) hangUp();
    };
    pc.ontrack = (event) => {
      const stream = event.streams[0] ?? new MediaStream([event.track]);
      $("bot-audio").srcObject = stream; // WebAudio only sees remote audio once an element plays it
      meter(stream, $("bot-level"), (level) => {
        state.maxBotLevel = Math.max(state.maxBotLevel, level);
        if (level > 0.05 && state.botAudioStartedAt === null) {
          state.botAudioStartedAt = performance.now();
          log("bot audio");
        }
      });
    };

    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc);
    setStatus("connecting");
    const answer = await api("POST", session.offer_url, { sdp: pc.localDescription.sdp, type: pc.localDescription.type });
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    log("answer received");
  } catch (error) {
    state.errors.push(String(error.message ?? error));
    log(`error: ${error.message ?? error}`);
    await hangUp("failed");
  }
}

async function hangUp(finalStatus = "ended") {
  clearInterval(pinger);
  metering = false;
  const connection = pc;
  pc = null;
  connection?.close();
  micStream?.getTracks().forEach((track) => track.stop());
  if (state.sessionId && ["starting", "connecting", "connected"].includes(state.status)) {
    await api("DELETE", `/sessions/${state.sessionId}`).catch((error) => log(`hang up: ${error.message}`));
  }
  setStatus(finalStatus);
}

$("connect").addEventListener("click", connect);
$("hangup").addEventListener("click", () => hangUp());
setStatus("idle");
