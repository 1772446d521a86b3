"""Transfers in one process against the strict fake of Twilio's Calls resource: the destination policy,
and what an unanswered or failed request becomes (the fast cases; tests/phone/test_transfer.py runs
whole calls through a real dispatcher)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from botchannel.transfer import TRANSFER_TIMEOUT_SECONDS
from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpResponse
from dispatcher.outbound.retry import Backoff
from dispatcher.phone.edge_record import record_key
from dispatcher.phone.sip_transfers import SIP_EDGE_ACCOUNT, SipTransfers
from dispatcher.phone.transfer_allow import TransferTargets, parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import BUDGET_SECONDS, READ_SECONDS, SETTLE_SECONDS, LiveCall, Transfers
from dispatcher.phone.trunk_calls import TrunkCallSettings
from dispatcher.phone.twilio_calls import TIMEOUT_SECONDS, TwilioCalls, TwilioCredentials
from dispatcher.store.memory import LocalFirstClaims
from sipedge import stream_frames
from tests.dispatcher.phone.test_sip_edge_records import SECRET, A, B, Scripted, answer
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeCall, FakeTwilio

DESK = "+14155550123"
ALLOWED = parse_transfer_targets(f"{DESK}, pbx.example.com")
QUICK = Backoff(attempts=2, base=0.01, cap=0.05, deadline=1.0)


@dataclass
class Notes:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def note(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None:
        self.events.append((event, fields))


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with serve(FakeTwilio(max_per_second=1000)) as fake:
        yield fake


_sids = iter(range(1, 1000))


@dataclass
class Setup:
    transfers: Transfers
    call: LiveCall
    at_carrier: FakeCall
    notes: Notes


@pytest.fixture
async def make(twilio: FakeTwilio) -> AsyncIterator[Callable[..., Setup]]:
    """Transfers over a live, signed call of the fake's: `make(targets=…, timeout=…, settle_seconds=…)`."""
    made: list[Transfers] = []

    def setup(targets: TransferTargets | None = ALLOWED, timeout: float = 0.3, **kwargs: Any) -> Setup:
        calls = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), twilio.url,
                            timeout=timeout, backoff=QUICK)
        notes = Notes()
        transfers = Transfers(calls, notes, targets, **{"settle_seconds": 0.5, **kwargs})
        made.append(transfers)
        sid = f"CA{next(_sids):032x}"
        at_carrier = twilio.live_call(sid)
        start = {"event": "start", "start": {"callSid": sid, "streamSid": "MZ1"}}
        call = transfers.opened(f"session-{sid[-4:]}", "twilio", sid,
                                [{"type": "websocket.receive", "text": json.dumps(start)}])
        return Setup(transfers, call, at_carrier, notes)

    yield setup
    twilio.reset_knobs()
    for transfers in made:
        await transfers.aclose()


@pytest.fixture
def setup(make: Callable[..., Setup]) -> Setup:
    return make()


