"""A warm start taken apart: each step from the caller's `POST` (or the carrier's socket) to the
caller's first audio, on one clock, for WebRTC and a Twilio stream.

    uv run --all-groups python -m bench.warm_start_steps --runs 15

A real dispatcher (`python -m dispatcher`, local, `RESERVE_MIN_IDLE=1`) in its own process, its
bots real `python -m bot` processes, this process the caller. Every time is wall-clock epoch
seconds (`time.time()`): the same clock in each process of one machine, so the caller's own
steps, the dispatcher's timeline of the session (`GET /sessions/{id}/timeline`: `claimed` at the
dispatcher; `joined` and `first_audio` as the bot reported them over its channel) line up.

WebRTC (the default bot, which greets on connect), the steps as the caller and the bot see them:

- `start`        POST /start sent → answered (the dispatcher claimed a warm bot)
- `offer`        → the caller's offer made (aiortc gathers its candidates before it returns)
- `answer`       → the bot's answer back (through the dispatcher's offer relay and the channel)
- `ice`          → ICE connected at the caller (connectivity checks)
- `dtls`         → DTLS done: the peer connection is connected at the caller
- `bot_joined`   → the bot's `joined` report reached the dispatcher
- `bot_audio`    → the bot's `first_audio` report (its speech started playing)
- `first_packet` → the bot's first RTP packet reached the caller (silence or not)
- `first_frame`  → the caller's first audio frame out of aiortc's jitter buffer
- `first_audio`  → the caller's first loud frame: the figure the caller hears

Twilio (tests/phone/echo_bot.py under `python -m bot`, which greets on connect):

- `start`        socket opened and `connected`/`start` sent
- `bot_joined`   → the bot's `joined` report (its media socket attached)
- `bot_audio`    → its `first_audio` report
- `first_audio`  → the first `media` message at the carrier

Each step's p50/p95 (ms) and its share of the median total; before each start the reserve holds an
idle bot again (not part of any figure). Prints the load average; asserts nothing.
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
from typing import Any

import httpx
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from websockets.asyncio.client import connect

from bench.phone_calls import _stream, start_messages
from tests.phone.conftest import phone_env
from tests.support.audio import loud_segments
from tests.support.processes import run_dispatcher
from tests.support.webrtc_client import WebRTCClient, post_json

TIMEOUT = 30.0
WEB_STEPS = ("start", "offer", "answer", "ice", "dtls", "first_packet", "first_frame", "first_audio", "bot_joined",
             "bot_audio")
FIRST_PACKET: dict[int, float] = {}  # a receiver's first RTP packet, by id(receiver)


def time_first_packets() -> None:
    """Each audio receiver of this process (the caller's) notes when its first RTP packet arrived,
    before aiortc's jitter buffer holds it (4 packets, 80 ms, before the first frame leaves)."""
    handle = RTCRtpReceiver._handle_rtp_packet

    async def noted(self: RTCRtpReceiver, packet: Any, arrival_time_ms: int) -> None:
        FIRST_PACKET.setdefault(id(self), time.time())
        await handle(self, packet, arrival_time_ms)

    RTCRtpReceiver._handle_rtp_packet = noted  # type: ignore[method-assign]
PHONE_STEPS = ("start", "first_audio", "bot_joined", "bot_audio")


async def wait_for_idle_bot(api: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 120
    while True:
        text = (await api.get("/metrics")).text
        if any(line.startswith('voicefleet_reserve_bots{provider="local",state="idle"}') and not line.endswith(" 0.0")
               for line in text.splitlines()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the reserve never refilled")
        await asyncio.sleep(0.05)


async def timeline(api: httpx.AsyncClient, session_id: str, events: tuple[str, ...]) -> dict[str, float]:
    """The first time of each of `events` on the session's timeline (written in the background)."""
    deadline = time.monotonic() + 10
    while True:
        found: dict[str, float] = {}
        for entry in (await api.get(f"/sessions/{session_id}/timeline")).json().get("events", []):
            found.setdefault(entry["event"], entry["at"])
        if all(event in found for event in events) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def web_start(api: httpx.AsyncClient, base_url: str) -> dict[str, float]:
    to_wall = time.time() - time.monotonic()  # the recording's monotonic times, as epoch seconds
    at: dict[str, float] = {"began": time.time()}
    response = await api.post("/start", json={})
    at["start"] = time.time()
    response.raise_for_status()
    session = response.json()
    offer_url = base_url + session["offer_url"]

    async def signal(offer: dict[str, Any]) -> dict[str, Any]:
        at["offer"] = time.time()
        answer = await post_json(offer_url, offer)
        at["answer"] = time.time()
        return answer

    client = WebRTCClient(offer_url, connect_timeout=TIMEOUT, signal=signal)

    @client.pc.on("iceconnectionstatechange")
    def _on_ice() -> None:
        if client.pc.iceConnectionState in ("connected", "completed"):
            at.setdefault("ice", time.time())

    try:
        await client.connect()
        at["dtls"] = client.connected_at + to_wall if client.connected_at else time.time()
        deadline = time.monotonic() + TIMEOUT
        while not (segments := loud_segments(client.recording.times, client.recording.levels)):
            if time.monotonic() > deadline:
                raise RuntimeError("no bot audio")
            await asyncio.sleep(0.002)
        receiver = client.pc.getTransceivers()[0].receiver
        at["first_packet"] = FIRST_PACKET.get(id(receiver), float("nan"))
        at["first_frame"] = client.recording.times[0] + to_wall
        at["first_audio"] = segments[0].start + to_wall
    finally:
        await client.close()
    bot = await timeline(api, session["session_id"], ("joined", "first_audio"))
    at["bot_joined"], at["bot_audio"] = bot.get("joined", float("nan")), bot.get("first_audio", float("nan"))
    await api.delete(f"/sessions/{session['session_id']}")
    return at


def report_files(reports: Path) -> set[Path]:
    return set(reports.glob("*.json"))


def new_report(reports: Path, known: set[Path]) -> str | None:
    """The session id of the call's report, once the echo bot has written it (it does as the call ends)."""
    deadline = time.monotonic() + 10
    while not (new := report_files(reports) - known):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)
    return new.pop().stem


async def phone_start(api: httpx.AsyncClient, base_url: str, call: int, reports: Path) -> dict[str, float]:
    """The call's session id is the name of the report the echo bot writes (PHONE_TEST_REPORTS)."""
    known = await asyncio.to_thread(report_files, reports)
    ws_url = base_url.replace("http://", "ws://") + "/ws/twilio"
    at: dict[str, float] = {"began": time.time()}
    async with connect(ws_url, proxy=None, compression=None) as ws:
        for message in start_messages(call):
            await ws.send(message)
        at["start"] = time.time()
        sender = asyncio.create_task(_stream(ws, 10_000))
        while json.loads(await ws.recv()).get("event") != "media":
            pass
        at["first_audio"] = time.time()
        sender.cancel()
    session_id = await asyncio.to_thread(new_report, reports, known)
    bot = await timeline(api, session_id, ("joined", "first_audio")) if session_id else {}
    at["bot_joined"], at["bot_audio"] = bot.get("joined", float("nan")), bot.get("first_audio", float("nan"))
    return at


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, steps: tuple[str, ...], rows: list[dict[str, float]]) -> None:
    """The caller's own steps in order, each from the one before (they add up to the total), then
    the bot's reports as they reached the dispatcher, from `began` (they overlap the caller's)."""
    totals = [row["first_audio"] - row["began"] for row in rows]
    total = statistics.median(totals)
    print(f"{name}: began → first audio p50 {total * 1000:.0f} ms, p95 {pct(totals, 0.95) * 1000:.0f} ms, "
          f"n={len(rows)}")
    print(f"  {'step':12} {'p50 ms':>7} {'p95 ms':>7} {'share':>6}   {'from began p50':>14}")
    previous = "began"
    for step in steps:
        since = [row[step] - row["began"] for row in rows if row[step] == row[step]]
        if not since:
            print(f"  {step:12} (not seen)")
            continue
        if step.startswith("bot_"):
            print(f"  {step:12} {'':>7} {'':>7} {'':>6}   {statistics.median(since) * 1000:14.1f}  (the bot's report)")
            continue
        durations = [row[step] - row[previous] for row in rows]
        p50 = statistics.median(durations)
        print(f"  {step:12} {p50 * 1000:7.1f} {pct(durations, 0.95) * 1000:7.1f} {p50 / total:6.0%}   "
              f"{statistics.median(since) * 1000:14.1f}")
        previous = step


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", choices=("web", "phone"), default=None)
    args = parser.parse_args()
    time_first_packets()
    load_before = os.getloadavg()
    web: list[dict[str, float]] = []
    phone: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as logs:
        env = {**phone_env(Path(logs)), "LOG_LEVEL": "warning"}
        del env["BOT_FILE"]  # the web runs: the default bot; the phone runs set the echo bot below
        if args.only != "phone":
            with run_dispatcher(Path(logs), {**env, "RESERVE_MIN_IDLE": "1"}, log_name="web.log") as dispatcher:
                async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=60) as api:
                    for _ in range(args.runs):
                        await wait_for_idle_bot(api)
                        web.append(await web_start(api, dispatcher.base_url))
        if args.only != "web":
            phone_bot = phone_env(Path(logs))["BOT_FILE"]
            # A call's session is the carrier's, not an API key's: its timeline is read with an admin key.
            admin = os.urandom(24).hex()
            phone_dispatcher_env = {**env, "BOT_FILE": phone_bot, "DISPATCHER_ADMIN_KEYS": admin}
            with run_dispatcher(Path(logs), phone_dispatcher_env, log_name="phone.log") as dispatcher:
                async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=60,
                                             headers={"Authorization": f"Bearer {admin}"}) as api:
                    for call in range(args.runs):
                        await wait_for_idle_bot(api)
                        phone.append(await phone_start(api, dispatcher.base_url, call, Path(logs)))
                        await asyncio.sleep(0.3)  # the call's bot exits
    load_after = os.getloadavg()
    print(f"load avg (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, "
          f"after {'/'.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores")
    if web:
        report("webrtc", WEB_STEPS, web)
    if phone:
        report("twilio", PHONE_STEPS, phone)


if __name__ == "__main__":
    asyncio.run(main())
