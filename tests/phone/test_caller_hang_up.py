"""Whose hang-up ended a phone call, as the session's timeline says and the release judge reads it:
the bot reports both its caller's hang-up and its own end as its pipeline finishing, so only the
dispatcher's relay, which sees the carrier's stop before the bot's end, can tell them apart (the
bot's own hang-up: tests/phone/test_calls.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.types import Message

from dispatcher.phone.relay import relay_call
from dispatcher.sessions.release_outcome import outcome_of
from tests.dispatcher.phone.test_relay_ends import DISCONNECT, Side
from tests.phone.conftest import ended_timeline, wait_for_idle_bot
from tests.phone.test_calls import place_call, rms
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess


@pytest.mark.slow  # real processes: a dispatcher, its reserve bots, a carrier's stream
@pytest.mark.parametrize("carrier", ["twilio", "plivo"])  # Twilio's stop, then its close; Plivo's close alone
async def test_a_caller_who_hangs_up_after_the_greeting_is_named_on_the_timeline(
    phone_dispatcher: tuple[DispatcherProcess, Path], carrier: str
) -> None:
    dispatcher, _ = phone_dispatcher
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        call, session_id = await place_call(api, carrier, {})
        while rms(await call.next_bot_audio(timeout=30)) <= 500:  # the greeting: the bot is on the line
            pass
        await call.hang_up()  # at once, within the first turn
        events = await ended_timeline(api, session_id)
    ended = next(e for e in events if e["event"] == "ended")
    assert ended["reason"] == "pipeline_finished"  # the bot's word is the same as for its own end
    hung_up = [e for e in events if e["event"] == "caller_hung_up"]
    assert len(hung_up) == 1 and hung_up[0]["at"] <= ended["at"], events
    assert hung_up[0]["how"] == ("stop" if carrier == "twilio" else "closed") and hung_up[0]["carrier"] == carrier
    # The relay's word is on the timeline for people; the judge cannot tell it from a bot that hung up
    # through the carrier's API first (Pipecat's default), so the call counts as ended early.
    outcome = outcome_of(events)
    assert outcome is not None and outcome.failure == "ended early"



STOP: Message = {"type": "websocket.receive", "text": json.dumps({"event": "stop", "streamSid": "MZ1"})}
HANDSHAKE: list[Message] = [{"type": "websocket.receive", "text": json.dumps({"event": event})}
                            for event in ("connected", "start")]


class QuickBot(Side):
    """A bot that ends its call as soon as it reads the carrier's stop: its socket closes before the
    carrier's does."""

    async def send(self, message: Message) -> None:
        await super().send(message)
        if message.get("text") == STOP["text"]:
            self.frames.put_nowait(DISCONNECT)


async def relayed(carrier: Side, bot: Side) -> tuple[str | None, list[str]]:
    """How the relay named the call's end, and the hang-ups it told of."""
    told: list[str] = []

    async def attach() -> Side:
        return bot

    async def end(reason: str) -> None:
        pass

    stats = await relay_call(carrier, attach, end, caller_hung_up=lambda at, how: told.append(how))  # type: ignore[arg-type]
    return stats.ended_by, told


async def test_the_carriers_stop_names_the_caller_even_when_the_bot_closes_before_the_carrier() -> None:
    assert await relayed(Side(*HANDSHAKE, STOP), QuickBot()) == ("bot", ["stop"])


async def test_a_bot_that_ends_first_is_no_callers_hang_up() -> None:
    assert await relayed(Side(*HANDSHAKE), Side(DISCONNECT)) == ("bot", [])
    assert await relayed(Side(*HANDSHAKE, DISCONNECT), Side()) == ("carrier", ["closed"])  # the caller's close
