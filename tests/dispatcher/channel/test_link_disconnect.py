"""A bot link closed from the dispatcher's side (a retired or replaced bot) fails what waits on it
at once, however its socket behaves: a bot that never completes the close cannot hold a request.
A reply that answers nothing is ignored, not a reason to drop the channel."""

from __future__ import annotations

import asyncio

import pytest

from botchannel.contract import Hello, Reply, encode
from dispatcher.channel.bots import BotChannels, BotLink, BotRequestFailed
from dispatcher.channel.credentials import BotCredentials, BotGrant
from dispatcher.channel.identity import Unverified
from dispatcher.store.local import LocalClaims
from tests.dispatcher.channel.test_ownership import TOKEN, BotSocket


class SilentSocket:
    """A bot's socket that takes frames, never answers and ignores being closed."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.close_calls = 0

    async def send_text(self, data: str) -> None:
        self.sent.append(data)

    async def receive_text(self) -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def close(self, code: int = 1000) -> None:
        self.close_calls += 1


async def test_disconnecting_a_link_fails_its_pending_request_at_once_and_every_later_one() -> None:
    socket = SilentSocket()
    link = BotLink(hello=Hello(machine_id="bot-1", session_id="s1"), socket=socket, session_id="s1")
    pending = asyncio.create_task(link.request("webrtc.offer", {"sdp": "v=0"}, timeout=3600))
    while not socket.sent:  # the request is on its way to the bot
        await asyncio.sleep(0)
    await link.disconnect()
    with pytest.raises(BotRequestFailed) as failed:
        await asyncio.wait_for(pending, 30)  # not the request's hour-long timeout
    assert (failed.value.status, failed.value.code) == (502, "bot_unreachable")
    assert socket.close_calls == 1
    with pytest.raises(BotRequestFailed) as later:
        await link.request("webrtc.offer", {"sdp": "v=1"})
    assert later.value.code == "bot_unreachable"
    assert len(socket.sent) == 1  # nothing more was sent to a closed link


async def test_a_reply_to_no_request_is_ignored_and_the_channel_keeps_serving() -> None:
    channels = BotChannels(BotCredentials(TOKEN), claims=LocalClaims(), identity=Unverified("test"))
    bot = BotSocket("r-a", "s1")
    serving = asyncio.create_task(channels.serve(bot, BotGrant(kind="session", subject="s1", expires=2**40)))
    link = await channels.wait_link("s1", 30)
    assert link is not None
    bot._inbox.put_nowait(encode(Reply(999, result={"forged": True})))  # answers nothing it was asked
    answer = await link.request("webrtc.offer", {"sdp": "v=0"}, timeout=30)
    assert answer == {"answered_at": "r-a", "sdp": "v=0"}
    assert channels.sessions() == ["s1"]  # the sessions whose bot holds a channel here
    bot.closed.set()
    await serving
    assert channels.sessions() == []


async def test_a_link_keeps_nothing_for_requests_answered_or_timed_out() -> None:
    """Every map is bounded: a session's bot answers many requests (offers, trickled candidates)
    over one link, which must not keep a waiter per request for the rest of the session."""
    channels = BotChannels(BotCredentials(TOKEN), claims=LocalClaims(), identity=Unverified("test"))
    bot = BotSocket("r-a", "s2")
    serving = asyncio.create_task(channels.serve(bot, BotGrant(kind="session", subject="s2", expires=2**40)))
    link = await channels.wait_link("s2", 30)
    assert link is not None
    for n in range(50):
        assert await link.request("webrtc.ice", {"sdp": f"c{n}"}, timeout=30) == {"answered_at": "r-a", "sdp": f"c{n}"}
    silent = BotLink(hello=Hello(machine_id="bot-2", session_id="s3"), socket=SilentSocket(), session_id="s3")
    with pytest.raises(BotRequestFailed):
        await silent.request("webrtc.offer", {}, timeout=0.01)  # never answered: times out
    assert (len(link._pending), len(silent._pending)) == (0, 0)
    bot.closed.set()
    await serving
