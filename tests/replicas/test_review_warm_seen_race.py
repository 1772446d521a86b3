"""Hostile review of the warm callbacks' read-then-act-then-spend (dispatcher/api/routers/twilio_warm.py
`WarmCallback.unspent`/`spend`): the replay mark is read (`seen`, a GET) and written (`first_time`, SET NX) in two
store round trips with the route's acting between them, so two deliveries of one Telnyx-signed body at two
replicas both read "unseen" and both act. The one that loses the spend is refused `403 replayed` only after it
acted: the very bug the change set out to close, still open to a copy posted while the carrier's own delivery
is in flight. Two dispatcher replicas on one real redis-server (the stack's own access rules), Telnyx the strict
fake; the interleaving is pinned by holding replica A's `seen` answer until B has finished (the store itself
answers: nothing is stood in for it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.twilio_warm import record_key
from dispatcher.settings import Settings
from tests.dispatcher.phone import test_telnyx_warm as on_telnyx
from tests.dispatcher.phone.test_review_telnyx_warm import post, signed
from tests.dispatcher.phone.test_review_warm_duplicates import HeldAfterLooking
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.replicas.test_warm_callbacks_replicas import replica_env
from tests.support.redis_server import RedisServer


@pytest.fixture
def telnyx() -> Iterator[FakeTelnyxCalls]:
    with serve(FakeTelnyxCalls(create_per_second=50)) as fake:
        yield fake


@pytest.mark.xfail(strict=True, reason="review: `seen` then act then spend is not atomic; a copy of the person's "
                   "status body posted at `briefed` while Telnyx's own delivery is in flight marks them briefed")
async def test_a_status_body_posted_at_briefed_while_its_own_delivery_is_in_flight_marks_nobody_briefed(
        store: RedisServer, telnyx: FakeTelnyxCalls) -> None:
    b = create_app(Settings(), env=replica_env(store, telnyx, "r-b"), machines=LocalMachines(LocalSettings()),
                   rooms=None)
    try:
        async with on_telnyx.running(telnyx, replica_env(store, telnyx, "r-a")) as a:
            telnyx.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=b))
            task = on_telnyx.warm(a)
            person = await on_telnyx.consult_call(telnyx)
            status_url = telnyx.documents[0]["StatusCallback"]
            transfer = status_url.split("/")[-3]
            answered, headers = signed(telnyx, {
                "AccountSid": telnyx.account_sid, "CallSid": person.sid, "CallStatus": "in-progress",
                "CallbackSource": "call-progress-events", "From": person.one("From") or "",
                "To": person.one("To") or ""})
            person.status = "in-progress"
            phone = a.app.state.voicefleet.phone
            held = phone.webhooks = HeldAfterLooking(phone.webhooks)
            # The copy reaches A's briefed URL first and reads "unseen"; Telnyx's own delivery reaches B meanwhile.
            copy = asyncio.create_task(post(a.app, status_url.removesuffix("/status") + "/briefed", answered,
                                            headers))
            await held.holding(1)
            heard = await post(b, status_url, answered, headers)
            held.held[0].set()
            replayed = await asyncio.wait_for(copy, on_telnyx.WAIT)
            outcome = await phone.telnyx_warm._records.held(record_key(transfer, "outcome"))  # noqa: SLF001
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await b.state.voicefleet.aclose()
    assert heard.status_code == 204, heard.text
    assert replayed.status_code == 403, replayed.text  # refused, as the change intends ...
    assert outcome is None, f"... but only after it decided the transfer: outcome {outcome!r}"
