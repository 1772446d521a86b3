"""A real local dispatcher (stand-in bot processes, the real channel on a loopback port) for the
attack tests, and the attacker's tools: the credential a compromised bot can read from its own
environment, and a bot of its own dialling the channel."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bot.identity import LaunchSocket
from botchannel.contract import (
    CHANNEL_PATH,
    CHANNEL_TOKEN_VARIABLE,
    IDENTITY_FD_VARIABLE,
    Hello,
    Welcome,
    encode,
    parse_frame,
)
from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.fakes.fixtures import fake_fly, fake_gce  # noqa: F401 (fixtures: the identity tests' providers)
from tests.support.dispatcher_server import in_process

WAIT = 60.0  # generous: bots start on a machine shared with other test runs
DEPLOYMENT_SECRET = "deployment-secret-" + "s" * 32
KEY_A, KEY_B = "key-a-0123456789abcdef", "key-b-0123456789abcdef"


@dataclass
class Dispatcher:
    app: Any
    client: httpx.AsyncClient
    port: int

    @property
    def state(self) -> Any:
        return self.app.state.voicefleet

    @property
    def channel_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{CHANNEL_PATH}"

    async def fill(self, idle: int) -> list[str]:
        """Refills the reserve and waits until `idle` launched bots are on the channel."""
        channels = self.state.channels
        await self.state.reserve.refill()
        assert await channels.wait_until(lambda: len(channels.idle()) >= idle, WAIT), "reserve never filled"
        return [link.machine_id for link in channels.idle()]

    def idle_pid(self, bot_id: str) -> int:
        return int(self.state.machines._idle[bot_id].pid)

    def session_pid(self, session_id: str) -> int:
        return int(self.state.machines._bots[session_id].pid)


MakeDispatcher = Callable[..., Awaitable[Dispatcher]]


@pytest.fixture
async def make_dispatcher(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeDispatcher]:
    async with contextlib.AsyncExitStack() as opened:

        async def make(settings: Settings | None = None, **env: str) -> Dispatcher:
            machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=2, bot_env=STANDIN_ENV))
            reserve_env = {"RESERVE_BUFFER": "0", "RESERVE_BURST": "0", "RESERVE_MAX_IDLE": "0", **env}
            settings = settings or Settings(max_concurrent_sessions=50)
            app = create_app(settings, env=reserve_env, machines=machines, rooms=None)
            running = await opened.enter_async_context(in_process(app))
            assert running.port is not None
            return Dispatcher(app, running.client, running.port)

        yield make


def provider_reads(machines: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The session ids the provider is asked for from now on (its own answers pass through)."""
    asked: list[str] = []
    status = machines.status

    async def counted(wanted: str):  # noqa: ANN202 - the provider's own answer, counted
        asked.append(wanted)
        return await status(wanted)

    monkeypatch.setattr(machines, "status", counted)
    return asked


def stolen_credential(pid: int) -> str:
    """What a compromised bot holds: the channel credential in its own environment."""
    with open(f"/proc/{pid}/environ", "rb") as environ:
        for entry in environ.read().split(b"\0"):
            name, _, value = entry.partition(b"=")
            if name.decode() == CHANNEL_TOKEN_VARIABLE:
                return value.decode()
    raise AssertionError(f"process {pid} holds no channel credential")


async def dial(url: str, credential: str, hello: Hello) -> ClientConnection | None:
    """The attacker's bot: the open channel if the dispatcher welcomed it, None if it refused."""
    try:
        ws = await connect(url, additional_headers={"Authorization": f"Bearer {credential}"}, proxy=None,
                           open_timeout=WAIT)
    except InvalidStatus:
        return None  # refused before the handshake
    try:
        await ws.send(encode(hello))
        first = await asyncio.wait_for(ws.recv(), WAIT)
    except ConnectionClosed:
        return None  # refused after its hello
    assert isinstance(parse_frame(first), Welcome)
    return ws


def act_as_launched(machines: LocalMachines, kind: str, subject: str) -> Callable[[], str]:
    """The test plays the process launched for a `kind` credential naming `subject`: it takes over
    that launch socket's bot end and returns what makes each dial's launch proof (bot/identity.py)."""
    launch_socket = machines._launched.launching(kind, subject)  # the child end stays with the test
    bot_end = LaunchSocket({IDENTITY_FD_VARIABLE: str(launch_socket.child.fileno())})
    launch_socket.launched(os.getpid())  # the kernel attests this process as the writer
    return bot_end.proof


def idle_hello(machine_id: str) -> Hello:
    """An idle bot of the local deployment's image, able to take any local session."""
    return Hello(machine_id=machine_id, image="dev", capabilities=("webrtc",), session_id=None)
