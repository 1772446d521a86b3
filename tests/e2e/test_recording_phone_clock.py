"""A phone call's recording is on the call's own clock: the dispatcher holds the carrier's frames
while the bot is claimed (warm) or started (cold, seconds) and hands them over at once, and the
recording still has each reply as far after the caller's words as the caller heard it, and every
word the caller said, the last ones included. Real dispatcher, real bot host running the parrot,
the Twilio fake as the caller, timed on both sides."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.call_timeline import STEP, Windows, call_start, channel, heard, said
from tests.e2e.recording_checks import artifacts_when_kept, read_stereo, twilio_call
from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import phone_env, speech_8k, wait_active_sessions, wait_for_idle_bot
from tests.support.audio import BOT_AUDIO_RMS
from tests.support.examples import PARROT
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # a real dispatcher, a real bot process importing Pipecat and Silero

TOLERANCE = 0.1  # seconds between a gap in the recording and the same gap as the caller lived it
RATE = 8000
COLD_SILENCE = 4.0  # a cold call speaks after this: within the dispatcher's 10 s of held frames
SLOW_PARROT = Path(__file__).parents[1] / "bots" / "slow_parrot.py"  # the parrot, 4 s to import


@pytest.fixture(scope="module", params=["warm", "cold"])
def phone_call(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DispatcherProcess]]:
    folder = tmp_path_factory.mktemp("recordings")
    env = {**phone_env(tmp_path_factory.mktemp("calls")), "BOT_FILE": str(PARROT / "bot.py"),
           "RECORDING": "on", "RECORDING_DESTINATION": str(folder)}
    if request.param == "cold":  # no reserve: the call's bot is launched when the carrier connects, and is slow
        env |= {"RESERVE_MIN_IDLE": "0", "RESERVE_MAX_IDLE": "0", "BOT_FILE": str(SLOW_PARROT)}
    with run_dispatcher(tmp_path_factory.mktemp(f"phone-{request.param}"), env) as running:
        yield request.param, running


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


async def a_call(dispatcher: DispatcherProcess, kind: str) -> tuple[CarrierCall, bytes, dict[str, Any], list[Any]]:
    speech = speech_8k()
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        if kind == "warm":
            await wait_for_idle_bot(api)
        session_id, call = await twilio_call(api)  # the line runs from here: silence unless the caller speaks
        listening = asyncio.create_task(listen(call))
        if kind == "cold":
            await asyncio.sleep(COLD_SILENCE)
        await call.say(speech)  # while the bot is claimed or started: its frames are held, then handed over at once
        await replied(call, timeout=120)
        await call.say(speech)
        await replied(call, timeout=60)
        await call.say(speech)  # the call's last words, a second before the caller hangs up
        await asyncio.sleep(1.0)
        await call.hang_up()
        listening.cancel()
        assert await wait_active_sessions(api, 0) == 0
        listing = await artifacts_when_kept(api, session_id, {"recording.wav", "report.json", "transcript.jsonl"})
        urls = {a["name"]: a["url"] for a in listing["artifacts"]}
        async with httpx.AsyncClient(base_url=dispatcher.base_url, timeout=30) as download:
            wav = (await download.get(urls["recording.wav"])).content
            report = (await download.get(urls["report.json"])).json()
            turns = [json.loads(line) for line in (await download.get(urls["transcript.jsonl"])).text.splitlines()]
    return call, wav, report, turns


async def test_each_reply_is_as_far_after_the_callers_words_as_heard_and_no_word_is_cut(
        phone_call: tuple[str, DispatcherProcess]) -> None:
    kind, dispatcher = phone_call
    call, wav, report, _ = await a_call(dispatcher, kind)
    stereo = read_stereo(wav)
    assert stereo.sample_rate == RATE
    spoken, lived = said(call).utterances(), heard(call)
    left, right = channel(stereo.left, RATE), channel(stereo.right, RATE)
    kept = left.utterances()
    assert len(spoken) == 3 and len(kept) == 3, (kind, spoken, kept)
    for said_it, recorded in zip(spoken, kept, strict=True):  # every word, the last ones too
        assert recorded.seconds >= said_it.seconds - TOLERANCE, (kind, spoken, kept)
    for said_it, recorded in zip(spoken[:2], kept[:2], strict=True):
        answered, in_wav = lived.first_loud_after(said_it.end), right.first_loud_after(recorded.end)
        assert answered is not None and in_wav is not None, (kind, said_it, recorded)
        gap_heard, gap_kept = answered - said_it.end, in_wav - recorded.end
        assert abs(gap_kept - gap_heard) <= TOLERANCE, (kind, f"heard {gap_heard:.3f}s after the caller's words, "
                                                              f"{gap_kept:.3f}s in the recording", spoken, kept)
    assert report["recording"]["status"] == "complete"
