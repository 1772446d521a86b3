"""Transfers in one process against the strict fake of Twilio's Calls resource: the destination policy,
and what an unanswered or failed request becomes (the fast cases; tests/phone/test_transfer.py runs
whole calls through a real dispatcher)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from dispatcher.errors import ApiError
from dispatcher.outbound.retry import Backoff
from dispatcher.phone.transfer_allow import TransferTargets, parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import LiveCall, Transfers
from dispatcher.phone.twilio_calls import TwilioCalls, TwilioCredentials
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
    at_twilio: FakeCall
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
        at_twilio = twilio.live_call(sid)
        start = {"event": "start", "start": {"callSid": sid, "streamSid": "MZ1"}}
        call = transfers.opened(f"session-{sid[-4:]}", "twilio", sid,
                                [{"type": "websocket.receive", "text": json.dumps(start)}])
        return Setup(transfers, call, at_twilio, notes)

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
    assert setup.at_twilio.twiml == [f'<Response><Dial timeLimit="3600"><Number>{DESK}</Number></Dial></Response>']


@pytest.mark.parametrize("to", ["+882123456789", "+19005550100", "sip:+19005550100@203.0.113.7:5080"])
async def test_a_target_off_the_list_is_refused_before_twilio_hears_of_it(
    setup: Setup, twilio: FakeTwilio, to: str,
) -> None:
    error = await refused(setup.transfers, setup.call, to)
    assert (error.status, error.code) == (403, "target_not_allowed") and "PHONE_TRANSFER_TARGETS" in error.message
    assert not twilio.calls_to("POST") and not setup.call.transferring
    await setup.transfers.transfer(setup.call, TransferTarget("sip:desk@pbx.example.com"))  # still transferable


async def test_with_no_list_no_call_is_transferred(make: Callable[..., Setup], twilio: FakeTwilio) -> None:
    setup = make(targets=None)
    error = await refused(setup.transfers, setup.call, DESK)
    assert (error.status, error.code) == (403, "transfer_targets_unset") and "PHONE_TRANSFER_TARGETS" in error.message
    assert not twilio.calls_to("POST")
