"""What the call recorder costs a bot (bot/recording/): CPU, memory over a long call, time per frame.

A call of `--minutes` is played through the recorder faster than real time: each 20 ms step, a
16 kHz caller frame and, half the time (turns of 4 s), a 24 kHz bot frame (a TTS service's rate,
so the resampler runs), with a fake clock the recorder reads; after each step the writer takes what
was queued. Its parts are PUT over HTTP, checkpoints included, to a sink in another process (whose
CPU is not counted). The same steps without a recorder are the baseline; the difference, per second
of call, is the recorder's share of one core at real time. Memory is this process's RSS after the
first minute, at most (sampled every minute) and at the end (the recorder holds the part filling and
the one uploading: it must not grow with the call).
`offer` is what Pipecat's observer task spends per frame (the audio path itself never waits on it).

    uv run python -m bench.recorder --minutes 30
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from bot.recording.recorder import Recorder
from bot.recording.tap import BOT, CALLER
from botchannel.recording import METHOD_RECORDING_FINISHED, RecordingPlan

STEP = 0.02
TURN_STEPS = 200  # 4 s turns: the caller, then the bot


def _sink(port: int) -> None:
    """A bare HTTP server that reads each PUT's body and answers 200 (the store's place)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 1e6


async def _call(minutes: float, recorder: Recorder | None, clock: list[float]) -> dict[str, Any]:
    caller = (np.sin(np.arange(320) / 3) * 6000).astype("<i2").tobytes()
    bot = (np.sin(np.arange(480) / 5) * 6000).astype("<i2").tobytes()
    offers: list[float] = []
    rss_first_minute, rss_peak = 0.0, _rss_mb()
    steps = int(minutes * 60 / STEP)
    began = time.process_time()
    for step in range(steps):
        clock[0] += STEP
        if recorder is not None:
            start = time.perf_counter()
            recorder.offer(CALLER, caller, 16000, 1, clock[0])
            if (step // TURN_STEPS) % 2:
                recorder.offer(BOT, bot, 24000, 1, clock[0])
            offers.append(time.perf_counter() - start)
        for _ in range(6):  # the writer's turn (and the uploader's)
            await asyncio.sleep(0)
        if step % int(60 / STEP) == 0:  # once a simulated minute
            rss_peak = max(rss_peak, _rss_mb())
        if step == int(60 / STEP):
            rss_first_minute = _rss_mb()
    stats = await recorder.finish(timeout=60) if recorder is not None else {}
    cpu = time.process_time() - began
    return {"cpu": cpu, "rss_first_minute": rss_first_minute, "rss_end": _rss_mb(), "rss_peak": rss_peak,
            "offers": offers,
            "stats": stats, "seconds": steps * STEP}


async def run(minutes: float) -> None:
    port = _free_port()
    sink = multiprocessing.Process(target=_sink, args=(port,), daemon=True)
    sink.start()
    await asyncio.sleep(0.5)

    async def ask(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        return {} if method == METHOD_RECORDING_FINISHED else {"url": f"/part/{params['part']}", "expires_in": 3600}

    try:
        baseline = await _call(minutes, None, [0.0])
        clock = [0.0]
        before = _rss_mb()
        recorder = Recorder(RecordingPlan(), ask, f"http://127.0.0.1:{port}/", clock=lambda: clock[0])
        measured = await _call(minutes, recorder, clock)
    finally:
        sink.kill()
    seconds = measured["seconds"]
    share = (measured["cpu"] - baseline["cpu"]) / seconds
    offers = sorted(measured["offers"])
    print(f"call: {seconds / 60:.0f} min at 16 kHz (caller) + 24 kHz (bot, resampled), recorded at 16 kHz stereo")
    print(f"recorder CPU: {share * 100:.2f} % of one core at real time "
          f"({measured['cpu']:.1f} s with it, {baseline['cpu']:.1f} s without)")
    print(f"RSS: {before:.1f} MB before the recorder, {measured['rss_first_minute']:.1f} MB after 1 min, "
          f"{measured['rss_peak']:.1f} MB at most (sampled each minute), {measured['rss_end']:.1f} MB at the end")
    print(f"offer() per frame: median {statistics.median(offers) * 1e6:.1f} µs, "
          f"p99 {offers[int(len(offers) * 0.99)] * 1e6:.1f} µs, p99.9 {offers[int(len(offers) * 0.999)] * 1e6:.1f} µs, "
          f"max {offers[-1] * 1e6:.1f} µs (wall time: a busy host's scheduling included)")
    stats = measured["stats"]
    print(f"recorded {stats['seconds']:.0f} s in {stats['parts']} parts, {stats['bytes'] / 1e6:.1f} MB; "
          f"degraded: {stats['degraded'] or 'no'}, frames dropped: {stats['dropped_frames']}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    asyncio.run(run(parser.parse_args().minutes))


if __name__ == "__main__":
    main()
