"""The WhatsApp book in a real redis-server, as wiring.py builds it, against Meta's strict fake: what a
store writer without the message secret can and cannot make a replica do, and the store's blips."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.client import Store, StoreSettings
from dispatcher.store.forgiving import ForgivingOnce
from dispatcher.store.memory import LocalOnce
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.spent import SpentOnce
from dispatcher.store.timelines import MemoryTimelines
from dispatcher.store.whatsapp_book import ForgivingWhatsAppBook, MemoryWhatsAppBook, StoreWhatsAppBook
from dispatcher.whatsapp.graph import GraphCalls
from dispatcher.whatsapp.hang_ups import HangUps
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, VERSION, FakeWhatsApp, FakeWhatsAppCall
from tests.phone.test_whatsapp_webhook import OFFER
from tests.support.redis_server import RedisServer, redis_server

OWED = "{voicefleet}:whatsapp:owed"


@dataclass
class Replica:
    server: RedisServer
    meta: FakeWhatsApp
    hang_ups: HangUps
    writer: redis.Redis  # the store user's credential, not the message secret

    def live_call(self) -> FakeWhatsAppCall:
        call = self.meta.ring(OFFER)
        call.state, call.actions = "accepted", ["pre_accept", "accept"]
        return call

    def stall(self, seconds: float) -> None:
        """The store stops answering for `seconds`, past the client's timeout (a failover, a slow node)."""
        self.server.admin().client_pause(int(seconds * 1000), all=True)

    async def answered(self, session_id: str) -> FakeWhatsAppCall:
        call = self.live_call()
        await self.hang_ups.book(session_id, call.call_id, PHONE_NUMBER_ID)
        await self.hang_ups.mark(session_id, "answered")
        return call


@asynccontextmanager
async def hang_ups_of(server: RedisServer, meta: FakeWhatsApp, name: str) -> AsyncIterator[HangUps]:
    """One replica's hang-ups, as wiring.py builds them."""
    store = Store(StoreSettings(url=server.url, password=server.password, replica_id=name))
    book = ForgivingWhatsAppBook(StoreWhatsAppBook(store, MessageSeal(server.message_secret)), MemoryWhatsAppBook())
    graph = GraphCalls(f"{meta.url}/{VERSION}", meta.token)
    try:
        once = ForgivingOnce(SpentOnce(store), LocalOnce())
        yield HangUps(book, once, graph, SessionTimeline(MemoryTimelines(), name))
    finally:
        await graph.aclose()
        await store.aclose()


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server, serve(FakeWhatsApp()) as meta:
        writer = redis.Redis(host="127.0.0.1", port=server.port, username="voicefleet", password=server.password,
                             decode_responses=True)
        async with hang_ups_of(server, meta, "r-0") as hang_ups:
            yield Replica(server, meta, hang_ups, writer)
        writer.close()


async def test_an_owed_entry_a_store_writer_adds_hangs_up_nothing(replica: Replica) -> None:
    call = await replica.answered("s-1")
    replica.writer.zadd(OWED, {"s-1": 0})
    await replica.hang_ups.sweep()
    assert call.state == "accepted"
    assert replica.server.admin().zscore(OWED, "s-1") is None  # dropped (seen as the admin)
    await replica.hang_ups.session_ended("s-1")  # the record kept: its real end still hangs it up
    assert call.state == "terminated"


async def test_an_ended_mark_a_store_writer_sets_is_not_read(replica: Replica) -> None:
    call = replica.live_call()
    await replica.hang_ups.book("s-1", call.call_id, PHONE_NUMBER_ID)
    replica.writer.hset("{voicefleet}:whatsapp:call:s-1", "ended", "1")
    booked = await replica.hang_ups.mark("s-1", "answered")
    assert booked is not None and booked.answered and not booked.ended


async def test_an_owed_value_a_store_writer_spoils_stops_no_other_hang_up(replica: Replica) -> None:
    replica.meta.fail(503, times=6, path_contains="/calls")  # Meta out: both terminates owed
    spoiled, other = await replica.answered("s-1"), await replica.answered("s-2")
    for session_id in ("s-1", "s-2"):
        await replica.hang_ups.session_ended(session_id)
    replica.writer.hset("{voicefleet}:whatsapp:call:s-1", "owed", "x")
    replica.writer.zadd(OWED, {"s-1": 0, "s-2": 0})
    await replica.hang_ups.sweep()
    assert (spoiled.state, other.state) == ("accepted", "terminated")


async def test_a_call_booked_while_the_store_stalled_is_hung_up_by_its_replica(replica: Replica) -> None:
    call = replica.live_call()
    replica.stall(0.8)
    await replica.hang_ups.book("s-1", call.call_id, PHONE_NUMBER_ID)  # kept in this replica's memory
    await asyncio.sleep(1.0)  # the store answers again
    booked = await replica.hang_ups.mark("s-1", "answered")
    assert booked is not None and booked.answered
    await replica.hang_ups.session_ended("s-1")
    assert call.state == "terminated"


async def end_seen(hang_ups: HangUps, session_id: str) -> None:
    """One of a session's end events at a replica (calls.py, _timeline_event)."""
    if not hang_ups.seen_end(session_id):
        await hang_ups.session_ended(session_id)


async def test_an_end_seen_while_the_store_stalled_is_looked_up_again_at_the_next(replica: Replica) -> None:
    call = await replica.answered("s-1")  # then its replica dies
    async with hang_ups_of(replica.server, replica.meta, "r-1") as other:
        replica.stall(1.2)
        await end_seen(other, "s-1")  # its stop, at another replica: the store does not answer
        assert call.state == "accepted"
        await asyncio.sleep(1.5)  # the store answers again
        await end_seen(other, "s-1")  # its bot's `ended`
    assert call.state == "terminated"


async def test_whether_a_region_holds_a_call_is_read_from_every_replica_and_not_from_a_store_writer(
        replica: Replica) -> None:
    call = replica.live_call()
    async with hang_ups_of(replica.server, replica.meta, "r-1") as other:
        assert await other.holds("s-1") is False
        await replica.hang_ups.book("s-1", call.call_id, PHONE_NUMBER_ID)
        assert await other.holds("s-1") is True  # booked at r-0: a terminate landing at r-1 is this region's
        replica.writer.hset("{voicefleet}:whatsapp:call:s-2", "call", "[\"wacid.forged\", \"1\"]")
        assert await other.holds("s-2") is False  # unsealed: not a call any replica booked
        await replica.hang_ups.close("s-1")
        assert await other.holds("s-1") is False
        replica.stall(1.5)
        assert await other.holds("s-1") is None  # the store cannot say
