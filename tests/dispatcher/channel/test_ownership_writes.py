"""A session's owner record is written when its bot's channel opens, closes or is unbound, at
once: not left to the heartbeat, which renews records only every third of a lease (here 60 s, so
a record seen here was written by the event itself). A real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from botchannel.contract import METHOD_ASSIGN, METHOD_OFFER
from dispatcher.channel import ownership
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials, BotGrant
from dispatcher.channel.identity import Unverified
from dispatcher.channel.ownership import Ownership
from dispatcher.errors import ApiError
from dispatcher.store.client import DEFAULT_PREFIX, StoreSettings
from dispatcher.store.redis_coordination import RedisCoordination
from tests.dispatcher.channel.test_ownership import TOKEN, BotSocket, server  # noqa: F401 (a fixture)
from tests.support.redis_server import RedisServer

WAIT = 30.0
IDLE_GRANT = BotGrant(kind="idle", subject="bot-1", expires=2**40)


def session_grant(session_id: str) -> BotGrant:
    return BotGrant(kind="session", subject=session_id, expires=2**40)


class Replica:
    def __init__(self, redis: RedisServer, prefix: str) -> None:
        self.coordination = RedisCoordination(StoreSettings(url=redis.url, password=redis.password, replica_id="r-a",
                                                       prefix=prefix, message_secret=redis.message_secret,
                                                       timeout_seconds=5.0, lease_seconds=60.0))
        self.channels = BotChannels(BotCredentials(TOKEN), claims=self.coordination.claims, identity=Unverified("test"))
        self.ownership = Ownership(self.channels, self.coordination)

    async def owner(self, session_id: str) -> str | None:
        return await self.coordination.owner_records.owner_of(session_id)


@pytest.fixture
async def replica(server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[Replica]:  # noqa: F811
    one = Replica(server, f"{DEFAULT_PREFIX}{request.node.name[:24]}:")  # the stack user's keys
    await one.coordination.start(one.ownership.answer, held=one.ownership.held)
    await asyncio.sleep(0)  # the heartbeat's first beat is under way; records below are the events'
    await one.ownership.settled()
    yield one
    await one.ownership.aclose()
    await one.coordination.aclose()


async def test_a_bots_hello_records_its_replica_as_the_owner_at_once(replica: Replica) -> None:
    bot = BotSocket("r-a", "s1")
    serving = asyncio.create_task(replica.channels.serve(bot, session_grant("s1")))
    assert await replica.channels.wait_link("s1", WAIT) is not None
    await replica.ownership.settled()
    assert await replica.owner("s1") == "r-a"
    bot.closed.set()
    await serving
    await replica.ownership.settled()
    assert await replica.owner("s1") is None  # its only channel closed: released, not left to the lease


async def test_a_channel_replaced_on_the_same_replica_keeps_the_record(replica: Replica) -> None:
    first, second = BotSocket("r-a", "s2"), BotSocket("r-a", "s2")
    serving_first = asyncio.create_task(replica.channels.serve(first, session_grant("s2")))
    first_link = await replica.channels.wait_link("s2", WAIT)
    assert first_link is not None
    serving_second = asyncio.create_task(replica.channels.serve(second, session_grant("s2")))
    assert await replica.channels.wait_until(lambda: replica.channels.link_for("s2") not in (None, first_link), WAIT)
    first.closed.set()
    await serving_first  # the old channel's goodbye: the session's bot is still here
    await replica.ownership.settled()
    assert await replica.owner("s2") == "r-a"
    second.closed.set()
    await serving_second
    await replica.ownership.settled()
    assert await replica.owner("s2") is None  # control: the last one's goodbye releases it


async def test_an_unbound_claim_releases_the_record_at_once(replica: Replica) -> None:
    bot = BotSocket("r-a", None)  # type: ignore[arg-type]
    serving = asyncio.create_task(replica.channels.serve(bot, IDLE_GRANT))
    assert await replica.channels.wait_until(lambda: bool(replica.channels.idle()), WAIT)
    link = replica.channels.take_idle()
    assert link is not None
    replica.channels.bind(link, "s3")  # as a claim does
    await replica.ownership.settled()
    assert await replica.owner("s3") == "r-a"  # control: bound, it is the owner
    replica.channels.unbind(link, "s3")  # the claim failed
    await replica.ownership.settled()
    assert await replica.owner("s3") is None
    bot.closed.set()
    await serving


async def test_closing_waits_for_the_owner_writes_a_slow_store_holds(replica: Replica, server: RedisServer) -> None:  # noqa: F811
    """A replica shutting down records what its bots did before it lets the store go."""
    bot = BotSocket("r-a", "s8")
    with server.admin() as admin:
        admin.execute_command("CLIENT", "PAUSE", 1000, "WRITE")  # writes wait 1 s; reads go on
    serving = asyncio.create_task(replica.channels.serve(bot, session_grant("s8")))
    assert await replica.channels.wait_link("s8", WAIT) is not None
    assert await replica.owner("s8") is None  # control: the write is held by the store
    await replica.ownership.aclose()
    assert await replica.owner("s8") == "r-a"
    bot.closed.set()
    await serving


async def test_store_writes_past_the_cap_are_left_to_the_heartbeat(replica: Replica,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow store never grows this replica's pending writes without bound."""
    monkeypatch.setattr(ownership, "MAX_PENDING_WRITES", 1)
    bot = BotSocket("r-a", None)  # type: ignore[arg-type]
    serving = asyncio.create_task(replica.channels.serve(bot, IDLE_GRANT))
    assert await replica.channels.wait_until(lambda: bool(replica.channels.idle()), WAIT)
    link = replica.channels.take_idle()
    assert link is not None
    replica.channels.bind(link, "s6")  # one write under way…
    replica.channels.bind(link, "s7")  # …so this one waits for the heartbeat
    await replica.ownership.settled()
    assert await replica.owner("s6") == "r-a"
    assert await replica.owner("s7") is None
    replica.channels.bind(link, "s9")  # the cap counts writes under way, not those done
    await replica.ownership.settled()
    assert await replica.owner("s9") == "r-a"
    bot.closed.set()
    await serving


async def test_another_replica_may_relay_signalling_to_a_bot_here_but_never_an_assignment(replica: Replica) -> None:
    bot = BotSocket("r-a", "s5")
    serving = asyncio.create_task(replica.channels.serve(bot, session_grant("s5")))
    assert await replica.channels.wait_link("s5", WAIT) is not None
    answer = await replica.ownership.answer("s5", METHOD_OFFER, {"sdp": "v=0"})
    assert answer == {"answered_at": "r-a", "sdp": "v=0"}  # control: signalling is relayed
    with pytest.raises(ApiError) as refused:
        await replica.ownership.answer("s5", METHOD_ASSIGN, {"session_id": "s5"})
    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    bot.closed.set()
    await serving
