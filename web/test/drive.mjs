// Drives the official Pipecat clients in headless Chromium against a running dispatcher and
// prints one JSON object per case on stdout. Used by tests/e2e/test_pipecat_clients.py, which
// runs it (with the dispatcher and its bots) inside a private network namespace: Chromium's
// WebRTC never offers loopback candidates.
//
//   node drive.mjs '<json: {base, mic, bundle, cases: [{name, kind, requestData, headers?}]}>'
//
// Every wait is for an event, bounded by a generous deadline that only turns a hang into a
// failure: nothing here measures time.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const config = JSON.parse(process.argv[2]);
const bundle = readFileSync(config.bundle, "utf8");
const PAGE = `${config.base}/__pipecat_clients_test__`;

async function run(testCase) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const offHost = [];
  const console_ = [];
  // The page is served at the dispatcher's own origin (no CORS), made of the clients' bundle only.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url === PAGE) {
      return route.fulfill({ contentType: "text/html", body: `<!doctype html><script>${bundle}</script>` });
    }
    if (!url.startsWith(config.base)) {
      offHost.push(url);
      return route.abort();
    }
    return route.continue();
  });
  page.on("console", (message) => console_.push({ type: message.type(), text: message.text() }));
  if (testCase.kind === "websocket") {
    // A WebSocket is not routed: Chromium's Local Network Access checks it against the document's
    // address space, which a fulfilled page does not have (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
    // The page is a document the dispatcher served on loopback, as a client's dev server page
    // on localhost is, with the same bundle in it.
    await page.goto(`${config.base}/healthz`);
    await page.addScriptTag({ content: bundle });
  } else {
    await page.goto(PAGE);
  }
  await page.evaluate(pageHelpers);
  let outcome;
  try {
    outcome = await page.evaluate(CASES[testCase.kind], { base: config.base, ...testCase });
  } catch (error) {
    outcome = { pageError: String(error) };
  }
  await context.close();
  return { name: testCase.name, ...outcome, offHost, console: console_ };
}

// Helpers the cases share, defined in the page (a case runs there, serialized by evaluate):
// deadline(ms, what) rejects after ms; turn() makes what a talking case records (states, RTVI
// events, errors) and the client callbacks that record it; `heard()` resolves `heardBot` once
// the case has measured the bot's audio.
function pageHelpers() {
  window.deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));
  window.turn = () => {
    const seen = { states: [], events: [], maxBotLevel: 0, errors: [] };
    let heard;
    const heardBot = new Promise((resolve) => (heard = resolve));
    let userStopped;
    const userTurn = new Promise((resolve) => (userStopped = resolve));
    const callbacks = {
      onTransportStateChanged: (state) => seen.states.push(state),
      onBotReady: () => seen.events.push("bot-ready"),
      onUserStartedSpeaking: () => seen.events.push("user-started-speaking"),
      onUserStoppedSpeaking: () => { seen.events.push("user-stopped-speaking"); userStopped(); },
      onBotStartedSpeaking: () => seen.events.push("bot-started-speaking"),
      onBotStoppedSpeaking: () => seen.events.push("bot-stopped-speaking"),
      onError: (message) => seen.errors.push(message?.data?.message ?? String(message)),
    };
    return { seen, heard, heardBot, userTurn, callbacks };
  };
}

