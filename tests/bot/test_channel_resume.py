"""A bot welcomed with a resume key (a Kubernetes pool bot, which dials with its identity alone)
presents it at every later dial, and only then: the key is what tells its re-dial from a copy of its
pod's token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from bot.channel_client import BotChannel
from bot.identity import MachineIdentity
from botchannel.contract import Hello, Welcome, encode, parse_frame


class Dispatcher:
    """Welcomes each dial (with a key, when it has one to give) and keeps the hellos it was sent."""

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.hellos: list[Hello] = []

    async def handle(self, socket: ServerConnection) -> None:
        hello = parse_frame(await socket.recv())
        assert isinstance(hello, Hello)
        self.hellos.append(hello)
        await socket.send(encode(Welcome(resume=self.key)))
        await socket.close()  # the channel drops at once: the bot dials again


@pytest.fixture(params=["k-Ey_0123456789abcdef0123", None])
async def dispatcher(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Dispatcher, str]]:
    fake = Dispatcher(request.param)
    async with serve(fake.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}/bots/channel"


async def test_the_key_of_the_welcome_goes_with_every_later_hello(dispatcher: tuple[Dispatcher, str]) -> None:
    fake, url = dispatcher
    channel = BotChannel(url, "", Hello(machine_id="voicefleet-bot-1", image="dev"), {}, MachineIdentity(None, url, {}))
    for _ in range(3):
        await channel.connect(timeout=30)
        await asyncio.wait_for(channel.serve(), 30)
    assert [hello.resume for hello in fake.hellos] == [None, fake.key, fake.key]
