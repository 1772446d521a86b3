"""A placed call's asynchronous answering-machine verdict reaches the bot already talking on it: the
dispatcher in-process with its channel on a real port, Twilio a strict fake (tests/fakes/twilio_outbound.py)
whose signed AMD callback reaches the app, and the bot host's own channel client (bot/channel_client.py)
with its `call.answered_by` handler (bot/answered_by.py), dialled in for the call's session."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from bot import answered_by as bot_verdicts
from bot.answered_by import heard_verdict, on_answered_by
from bot.channel_client import BotChannel
from bot.identity import MachineIdentity
from botchannel.answered_by import METHOD_ANSWERED_BY, AnsweredBy
from botchannel.contract import CHANNEL_PATH, Hello
from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.dispatcher.phone.placed_calls import TWILIO_CALL, events, twilio_placing
from tests.fakes.twilio_outbound import FakeTwilioCalls
from tests.support.dispatcher_server import InProcess, in_process
from tests.support.hand_dialled import hand_dialled

CHANNEL_SECRET = "answered-by-channel-secret-0123456789abcdef"


@pytest.fixture
async def dispatcher(twilio: FakeTwilioCalls) -> AsyncIterator[InProcess]:
    app = create_app(Settings(bot_channel_token=CHANNEL_SECRET), env=twilio_placing(twilio.url),
                     machines=hand_dialled(), rooms=None)
    twilio.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    async with in_process(app) as running:
        running.client.app = app  # type: ignore[attr-defined]  # what tests/dispatcher/phone/placed_calls.py reads
        yield running


@pytest.fixture(autouse=True)
def fresh_bot() -> Iterator[None]:
    yield
    bot_verdicts._handler.clear()  # one bot process holds one session's: each test is a new bot
    bot_verdicts._verdict.clear()


async def place(dispatcher: InProcess, twilio: FakeTwilioCalls, **change: Any) -> tuple[str, str]:
    answer = await dispatcher.client.post("/calls", json={**TWILIO_CALL, **change})
    assert answer.status_code == 201, answer.text
    sid = answer.json()["call_sid"]
    assert all(a.status_code == 204 for a in await twilio.answer(sid))
    return answer.json()["session_id"], sid


@contextlib.asynccontextmanager
async def bot_for(dispatcher: InProcess, session_id: str) -> AsyncIterator[None]:
    """The session's bot on its channel while it lasts, as the bot host dials it, answering `call.answered_by`."""
    url = f"ws://127.0.0.1:{dispatcher.port}{CHANNEL_PATH}"
    credential = dispatcher.state.channels.credentials.issue("session", session_id, 600)
    channel = BotChannel(url, credential, Hello(machine_id="amd-bot", image="dev", session_id=session_id),
                         {METHOD_ANSWERED_BY: heard_verdict}, MachineIdentity(None, url, {}))
    await channel.connect()
    serving = asyncio.create_task(channel.serve())
    try:
        assert await dispatcher.state.channels.wait_link(session_id, 10) is not None
        yield
    finally:
        await channel.close()
        serving.cancel()


def verdicts(timeline: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["answered_by"], e.get("bot")) for e in timeline if e["event"] == "answered_by"]


async def test_a_person_s_verdict_reaches_the_running_bot_s_handler_and_the_timeline(
        dispatcher: InProcess, twilio: FakeTwilioCalls) -> None:
    session_id, sid = await place(dispatcher, twilio)
    heard: asyncio.Queue[AnsweredBy] = asyncio.Queue()
    on_answered_by(heard.put_nowait)
    async with bot_for(dispatcher, session_id):
        answer = await twilio.detect(sid, "human")
        assert answer is not None and answer.status_code == 204, answer
        verdict = await asyncio.wait_for(heard.get(), 10)
        assert verdict == AnsweredBy("human", "twilio") and verdict.human and not verdict.machine
        assert bot_verdicts.answered_by() == verdict
        assert verdicts(await events(dispatcher.client, session_id)) == [("human", "heard")]
        assert twilio.calls_by_sid[sid].status == "in-progress"  # the call goes on with this bot


async def test_a_verdict_told_before_the_bot_s_handler_is_registered_still_reaches_it(
        dispatcher: InProcess, twilio: FakeTwilioCalls) -> None:
    session_id, sid = await place(dispatcher, twilio)
    async with bot_for(dispatcher, session_id):
        assert (await twilio.detect(sid, "unknown")) is not None
        assert verdicts(await events(dispatcher.client, session_id)) == [("unknown", "no_handler")]
        heard: asyncio.Queue[AnsweredBy] = asyncio.Queue()
        on_answered_by(heard.put_nowait)  # the bot's code registers after the verdict came
        assert (await asyncio.wait_for(heard.get(), 10)) == AnsweredBy("unknown", "twilio")


async def test_a_verdict_with_no_bot_connected_is_on_the_timeline_and_hangs_nothing_up(
        dispatcher: InProcess, twilio: FakeTwilioCalls) -> None:
    session_id, sid = await place(dispatcher, twilio)
    answer = await twilio.detect(sid, "unknown")
    assert answer is not None
    assert answer.status_code == 204, answer.text
    assert verdicts(await events(dispatcher.client, session_id)) == [("unknown", "no_bot")]


async def test_a_machine_hung_up_on_is_never_sent_to_the_bot(dispatcher: InProcess, twilio: FakeTwilioCalls) -> None:
    session_id, sid = await place(dispatcher, twilio)  # voicemail: hang_up
    heard: asyncio.Queue[AnsweredBy] = asyncio.Queue()
    on_answered_by(heard.put_nowait)
    async with bot_for(dispatcher, session_id):
        assert (await twilio.detect(sid, "machine_start")) is not None
        assert verdicts(await events(dispatcher.client, session_id)) == [("machine_start", None)]
        assert heard.empty() and twilio.calls_by_sid[sid].status == "completed"


async def test_the_bot_refuses_a_verdict_its_contract_does_not_name() -> None:
    from botchannel.contract import RequestFailed

    for params in ({"answered_by": "robot", "carrier": "twilio"}, {"answered_by": "human", "carrier": "vonage"}):
        with pytest.raises(RequestFailed) as refused:
            await heard_verdict(params)
        assert refused.value.status == 400
    assert bot_verdicts.answered_by() is None


async def test_a_verdict_told_twice_runs_the_bot_s_handler_once() -> None:
    """The callback and the bot's attach may both tell the bot (each read the kept verdict): one handling."""
    heard: asyncio.Queue[AnsweredBy] = asyncio.Queue()
    on_answered_by(heard.put_nowait)
    told = {"answered_by": "human", "carrier": "twilio"}
    assert await heard_verdict(told) == {"heard": True}
    assert await heard_verdict(told) == {"heard": True}
    assert (await asyncio.wait_for(heard.get(), 10)) == AnsweredBy("human", "twilio")
    for _ in range(3):  # the handler's task had its turns: a second run would have queued by now
        await asyncio.sleep(0)
    assert heard.empty()
    assert await heard_verdict({"answered_by": "unknown", "carrier": "twilio"}) == {"heard": True}  # a new verdict
    assert (await asyncio.wait_for(heard.get(), 10)) == AnsweredBy("unknown", "twilio")
