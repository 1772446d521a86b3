"""Local voice sessions through the dispatcher, measured end to end (real bot, real WebRTC, real speech).

    uv run python -m bench.local_session --runs 5

For each run: POST /start?wait=started (a cold bot process: spawn → imports → VAD → ready),
connect through the dispatcher's offer proxy with an aiortc client, speak the fixture, and
record connect → first bot audio, end of speech → first bot audio, and the bot's peak RSS and
CPU time over the session (from /proc). Prints medians with min–max; asserts nothing.

    uv run python -m bench.local_session --runs 7 --trace

`--trace` also runs the bots with `VOICEFLEET_TRACE` (bot/trace.py) and splits each turn into
stages on one clock (the client's monotonic times are converted to epoch): client speech end →
last loud frame reaches the bot's parrot → VAD stop → reply pushed → first loud reply chunk
leaves the bot's output track → first loud frame decoded at the client. It also reports how long
packets sit in the bot's inbound jitter buffer and in the client's (the client's buffer is
aiortc's own `JitterBuffer(capacity=16, prefetch=4)`, swapped for an identical one that only
records hold times: measured, not tuned). The load average is printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from aiortc.jitterbuffer import JitterBuffer

from tests.support.processes import children_of, run_dispatcher
from tests.support.webrtc_client import WebRTCClient

SPEECH = Path(__file__).parents[1] / "tests" / "fixtures" / "speech16k.wav"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_usage(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of a live process."""
    with open(f"/proc/{pid}/status") as status:
        hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().split(") ", 1)[1].split()
    return hwm_kb / 1024, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class TimedJitterBuffer(JitterBuffer):
    """aiortc's audio buffer with aiortc's own parameters, recording each packet's hold time (ms)."""

    def __init__(self) -> None:
        super().__init__(capacity=16, prefetch=4)  # = aiortc/rtcrtpreceiver.py for audio
        self.arrivals: dict[int, float] = {}
        self.holds: list[float] = []

    def add(self, packet):  # type: ignore[no-untyped-def]
        now = time.monotonic()
        self.arrivals.setdefault(packet.timestamp, now)
        pli, frame = super().add(packet)
        if frame is not None and (arrived := self.arrivals.pop(frame.timestamp, None)) is not None:
            self.holds.append((now - arrived) * 1000)
        return pli, frame


def time_client_jitter_buffer(client: WebRTCClient) -> TimedJitterBuffer | None:
    for transceiver in client.pc.getTransceivers():
        if transceiver.kind == "audio" and transceiver.receiver is not None:
            buffer = TimedJitterBuffer()
            transceiver.receiver._RTCRtpReceiver__jitter_buffer = buffer
            return buffer
    return None


def read_trace(path: Path, since: float) -> list[dict[str, object]]:
    if not path.exists():
        return []
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.startswith("{")]
    return [line for line in lines if float(line["t"]) >= since]  # type: ignore[arg-type]


def breakdown(trace: list[dict[str, object]], speech_end: float, reply_at: float) -> dict[str, float]:
    """Stages of the (single) turn in ms; `speech_end` and `reply_at` are epoch times at the client."""
    first = {}
    for line in trace:
        first.setdefault(line["trace"], line)
    stop, pushed, out = first.get("vad_stop"), first.get("reply_pushed"), first.get("out_first_loud")
    if not (stop and pushed and out and stop.get("last_loud_in") and stop.get("first_quiet_window")):
        return {}
    t_last_in, t_stop = float(stop["last_loud_in"]), float(stop["t"])  # type: ignore[arg-type]
    t_pushed, t_out = float(pushed["t"]), float(out["t"])  # type: ignore[arg-type]
    row = {
        "a client speech end → bot last loud in": (t_last_in - speech_end) * 1000,
        "b bot last loud in → vad_stop": (t_stop - t_last_in) * 1000,
        "b1 last loud in → first quiet VAD window": (float(stop["first_quiet_window"]) - t_last_in) * 1000,  # type: ignore[arg-type]
        "b2 first quiet window → vad_stop": (t_stop - float(stop["first_quiet_window"])) * 1000,  # type: ignore[arg-type]
        "c vad_stop → reply pushed": (t_pushed - t_stop) * 1000,
        "d reply pushed → out track first loud": (t_out - t_pushed) * 1000,
        "e out track → client first loud": (reply_at - t_out) * 1000,
    }
    hold = stop.get("jitter_hold_ms")  # 0.0 is a real hold (packets handed on at once); None: not measured
    row["bot jitter hold (median/turn)"] = float("nan") if hold is None else float(hold)  # type: ignore[arg-type]
    return row