async def refused(transfers: Transfers, call: LiveCall, to: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await transfers.transfer(call, TransferTarget(to))
    return caught.value


async def test_a_listed_target_is_dialled_for_at_most_the_time_limit(setup: Setup) -> None:
    answer = await setup.transfers.transfer(setup.call, TransferTarget(DESK))
    assert answer["status"] == "transferred"
    assert setup.at_carrier.twiml == [f'<Response><Dial timeLimit="3600"><Number>{DESK}</Number></Dial></Response>']


@pytest.mark.parametrize("to", ["+882123456789", "+19005550100", "sip:+19005550100@203.0.113.7:5080"])
async def test_a_target_off_the_list_is_refused_before_twilio_hears_of_it(
    setup: Setup, twilio: FakeTwilio, to: str,
) -> None:
    error = await refused(setup.transfers, setup.call, to)
    assert (error.status, error.code) == (403, "target_not_allowed") and "PHONE_TRANSFER_TARGETS" in error.message
    assert not twilio.calls_to("POST") and not setup.call.transferring
    await setup.transfers.transfer(setup.call, TransferTarget("sip:desk@pbx.example.com"))  # still transferable


async def test_a_warm_transfer_of_a_twilio_call_without_its_callbacks_address_is_refused_naming_the_settings(
    setup: Setup, twilio: FakeTwilio,
) -> None:
    with pytest.raises(ApiError) as caught:
        await setup.transfers.transfer(setup.call, TransferTarget(DESK, "warm", "Ana wants a refund."))
    assert (caught.value.status, caught.value.code) == (409, "transfer_not_configured")
    assert "PHONE_PUBLIC_URL" in caught.value.message and "TWILIO_AUTH_TOKEN" in caught.value.message
    assert not twilio.calls_to("POST") and not setup.call.transferring
    await setup.transfers.transfer(setup.call, TransferTarget(DESK))  # cold still works


async def test_with_no_list_no_call_is_transferred(make: Callable[..., Setup], twilio: FakeTwilio) -> None:
    setup = make(targets=None)
    error = await refused(setup.transfers, setup.call, DESK)
    assert (error.status, error.code) == (403, "transfer_targets_unset") and "PHONE_TRANSFER_TARGETS" in error.message
    assert not twilio.calls_to("POST")


def twilio_ends_the_stream(setup: Setup) -> None:
    """What the relay does when Twilio's `stop` comes and the stream closes."""
    setup.transfers.heard_hang_up(setup.call, time.time(), "stop")
    setup.transfers.closed(setup.call)


async def when(condition: Callable[[], bool]) -> None:
    assert await FakeTwilio.eventually(condition, timeout=10)


async def test_an_update_taken_whose_answer_was_lost_is_read_back_once_the_stream_closed(
    setup: Setup, twilio: FakeTwilio,
) -> None:
    twilio.lose_answer(setup.at_carrier.sid)
    asking = asyncio.create_task(setup.transfers.transfer(setup.call, TransferTarget(DESK)))
    await when(setup.at_carrier.redirected.is_set)
    twilio_ends_the_stream(setup)
    answer = await asking
    assert answer["status"] == "transferred" and len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1
    assert [f.get("reconciled") for e, f in setup.notes.events if e == "transferred"] == [True]


async def test_a_when_neither_the_update_nor_the_read_is_answered_nothing_is_sent_again(
    setup: Setup, twilio: FakeTwilio,
) -> None:
    twilio.lose_answer(setup.at_carrier.sid)
    twilio.hold(method="GET", path_contains=setup.at_carrier.sid, times=99)
    asking = asyncio.create_task(setup.transfers.transfer(setup.call, TransferTarget(DESK)))
    await when(setup.at_carrier.redirected.is_set)
    twilio_ends_the_stream(setup)
    with pytest.raises(ApiError) as unknown:
        await asking
    assert (unknown.value.status, unknown.value.code) == (504, "transfer_outcome_unknown")
    assert unknown.value.extra == {"outcome": "unknown"}
    assert len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1 and len(setup.at_carrier.twiml) == 1
    assert setup.call.transferring  # no second transfer of this call can start
    assert not [e for e, _ in setup.notes.events if e == "caller_hung_up"]  # not known to be a hang-up


async def test_b_a_read_answered_503_leaves_the_outcome_unknown_and_a_retry_is_refused(
    setup: Setup, twilio: FakeTwilio,
) -> None:
    twilio.lose_answer(setup.at_carrier.sid)
    twilio.fail(503, method="GET", path_contains=setup.at_carrier.sid, times=99)
    with pytest.raises(ApiError) as unknown:
        await setup.transfers.transfer(setup.call, TransferTarget(DESK))
    assert (unknown.value.status, unknown.value.code) == (504, "transfer_outcome_unknown")
    again = await refused(setup.transfers, setup.call, "sip:desk@pbx.example.com")
    assert (again.status, again.code) == (409, "already_transferring")
    assert len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1


async def test_c_a_caller_who_hangs_up_after_the_update_went_unanswered_is_not_counted_transferred(
    make: Callable[..., Setup], twilio: FakeTwilio,
) -> None:
    setup = make(settle_seconds=10.0)  # the stream closing, not the settle, ends the wait
    twilio.hold(method="POST", path_contains=setup.at_carrier.sid)  # never reaches Twilio's call
    asking = asyncio.create_task(setup.transfers.transfer(setup.call, TransferTarget(DESK)))
    await when(lambda: bool(twilio.calls_to("POST", setup.at_carrier.sid)))
    await asyncio.sleep(0.5)  # past the update's 0.3 s: the dispatcher is waiting for the stream to close
    setup.at_carrier.status = "completed"  # the caller hangs up: Twilio ends the call and its stream
    twilio_ends_the_stream(setup)
    with pytest.raises(ApiError) as over:
        await asking
    assert (over.value.status, over.value.code) == (409, "call_over")
    assert setup.transfers.end_reason(setup.call, "caller_hung_up") == "caller_hung_up"
    assert [e for e, _ in setup.notes.events] == ["caller_hung_up"]


async def test_an_update_not_taken_while_the_call_still_streams_is_not_sent_again_and_may_be_asked_again(
    setup: Setup, twilio: FakeTwilio,
) -> None:
    twilio.hold(method="POST", path_contains=setup.at_carrier.sid)
    with pytest.raises(ApiError) as not_taken:
        await setup.transfers.transfer(setup.call, TransferTarget(DESK))
    assert (not_taken.value.status, not_taken.value.code) == (504, "carrier_unanswered")
    assert not_taken.value.extra == {"outcome": "not_transferred"} and not setup.call.transferring
    assert len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1


async def test_d_a_hanging_twilio_is_answered_within_the_budget_whatever_each_request_waits(
    make: Callable[..., Setup], twilio: FakeTwilio,
) -> None:
    setup = make(timeout=TIMEOUT_SECONDS, budget_seconds=1.5, read_seconds=0.5, settle_seconds=0.3)
    twilio.hold(method="POST", path_contains=setup.at_carrier.sid)
    twilio.hold(method="GET", path_contains=setup.at_carrier.sid, times=99)
    started = time.monotonic()
    with pytest.raises(ApiError) as unknown:
        await setup.transfers.transfer(setup.call, TransferTarget(DESK))
    assert unknown.value.code == "transfer_outcome_unknown"
    assert time.monotonic() - started < TIMEOUT_SECONDS  # cut by the budget, not by one request's timeout
    assert len(twilio.calls_to("POST", setup.at_carrier.sid)) == 1


def test_the_budget_holds_an_update_a_settle_and_a_read_and_ends_before_the_bot_stops_waiting() -> None:
    assert TIMEOUT_SECONDS + SETTLE_SECONDS + READ_SECONDS <= BUDGET_SECONDS < TRANSFER_TIMEOUT_SECONDS


async def test_twilios_error_text_which_names_the_account_is_logged_and_not_answered(
    setup: Setup, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture,
) -> None:
    del twilio.calls_by_sid[setup.at_carrier.sid]  # Twilio: 20404, "The requested resource /…/Accounts/AC…"
    gone = await refused(setup.transfers, setup.call, DESK)
    assert (gone.status, gone.code) == (409, "call_over") and "20404" in gone.message
    twilio.fail(400, body={"code": 13223, "message": f"Dial: Invalid phone number format ({ACCOUNT_SID})",
                           "more_info": "https://www.twilio.com/docs/errors/13223", "status": 400})
    bad = await refused(setup.transfers, setup.call, DESK)
    assert (bad.status, bad.code) == (502, "carrier_refused") and "13223" in bad.message
    for error in (gone, bad):
        assert ACCOUNT_SID not in error.message and "Accounts" not in error.message
    assert sum(ACCOUNT_SID in record.getMessage() for record in caplog.records) == 2  # for the operator


async def test_a_sip_edge_call_with_no_edge_configured_is_refused_naming_the_settings() -> None:
    # A dispatcher without SIP_EDGE_URL (dispatcher/phone/state.py passes no `sip`) asked to hand over a call whose
    # stream the edge opened: refused with what to set, nothing sent (tests/sip/test_transfer.py runs the edge's).
    transfers = Transfers(None, Notes(), ALLOWED)
    start = {"event": "start", "start": {"account_sid": SIP_EDGE_ACCOUNT, "call_sid": "1@trunk", "stream_sid": "s"}}
    call = transfers.opened("session-sip", "exotel", None, [{"type": "websocket.receive", "text": json.dumps(start)}])
    error = await refused(transfers, call, DESK)
    assert (error.status, error.code) == (409, "transfer_not_configured") and "SIP_EDGE_URL" in error.message
    assert not call.transferring
    await transfers.aclose()


class StoreReads(LocalFirstClaims):
    """A store's read yields to the event loop, as a redis GET does (`LocalFirstClaims.held` never does)."""

    async def held(self, what: str) -> str | None:
        await asyncio.sleep(0.05)
        return await super().held(what)


class EdgeTransfers(Scripted):
    """An edge's `POST /calls/<session>/transfer`: the first is handed over once `done` is set; one asked while
    it is under way is refused `409 already_transferring`, as sipedge/control.py `_transfer` answers."""

    def __init__(self) -> None:
        super().__init__([answer(202)])
        self.done = asyncio.Event()
        self.under_way = False

    async def request(self, method: str, path: str, **_: Any) -> HttpResponse:
        self.asked += 1
        if self.under_way:
            return answer(409, "already_transferring")
        self.under_way = True
        await self.done.wait()
        return HttpResponse(200, {}, b'{"session_id": "session-t", "how": "referred", "to": "%s", "sip_status": 202}'
                            % DESK.encode())


async def test_a_second_transfer_asked_while_the_store_is_read_is_refused_here_and_leaves_the_first_alone() -> None:
    """`Transfers._through_edge` awaits the store (`SipTransfers.holding` -> `SipEdges.recorded`) to learn the
    call's edge: a second transfer of one call asked meanwhile (a client's retry after its own timeout, the
    bot's tool and an API call) is refused here, never reaching the edge, and leaves the first `transferring`
    (else the carrier's stop that the transfer causes would be taken for the caller's hang-up)."""
    records = StoreReads()
    sip = SipTransfers(TrunkCallSettings((A, B), SECRET), records)
    edge = EdgeTransfers()
    sip.edges._clients = {A: edge, B: Scripted([answer(404, "no_call")])}  # type: ignore[dict-item]
    await records.first(record_key("session-t"), f"{A} placing-try", 2400)  # an outbound call placed at A
    transfers = Transfers(None, None, parse_transfer_targets(DESK), sip=sip)
    frames = stream_frames.handshake("stream-1", "call-1", "+14155550199", "+14155550100", A)
    call = transfers.opened("session-t", "exotel", None, [{"type": "websocket.receive", "text": f} for f in frames])
    first = asyncio.create_task(transfers.transfer(call, TransferTarget(DESK)))
    second = asyncio.create_task(transfers.transfer(call, TransferTarget(DESK)))
    with pytest.raises(ApiError) as refused:
        await second
    under_way = call.transferring
    edge.done.set()
    await first
    assert refused.value.code == "already_transferring"
    assert edge.asked == 1, "the second transfer passed the dispatcher's check and reached the edge"
    assert under_way, "the refused second transfer marked the first, still under way, as not transferring"


@pytest.mark.parametrize("mode", ["cold", "warm"])
async def test_a_transfer_the_draining_edge_refuses_is_not_retried_and_is_409_naming_the_drain(mode: str) -> None:
    """The edge answers a transfer that would place a call to the person `503 edge_draining` while it drains
    (sipedge/call_transfer.py): only that edge holds the call, and it drains for minutes, so a retry within the
    transfer's seconds meets the same; the bot is told at once, 409 rather than "try again"."""
    sip = SipTransfers(TrunkCallSettings((A,), SECRET), LocalFirstClaims())
    edge = Scripted([HttpResponse(503, {"retry-after": "5"}, b'{"error": {"code": "edge_draining", "message": "the '
                                  b'edge is draining (stopping once its calls in flight end)"}}')])
    sip.edges._clients = {A: edge}  # type: ignore[dict-item]
    with pytest.raises(ApiError) as refused:
        await sip.transfer("session-d", TransferTarget(DESK, mode), 60, A)
    assert (refused.value.status, refused.value.code) == (409, "edge_draining"), refused.value
    assert "draining" in refused.value.message, refused.value.message
    assert edge.asked == 1, "a refusal that names the drain was retried"
    await sip.aclose()
