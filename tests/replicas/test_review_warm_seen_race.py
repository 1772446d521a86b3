"""Hostile review of the warm callbacks' replay mark across replicas (dispatcher/api/routers/twilio_warm.py
`WarmCallback.claim`): it was read (`seen`, a GET) and written (SET NX) in two store round trips with the route's
acting between them, so two deliveries of one Telnyx-signed body at two replicas both read "unseen" and both
acted. The mark is now claimed (the store's SET NX) before anything acts: while replica A holds the claim and has
not acted yet, the same body at replica B is answered 204 and keeps nothing. A claim whose request could not act
(the store down while it kept the status: 503) is given back (DEL), so the carrier's retry is heard at the other
replica. Two dispatcher replicas on one real redis-server (the stack's own access rules), Telnyx the strict fake;
the interleaving is pinned by holding A's claim answer until B has finished (the store itself answers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.twilio_warm import record_key
from dispatcher.settings import Settings
from tests.dispatcher.phone import test_telnyx_warm as on_telnyx
from tests.dispatcher.phone.test_review_telnyx_warm import post, signed
from tests.dispatcher.phone.test_review_warm_duplicates import HeldAfterClaiming
from tests.dispatcher.phone.test_telnyx_warm_paths import StoreGoesDown
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.replicas.test_warm_callbacks_replicas import replica_env
from tests.support.redis_server import RedisServer


@pytest.fixture
def telnyx() -> Iterator[FakeTelnyxCalls]:
    with serve(FakeTelnyxCalls(create_per_second=50)) as fake:
        yield fake


@asynccontextmanager
async def two_replicas(store: RedisServer, telnyx: FakeTelnyxCalls) -> AsyncIterator[tuple[on_telnyx.Setup, object]]:
    """Replica A (a transfer waits there) and replica B (Telnyx delivers there), one redis-server."""
    b = create_app(Settings(), env=replica_env(store, telnyx, "r-b"), machines=LocalMachines(LocalSettings()),
                   rooms=None)
    try:
        async with on_telnyx.running(telnyx, replica_env(store, telnyx, "r-a")) as a:
            telnyx.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=b))
            yield a, b
    finally:
        await b.state.voicefleet.aclose()


@dataclass(frozen=True)
class Calling:
    """A transfer waiting at replica A, its person called, and the person's signed `answered` status body."""
    task: asyncio.Task[Any]
    status_url: str
    transfer: str
    body: bytes
    headers: dict[str, str]

    async def ended(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def calling(a: on_telnyx.Setup, telnyx: FakeTelnyxCalls) -> Calling:
    task = on_telnyx.warm(a)
    person = await on_telnyx.consult_call(telnyx)
    status_url = telnyx.documents[0]["StatusCallback"]
    body, headers = signed(telnyx, {
        "AccountSid": telnyx.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
        "CallbackSource": "call-progress-events", "From": person.one("From") or "", "To": person.one("To") or ""})
    return Calling(task, status_url, status_url.split("/")[-3], body, headers)


async def test_a_status_body_claimed_at_one_replica_is_acted_on_there_alone(
        store: RedisServer, telnyx: FakeTelnyxCalls) -> None:
    async with two_replicas(store, telnyx) as (a, b):
        call = await calling(a, telnyx)
        status_url, transfer, body, headers = call.status_url, call.transfer, call.body, call.headers
        phone = a.app.state.voicefleet.phone
        held = phone.webhooks = HeldAfterClaiming(phone.webhooks)
        first = asyncio.create_task(post(a.app, status_url, body, headers))  # claims at A, then waits
        await held.holding(1)
        copy = await post(b, status_url, body, headers)  # the same delivery again, at B
        kept_by_copy = await phone.telnyx_warm._records.held(record_key(transfer, "answered"))  # noqa: SLF001
        held.held[0].set()
        heard = await asyncio.wait_for(first, on_telnyx.WAIT)
        kept = await phone.telnyx_warm._records.held(record_key(transfer, "answered"))  # noqa: SLF001
        await call.ended()
    assert copy.status_code == 204, copy.text
    assert kept_by_copy is None, "the copy at B acted while A held the claim"
    assert heard.status_code == 204, heard.text
    assert kept == "in-progress"


async def test_a_claim_whose_request_could_not_act_is_given_back_for_the_retry_at_another_replica(
        store: RedisServer, telnyx: FakeTelnyxCalls) -> None:
    async with two_replicas(store, telnyx) as (a, b):
        call = await calling(a, telnyx)
        status_url, transfer, body, headers = call.status_url, call.transfer, call.body, call.headers
        warm = a.app.state.voicefleet.phone.telnyx_warm
        records = warm._records = StoreGoesDown(warm._records)  # noqa: SLF001 (the blip, after A's claim)
        records.down = True
        refused = await post(a.app, status_url, body, headers)
        records.down = False
        retried = await post(b, status_url, body, headers)  # Telnyx's retry, reaching the other replica
        kept = await records.held(record_key(transfer, "answered"))
        await call.ended()
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "store_unavailable"), refused.text
    assert retried.status_code == 204, retried.text
    assert kept == "in-progress", "the retry was taken for a replay: the claim was not given back"
