"""What routes need, built once per app and reached through `request.app.state.voicefleet`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from dispatcher.api.auth import Authenticator
from dispatcher.api.key_limits import PerKeyLimit
from dispatcher.api.replication import Replication
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.remote import StoreRemote
from dispatcher.machines.base import Machines
from dispatcher.media.ice import IceServers
from dispatcher.media.rooms import Rooms
from dispatcher.media.turn_quota import TurnQuota
from dispatcher.metrics import Metrics
from dispatcher.reserve.reserve import Reserve
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.reaper import Reaper
from dispatcher.sessions.service import SessionService
from dispatcher.settings import Settings


@dataclass(frozen=True)
class AppState:
    settings: Settings
    machines: Machines
    rooms: Rooms | None
    sessions: SessionService
    metrics: Metrics
    auth: Authenticator
    channels: BotChannels
    start_limit: PerKeyLimit
    read_limit: PerKeyLimit  # GET and DELETE of a session, and its signalling
    reaper: Reaper
    ice_servers: IceServers
    channel_access: ChannelAccess | None = None  # how local bots reach the channel
    reserve: Reserve | None = None  # the warm reserve, when the provider and the settings allow one
    remote: StoreRemote | None = None  # with a shared store: the replica a session's owner record names
    replication: Replication | None = None  # this replica's part with a shared store
    turn_quota: TurnQuota | None = None  # TURN credentials each key holds (with TURN_URLS)

    async def aclose(self) -> None:
        await self.sessions.aclose()
        if self.reserve is not None:
            await self.reserve.aclose()
        await self.machines.aclose()
        if self.rooms is not None:
            await self.rooms.aclose()
        if self.replication is not None:
            await self.replication.aclose()


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.voicefleet
    return state


async def caller(request: Request) -> str:
    """FastAPI dependency: the authenticated caller's id (401 otherwise). `async` although it
    never awaits: FastAPI runs a plain `def` dependency in a worker thread, a hop per request."""
    return app_state(request).auth.caller(request.headers.get("authorization"))


async def identified(request: Request) -> Caller:
    """FastAPI dependency: the authenticated caller with its owner key (401 otherwise)."""
    return app_state(request).auth.identify(request.headers.get("authorization"))
