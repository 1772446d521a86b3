"""An Exotel call's transfer across replicas (dispatcher/phone/exotel_transfers.py) over a real redis-server:
the target recorded at the call's replica is answered at another, the same to every one of Exotel's GETs that
race (its Fallback URL's retry too: the first answer may be the one lost), within the store user's rules, and the
records live a bounded time."""

from __future__ import annotations

import asyncio
import hashlib

from dispatcher.phone.exotel_transfers import ANSWERED, PENDING, RECORD_SECONDS, ExotelTransfers
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.store.client import Store
from dispatcher.store.first_claims import StoreFirstClaims
from tests.support.redis_server import RedisServer

DESK = "+919876500001"
CALL_SID = "c0ffee00c0ffee00c0ffee00c0ffee00"


async def test_the_target_recorded_at_one_replica_is_answered_alike_at_the_others(store: Store,
                                                                                 redis: RedisServer) -> None:
    holding, elsewhere = (ExotelTransfers(StoreFirstClaims(store), fetch_seconds=20, poll_seconds=0.02)
                          for _ in range(2))
    closed = asyncio.Event()

    async def end_stream() -> None:
        closed.set()

    handing = asyncio.create_task(holding.hand_over("session-r", CALL_SID, TransferTarget(DESK), 600, end_stream))
    await asyncio.wait_for(closed.wait(), 10)
    answers = await asyncio.gather(*(elsewhere.answer(CALL_SID) for _ in range(4)))  # Exotel's GET and repeats
    await asyncio.wait_for(handing, 20)  # the call's replica saw the GET through the store
    assert [(a[0].to, a[1], a[2]) if a is not None else None for a in answers] == [(DESK, 600, "session-r")] * 4
    digest = hashlib.sha256(CALL_SID.encode()).hexdigest()
    for record in (PENDING, ANSWERED):
        assert 0 < redis.admin().ttl(store.key("home", record + digest)) <= RECORD_SECONDS
    assert redis.refused() == []  # SET NX GET and GET are within the store user's rules
