"""End of user speech → first bot audio, heard by a real browser (headless Chromium, fake mic).

    uv run --all-groups python -m bench.browser_turn --runs 5   # tests.support needs the dev group

A local dispatcher (reserve off) spawns a real bot per run; Chromium opens the local page (the
official Pipecat client), connects, and its fake microphone plays the speech fixture (1.5 s of
silence, the speech, silence). Before the page loads, a script wraps `getUserMedia` and
`RTCPeerConnection` so the microphone track and the bot's track the page receives are also fed to
one AudioContext; a ScriptProcessor (256 frames, 5.3 ms at 48 kHz) records when each is loud. On
that one clock: the end of speech is the last loud microphone block before 400 ms of quiet, the
reply is the first loud bot block after it. So the figure includes the browser's own adaptive
jitter buffer and decoding, which the aiortc test client (bench/local_session.py) replaces with a
fixed 80 ms buffer. Prints medians [min–max] and the load average; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path

from tests.support.browser import Browser, browser_mic, chromium_path
from tests.support.processes import run_dispatcher

SPEECH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech16k.wav"
LOUD = 0.02  # peak amplitude of a block that counts as sound (the fixture's speech peaks ~0.3)
QUIET_GAP = 0.4  # seconds of quiet microphone that end the utterance

# Runs before the page's own scripts: every peer connection's outgoing and incoming audio tracks
# are tapped into one AudioContext that stamps loud blocks with its own clock.
PROBE = f"""
(() => {{
  const timeline = window.__turn = {{mic: [], bot: []}};
  const peers = window.__peers = [];
  let ctx = null;
  function tap(track, into) {{
    ctx = ctx || new AudioContext();
    const source = ctx.createMediaStreamSource(new MediaStream([track]));
    const node = ctx.createScriptProcessor(256, 1, 1);
    node.onaudioprocess = (event) => {{
      const data = event.inputBuffer.getChannelData(0);
      let peak = 0;
      for (let i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i]));
      if (peak > {LOUD}) into.push(event.playbackTime);
    }};
    source.connect(node);
    node.connect(ctx.destination);
  }}
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {{
    const stream = await getUserMedia(constraints);
    for (const track of stream.getAudioTracks()) tap(track, timeline.mic);
    return stream;
  }};
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {{
    const pc = new Original(...args);
    peers.push(pc);
    pc.addEventListener('track', (event) => {{
      if (event.track.kind === 'audio') tap(event.track, timeline.bot);
    }});
    return pc;
  }};
  window.RTCPeerConnection.prototype = Original.prototype;
}})();
"""


def utterances(mic: list[float]) -> list[tuple[float, float]]:
    """Loud microphone blocks grouped into utterances (separated by QUIET_GAP of quiet)."""
    spans: list[list[float]] = []
    for t in mic:
        if spans and t - spans[-1][1] < QUIET_GAP:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    return [(start, end) for start, end in spans]


# Chromium's receive-side jitter buffer (NetEq) for the bot's audio, from the standard
# inbound-rtp statistics: the average time a sample waited, NetEq's current target, and the floor
# the page asked for (jitterBufferTarget; none here, so 0).
JITTER_STATS = """
(async () => {
  for (const pc of window.__peers) {
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.jitterBufferEmittedCount) {
        return JSON.stringify({
          mean_ms: 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount,
          target_ms: 1000 * s.jitterBufferTargetDelay / s.jitterBufferEmittedCount,
          minimum_ms: 1000 * (s.jitterBufferMinimumDelay || 0) / s.jitterBufferEmittedCount,
          jitter_ms: 1000 * s.jitter,
        });
      }
    }
  }
  return 'null';
})()
"""


CLEAN_BEFORE_END = 0.5  # seconds without bot audio before the utterance's end: a clean turn


def turn_latency(mic: list[float], bot: list[float]) -> float | None:
    """The first clean turn after the bot is heard (its greeting: it is in the call and listening;
    the fake microphone loops, so an earlier utterance may have gone unheard) → the first loud bot
    block after that utterance's end. Clean: the bot was silent for CLEAN_BEFORE_END before the
    end, so the block found is a reply to it, not the tail of an earlier echo still playing (under
    load an echo can run late into the next loop of the microphone)."""
    if not bot:
        return None
    for start, end in utterances(mic):
        if start <= bot[0] or any(end - CLEAN_BEFORE_END < t <= end for t in bot):
            continue
        reply = next((t for t in bot if t > end), None)
        return None if reply is None else reply - end
    return None


async def one_run(base_url: str, mic_wav: Path, profile: Path) -> tuple[float | None, dict[str, float] | None]:
    async with Browser("about:blank", mic_wav, profile) as page:
        await page.send("Page.addScriptToEvaluateOnNewDocument", source=PROBE)
        await page.send("Page.navigate", url=base_url + "/")
        await page.wait_for("document.readyState === 'complete' && !!window.voicefleet", 30)
        await page.evaluate("document.getElementById('connect').click()")
        await page.wait_for("window.voicefleet.status === 'connected'", 60)
        # The microphone loops its file (8.5 s); wait for a whole utterance heard after the greeting.
        for _ in range(300):
            timeline = await page.evaluate("JSON.stringify(window.__turn)")
            data = json.loads(timeline)
            if turn_latency(data["mic"], data["bot"]) is not None:
                break
            await asyncio.sleep(0.1)
        jitter = json.loads(await page.evaluate(JITTER_STATS))
        await page.evaluate("document.getElementById('hangup').click()")
    return turn_latency(data["mic"], data["bot"]), jitter


async def main_async(runs: int, env: dict[str, str]) -> tuple[list[float], list[dict[str, float]]]:
    results: list[float] = []
    buffers: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="browser-turn-") as tmp:
        root = Path(tmp)
        mic = browser_mic(SPEECH, root / "mic48k.wav")
        (root / "dispatcher").mkdir()
        with run_dispatcher(root / "dispatcher", {"RESERVE_MAX_IDLE": "0", **env}) as dispatcher:
            for i in range(runs):
                latency, jitter = await one_run(dispatcher.base_url, mic, root / f"profile{i}")
                held = "" if jitter is None else f", Chromium jitter buffer {jitter['mean_ms']:.0f} ms"
                print(f"run {i + 1}: {'n/a' if latency is None else f'{latency * 1000:.0f} ms'}{held}", flush=True)
                if latency is not None:
                    results.append(latency)
                if jitter is not None:
                    buffers.append(jitter)
    return results, buffers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if chromium_path() is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    load = os.getloadavg()[0]
    results, buffers = asyncio.run(main_async(args.runs, {}))
    ms = sorted(r * 1000 for r in results)
    summary = f"{statistics.median(ms):.0f} ms [{ms[0]:.0f}–{ms[-1]:.0f}]" if ms else "n/a"
    print(f"end of speech → first bot audio, browser client: {summary} ({len(ms)}/{args.runs} runs); "
          f"load {load:.1f} → {os.getloadavg()[0]:.1f}")
    for key, what in (("mean_ms", "mean hold"), ("target_ms", "NetEq target"), ("jitter_ms", "RTP jitter")):
        values = sorted(b[key] for b in buffers)
        if values:
            print(f"Chromium jitter buffer, bot audio, {what}: {statistics.median(values):.1f} ms "
                  f"[{values[0]:.1f}–{values[-1]:.1f}]")


if __name__ == "__main__":
    main()
