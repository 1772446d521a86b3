"""What the call recorder costs a bot (bot/recording/): the delay it adds to every frame, CPU, memory.

A real Pipecat pipeline runs at real time: an input transport receives a 16 kHz caller frame every
20 ms, a processor (the user's bot) answers every frame with a 24 kHz bot frame half the time
(turns of 4 s), and an output transport plays them. Run twice, each in a fresh process: once as a
session that records nothing, once as the host runs a recorded `consent` session, its observers on
the worker (the recording's tap, `observe_every_push=True`, and the consent announcer, which plays
the announcement first), the recorder's writer and uploader on the same event loop, its parts PUT
over HTTP to a sink in another process. What is measured is what a frame lives through, not the
tap's own call: a caller frame's time from the input transport's `push_audio_frame` to the user's
processor, and a bot frame's from the user's push to the output transport's write of its first
sample. RSS is sampled every second; CPU is the process's own (the sink's is not counted).

    uv run python -m bench.recorder --minutes 5
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame, StartFrame
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner

from bench import loop_holds
from bench.recorder_sink import serve_parts
from bot.channel_tls import ca_file
from bot.recording.announcement import DEFAULT, load_announcement
from bot.recording.consent import ConsentAnnouncer
from bot.recording.recorder import Recorder
from botchannel.recording import METHOD_RECORDING_FINISHED, RecordingPlan

STEP = 0.02
TURN_STEPS = 200  # 4 s turns: the caller, then the bot
CALLER_RATE, BOT_RATE = 16000, 24000


class Line(BaseInputTransport):
    """The caller's line: a frame every 20 ms of the loop's clock, each timed as it is handed in."""

    def __init__(self, seconds: float, sent: dict[int, float]) -> None:
        super().__init__(TransportParams(audio_in_enabled=True, audio_in_sample_rate=CALLER_RATE))
        self._steps, self._sent = int(seconds / STEP), sent
        self._audio = (np.sin(np.arange(int(CALLER_RATE * STEP)) / 3) * 6000).astype("<i2").tobytes()
        self.done = asyncio.Event()

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        self.create_task(self._feed(), "bench-line")

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for step in range(self._steps):
            await asyncio.sleep(max(0.0, began + step * STEP - loop.time()))
            frame = InputAudioRawFrame(self._audio, CALLER_RATE, 1)
            self._sent[frame.id] = time.perf_counter()
            await self.push_audio_frame(frame)
        self.done.set()


class Answer(FrameProcessor):
    """The user's bot: times each caller frame's arrival and, in the bot's turns, answers it."""

    def __init__(self, sent: dict[int, float], made: deque[tuple[float, int]], delays: dict[str, list[float]]) -> None:
        super().__init__()
        self._sent, self._made, self._delays = sent, made, delays
        self._audio = (np.sin(np.arange(int(BOT_RATE * STEP)) / 5) * 6000).astype("<i2").tobytes()
        self._frames = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and (sent := self._sent.pop(frame.id, None)) is not None:
            self._delays["caller"].append(time.perf_counter() - sent)
            self._frames += 1
            if (self._frames // TURN_STEPS) % 2:
                self._made.append((time.perf_counter(), len(self._audio)))
                await self.push_frame(OutputAudioRawFrame(self._audio, BOT_RATE, 1))
            return
        await self.push_frame(frame, direction)


class Speaker(BaseOutputTransport):
    """Plays what it is given at once, timing each bot frame at the write of its first sample."""

    def __init__(self, made: deque[tuple[float, int]], delays: dict[str, list[float]]) -> None:
        # 20 ms chunks, a bot frame's: each frame's first sample is written with the frame, not held
        # for a 40 ms chunk's second half until the next turn.
        super().__init__(TransportParams(audio_out_enabled=True, audio_out_sample_rate=BOT_RATE,
                                         audio_out_10ms_chunks=2))
        self._made, self._delays = made, delays
        self._left = 0  # bytes of the frame being written still to come

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        size = len(frame.audio)
        while size > 0:
            if self._left <= 0 and self._made:  # a new bot frame begins in this chunk
                made, self._left = self._made.popleft()
                self._delays["bot"].append(time.perf_counter() - made)
            if self._left <= 0:
                break  # the announcement's audio (not timed)
            taken = min(size, self._left)
            self._left -= taken
            size -= taken
        return True


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 1e6


async def _session(seconds: float, port: int | None, consent: bool = True) -> dict[str, Any]:
    """One call; `port`: the sink a recorded session uploads to (None: nothing recorded)."""
    sent: dict[int, float] = {}
    made: deque[tuple[float, int]] = deque()
    delays: dict[str, list[float]] = {"caller": [], "bot": []}
    line = Line(seconds, sent)
    pipeline = Pipeline([line, Answer(sent, made, delays), Speaker(made, delays)])
    observers: list[BaseObserver] = []
    recorder: Recorder | None = None
    if port is not None:
        ca_file()  # a setting: the bot host has read its settings (and loaded their catalogue) at its start

        async def ask(method: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
            return {} if method == METHOD_RECORDING_FINISHED else {"url": f"/part/{params['part']}", "expires_in": 3600}

        recorder = Recorder(RecordingPlan(consent=consent), ask, f"http://127.0.0.1:{port}/")
        observers = [recorder.tap]
        if consent:
            observers.append(ConsentAnnouncer(load_announcement(DEFAULT), lambda at, s: recorder.consented()))
    worker = PipelineWorker(pipeline, params=PipelineParams(audio_in_sample_rate=CALLER_RATE,
                                                            audio_out_sample_rate=BOT_RATE),
                            observers=observers, idle_timeout_secs=None, enable_rtvi=False)
    rss = [_rss_mb()]

    async def sample() -> None:
        while True:
            await asyncio.sleep(1.0)
            rss.append(_rss_mb())

    async def end() -> None:
        await line.done.wait()
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
    await runner.add_workers(worker)
    sampling, ending = asyncio.create_task(sample()), asyncio.create_task(end())
    began = time.process_time()
    await runner.run()
    stats = await recorder.finish(timeout=60) if recorder is not None else {}
    cpu = time.process_time() - began
    sampling.cancel()
    ending.cancel()
    return {"cpu": cpu, "rss_start": rss[0], "rss_peak": max(rss), "rss_end": rss[-1], "delays": delays,
            "stats": stats, "seconds": seconds}


RECORDER_TASKS = ("recording-writer", "recording-upload", "recording-prepare")


def _in_process(seconds: float, port: int | None, consent: bool, results: Any) -> None:
    loop_holds.watch()
    result = asyncio.run(_session(seconds, port, consent))
    # The observers' tasks are Pipecat's proxies (one per observer, named by the worker's observer):
    # with no observer of the baseline's, every proxy step of the recorded run is the recorder's.
    result["holds"] = {name: holds for name, holds in loop_holds.HOLDS.items()
                       if name in RECORDER_TASKS or "_proxy_task_handler" in name}
    results.put(result)


def _run_both(seconds: float, port: int, consent: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two sessions at once, each in a process of its own: the same machine's load for both, and
    each one's memory its own."""
    context = multiprocessing.get_context("spawn")
    runs = []
    for sink in (None, port):
        results = context.Queue()
        process = context.Process(target=_in_process, args=(seconds, sink, consent, results))
        process.start()
        runs.append((process, results))
    baseline, recorded = (results.get() for _, results in runs)
    for process, _ in runs:
        process.join()
    return baseline, recorded


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "none"
    return (f"median {statistics.median(ordered) * 1e3:.2f}, p99 {ordered[int(len(ordered) * 0.99)] * 1e3:.2f}, "
            f"p99.9 {ordered[int(len(ordered) * 0.999)] * 1e3:.2f}, max {ordered[-1] * 1e3:.2f} ms")


def report(baseline: dict[str, Any], recorded: dict[str, Any], consent: bool) -> None:
    seconds = recorded["seconds"]
    print(f"call: {seconds / 60:.1f} min at real time, 16 kHz caller + 24 kHz bot (half the time), recorded at 16 kHz "
          f"stereo, {'consent announced first' if consent else 'no announcement'}")
    for side in ("caller", "bot"):
        print(f"{side} frame delay without the recorder: {_ms(baseline['delays'][side])}")
        print(f"{side} frame delay with it:             {_ms(recorded['delays'][side])}")
    share = (recorded["cpu"] - baseline["cpu"]) / seconds
    print(f"CPU: {share * 100:.2f} % of one core added ({recorded['cpu']:.1f} s with it, {baseline['cpu']:.1f} s "
          f"without)")
    for name, run in (("without", baseline), ("with", recorded)):
        print(f"RSS {name}: {run['rss_start']:.1f} MB at the start, {run['rss_peak']:.1f} MB at most, "
              f"{run['rss_end']:.1f} MB at the end (sampled each second)")
    print(f"RSS added at most: {recorded['rss_peak'] - baseline['rss_peak']:+.1f} MB")
    holds = sorted(hold for steps in recorded["holds"].values() for hold in steps)
    if holds:
        print(f"the recorder's longest hold of the event loop (CPU time, one step of its tasks or observers): "
              f"p99.9 {holds[int(len(holds) * 0.999)] * 1e3:.2f} ms, max {holds[-1] * 1e3:.2f} ms "
              f"over {len(holds)} steps")
        for name, steps in sorted(recorded["holds"].items()):
            print(f"  {name}: max {max(steps) * 1e3:.2f} ms over {len(steps)} steps")
    stats = recorded["stats"]
    print(f"recorded {stats['seconds']:.0f} s in {stats['parts']} parts; degraded: {stats['degraded'] or 'no'}, "
          f"frames dropped: {stats['dropped_frames']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--no-consent", action="store_true", help="a session recorded without an announcement")
    args = parser.parse_args()
    seconds = args.minutes * 60
    port = _free_port()
    sink = multiprocessing.get_context("spawn").Process(target=serve_parts, args=(port,), daemon=True)
    sink.start()
    try:
        baseline, recorded = _run_both(seconds, port, not args.no_consent)
    finally:
        sink.kill()
    report(baseline, recorded, not args.no_consent)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    main()
