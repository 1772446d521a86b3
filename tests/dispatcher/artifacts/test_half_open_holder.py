"""A bot that re-dialled another replica while its old channel lingers half-open at the recording's
holder: the holder pings that channel before keeping the recording for it, so the live replica
records the bot's parts; a holder whose channel still answers is no final no (503, asked again).
Two replicas' relay, owner records and bot channels on a real redis-server; one timeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from botchannel.contract import RequestFailed
from dispatcher.api.replication import Replication
from dispatcher.artifacts.local_store import LocalFolderStore
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.artifacts.signed_paths import SignedPaths
from dispatcher.machines.local.provider import LocalMachines
from dispatcher.store.client import DEFAULT_PREFIX
from tests.dispatcher.artifacts.test_hand_over import SharedTimeline
from tests.dispatcher.channel.test_ownership import SESSION_GRANT, BotSocket, Replica
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import until

SESSION = "s1"  # the session SESSION_GRANT opens


class Bot(BotSocket):
    """The bot's end of one channel, closed from the dispatcher's side as from its own."""

    async def close(self, code: int = 1000) -> None:
        self.closed.set()


class HalfOpenSocket(Bot):
    """A bot channel whose far end went away unseen: its hello arrived, nothing it is sent is answered."""

    async def send_text(self, data: str) -> None:
        return None


class RecordingReplica(Replica):
    def __init__(self, server: RedisServer, name: str, prefix: str, folder: Path, timeline: SharedTimeline) -> None:
        super().__init__(server, name, prefix)
        self.replication = Replication(self.coordination, self.channels, LocalMachines())
        self.recordings = SessionRecordings(
            ArtifactSettings(policy="on"), LocalFolderStore(folder, SignedPaths(b"k" * 32)),
            note=timeline.noter(name), events=timeline.read, region="eu", provider="local", replica_id=name,
            ask=self.coordination.ask_replica, ask_owner=self.coordination.ask_owner)
        self.replication.attach_recordings(self.recordings)

    async def start(self) -> None:
        await self.replication.start()
        assert self.coordination.relay is not None and await self.coordination.relay.wait_subscribed(60)


Pair = tuple[RecordingReplica, RecordingReplica]  # the recording's holder, the replica the bot re-dialled


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as running:
        yield running


@pytest.fixture
async def pair(server: RedisServer, request: pytest.FixtureRequest,
               tmp_path: Path) -> AsyncIterator[Pair]:
    prefix = f"{DEFAULT_PREFIX}{request.node.name[:24]}:"
    timeline = SharedTimeline()
    holder, live = (RecordingReplica(server, name, prefix, tmp_path, timeline) for name in ("r-a", "r-b"))
    await holder.start()
    await live.start()
    yield holder, live
    for replica in (holder, live):
        await replica.recordings.aclose()
        await replica.replication.aclose()


async def linked(replica: RecordingReplica, socket: Bot) -> asyncio.Task[str | None]:
    serving = asyncio.create_task(replica.channels.serve(socket, SESSION_GRANT))
    await until(lambda: replica.channels.link_for(SESSION) is not None, f"{SESSION}'s channel at {replica}")
    return serving


@asynccontextmanager
async def redialled(pair: Pair, old: Bot) -> AsyncIterator[None]:
    """The session planned at the holder, its bot's `old` channel still there and its live one at the
    other replica (the bot re-dialled); both channels closed at the end."""
    holder, live = pair
    await holder.recordings.plan_for(SESSION, transport="webrtc", release="v1", key_name="acme")
    bot = Bot("r-b", SESSION)
    channels = [(old, await linked(holder, old)), (bot, await linked(live, bot))]
    try:
        yield
    finally:
        for socket, serving in channels:
            socket.closed.set()
            await serving


async def test_a_half_open_channel_at_the_holder_does_not_keep_the_recording_from_the_live_one(pair: Pair) -> None:
    holder, live = pair
    async with redialled(pair, HalfOpenSocket("r-a", SESSION)):  # r-a has not noticed its channel gone
        answer = await live.recordings.part_url(SESSION, {"part": 1})
        assert answer["url"] and live.recordings.recorded(SESSION) and not holder.recordings.recorded(SESSION)


async def test_a_holder_whose_channel_still_answers_tells_the_bot_to_ask_again(pair: Pair) -> None:
    holder, live = pair
    async with redialled(pair, Bot("r-a", SESSION)):
        with pytest.raises(RequestFailed) as refused:
            await live.recordings.part_url(SESSION, {"part": 1})
        assert (refused.value.status, refused.value.code) == (503, "recording_elsewhere")  # the bot asks again
        assert holder.recordings.recorded(SESSION) and not live.recordings.recorded(SESSION)