const CASES = {
  // startBotAndConnect with SmallWebRTC: states, RTVI events, the bot's audio level.
  async webrtc({ base, requestData, headers, direct }) {
    const { seen, heard, heardBot, userTurn, callbacks } = turn();
    const client = new Pipecat.PipecatClient({
      transport: new Pipecat.SmallWebRTCTransport({ mediaManager: new Pipecat.WavMediaManager() }),
      enableMic: true,
      enableCam: false,
      callbacks: {
        ...callbacks,
        // The bot's audio as the page hears it: the level of the remote track the client hands us.
        onTrackStarted: (track, participant) => {
          if (track.kind !== "audio" || participant?.local) return;
          const stream = new MediaStream([track]);
          const element = new Audio();
          element.srcObject = stream; // WebAudio sees remote audio only while an element plays it
          element.play().catch(() => {});
          const audio = new AudioContext();
          const analyser = audio.createAnalyser();
          audio.createMediaStreamSource(stream).connect(analyser);
          const samples = new Float32Array(analyser.fftSize);
          const meter = setInterval(() => {
            analyser.getFloatTimeDomainData(samples);
            const level = Math.sqrt(samples.reduce((sum, s) => sum + s * s, 0) / samples.length);
            seen.maxBotLevel = Math.max(seen.maxBotLevel, level);
            if (level > 0.02) { heard(); clearInterval(meter); }
          }, 20);
        },
      },
    });
    try {
      seen.startResponse = null;
      // `direct`: no /start, the offer goes straight to the runner's /api/offer with the data.
      const started = direct
        ? client.connect({ webrtcRequestParams: { endpoint: `${base}/api/offer`, headers: new Headers(headers), requestData } })
        : client.startBotAndConnect({ endpoint: `${base}/start`, requestData, headers: new Headers(headers) });
      await Promise.race([started, deadline(60000, "ready")]);
      await Promise.race([heardBot, deadline(30000, "bot audio")]);
      await Promise.race([userTurn, deadline(45000, "a user turn")]);
    } catch (error) {
      seen.failure = String(error?.message ?? error);
    }
    seen.state = client.state;
    await client.disconnect();
    return seen;
  },

  // The WebSocket transport, as pipecat-examples' websocket client uses it: startBot with
  // `transport: websocket`, then connect to the answer's wsUrl with its token, in one of the forms:
  //   "example":  connect({wsUrl: `${wsUrl}?token=…`}), the example's own answer transformer;
  //   "token":    connect({wsUrl, token}), the transport appending `?token=` itself;
  //   "wrong":    the example's form with a token that is not the answer's.
  // The player's input is metered on its way in (the transport hands the bot's decoded audio to
  // its media manager's bufferBotAudio): the level of what the page would play.
  async websocket({ base, requestData, headers, form }) {
    const { seen, heard, heardBot, userTurn, callbacks } = turn();
    class MeteredPlayer extends Pipecat.WebSocketWavMediaManager {
      bufferBotAudio(data, id) {
        const level = Math.sqrt(data.reduce((sum, s) => sum + (s / 32768) ** 2, 0) / Math.max(1, data.length));
        seen.maxBotLevel = Math.max(seen.maxBotLevel, level);
        if (level > 0.02) heard();
        return super.bufferBotAudio(data, id);
      }
    }
    // The transport's own recorder settings (chunk 512, 16 kHz), which its default manager gets.
    const transport = new Pipecat.WebSocketTransport({ mediaManager: new MeteredPlayer(512, 16000) });
    const client = new Pipecat.PipecatClient({
      transport,
      enableMic: true,
      enableCam: false,
      callbacks,
    });
    try {
      const params = { endpoint: `${base}/start`, requestData, headers: new Headers(headers) };
      const answer = await client.startBot(params);
      seen.answerKeys = Object.keys(answer).sort();
      seen.sessionId = answer.sessionId;
      const token = form === "wrong" ? `${answer.token.slice(0, -4)}AAAA` : answer.token;  // its signature forged
      const started = client.connect(form === "token"
        ? { wsUrl: answer.wsUrl, token }
        : { wsUrl: `${answer.wsUrl}?token=${encodeURIComponent(token)}` });
      await Promise.race([started, deadline(30000, "ready")]);
      await Promise.race([heardBot, deadline(30000, "bot audio")]);
      await Promise.race([userTurn, deadline(45000, "a user turn")]);
    } catch (error) {
      seen.failure = String(error?.message ?? error);
    }
    seen.state = client.state;
    try {
      await client.disconnect();
    } catch (error) {
      // After a failed connect the client has already torn down, and its recorder's end() throws
      // on the stream it no longer has: noted, not the case's outcome.
      seen.disconnectError = String(error?.message ?? error);
    }
    return seen;
  },

  // startBotAndConnect against a request the dispatcher refuses: what the client shows.
  async error({ base, requestData, headers }) {
    const seen = { errors: [] };
    const client = new Pipecat.PipecatClient({
      transport: new Pipecat.SmallWebRTCTransport({ mediaManager: new Pipecat.WavMediaManager() }),
      enableMic: false,
      enableCam: false,
      callbacks: { onError: (message) => seen.errors.push(message?.data?.message ?? String(message)) },
    });
    try {
      await client.startBotAndConnect({ endpoint: `${base}/start`, requestData, headers: new Headers(headers) });
      seen.thrown = null;
    } catch (error) {
      seen.thrown = String(error?.message ?? error);
      seen.status = error?.status ?? null;
    }
    return seen;
  },

  // The Daily transport connecting with a start answer, as PipecatClient.connect() has it do
  // (minus the device set-up, which needs Daily's CDN): the transport derives its parameters
  // and hands them to daily-js's join, whose property checks run first and warn about any key
  // they do not know. The join itself cannot reach Daily from here and fails after that.
  async daily({ base, requestData, headers }) {
    const seen = { states: [] };
    seen.answer = await Pipecat.makeRequest({ endpoint: `${base}/start`, requestData, headers: new Headers(headers) });
    const transport = new Pipecat.DailyTransport();
    new Pipecat.PipecatClient({
      transport, enableMic: false, enableCam: false,
      callbacks: { onTransportStateChanged: (state) => seen.states.push(state) },
    });
    try {
      await Promise.race([transport.connect(structuredClone(seen.answer)), new Promise((r) => setTimeout(r, 10000))]);
    } catch (error) {
      seen.joinError = String(error?.message ?? error);
    }
    const options = transport._dailyFactoryOptions ?? {};
    seen.joinedWith = Object.fromEntries(Object.entries(options).filter(([key]) => ["url", "token"].includes(key)));
    seen.joinKeys = Object.keys(options);
    return seen;
  },
};

// The dispatcher was started beside us; wait (bounded) until it answers.
for (let attempt = 0; ; attempt++) {
  try {
    if ((await fetch(`${config.base}/healthz`)).ok) break;
  } catch {}
  if (attempt > 600) throw new Error(`the dispatcher at ${config.base} never answered /healthz`);
  await new Promise((resolve) => setTimeout(resolve, 100));
}

const browser = await chromium.launch({
  executablePath: config.chromium ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${config.mic}`, "--autoplay-policy=no-user-gesture-required",
    // The namespace's address is plain http and not loopback: let the page use the microphone.
    `--unsafely-treat-insecure-origin-as-secure=${config.base}`,
  ],
});
const results = [];
try {
  for (const testCase of config.cases) results.push(await run(testCase));
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results) + "\n");
