"""The booking line's turn latency as its caller hears it, the bot's CPU, and where a turn's time goes.

    uv run --all-groups python -m bench.booking_turns [--turns 20] [--calls 2] [--cpus 0.5 --memory-mib 1024]

Through the system: a local dispatcher (`python -m dispatcher`, `BOT_FILE=examples/booking/bot.py`)
in its own process, its bots in theirs, and the WebRTC caller of `voicefleet eval` here, speaking
with the eval's voice (eSpeak NG, en-us+f3). Each call waits for the greeting, then speaks `--turns`
turns cycling through a conversation that never ends the call (hours, a booking, its details, "no"
to the read-back); each turn waits for the whole answer. Prints:

- turn latency p50/p95 (caller's end of speech → first loud bot audio after it, as the caller's
  audio track receives it: `TalkResult.reply_latency`);
- the bot process's CPU (utime + stime from /proc/<pid>/stat) per second of call, connect to hang-up.

Then the parts, each timed directly in this process on the same audio (the caller's voice at 16 kHz):

- VAD stop wait: Silero (the bot's `VADParams`) fed the turn plus silence in 20 ms chunks; audio time
  from the turn's last loud 20 ms to the chunk where the VAD reports quiet;
- turn stop: the strategy's `user_speech_timeout` after the VAD's stop (a timer; it also waits for
  the transcript, which a segmented STT marks final);
- STT decode: `Recogniser.transcribe` on the segment padded as the service pads it (wall and CPU);
- TTS: `Espeak.synthesise` of the answer (wall).

With `--cpus`, each call's bot process is held to that share of a core and `--memory-mib` of memory
once its call connects (bench/cpu_limit.py: the kernel's CFS quota and memory limit, what a task's or
pod's limits are), and the time the quota held it back is printed: a bot that keeps real time there
answers every turn with a latency near the unlimited one.

Asserts nothing; prints the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.cpu_limit import limited, throttled_seconds
from tests.support.processes import run_dispatcher
from voicefleet.evals.voice import caller_voice
from voicefleet.loadtest.audio import Pcm
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

ROOT = Path(__file__).resolve().parents[1]
BOOKING = ROOT / "examples" / "booking"
CONVERSATION = (
    "what are your opening hours",
    "i want to make a booking",
    "for four people please",
    "at eight",
    "no thank you",
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CHUNK_SECS = 0.02


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def bot_pid(dispatcher_pid: int, before: set[int]) -> int:
    """The bot process this call started: the dispatcher's new descendant running `-m bot`."""
    for pid in descendants(dispatcher_pid):
        if pid not in before and b"bot" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise RuntimeError("no bot process found under the dispatcher")


