"""A Telnyx call handed to a person through Telnyx's TeXML Calls resource, in one process against its
strict fake: the same transfer as Twilio's (tests/dispatcher/phone/test_transfers.py), with Telnyx's
ids, credential and errors (tests/phone/test_transfer.py runs a whole call through a real dispatcher)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from dispatcher.phone.telnyx_calls import TelnyxCalls, call_id
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import Transfers
from tests.dispatcher.phone.test_transfers import ALLOWED, DESK, QUICK, Notes, Setup, refused, when
from tests.fakes.server import serve
from tests.fakes.telnyx import ACCOUNT_SID, API_KEY, FakeTelnyx


@pytest.fixture
def telnyx() -> Iterator[FakeTelnyx]:
    with serve(FakeTelnyx(max_per_second=1000)) as fake:
        yield fake


_sids = iter(range(1, 1000))


@pytest.fixture
async def make(telnyx: FakeTelnyx) -> AsyncIterator[Callable[..., Setup]]:
    """Transfers over a live Telnyx call whose webhook was signed: `make(api_key=…, signed=False, api_url=…)`."""
    made: list[Transfers] = []

    def setup(api_key: str = API_KEY, signed: bool = True, api_url: str = "", **kwargs: Any) -> Setup:
        notes = Notes()
        rest = TelnyxCalls(api_key, api_url or telnyx.url, timeout=0.3, backoff=QUICK)
        transfers = Transfers(None, notes, ALLOWED, telnyx=rest,
                              **{"settle_seconds": 0.5, **kwargs})
        made.append(transfers)
        sid = f"v3:call-{next(_sids)}_Ab-9"
        at_carrier = telnyx.live_call(sid)
        signed_call = call_id(ACCOUNT_SID, sid) if signed else None
        call = transfers.opened(f"session-{sid[-8:]}", "telnyx", signed_call, [])
        return Setup(transfers, call, at_carrier, notes)

    yield setup
    telnyx.reset_knobs()
    for transfers in made:
        await transfers.aclose()


async def test_a_signed_telnyx_call_is_dialled_through_texml_with_the_api_key(
    make: Callable[..., Setup], telnyx: FakeTelnyx,
) -> None:
    setup = make(time_limit=30)  # under TeXML's least `timeLimit`: raised to it, not refused by Telnyx
    answer = await setup.transfers.transfer(setup.call, TransferTarget(DESK))
    assert (answer["status"], answer["carrier"], answer["carrier_status"]) == ("transferred", "telnyx", "in-progress")
    assert setup.at_carrier.twiml == [f'<Response><Dial timeLimit="60"><Number>{DESK}</Number></Dial></Response>']
    update = telnyx.calls_to("POST", setup.at_carrier.sid)[-1]
    assert update.path == f"/v2/texml/Accounts/{ACCOUNT_SID}/Calls/{setup.at_carrier.sid}"
    assert update.headers["authorization"] == f"Bearer {API_KEY}"
    assert [(e, f["carrier"]) for e, f in setup.notes.events] == [("transferred", "telnyx")]


async def test_an_update_whose_answer_was_lost_is_read_back_and_not_sent_twice(
    make: Callable[..., Setup], telnyx: FakeTelnyx,
) -> None:
    setup = make()
    telnyx.lose_answer(setup.at_carrier.sid)
    asking = asyncio.create_task(setup.transfers.transfer(setup.call, TransferTarget(DESK)))
    await when(setup.at_carrier.redirected.is_set)
    setup.transfers.heard_hang_up(setup.call, 0.0, "stop")  # Telnyx ends the stream for the `<Dial>`
    setup.transfers.closed(setup.call)
    answer = await asking
    assert answer["carrier"] == "telnyx" and len(telnyx.calls_to("POST", setup.at_carrier.sid)) == 1
    assert len(telnyx.calls_to("GET", setup.at_carrier.sid)) == 1
    assert [f.get("reconciled") for e, f in setup.notes.events if e == "transferred"] == [True]


@pytest.mark.parametrize("gateway", [500, 502, 504])
async def test_an_update_done_but_answered_with_a_5xx_is_read_back_and_not_sent_twice(
    make: Callable[..., Setup], telnyx: FakeTelnyx, gateway: int,
) -> None:
    setup = make()
    telnyx.answer_done_update_with(setup.at_carrier.sid, gateway)  # the person's phone is already ringing
    asking = asyncio.create_task(setup.transfers.transfer(setup.call, TransferTarget(DESK)))
    await when(setup.at_carrier.redirected.is_set)
    setup.transfers.heard_hang_up(setup.call, 0.0, "stop")
    setup.transfers.closed(setup.call)
    answer = await asking
    assert answer["carrier"] == "telnyx" and len(setup.at_carrier.twiml) == 1  # one `<Dial>`: rung once
    assert len(telnyx.calls_to("POST", setup.at_carrier.sid)) == 1
    assert [f.get("reconciled") for e, f in setup.notes.events if e == "transferred"] == [True]


async def test_telnyxs_refusals_say_what_happened_in_this_apis_words(
    make: Callable[..., Setup], telnyx: FakeTelnyx,
) -> None:
    setup = make()
    setup.at_carrier.status = "completed"  # the caller hung up at Telnyx's end: 422, error 90018
    over = await refused(setup.transfers, setup.call, DESK)
    assert (over.status, over.code) == (409, "call_over") and "90018" in over.message
    assert not setup.call.transferring and setup.at_carrier.twiml == []

    del telnyx.calls_by_sid[setup.at_carrier.sid]  # 404, error 10005
    gone = await refused(setup.transfers, setup.call, DESK)
    assert (gone.status, gone.code) == (409, "call_over") and "10005" in gone.message

    # A 404 without Telnyx's codes for a gone call (here: an API URL with Telnyx's `/v2` twice) says what
    # to check, never that the live call is over.
    wrong_url = make(api_url=telnyx.url + "/v2")
    lost = await refused(wrong_url.transfers, wrong_url.call, DESK)
    assert (lost.status, lost.code) == (502, "carrier_refused") and "TELNYX_API_URL" in lost.message
    assert not wrong_url.call.transferring and wrong_url.at_carrier.twiml == []

    wrong_key = make(api_key="KEY0-revoked")
    denied = await refused(wrong_key.transfers, wrong_key.call, DESK)
    assert (denied.status, denied.code) == (502, "carrier_refused") and "TELNYX_TRANSFER_API_KEY" in denied.message
    for error in (over, gone, denied):
        assert ACCOUNT_SID not in error.message


async def test_a_call_no_signed_webhook_named_or_a_dispatcher_without_the_key_is_refused_unsent(
    make: Callable[..., Setup], telnyx: FakeTelnyx,
) -> None:
    unsigned = make(signed=False)  # a stream opened with a POST /start token
    error = await refused(unsigned.transfers, unsigned.call, DESK)
    assert (error.status, error.code) == (409, "call_not_verified") and "/phone/telnyx" in error.message

    keyless = Transfers(None, Notes(), ALLOWED)
    call = keyless.opened("s-keyless", "telnyx", call_id(ACCOUNT_SID, "v3:x"), [])
    error = await refused(keyless, call, DESK)
    assert (error.status, error.code) == (409, "transfer_not_configured") and "TELNYX_TRANSFER_API_KEY" in error.message
    assert not telnyx.calls_to("POST")


@pytest.mark.parametrize(("account", "sid"), [
    ("not-a-uuid", "v3:abc"), (ACCOUNT_SID, "v3:a/../b"), (ACCOUNT_SID, "CA" + "0" * 32), (ACCOUNT_SID, ""),
])
def test_only_well_formed_ids_make_a_call_id(account: str, sid: str) -> None:
    assert call_id(account, sid) is None  # they name a URL path of the account's API
