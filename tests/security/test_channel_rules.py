"""The channel's rules for hellos, in process (fast): an idle credential is admitted once, a
claimed reserve bot may dial again for its own session only, and a reconnect closes the old channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from botchannel.contract import CHANNEL_PATH, Hello, Reply, ReplyError, Request, encode, parse_frame
from dispatcher.app import create_app
from dispatcher.channel.bots import BotRequestFailed
from dispatcher.channel.credentials import BotCredentials
from dispatcher.settings import Settings
from tests.security.conftest import WAIT, dial
from tests.support.dispatcher_server import serving
from tests.support.hand_dialled import hand_dialled

SECRET = "deployment-secret-" + "c" * 32


@pytest.fixture
async def served() -> AsyncIterator[tuple[object, str]]:
    app = create_app(Settings(bot_channel_token=SECRET), env={}, machines=hand_dialled(), rooms=None)
    async with serving(app) as port:
        yield app.state.voicefleet.channels, f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    await app.state.voicefleet.aclose()


def idle(bot_id: str) -> str:
    return BotCredentials(SECRET).issue("idle", bot_id, 600)


async def closed_by_the_dispatcher(ws: ClientConnection) -> bool:
    """True when the dispatcher closed `ws` normally (code 1000: a replaced or retired bot)."""
    try:
        await asyncio.wait_for(ws.recv(), WAIT)
    except ConnectionClosed as closed:
        return closed.rcvd is not None and closed.rcvd.code == 1000
    return False


async def test_an_idle_credential_is_admitted_once(served) -> None:  # noqa: ANN001
    channels, url = served
    first = await dial(url, idle("rsv-1"), Hello(machine_id="rsv-1", image="dev"))
    assert first is not None  # control: the launched bot's first hello
    await first.close()
    assert await channels.wait_until(lambda: not channels.idle(), WAIT)
    assert await dial(url, idle("rsv-1"), Hello(machine_id="rsv-1", image="dev")) is None


async def test_a_claimed_reserve_bot_may_dial_again_for_its_own_session_only(served) -> None:  # noqa: ANN001
    channels, url = served
    ws = await dial(url, idle("rsv-2"), Hello(machine_id="rsv-2", image="dev"))
    assert ws is not None
    assert await channels.wait_until(lambda: bool(channels.idle()), WAIT)
    channels.bind(channels.take_idle(), "s-claimed")  # as a claim does
    assert await dial(url, idle("rsv-2"), Hello(machine_id="rsv-2", session_id="s-other")) is None
    again = await dial(url, idle("rsv-2"), Hello(machine_id="rsv-2", session_id="s-claimed"))
    assert again is not None
    assert await closed_by_the_dispatcher(ws)  # the old channel is closed, not left open
    link = channels.link_for("s-claimed")
    assert link is not None and link.machine_id == "rsv-2"
    await again.close()


async def test_a_reconnect_closes_the_channel_it_replaces(served) -> None:  # noqa: ANN001
    channels, url = served
    credential = BotCredentials(SECRET).issue("session", "s-3", 600)
    hello = Hello(machine_id="m-3", session_id="s-3")
    old = await dial(url, credential, hello)
    new = await dial(url, credential, hello)
    assert old is not None and new is not None
    assert await closed_by_the_dispatcher(old)
    await new.ping()  # control: the newest stays open
    assert channels.link_for("s-3") is not None
    await new.close()


async def test_an_unbound_bot_routes_nothing_for_the_session_and_its_cold_bot_is_admitted(served) -> None:  # noqa: ANN001
    channels, url = served
    ws = await dial(url, idle("rsv-4"), Hello(machine_id="rsv-4", image="dev"))
    assert ws is not None
    assert await channels.wait_until(lambda: bool(channels.idle()), WAIT)
    link = channels.take_idle()
    channels.bind(link, "s-failed")
    assert channels.link_for("s-failed") is link  # control: bound, it is the session's route
    channels.unbind(link, "s-failed")  # the claim failed
    assert channels.link_for("s-failed") is None
    cold = await dial(url, BotCredentials(SECRET).issue("session", "s-failed", 600),
                      Hello(machine_id="local-s-failed", session_id="s-failed"))
    assert cold is not None
    await cold.close()
    await ws.close()


async def test_a_bots_server_error_is_a_502_and_a_closed_channel_fails_at_once(served) -> None:  # noqa: ANN001
    """A bot chooses its reply's status: only a 4xx passes through, anything else is the gateway's 502."""
    channels, url = served
    ws = await dial(url, BotCredentials(SECRET).issue("session", "s-5", 600), Hello(machine_id="m-5", session_id="s-5"))
    assert ws is not None
    link = await channels.wait_link("s-5", WAIT)

    async def answer_with(status: int) -> None:
        request = parse_frame(await ws.recv())
        assert isinstance(request, Request)
        await ws.send(encode(Reply(request.id, error=ReplyError(status, "bot_says", "no"))))

    for status, expected in ((500, 502), (302, 502), (499, 499), (400, 400)):
        answering = asyncio.create_task(answer_with(status))
        with pytest.raises(BotRequestFailed) as failed:
            await link.request("webrtc.offer", {"sdp": "v=0", "type": "offer"})
        await answering
        assert failed.value.status == expected, status
    await ws.close()
    await link.closed.wait()
    with pytest.raises(BotRequestFailed) as closed:
        await link.request("webrtc.offer", {"sdp": "v=0", "type": "offer"})
    assert (closed.value.status, closed.value.code) == (502, "bot_unreachable")


async def test_a_bot_asking_the_dispatcher_anything_is_told_there_is_no_such_method(served) -> None:  # noqa: ANN001
    _, url = served
    ws = await dial(url, BotCredentials(SECRET).issue("session", "s-6", 600), Hello(machine_id="m-6", session_id="s-6"))
    assert ws is not None
    await ws.send(encode(Request(3, "assign", {})))
    reply = parse_frame(await asyncio.wait_for(ws.recv(), WAIT))
    assert isinstance(reply, Reply) and reply.id == 3
    assert reply.error is not None and (reply.error.status, reply.error.code) == (404, "unknown_method")
    await ws.close()
