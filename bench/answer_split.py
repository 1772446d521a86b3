"""How often a booking-line answer is heard split across turns beside CPU hogs, and what the bot's
RTVI events and audio did when it was.

    .venv/bin/python -m bench.answer_split [--runs 10] [--hogs 2] [--stalls 0.5] [--scenario book_a_table] [--out DIR]

Starts a local dispatcher (`BOT_FILE=examples/booking/bot.py`, one warm bot), `--hogs` busy loops
(`python3 -c 'while True: pass'`, killed at the end), with `--stalls S` a stand-in for a machine at a
load of 20-40 that costs it no CPU (bench/stalls.py: the bots and the caller each stopped for
0.05-S s at random, as a starved process is), then places one scenario's call `--runs` times,
one at a time, as `voicefleet eval` does (its own `run_call`). Each RTVI message is stamped with its
arrival time, each answer with when the caller began and stopped listening. Prints each run's
failures and the load average; for each failed turn, its timeline: every RTVI message (seconds from
the caller's end of speech) and the loud spans of the audio heard. `--out` keeps every turn's
timeline as JSON lines (for a unit test's recorded sequence); `--recount DIR` counts the split answers
in those again. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.eval_suite import BOT_FILE, ROOT, wait_for_reserve
from tests.support.processes import run_dispatcher
from voicefleet.evals import call
from voicefleet.evals.checks import words
from voicefleet.evals.outcome import Target
from voicefleet.evals.scenario import load_scenario
from voicefleet.loadtest.audio import BOT_AUDIO_RMS
from voicefleet.loadtest.webrtc import WebRTCClient

SCENARIOS = ROOT / "examples" / "booking" / "scenarios"
GAP = 0.06  # quiet frames shorter than this join two loud spans (a word's own gaps)


class TimedList(list[dict[str, Any]]):
    """The client's RTVI messages, each one's arrival time (monotonic) kept beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, message: dict[str, Any]) -> None:
        self.times.append(time.monotonic())
        super().append(message)


class TimedClient(WebRTCClient):  # type: ignore[misc, unused-ignore]
    """The eval's own client, remembered with its messages' arrival times."""

    made: list[TimedClient] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timed = TimedList()
        self.rtvi_messages = self.timed
        self.heard: list[tuple[int, float, float]] = []  # (first message, began, ended) per answer
        TimedClient.made.append(self)


def timed_hear() -> Any:
    original = call._hear

    async def hear(client: TimedClient, **kwargs: Any) -> Any:
        began = time.monotonic()
        answer = await original(client, **kwargs)
        client.heard.append((kwargs["since"], began, time.monotonic()))
        return answer

    return hear


def loud_spans(client: WebRTCClient, after: float, until: float) -> list[tuple[float, float]]:
    spans: list[list[float]] = []
    for at, level in zip(client.recording.times, client.recording.levels, strict=True):
        if after <= at <= until and level > BOT_AUDIO_RMS:
            if spans and at - spans[-1][1] <= GAP:
                spans[-1][1] = at
            else:
                spans.append([at, at])
    return [(round(a - after, 3), round(b - after, 3)) for a, b in spans]


def split(line: dict[str, Any]) -> bool:
    """Whether an answer's timeline (`timeline`) shows it cut in two: words of the response its LLM gave
    before the answer ended, not spoken by then, were spoken after it (before the bot's next response
    began). A response an interruption cut short is never spoken whole, and is no split."""
    ended = line["ended"]
    before = [e for e in line["events"] if e["t"] <= ended]
    after = []
    for event in (e for e in line["events"] if e["t"] > ended):
        if event["type"] == "bot-llm-started":
            break
        after.append(event)
    generated = words("".join(e.get("text", "") for e in before if e["type"] == "bot-llm-text"))
    spoken = words(" ".join(e["text"] for e in before if e["type"] == "bot-output" and e.get("spoken")))
    later = [words(e["text"]) for e in after if e["type"] == "bot-output" and e.get("spoken")]
    return any(text and text in generated and text not in spoken for text in later)