async def one_session(base_url: str, dispatcher_pid: int, trace_path: Path | None = None) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as api:
        began = time.monotonic()
        response = await api.post("/start?wait=started", json={})
        ready = time.monotonic() - began
        response.raise_for_status()
        session = response.json()
        (bot,) = children_of(dispatcher_pid)
        _, cpu_at_ready = proc_usage(bot)
        talk_began = time.monotonic()
        clock_offset = time.time() - time.monotonic()  # client monotonic → epoch (same machine)
        talk_epoch = time.time()
        async with WebRTCClient(base_url + session["offer_url"]) as client:
            client_buffer = time_client_jitter_buffer(client) if trace_path else None
            result = await client.talk(SPEECH, listen_seconds=2.5)
            rss, cpu = proc_usage(bot)
            speech_end_mono = client.mic.last_speech_at
        seconds = time.monotonic() - talk_began
        await api.delete(f"/sessions/{session['session_id']}")
    if result.connect_to_first_audio is None or result.reply_latency is None:
        raise RuntimeError(f"no reply: {result.summary()}")
    stages: dict[str, float] = {}
    if trace_path is not None and speech_end_mono is not None:
        speech_end = speech_end_mono + clock_offset
        stages = breakdown(read_trace(trace_path, talk_epoch), speech_end, speech_end + result.reply_latency)
        if client_buffer is not None and client_buffer.holds:
            stages["client jitter hold (median)"] = statistics.median(client_buffer.holds)
        if not stages:
            print(f"warning: incomplete trace for session {session['session_id']}")
    return {
        "start_to_ready_s": ready,
        "connect_to_first_audio_ms": result.connect_to_first_audio * 1000,
        "speech_end_to_reply_ms": result.reply_latency * 1000,
        "bot_peak_rss_mib": rss,
        "bot_cpu_pct_of_one_core": 100 * (cpu - cpu_at_ready) / seconds,
        **stages,
    }


def report(rows: list[dict[str, float]]) -> None:
    print(f"{'metric':40} {'median':>9} {'min':>9} {'max':>9}   n")
    keys = list(dict.fromkeys(key for row in rows for key in row))
    for key in keys:
        values = [row[key] for row in rows if key in row]
        print(f"{key:40} {statistics.median(values):9.2f} {min(values):9.2f} {max(values):9.2f}   {len(values)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trace", action="store_true", help="per-stage breakdown from the bot's VOICEFLEET_TRACE")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as logs:
        trace_path = Path(logs) / "trace.jsonl" if args.trace else None
        # No reserve: each run measures a cold bot process (bench/warm_start.py compares the two).
        env = {"RESERVE_MAX_IDLE": "0", **({"VOICEFLEET_TRACE": str(trace_path)} if trace_path else {})}
        with run_dispatcher(Path(logs), env=env) as dispatcher:
            rows = []
            for _ in range(args.runs):
                rows.append(await one_session(dispatcher.base_url, dispatcher.process.pid, trace_path))
                await asyncio.sleep(0.5)  # let the previous bot exit before the next cold start
    load_after = os.getloadavg()
    prefetch = os.environ.get("VOICEFLEET_AUDIO_JITTER_PREFETCH", "default")
    print(
        f"load avg (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
        f"after {'/'.join(f'{x:.2f}' for x in load_after)}; VOICEFLEET_AUDIO_JITTER_PREFETCH={prefetch}"
    )
    report(rows)


if __name__ == "__main__":
    asyncio.run(main())