async def wait_quiet(client: WebRTCClient, since: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kinds = [m.get("type") for m in client.rtvi_messages[since:]]
        if kinds.count("bot-started-speaking") and kinds.count("bot-stopped-speaking") >= kinds.count(
            "bot-started-speaking"
        ):
            return
        await asyncio.sleep(0.05)


async def one_call(base_url: str, dispatcher_pid: int, turns: int,
                   limits: tuple[float, int] | None = None) -> tuple[list[float], float, float, float]:
    """(turn latencies in s, bot CPU seconds, call seconds, seconds held back by the CPU quota)."""
    before = set(descendants(dispatcher_pid))
    speech = {text: caller_voice().speak(text) for text in CONVERSATION}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        answer = (await http.post("/start", json={})).raise_for_status().json()
        try:
            async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
                pid = bot_pid(dispatcher_pid, before)
                with limited(pid, cpus=limits[0], memory_mib=limits[1]) if limits else contextlib.nullcontext():
                    cpu0, t0, held0 = cpu_seconds(pid), time.monotonic(), throttled_seconds(pid)
                    await wait_quiet(client, 0, timeout=30)
                    latencies = []
                    for index in range(turns):
                        seen = len(client.rtvi_messages)
                        result = await client.talk(
                            speech[CONVERSATION[index % len(CONVERSATION)]],
                            listen_seconds=5,
                            lead_seconds=0.3,
                            until_reply=True,
                        )
                        await wait_quiet(client, seen)
                        if result.reply_latency is not None:
                            latencies.append(result.reply_latency)
                    cpu, seconds = cpu_seconds(pid) - cpu0, time.monotonic() - t0
                    held = throttled_seconds(pid) - held0
        finally:
            await http.delete(f"/sessions/{answer['session_id']}")
    return latencies, cpu, seconds, held


def loud_end(pcm: Pcm) -> float:
    """Seconds into the PCM where its last loud 20 ms chunk ends."""
    n = int(pcm.sample_rate * CHUNK_SECS)
    rms = [float(np.sqrt(np.mean(pcm.samples[i:i + n].astype(np.float64) ** 2)))
           for i in range(0, len(pcm.samples) - n + 1, n)]  # fmt: skip
    loud = [i for i, level in enumerate(rms) if level > 300]
    return (loud[-1] + 1) * CHUNK_SECS if loud else 0.0


async def vad_stop_wait(pcm: Pcm, stop_secs: float) -> float:
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState

    vad = SileroVADAnalyzer(sample_rate=pcm.sample_rate, params=VADParams(stop_secs=stop_secs))
    vad.set_sample_rate(pcm.sample_rate)
    audio = np.concatenate([pcm.samples, np.zeros(pcm.sample_rate * 2, dtype=np.int16)]).tobytes()
    step = int(pcm.sample_rate * CHUNK_SECS) * 2
    speaking = False
    for offset in range(0, len(audio) - step, step):
        state = await vad.analyze_audio(audio[offset : offset + step])
        speaking = speaking or state == VADState.SPEAKING
        if speaking and state == VADState.QUIET:
            return float((offset + step) / 2 / pcm.sample_rate - loud_end(pcm))
    return float("nan")


def parts(rounds: int) -> None:
    # eSpeak keeps one engine per process: the caller's turns are spoken before the bot's voice loads.
    speech = {text: caller_voice().speak(text) for text in CONVERSATION}
    sys.path.insert(0, str(BOOKING))
    import booking_line  # the bot's own recogniser, voice and timings
    from booking_flow import BookingFlow

    vad, decode_wall, decode_cpu, tts = [], [], [], []
    flow = BookingFlow()
    padding = np.zeros(int(16000 * 0.2), dtype=np.int16)  # PocketSphinxSTTService's trailing silence
    for _ in range(rounds):
        for text in CONVERSATION:
            pcm = speech[text]
            vad.append(asyncio.run(vad_stop_wait(pcm, booking_line.VAD_STOP_SECS)))
            segment = np.concatenate([pcm.samples, padding]).tobytes()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            booking_line.RECOGNISER.transcribe(segment, 16000)
            decode_wall.append(time.perf_counter() - wall0)
            decode_cpu.append(time.process_time() - cpu0)
            reply = flow.reply(text).text
            wall0 = time.perf_counter()
            booking_line.VOICE.synthesise(reply)
            tts.append(time.perf_counter() - wall0)
    stopped = [wait for wait in vad if wait == wait]  # NaN: the VAD never heard that turn end
    print(f"parts over {len(decode_wall)} turns (p50 / p95, ms; the VAD saw {len(stopped)} of them end):")
    for name, values in (("VAD stop wait (audio time)", stopped), ("STT decode, wall", decode_wall),
                         ("STT decode, CPU", decode_cpu), ("TTS synthesis, wall", tts)):  # fmt: skip
        print(f"  {name:28} {percentile(values, 0.5) * 1000:6.0f} / {percentile(values, 0.95) * 1000:6.0f}")
    print(f"  {'turn stop timer after VAD':28} {booking_line.TURN_END_SECS * 1000:6.0f} (configured)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20, help="turns per call")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--parts-rounds", type=int, default=4)
    parser.add_argument("--cpus", type=float, help="hold each call's bot to this share of a core (e.g. 0.5)")
    parser.add_argument("--memory-mib", type=int, default=1024, help="with --cpus: the bot's memory limit")
    args = parser.parse_args()
    limits = (args.cpus, args.memory_mib) if args.cpus else None
    load_before = os.getloadavg()[0]
    env = {"BOT_FILE": str(BOOKING / "bot.py"), "RESERVE_MAX_IDLE": "0"}
    latencies: list[float] = []
    cpu = seconds = held = 0.0
    with tempfile.TemporaryDirectory() as logs, run_dispatcher(Path(logs), env) as dispatcher:
        for _ in range(args.calls):
            call_latencies, call_cpu, call_seconds, call_held = asyncio.run(
                one_call(dispatcher.base_url, dispatcher.process.pid, args.turns, limits)
            )
            latencies += call_latencies
            cpu, seconds, held = cpu + call_cpu, seconds + call_seconds, held + call_held
    asked = args.turns * args.calls
    print(
        f"turn latency over {len(latencies)}/{asked} answered turns: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms (min {min(latencies) * 1000:.0f}, "
        f"max {max(latencies) * 1000:.0f}, mean {statistics.fmean(latencies) * 1000:.0f})"
    )
    print(f"bot CPU: {cpu:.1f} s over {seconds:.0f} s of call = {cpu / seconds:.3f} of a core")
    if limits:
        print(f"held to {limits[0]:g} CPU / {limits[1]} MiB: the quota held the bot back {held:.1f} s "
              f"of {seconds:.0f} s")
    parts(args.parts_rounds)
    print(f"load average {load_before:.2f} → {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