def timeline(client: TimedClient, index: int) -> dict[str, Any]:
    """One answer's RTVI messages and loud audio, in seconds from when the caller began listening,
    up to 5 s past the next answer's start (what leaked into it)."""
    since, began, ended = client.heard[index]
    following = client.heard[index + 1][1] if index + 1 < len(client.heard) else ended
    messages = client.timed
    events = []
    for at, message in zip(messages.times[since:], messages[since:], strict=True):
        if at > following + 5:
            break
        data = message.get("data") or {}
        events.append({"t": round(at - began, 3), "type": message.get("type"),
                       **{k: data[k] for k in ("text", "spoken", "final") if k in data}})
    return {"ended": round(ended - began, 3), "next_began": round(following - began, 3),
            "events": events, "loud": loud_spans(client, began, following + 5)}


async def one_call(base_url: str, scenario: Any) -> tuple[list[str], TimedClient | None]:
    TimedClient.made.clear()
    async with httpx.AsyncClient(timeout=30) as http:
        result = await call.run_call(Target(base_url, None, None), scenario, http, "answer-split")
    problems = [*result.problems, *(f"turn {n}: {p}" for n, t in enumerate(result.turns, 1) for p in t.problems)]
    return problems, (TimedClient.made[0] if TimedClient.made else None)


def recount(folder: Path) -> None:
    """Each saved run's split answers, from its timelines."""
    cut = answers = 0
    for saved in sorted(folder.glob("run*.jsonl"), key=lambda path: int(path.stem[3:])):
        lines = [json.loads(text) for text in saved.read_text().splitlines()]
        splits = [i for i, line in enumerate(lines) if split(line)]
        cut, answers = cut + len(splits), answers + len(lines)
        print(f"{saved.stem}: answers heard split: {splits or 'none'}")
    print(f"{cut} of {answers} answers heard split")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--stalls", type=float, default=None, metavar="SECONDS",
                        help="stop the bots and the caller at random, each time for up to SECONDS")
    parser.add_argument("--scenario", default="book_a_table")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--recount", type=Path, default=None, metavar="DIR",
                        help="count the split answers in an earlier run's --out, and place no call")
    args = parser.parse_args()
    if args.recount:
        recount(args.recount)
        return
    scenario = load_scenario(SCENARIOS / f"{args.scenario}.toml")
    vars(call)["WebRTCClient"] = TimedClient  # the eval's own calls, their messages timed
    call._hear = timed_hear()
    hogs = [subprocess.Popen(["python3", "-c", "while True: pass"]) for _ in range(args.hogs)]
    failed = cut = answers = 0
    try:
        with tempfile.TemporaryDirectory() as logs, \
                run_dispatcher(Path(logs), {"BOT_FILE": str(BOT_FILE), "RESERVE_MIN_IDLE": "1"}) as dispatcher:
            if args.stalls:
                hogs.append(subprocess.Popen([sys.executable, "-m", "bench.stalls", "--longest", str(args.stalls),
                                              str(os.getpid()), str(dispatcher.process.pid)], cwd=ROOT))
            for run in range(1, args.runs + 1):
                wait_for_reserve(dispatcher.base_url, 1)
                load = os.getloadavg()[0]
                problems, client = asyncio.run(one_call(dispatcher.base_url, scenario))
                failed += bool(problems)
                lines = [] if client is None else [timeline(client, i) for i in range(len(client.heard))]
                splits = [i for i, line in enumerate(lines) if split(line)]
                cut, answers = cut + len(splits), answers + len(lines)
                print(f"run {run}: {'passed' if not problems else 'FAILED'} (load {load:.1f}); "
                      f"answers heard split: {splits or 'none'}", flush=True)
                for problem in problems:
                    print(f"  {problem}", flush=True)
                if args.out:
                    args.out.mkdir(parents=True, exist_ok=True)
                    with open(args.out / f"run{run}.jsonl", "w") as out:
                        out.writelines(json.dumps(line) + "\n" for line in lines)
                if problems:
                    for number, line in enumerate(lines):
                        print(f"  answer {number}: ended {line['ended']} s, loud {line['loud']}", flush=True)
                        for event in line["events"]:
                            print(f"    {event}", flush=True)
    finally:
        for hog in hogs:  # terminated, not killed: the stalls resume what they stopped as they go
            hog.terminate()
            hog.wait()
    print(f"{failed} of {args.runs} calls failed, {cut} of {answers} answers heard split, beside {args.hogs} hogs"
          f"{f' and stalls of up to {args.stalls} s' if args.stalls else ''}", flush=True)


if __name__ == "__main__":
    main()
