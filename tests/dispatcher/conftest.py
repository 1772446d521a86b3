from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.base import LaunchResult, LaunchSpec
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.media.ice import IceServers
from dispatcher.settings import Settings
from tests.fakes.fixtures import *  # noqa: F403  (the fakes of every external API, for every test below)
from tests.support.dispatcher_server import serving

STANDIN_BOT = (sys.executable, str(Path(__file__).with_name("standin_bot.py")))
# The stand-in's own settings, which a test sets in its environment: local bots are given only the
# variables named for them (LOCAL_BOT_ENV), as a user names their bot's keys.
STANDIN_ENV = ("STANDIN_MODE", "STANDIN_RECORD_DIR", "STANDIN_SIGN_ANSWERS", "STANDIN_CONNECT", "STANDIN_MARK",
               "STANDIN_START_SECONDS", "STANDIN_CAPABILITIES")
STANDIN_LOCAL_BOT_ENV = {"LOCAL_BOT_ENV": ",".join(STANDIN_ENV)}  # the same, for a dispatcher process
API_KEY = "test-key-0123456789"


ClientFactory = Callable[..., "_ClientContext"]


class _ClientContext:
    """The app called in-process, and also served on a loopback port for the bots' channel."""

    def __init__(self, settings: Settings, grace: float, ice_servers: IceServers | None = None) -> None:
        local = LocalSettings(bot_command=STANDIN_BOT, stop_grace_seconds=grace, bot_env=STANDIN_ENV)
        self.machines = LocalMachines(local)
        self.app = create_app(settings, env={}, machines=self.machines, rooms=None, ice_servers=ice_servers)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://127.0.0.1")
        self._serving = serving(self.app)

    async def __aenter__(self) -> httpx.AsyncClient:
        await self._serving.__aenter__()
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self.app.state.voicefleet.aclose()
        await self._serving.__aexit__(None, None, None)


@pytest.fixture
def standin_mode(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def set_mode(mode: str) -> None:
        monkeypatch.setenv("STANDIN_MODE", mode)

    return set_mode


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """The dispatcher in local mode without keys, its bots played by the stand-in."""
    async with _ClientContext(Settings(), grace=2.0) as client:
        yield client


@pytest.fixture
def make_api() -> Callable[..., _ClientContext]:
    def make(grace: float = 2.0, ice_servers: IceServers | None = None, **settings: object) -> _ClientContext:
        return _ClientContext(Settings(**settings), grace, ice_servers)  # type: ignore[arg-type]

    return make


class LaunchSpy:
    """Records the `body` of every launch, then launches for real."""

    def __init__(self, machines: LocalMachines) -> None:
        self.bodies: list[dict[str, object]] = []
        launch = machines.launch

        async def recording(spec: LaunchSpec) -> LaunchResult:
            self.bodies.append(dict(spec.body))
            return await launch(spec)

        machines.launch = recording  # type: ignore[method-assign]


@pytest.fixture
def local_spy(api: httpx.AsyncClient) -> LaunchSpy:
    """What the `api` fixture's dispatcher passed to its bots."""
    transport = api._transport
    assert isinstance(transport, httpx.ASGITransport)
    machines = transport.app.state.voicefleet.machines  # type: ignore[attr-defined]
    return LaunchSpy(machines)
