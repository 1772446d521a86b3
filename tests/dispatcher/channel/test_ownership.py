"""A session's owner record follows its bot's channel between replicas sharing a store (a real
redis-server): a bot that re-dials another replica (its replica drained or died) moves the record
there, the old replica's goodbye does not take it back, and signalling from anywhere reaches it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from botchannel.contract import Hello, Reply, Request, encode, parse_frame
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials, BotGrant
from dispatcher.channel.identity import Unverified
from dispatcher.channel.ownership import Ownership
from dispatcher.channel.remote import StoreRemote
from dispatcher.store.client import DEFAULT_PREFIX, StoreSettings
from dispatcher.store.redis_coordination import RedisCoordination
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import until

TOKEN = "o" * 40
SESSION_GRANT = BotGrant(kind="session", subject="s1", expires=2**40)  # what s1's bot's credential opens


class BotSocket:
    """The bot's end of one channel connection: says hello, answers offers with its name."""

    def __init__(self, name: str, session_id: str) -> None:
        self.name = name
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._inbox.put_nowait(encode(Hello(machine_id="bot-1", image="img", capabilities=("webrtc",),
                                            session_id=session_id)))
        self.closed = asyncio.Event()

    async def send_text(self, data: str) -> None:
        frame = parse_frame(data)
        if isinstance(frame, Request):
            reply = Reply(frame.id, result={"answered_at": self.name, "sdp": frame.params.get("sdp")})
            self._inbox.put_nowait(encode(reply))

    async def receive_text(self) -> str:
        if self.closed.is_set():
            raise ConnectionError("closed")
        getting = asyncio.ensure_future(self._inbox.get())
        closing = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({getting, closing}, return_when=asyncio.FIRST_COMPLETED)
        closing.cancel()
        if not getting.done():
            getting.cancel()
            raise ConnectionError("closed")
        return getting.result()


class Replica:
    def __init__(self, server: RedisServer, name: str, prefix: str) -> None:
        self.coordination = RedisCoordination(StoreSettings(url=server.url, password=server.password, replica_id=name,
                                                       prefix=prefix, message_secret=server.message_secret,
                                                       timeout_seconds=5.0, lease_seconds=3.0))
        self.channels = BotChannels(BotCredentials(TOKEN), claims=self.coordination.claims, identity=Unverified("test"))
        self.ownership = Ownership(self.channels, self.coordination)
        self.remote = StoreRemote(self.coordination)

    async def start(self) -> None:
        await self.coordination.start(self.ownership.answer, held=self.ownership.held)
        assert self.coordination.relay is not None and await self.coordination.relay.wait_subscribed(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as running:
        yield running


@pytest.fixture
async def pair(server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[tuple[Replica, Replica]]:
    prefix = f"{DEFAULT_PREFIX}{request.node.name[:24]}:"  # the stack user's keys
    a, b = Replica(server, "r-a", prefix), Replica(server, "r-b", prefix)
    await a.start()
    await b.start()
    yield a, b
    for replica in (a, b):
        await replica.ownership.aclose()
        await replica.coordination.aclose()


async def eventually_owner(replica: Replica, session_id: str, owner: str | None) -> None:
    async def owned() -> bool:
        return await replica.coordination.owner_records.owner_of(session_id) == owner

    await until(owned, f"{session_id} owned by {owner}", interval=0.02)


async def test_a_bot_that_redials_another_replica_moves_its_owner_record_and_its_signalling(pair) -> None:
    a, b = pair
    first = BotSocket("r-a", "s1")
    serving_a = asyncio.create_task(a.channels.serve(first, SESSION_GRANT))
    await eventually_owner(b, "s1", "r-a")
    answer = await b.remote.ask("s1", "webrtc.offer", {"sdp": "v=0"})
    assert answer == {"answered_at": "r-a", "sdp": "v=0"}

    # The bot dials again and lands on r-b (r-a drained with 1012, or died and its socket lingers)…
    second = BotSocket("r-b", "s1")
    serving_b = asyncio.create_task(b.channels.serve(second, SESSION_GRANT))
    await eventually_owner(a, "s1", "r-b")
    first.closed.set()  # …and r-a notices its old channel gone only now, and says goodbye:
    await serving_a
    await a.ownership.settled()  # r-a's release (a background write) has run: it must not undo r-b's record
    assert await a.coordination.owner_records.owner_of("s1") == "r-b"
    answer = await a.remote.ask("s1", "webrtc.offer", {"sdp": "v=1"})
    assert answer == {"answered_at": "r-b", "sdp": "v=1"}
    assert json.dumps(answer)  # a plain JSON answer, as the HTTP route returns it
    second.closed.set()
    await serving_b
    await eventually_owner(a, "s1", None)  # the last channel gone: nobody owns it


async def test_a_replica_that_holds_no_channel_for_a_session_answers_not_here(pair) -> None:
    a, b = pair
    await a.coordination.owners.claim("s2")  # a stale record: its bot left
    assert await b.remote.ask("s2", "webrtc.offer", {"sdp": "v=0"}) is None  # keep waiting, not an error
