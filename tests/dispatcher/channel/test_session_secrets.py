"""Sending a cold bot its session's values at its hello, in-process: a delivery under way is
tracked (and ended when the dispatcher closes), a finished one is not, and only a session's hello
starts one."""

from __future__ import annotations

import asyncio
import json

from botchannel.contract import Hello
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.channel.identity import Unverified
from dispatcher.channel.session_secrets import SessionSecrets
from dispatcher.store.local import LocalClaims
from dispatcher.store.secrets_vault import MemoryVault

VALUES = {"session_id": "s-1", "max_session_seconds": 60, "body": {"caller": "x"}}


class SilentSocket:
    """A bot's socket that records what it is sent and never answers."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []
        self.got = asyncio.Event()

    async def send_text(self, data: str) -> None:
        self.sent.append(json.loads(data))
        self.got.set()

    async def receive_text(self) -> str:
        await asyncio.Event().wait()
        return ""

    async def close(self, code: int = 1000) -> None:
        pass


def welcomed(channels: BotChannels, session_id: str | None) -> tuple[BotLink, SilentSocket]:
    socket = SilentSocket()
    link = BotLink(hello=Hello(machine_id="m-1", session_id=session_id), socket=socket, session_id=session_id)
    for listener in channels.welcome_listeners:
        listener(link)
    return link, socket


async def test_a_delivery_under_way_is_ended_when_the_dispatcher_closes_and_a_finished_one_is_forgotten() -> None:
    channels = BotChannels(None, claims=LocalClaims(), identity=Unverified("test"))
    delivery = SessionSecrets(channels, MemoryVault())
    await delivery.deposit("s-1", VALUES, ttl_seconds=60)
    _, socket = welcomed(channels, "s-1")
    await asyncio.wait_for(socket.got.wait(), 10)
    assert socket.sent[0]["method"] == "assign" and socket.sent[0]["params"] == VALUES
    [pending] = delivery._deliveries  # the bot has not answered
    await delivery.aclose()
    assert pending.cancelled()
    assert await delivery.waiting("s-1")  # not taken: it waits for the bot's next hello

    welcomed(channels, None)  # an idle bot's hello starts none
    _, socket = welcomed(channels, "s-unknown")  # nothing held for it: a delivery that ends at once
    for _ in range(1000):
        if not delivery._deliveries:
            break
        await asyncio.sleep(0.01)
    assert not delivery._deliveries and socket.sent == []
