"""A Telnyx warm transfer's callbacks split across two dispatcher replicas on one real redis-server (the stack's
own access rules): the transfer waits at replica A, the person's status callbacks reach replica B, the briefing's
`<Redirect>` reaches A, as a load balancer may send them. The store carries what each heard to the other; a
status body taken at B and posted at A's briefed URL is refused there by its shape before it acts. Telnyx is the
strict fake (tests/fakes/telnyx_outbound.py), its bodies Ed25519-signed as Telnyx signs them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.twilio_warm import record_key
from dispatcher.settings import Settings
from dispatcher.store.first_claims import StoreFirstClaims
from tests.dispatcher.phone import test_telnyx_warm as on_telnyx
from tests.dispatcher.phone.test_review_telnyx_warm import post, signed
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.replicas.one_loop import STORE, waiting_outlasts_the_test
from tests.support.redis_server import RedisServer

SHARED_KEY = "warm-callbacks-replicas-token-key-0123456789"  # the replicas' PHONE_TOKEN_SECRET: one URL MAC key


class ByKind(httpx.AsyncBaseTransport):
    """Telnyx's deliveries as a load balancer may spread them: status callbacks to one replica, `<Redirect>`s to
    the other."""

    def __init__(self, status: object, briefed: object) -> None:
        self._status, self._briefed = httpx.ASGITransport(app=status), httpx.ASGITransport(app=briefed)  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        to = self._briefed if request.url.path.endswith("/briefed") else self._status
        return await to.handle_async_request(request)


@pytest.fixture
def telnyx() -> Iterator[FakeTelnyxCalls]:
    with serve(FakeTelnyxCalls(create_per_second=50)) as fake:
        yield fake


def replica_env(store: RedisServer, telnyx: FakeTelnyxCalls, name: str) -> dict[str, str]:
    return {**store.env, **STORE, **telnyx.env(), "REPLICA_ID": name, "DISPATCHER_API_KEYS": "k-0123456789abcdef",
            "RESERVE_MAX_IDLE": "0", "PHONE_TOKEN_SECRET": SHARED_KEY, "PHONE_PUBLIC_URL": on_telnyx.PUBLIC,
            "PHONE_TRANSFER_TARGETS": on_telnyx.DESK}


async def test_a_warm_transfer_waiting_at_one_replica_hears_its_callbacks_at_another(
        store: RedisServer, telnyx: FakeTelnyxCalls) -> None:
    b = create_app(Settings(), env=replica_env(store, telnyx, "r-b"), machines=LocalMachines(LocalSettings()),
                   rooms=None)
    try:
        async with on_telnyx.running(telnyx, replica_env(store, telnyx, "r-a")) as a:
            waiting_outlasts_the_test(a.app.state.voicefleet.phone.telnyx_warm)
            telnyx.deliver = lambda: httpx.AsyncClient(transport=ByKind(status=b, briefed=a.app))
            task = on_telnyx.warm(a)
            person = await on_telnyx.consult_call(telnyx)
            rung = await telnyx.ring(person.sid)
            assert all(r.status_code == 204 for r in rung), [r.text for r in rung]  # heard at B
            status_url = telnyx.documents[0]["StatusCallback"]
            transfer = status_url.split("/")[-3]
            answered, headers = signed(telnyx, {
                "AccountSid": telnyx.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
                "CallbackSource": "call-progress-events", "From": person.one("From") or "",
                "To": person.one("To") or ""})
            person.status = "in-progress"
            assert (await post(b, status_url, answered, headers)).status_code == 204  # answered, heard at B
            # That body, heard at B, posted at A's briefed URL: refused there before it marks anything.
            replayed = await post(a.app, status_url.removesuffix("/status") + "/briefed", answered, headers)
            assert (replayed.status_code, replayed.json()["error"]["code"]) == (403, "callback_not_briefing"), (
                replayed.text)
            records = a.app.state.voicefleet.phone.telnyx_warm._records  # noqa: SLF001 (the store's records)
            assert isinstance(records, StoreFirstClaims)  # the redis-server's, not a replica's memory
            assert await records.held(record_key(transfer, "answered")) == "in-progress"  # B's word, read at A
            assert await records.held(record_key(transfer, "outcome")) is None
            await telnyx.brief(person.sid)  # its own `<Redirect>`, at A
            answer = await asyncio.wait_for(task, on_telnyx.WAIT)
    finally:
        await b.state.voicefleet.aclose()
    assert answer["status"] == "transferred" and answer["carrier_status"] == "warm"
    rooms = [room for room in telnyx.conferences.values() if room == {person.sid, a.caller.sid}]
    assert len(rooms) == 1, telnyx.conferences
