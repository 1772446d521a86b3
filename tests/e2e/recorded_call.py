"""A phone call whose recording is measured: the Twilio fake speaks, is answered, hangs up, and the
session's artifacts are fetched; every frame sent and heard is timed (tests/fakes/carriers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.call_timeline import STEP, Windows, call_start, heard, said
from tests.e2e.recording_checks import artifacts_when_kept, timeline_event, twilio_call
from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import wait_active_sessions, wait_for_idle_bot
from tests.support.audio import BOT_AUDIO_RMS
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess


@dataclass(frozen=True)
class RecordedCall:
    call: CarrierCall
    wav: bytes
    report: dict[str, Any]
    turns: list[dict[str, Any]]
    timeline: dict[str, dict[str, Any]]  # the first event of each name the test asked for


async def listen(call: CarrierCall) -> None:
    """Receives (and times, in `call.heard`) the bot's audio until the call ends."""
    with contextlib.suppress(Exception):
        while True:
            await call.next_bot_audio(timeout=300)


def loud_after(windows: Windows, after: float) -> list[float]:
    return [t for t, level in zip(windows.times, windows.levels, strict=True) if t >= after and level > BOT_AUDIO_RMS]


async def replied(call: CarrierCall, timeout: float) -> None:
    """Waits for the bot's answer to the caller's last words: a second or more of its audio after
    them, then a second and a half of quiet."""
    spoken = said(call).utterances()[-1].end
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loud = loud_after(heard(call), spoken)
        if len(loud) * STEP >= 1.0 and time.monotonic() - call_start(call) - (loud[-1] + STEP) >= 1.5:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no reply after {spoken:.2f}s: {len(call.heard)} frames heard")


async def recorded_call(dispatcher: DispatcherProcess, speeches: list[bytes], *, warm: bool = True,
                        silence_first: float = 0.0, events: tuple[str, ...] = ()) -> RecordedCall:
    """A call that says each of `speeches` in turn (after `silence_first` seconds of silence),
    waits for the bot's answer to each but the last, hangs up a second after the last, and
    returns what was kept."""
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        if warm:
            await wait_for_idle_bot(api)
        session_id, call = await twilio_call(api)  # the line runs from here: silence unless the caller speaks
        listening = asyncio.create_task(listen(call))
        await asyncio.sleep(silence_first)
        for index, speech in enumerate(speeches):
            await call.say(speech)
            if index < len(speeches) - 1:
                await replied(call, timeout=120)
        await asyncio.sleep(1.0)  # the call's last words, a second before the caller hangs up
        await call.hang_up()
        listening.cancel()
        assert await wait_active_sessions(api, 0) == 0
        listing = await artifacts_when_kept(api, session_id, {"recording.wav", "report.json", "transcript.jsonl"})
        timeline = {event: await timeline_event(api, session_id, event) for event in events}
        urls = {a["name"]: a["url"] for a in listing["artifacts"]}
        async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=30) as download:
            wav = (await download.get(urls["recording.wav"])).content
            report = (await download.get(urls["report.json"])).json()
            turns = [json.loads(line) for line in (await download.get(urls["transcript.jsonl"])).text.splitlines()]
    return RecordedCall(call, wav, report, turns, timeline)
