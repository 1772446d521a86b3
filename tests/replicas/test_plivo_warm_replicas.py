"""A Plivo warm transfer's callbacks split across two dispatcher replicas on one real redis-server: the transfer
waits at replica A, the person's ring and answer requests reach replica B, the briefing's `<Redirect>` and the
caller's move reach A, as a load balancer may send them. The store carries the briefing and what each heard to
the other. Plivo is the strict fake (tests/fakes/plivo.py), its requests V3-signed as Plivo signs them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.twilio_warm import record_key
from dispatcher.settings import Settings
from dispatcher.store.first_claims import StoreFirstClaims
from tests.dispatcher.phone import test_plivo_warm as on_plivo
from tests.fakes.plivo import FakePlivo
from tests.fakes.server import serve
from tests.replicas.one_loop import STORE, waiting_outlasts_the_test
from tests.replicas.test_warm_callbacks_replicas import SHARED_KEY
from tests.support.redis_server import RedisServer


class ByKind(httpx.AsyncBaseTransport):
    """Plivo's requests as a load balancer may spread them: the `<Redirect>` and the transfers' fetches to A,
    every other request to B; each run on the test's loop (the fake sends some from its own thread)."""

    def __init__(self, a: Any, b: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._a, self._b = on_plivo.OnTheTestLoop(a, loop), on_plivo.OnTheTestLoop(b, loop)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        to = self._a if path.endswith("/briefed") or path.startswith("/phone/plivo/transfer/") else self._b
        return await to.handle_async_request(request)


@pytest.fixture
def plivo() -> Iterator[FakePlivo]:
    with serve(FakePlivo(max_per_second=1000)) as fake:
        yield fake


def replica_env(store: RedisServer, plivo: FakePlivo, name: str) -> dict[str, str]:
    return {**store.env, **STORE, **plivo.env(), "REPLICA_ID": name, "DISPATCHER_API_KEYS": "k-0123456789abcdef",
            "RESERVE_MAX_IDLE": "0", "PHONE_TOKEN_SECRET": SHARED_KEY, "PHONE_PUBLIC_URL": on_plivo.PUBLIC,
            "PHONE_TRANSFER_TARGETS": on_plivo.DESK}


async def test_a_plivo_warm_transfer_waiting_at_one_replica_hears_its_callbacks_at_another(
        store: RedisServer, plivo: FakePlivo) -> None:
    b = create_app(Settings(), env=replica_env(store, plivo, "r-b"), machines=LocalMachines(LocalSettings()),
                   rooms=None)
    try:
        async with on_plivo.running(plivo, replica_env(store, plivo, "r-a")) as a:
            waiting_outlasts_the_test(a.app.state.voicefleet.phone.plivo_warm)
            loop = asyncio.get_running_loop()
            plivo.deliver = lambda: httpx.AsyncClient(transport=ByKind(a.app, b, loop))
            task = on_plivo.warm(a)
            person = await on_plivo.consult_call(plivo)
            rung = await plivo.ring(person.uuid)
            assert [r.status_code for r in rung] == [204], [r.text for r in rung]  # heard at B
            transfer = person.document["answer_url"].split("/")[-3]
            answers = await plivo.answer(person.uuid)  # the briefing from B, read from the store; `<Redirect>` at A
            assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
            assert person.said == [on_plivo.SUMMARY]
            records = a.app.state.voicefleet.phone.plivo_warm._records  # noqa: SLF001 (the store's records)
            assert isinstance(records, StoreFirstClaims)  # the redis-server's, not a replica's memory
            assert await records.held(record_key(transfer, "answered")) == "in-progress"  # B's word, read at A
            async with asyncio.timeout(on_plivo.WAIT):
                answer = await task
            assert answer["carrier_status"] == "warm"
            assert await asyncio.to_thread(a.caller.redirected.wait, on_plivo.WAIT)
            assert plivo.conferences == {f"vf-warm-{transfer}": {person.uuid, on_plivo.CALLER}}
    finally:
        await b.state.voicefleet.aclose()
