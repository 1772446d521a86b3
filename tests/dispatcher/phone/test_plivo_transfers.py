"""A Plivo call's transfer in one process against the strict fake of Plivo's Call resource: what is
refused before Plivo fetches anything, and the one-time URL it would fetch (tests/phone/
test_plivo_transfer.py runs a whole call, the fetch included, through a real dispatcher)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from dispatcher.api_error import ApiError
from dispatcher.phone.plivo_calls import PlivoCalls
from dispatcher.phone.plivo_transfer_url import dial_xml, read_ticket, transfer_url
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import Transfers
from tests.dispatcher.phone.test_transfers import ALLOWED, DESK, QUICK, Notes, refused
from tests.fakes.plivo import AUTH_ID, AUTH_TOKEN, FakePlivo, PlivoCall
from tests.fakes.server import serve

KEY = b"k" * 32


@pytest.fixture
def plivo() -> Iterator[FakePlivo]:
    with serve(FakePlivo(max_per_second=1000)) as fake:
        yield fake


@pytest.fixture
async def make(plivo: FakePlivo) -> AsyncIterator[Callable[..., tuple[Transfers, Any, PlivoCall]]]:
    """Transfers over a live Plivo call: `make(auth_token=…, public_url=…, signed=False)`."""
    made: list[Transfers] = []

    def setup(auth_token: str = AUTH_TOKEN, public_url: str | None = "https://calls.example.com",
              signed: bool = True) -> tuple[Transfers, Any, PlivoCall]:
        rest = PlivoCalls(AUTH_ID, auth_token, public_url, KEY, plivo.url, timeout=0.3, backoff=QUICK)
        transfers = Transfers(None, Notes(), ALLOWED, plivo=rest, settle_seconds=0.5)
        made.append(transfers)
        at_plivo = plivo.live_call(str(uuid.uuid4()))
        call = transfers.opened("session-1", "plivo", at_plivo.uuid if signed else None, [])
        return transfers, call, at_plivo

    yield setup
    for transfers in made:
        await transfers.aclose()


async def test_plivos_404_is_call_over_and_nothing_is_fetched(make: Callable[..., Any], plivo: FakePlivo) -> None:
    transfers, call, at_plivo = make()
    at_plivo.live = False
    assert (await refused(transfers, call, DESK)).code == "call_over"
    assert at_plivo.fetches == [] and len(plivo.calls_to("POST", at_plivo.uuid)) == 1


async def test_a_wrong_auth_token_is_the_deployments_credentials_not_the_call(make: Callable[..., Any]) -> None:
    transfers, call, _ = make(auth_token="another-token")
    error = await refused(transfers, call, DESK)
    assert (error.status, error.code) == (502, "carrier_refused") and "PLIVO_AUTH_ID" in error.message
    assert not call.transferring  # the call is the bot's again


async def test_refused_unsigned_or_with_no_public_url_before_plivo_is_asked(
    make: Callable[..., Any], plivo: FakePlivo,
) -> None:
    transfers, call, at_plivo = make(signed=False)
    assert (await refused(transfers, call, DESK)).code == "call_not_verified"
    transfers, call, at_plivo = make(public_url=None)
    error = await refused(transfers, call, DESK)
    assert error.code == "transfer_not_configured" and "PHONE_PUBLIC_URL" in error.message
    assert not plivo.calls_to("POST")


def test_the_transfer_url_is_the_dispatchers_alone_and_names_its_call_and_target() -> None:
    target = TransferTarget("sip:desk@pbx.example.com")
    path = transfer_url(KEY, "session-1", "5f0c2a9e-1b7d-4c36-9a51-0d6e2f3b4a10", target, 3600)
    assert path != transfer_url(KEY, "session-1", "5f0c2a9e-1b7d-4c36-9a51-0d6e2f3b4a10", target, 3600)  # a nonce
    ticket = read_ticket(KEY, path.rsplit("/", 1)[1])
    assert (ticket.session_id, ticket.call_uuid, ticket.target.to, ticket.time_limit) == (
        "session-1", "5f0c2a9e-1b7d-4c36-9a51-0d6e2f3b4a10", target.to, 3600)
    body, mac = path.rsplit("/", 1)[1].split(".")
    for forged in (f"{body}.{mac[:-1]}A" if not mac.endswith("A") else f"{body}.{mac[:-1]}B", f"{body}x.{mac}"):
        with pytest.raises(ApiError) as caught:
            read_ticket(KEY, forged)
        assert caught.value.code == "callback_forged"
    with pytest.raises(ApiError):
        read_ticket(b"o" * 32, path.rsplit("/", 1)[1])  # another deployment's key
    assert dial_xml(target, 3600) == ('<Response><Dial timeLimit="3600"><User>sip:desk@pbx.example.com</User>'
                                      "</Dial></Response>")


async def test_plivo_fetches_after_its_202_and_hangs_up_a_call_whose_xml_failed(
    make: Callable[..., Any], plivo: FakePlivo,
) -> None:
    transfers, call, at_plivo = make(public_url=plivo.url)  # the fake has no such route: its 404 is no XML
    plivo.fetch_late(at_plivo.uuid, 0.3)
    answer = await transfers.transfer(call, TransferTarget(DESK))
    assert answer["status"] == "transferred" and at_plivo.live and not at_plivo.fetches  # the 202 came first
    assert await FakePlivo.eventually(lambda: not at_plivo.live, timeout=10)
    assert [status for status, _ in at_plivo.refused] == [404] and at_plivo.xml == []
