"""A warm transfer's mark of waiting (dispatcher/phone/twilio_warm.py) outlives the consult call's create: a
carrier slow to answer it (up to CREATE_SECONDS, past WAITING_SECONDS) may send the person's callbacks first,
and they must find someone waiting, not give the transfer up. The records run on the test's clock, which
moves only when the test says; the create's answer is the strict fake's (tests/fakes/twilio_outbound.py),
let through when the test has heard the callback."""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.twilio_calls import TwilioCalls, TwilioCredentials
from dispatcher.phone.twilio_warm import (
    CREATE_SECONDS,
    WAITING_SECONDS,
    TwilioWarm,
    WarmCallbacks,
    own_call,
    record_status,
)
from dispatcher.store.memory import LocalFirstClaims
from tests.dispatcher.phone.placed_calls import PUBLIC
from tests.dispatcher.phone.test_twilio_warm import DESK, SUMMARY, WAIT, Bot
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls


class SlowCreate(TwilioWarm):
    """The create's answer reaches the transfer only once `go` is set (the call placed at the fake before); the
    transfer's id noted as it is sent."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.creating: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.go = asyncio.Event()

    async def _create(self, caller_sid: str, form: list[tuple[str, str]], transfer: str) -> str | None:
        created = await super()._create(caller_sid, form, transfer)
        self.creating.set_result(transfer)
        await self.go.wait()
        return created


async def test_a_callback_during_a_slow_create_finds_the_transfer_waited_for(twilio: FakeTwilioCalls) -> None:
    assert WAITING_SECONDS < CREATE_SECONDS  # what makes a create outlast a mark set only for WAITING_SECONDS
    now = [0.0]
    records = LocalFirstClaims(clock=lambda: now[0])
    rest = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), twilio.url)
    warm = SlowCreate(rest, records, WarmCallbacks(PUBLIC, b"k" * 32), Bot().ask)
    caller = twilio.live_call("CA" + "e" * 32)
    consult = asyncio.create_task(warm.consult(caller.sid, "s-slow", TransferTarget(DESK, "warm", SUMMARY), 3600,
                                               asyncio.get_running_loop().time() + WAIT))
    try:
        async with asyncio.timeout(WAIT):
            transfer = await warm.creating
        now[0] += (WAITING_SECONDS + CREATE_SECONDS) / 2  # the create still within its bound
        sid = twilio.placed[0].sid
        assert await own_call(records, transfer, sid)
        assert await record_status(records, transfer, "ringing") is None  # someone waits: nothing decided
    finally:
        warm.go.set()
        consult.cancel()
        await asyncio.gather(consult, return_exceptions=True)
        await rest.aclose()
