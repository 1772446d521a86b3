"""Bot start-up and per-session cost, measured (never asserted): prints a table.

    uv run python bench/bot_startup.py [--runs 7] [--sessions 3] [--python PATH] [--json out.json]

`--python` runs the bot (and the reference) with another interpreter, e.g. a venv holding only
the `bot` dependency group as the bot image does (`UV_PROJECT_ENVIRONMENT=/tmp/botvenv uv sync
--frozen --only-group bot`): the dev venv also holds the infra group, whose opentelemetry-sdk
Pipecat then imports at start-up (~50 ms) although the image never has it.

Measures, over several fresh `python -m bot` processes (the way the local machines provider
spawns them):
- spawn → `ready` line (wall), and the bot's own CPU time (user+sys) up to that line: on a
  shared machine the wall time includes waiting for a core, the CPU time does not;
- the same for a reference "plain Pipecat 1.14 bot" start (the imports a bot built on Pipecat's
  own SmallWebRTC request handler + FastAPI/uvicorn needs, then Silero loaded), measured in the
  same conditions, so the ratio holds even when the machine is busy;
- `python -m bot --check` wall time;
- one WebRTC session per bot with tests/support's aiortc client talking the speech fixture:
  peak RSS and CPU share of the bot process while the client talks, connect → first bot audio,
  end of speech → first reply audio.
The 1-minute load average is printed with the results, because the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.pinning import cpu_seconds  # noqa: E402
from tests.support.webrtc_client import WebRTCClient  # noqa: E402

SPEECH_WAV = REPO / "tests" / "fixtures" / "speech16k.wav"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


BOT_PYTHON = sys.executable  # --python replaces it


def bot_command(*args: str) -> list[str]:
    return [BOT_PYTHON, "-m", "bot", *args]


def bot_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("DAILY_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_KB / 1024


# What docs/reference/local_e2e.md's plain bot imports before it can answer (1.6 s there).
PLAIN_PIPECAT_BOT = """
import resource, sys
import fastapi, uvicorn
from pipecat.transports.smallwebrtc.request_handler import SmallWebRTCRequestHandler
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.pipeline.worker import PipelineWorker
from pipecat.workers.runner import WorkerRunner
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.audio.vad.silero import SileroVADAnalyzer
SileroVADAnalyzer()
usage = resource.getrusage(resource.RUSAGE_SELF)
print(usage.ru_utime + usage.ru_stime, flush=True)
"""


def measure_plain_reference(runs: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            # Always the dev venv: it has FastAPI/uvicorn, which a bot-only venv lacks.
            [sys.executable, "-c", PLAIN_PIPECAT_BOT],
            cwd=REPO,
            env=bot_env(),
            capture_output=True,
            text=True,
        )
        walls.append(time.perf_counter() - started)
        cpus.append(float(done.stdout.split()[-1]))
    return walls, cpus


def spawn_until_ready(*args: str) -> tuple[subprocess.Popen[str], float, float, dict[str, object]]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        bot_command(*args), cwd=REPO, env=bot_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    wall = time.perf_counter() - started
    ready = json.loads(line)
    if ready.get("event") != "ready":
        raise RuntimeError(f"expected a ready line, got {line!r}")
    return proc, wall, cpu_seconds(proc.pid), ready


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


def measure_ready(runs: int) -> tuple[list[float], list[float], list[float]]:
    walls, cpus, rss = [], [], []
    for _ in range(runs):
        proc, wall, cpu, _ = spawn_until_ready("--port", "0", "--connect-timeout", "60")
        rss.append(rss_mib(proc.pid))
        stop(proc)
        walls.append(wall)
        cpus.append(cpu)
    return walls, cpus, rss


def measure_check(runs: int) -> list[float]:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(bot_command("--check"), cwd=REPO, env=bot_env(), capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
    return walls


async def measure_session() -> dict[str, float]:
    proc, _, _, ready = spawn_until_ready("--port", "0", "--connect-timeout", "60")
    samples: list[float] = []
    try:
        async with WebRTCClient(f"http://127.0.0.1:{ready['port']}/api/offer") as client:
            cpu_before, t_before = cpu_seconds(proc.pid), time.perf_counter()

            async def sample_rss() -> None:
                while True:
                    samples.append(rss_mib(proc.pid))
                    await asyncio.sleep(0.2)

            sampler = asyncio.create_task(sample_rss())
            result = await client.talk(SPEECH_WAV, listen_seconds=5.0)
            sampler.cancel()
            cpu_share = (cpu_seconds(proc.pid) - cpu_before) / (time.perf_counter() - t_before)
        proc.wait(15)
    finally:
        if proc.poll() is None:
            stop(proc)
    return {
        "peak_rss_mib": max(samples),
        "cpu_share": cpu_share,
        "connect_to_first_audio_s": result.connect_to_first_audio or float("nan"),
        "reply_latency_s": result.reply_latency or float("nan"),
    }


def row(name: str, values: list[float], unit: str, scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return f"| {name} | {statistics.median(v):.3f} {unit} | {min(v):.3f} | {max(v):.3f} | {len(v)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh bots for the start-up figures")
    parser.add_argument("--sessions", type=int, default=3, help="fresh bots, one talking session each")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run the bot with")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args()
    global BOT_PYTHON
    BOT_PYTHON = args.python

    load_before = os.getloadavg()[0]
    # One throw-away start so every measured run finds .pyc files and the page cache warm.
    stop(spawn_until_ready("--port", "0")[0])
    ready_wall, ready_cpu, ready_rss = measure_ready(args.runs)
    plain_wall, plain_cpu = measure_plain_reference(args.runs)
    check_wall = measure_check(args.runs)
    sessions = [asyncio.run(measure_session()) for _ in range(args.sessions)]
    load_after = os.getloadavg()[0]

    print(
        f"bot start-up and session cost ({os.cpu_count()} cores, load avg {load_before:.2f} → {load_after:.2f}, "
        f"python {BOT_PYTHON})"
    )
    print("| metric | median | min | max | n |")
    print("|---|---|---|---|---|")
    print(row("spawn → ready line (wall)", ready_wall, "s"))
    print(row("bot CPU time until ready (user+sys)", ready_cpu, "s"))
    print(row("RSS when ready", ready_rss, "MiB"))
    print(row("reference: plain Pipecat bot start, dev venv (wall)", plain_wall, "s"))
    print(row("reference: plain Pipecat bot start, dev venv (CPU)", plain_cpu, "s"))
    ratio = statistics.median(ready_cpu) / statistics.median(plain_cpu)
    print(f"| bot / plain Pipecat start-up CPU (medians) | {ratio:.2f} | | | |")
    print(row("`--check` (wall)", check_wall, "s"))
    for key, name, unit, scale in [
        ("peak_rss_mib", "session peak RSS", "MiB", 1.0),
        ("cpu_share", "session CPU (share of one core)", "%", 100.0),
        ("connect_to_first_audio_s", "connect → first bot audio (greeting)", "s", 1.0),
        ("reply_latency_s", "end of speech → first reply audio", "s", 1.0),
    ]:
        print(row(name, [s[key] for s in sessions], unit, scale))
    if args.json:
        raw = {
            "ready_wall_s": ready_wall,
            "ready_cpu_s": ready_cpu,
            "ready_rss_mib": ready_rss,
            "check_wall_s": check_wall,
            "plain_reference_wall_s": plain_wall,
            "plain_reference_cpu_s": plain_cpu,
            "sessions": sessions,
            "load_avg": [load_before, load_after],
        }
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
