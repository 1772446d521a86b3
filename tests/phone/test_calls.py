"""Phone calls end to end: each carrier's protocol, through the real dispatcher process, to a
real bot process running a user bot in Pipecat's canonical shape (tests/phone/echo_bot.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from dispatcher.sessions.release_outcome import outcome_of
from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import (
    ended_timeline,
    metric,
    phone_env,
    speech_8k,
    wait_active_sessions,
    wait_for_idle_bot,
)
from tests.support.audio import rms as rms_of
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher

pytestmark = pytest.mark.slow  # real processes, Pipecat imports, real audio: seconds per call

def rms(pcm16: bytes) -> float:
    return rms_of(np.frombuffer(pcm16, dtype=np.int16))


CUSTOM = {"from_number": "+14155550100", "to_number": "+14155550199", "customer": "ada"}


async def place_call(api: httpx.AsyncClient, carrier: str, body: dict[str, object]) -> tuple[CarrierCall, str]:
    answer = await api.post("/start", json={"transport": carrier, "body": body})
    assert answer.status_code == 201, answer.text
    start = answer.json()
    assert set(start) == {"wsUrl", "token", "sessionId"}
    call = CarrierCall(carrier, f"{start['wsUrl']}/{start['token']}", custom=CUSTOM)
    await call.open()
    await call.handshake()
    return call, start["sessionId"]


CARRIERS = ("twilio", "telnyx", "plivo", "exotel")
WARM_HIT = 'voicefleet_reserve_claims_total{outcome="warm_hit"'
ACTIVE = 'voicefleet_active_sessions{provider="local",'


@pytest.fixture(scope="module")
def phone_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DispatcherProcess, Path]]:
    """The phone tests' dispatcher with a warm bot for each carrier: their calls are placed at once."""
    reports = tmp_path_factory.mktemp("calls")
    env = {**phone_env(reports), "RESERVE_MIN_IDLE": str(len(CARRIERS))}
    with run_dispatcher(tmp_path_factory.mktemp("phone"), env) as running:
        yield running, reports


async def greeted(api: httpx.AsyncClient, carrier: str) -> tuple[CarrierCall, str]:
    """A call placed as `carrier` streams it, once its bot's greeting is heard."""
    call, session_id = await place_call(api, carrier, {"plan": "gold"})
    # The bot's greeting, encoded by its own serializer for this carrier. The echo bot plays back the
    # caller's line too, and Exotel's first 100 ms of silence can come back before the greeting.
    greeting = await call.next_bot_audio(timeout=30)
    while rms(greeting) <= 500:
        greeting = await call.next_bot_audio(timeout=30)
    return call, session_id


async def echoed(call: CarrierCall) -> bytes:
    """What the bot sent back of the caller's speech."""
    speech = speech_8k()
    await call.say(speech)
    return await call.bot_audio(len(speech) / 16000 * 0.8, timeout=30)


async def test_a_call_on_each_carrier_reaches_a_warm_bot_that_answers_and_ends_with_the_callers_hang_up(
    phone_dispatcher: tuple[DispatcherProcess, Path],
) -> None:
    """A call on each carrier's protocol, the four at once, each on a warm bot of its own: one call's
    claims each, as its own test made them one call at a time (four times the calls' seconds)."""
    dispatcher, reports = phone_dispatcher
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api, len(CARRIERS))
        warm_before = await metric(api, WARM_HIT)
        calls = await asyncio.gather(*(greeted(api, carrier) for carrier in CARRIERS))
        assert await metric(api, ACTIVE) == len(CARRIERS)  # each call's machine
        assert await metric(api, WARM_HIT) == warm_before + len(CARRIERS)  # each met a warm bot

        heard = await asyncio.gather(*(echoed(call) for call, _ in calls))
        for carrier, (call, session_id), echo in zip(CARRIERS, calls, heard, strict=True):
            assert rms(echo) > 500, carrier  # the caller's speech came back: in, through the bot, out
            seen = json.loads((reports / f"{session_id}.json").read_text())
            assert seen["transport_type"] == carrier  # detected by the bot's own create_transport
            assert seen["body"] == {"plan": "gold"}, carrier
            assert seen["call_data"]["call_id"] == call.call_id, carrier
            assert seen["call_data"]["stream_id"] == call.stream_id, carrier
            if carrier == "twilio":  # TwiML <Parameter>s, as Pipecat delivers them
                assert seen["call_data"]["body"] == CUSTOM
                assert seen["call_data"]["from"] == CUSTOM["from_number"]

        await asyncio.gather(*(call.hang_up() for call, _ in calls))
        assert await wait_active_sessions(api, 0) == 0  # their machines ended


async def test_the_bot_hanging_up_closes_the_carriers_stream_and_ends_the_machine(
    phone_dispatcher: tuple[DispatcherProcess, Path],
) -> None:
    dispatcher, _ = phone_dispatcher
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        call, session_id = await place_call(api, "twilio", {"hang_up_after_greeting": True})
        assert await call.wait_closed_by_bot(timeout=30) is not None
        assert await wait_active_sessions(api, 0) == 0  # its machine ended
        events = await ended_timeline(api, session_id)
    # Its caller did not hang up: the bot ended its own call within seconds, which its release answers for.
    assert not [e for e in events if e["event"] == "caller_hung_up"], events
    outcome = outcome_of(events)
    assert outcome is not None and outcome.failure == "ended early"
