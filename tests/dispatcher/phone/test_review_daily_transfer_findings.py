"""Hostile review of the Daily dial-in transfer (dispatcher/phone/daily_transfers.py): each test is a finding
the product code had, and now keeps fixed.

DailyTransfers is driven directly, with the real Daily client against the strict fake (tests/fakes/daily.py)
and the in-memory first-claims store, as the dispatcher wires it (dispatcher/phone/state.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from botchannel.transfer import TRANSFER_TIMEOUT_SECONDS
from dispatcher.errors import ApiError
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.phone import daily_transfers
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.phone.daily_transfer_record import record_key
from dispatcher.phone.daily_transfers import DailyTransfers
from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.sessions.ids import new_session_id
from dispatcher.store.memory import LocalFirstClaims
from tests.fakes.daily import FakeDaily
from tests.fakes.server import Hold

SESSION = new_session_id(PHONE_CALLER, "daily-dialin:review-call")  # a dial-in call's session, as the webhook names it
DESK = "+14155550123"
TARGETS = parse_transfer_targets("+1415555*")


class _Sessions:
    """The session service's read: an active session that has a Daily room (a dial-in call in progress)."""

    async def get(self, session_id: str) -> Any:
        return SimpleNamespace(machine=SimpleNamespace(has_room=True, state=SimpleNamespace(is_active=True)))


class _Timeline:
    """dispatcher/phone/calls.py's `Timeline`: the events noted, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def note(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None:
        self.events.append((event, fields))


@pytest.fixture
async def rooms(fake_daily: FakeDaily) -> AsyncIterator[DailyRooms]:
    client = DailyRooms(DailySettings.from_env(fake_daily.env))
    await client.create(SESSION, 600)
    yield client
    await client.aclose()


def room_of(rooms: DailyRooms) -> str:
    return rooms.room_name(SESSION)


async def cancelled_while_held(fake_daily: FakeDaily, transfers: DailyTransfers, hold: Hold) -> None:
    """A transfer request cancelled once Daily holds the request `hold` catches (a replica shutting down)."""
    asking = asyncio.create_task(transfers.transfer(SESSION, TransferTarget(DESK)))
    try:
        assert await fake_daily.eventually(lambda: hold.caught == 1)
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
    finally:
        hold.release()


async def test_a_sip_leg_whose_user_id_defaults_to_its_session_id_is_still_the_caller(
    rooms: DailyRooms, fake_daily: FakeDaily,
) -> None:
    """Daily documents a participant's user id as its session id when no token set one: the SIP leg's."""
    fake_daily.join(room_of(rooms), f"bot-{SESSION}")
    caller = fake_daily.dial_in(room_of(rooms))
    for entry in fake_daily.presence[room_of(rooms)]:
        if entry["id"] == caller:
            entry["userId"] = caller  # Daily's documented default for a participant with no token user_id
    transfers = DailyTransfers(rooms, _Sessions(), LocalFirstClaims(), TARGETS, None)
    answer = await transfers.transfer(SESSION, TransferTarget(DESK))
    assert answer is not None and answer["status"] == "transferred"
    assert [t["sessionId"] for t in fake_daily.transfers] == [caller]


def test_the_worst_case_of_every_bound_fits_under_the_bots_wait() -> None:
    """The reads share one deadline, each within READ_SECONDS: counted twice, the whole still fits."""
    worst = 2 * daily_transfers.READ_SECONDS + daily_transfers.TRANSFER_SECONDS
    assert worst < TRANSFER_TIMEOUT_SECONDS


async def test_a_transfer_cancelled_while_dailys_post_is_in_flight_keeps_its_claim(
    rooms: DailyRooms, fake_daily: FakeDaily,
) -> None:
    """The POST may have reached Daily: it is never sent again, and the timeline says the outcome is unknown."""
    fake_daily.join(room_of(rooms), f"bot-{SESSION}")
    fake_daily.dial_in(room_of(rooms))
    claims = LocalFirstClaims()
    timeline = _Timeline()
    transfers = DailyTransfers(rooms, _Sessions(), claims, TARGETS, timeline)
    # Daily has the POST when the request is cancelled
    await cancelled_while_held(fake_daily, transfers, fake_daily.hold(method="POST", path_contains="/sipCallTransfer"))
    assert await claims.held(record_key(SESSION)) is not None  # the transfer may be done: never asked again
    with pytest.raises(ApiError) as again:
        await transfers.transfer(SESSION, TransferTarget(DESK))
    assert again.value.code == "already_transferring"
    assert [(event, fields["outcome"]) for event, fields in timeline.events] == [("transferred", "unknown")]


async def test_a_transfer_cancelled_before_anything_was_sent_gives_its_claim_back(
    rooms: DailyRooms, fake_daily: FakeDaily,
) -> None:
    """Cancelled while the room's presence is read: Daily was asked nothing, so a new ask may transfer."""
    fake_daily.join(room_of(rooms), f"bot-{SESSION}")
    caller = fake_daily.dial_in(room_of(rooms))
    claims = LocalFirstClaims()
    timeline = _Timeline()
    transfers = DailyTransfers(rooms, _Sessions(), claims, TARGETS, timeline)
    await cancelled_while_held(fake_daily, transfers, fake_daily.hold(method="GET", path_contains="/presence"))
    assert await claims.held(record_key(SESSION)) is None
    assert timeline.events == []
    answer = await transfers.transfer(SESSION, TransferTarget(DESK))
    assert answer is not None and answer["status"] == "transferred"
    assert [t["sessionId"] for t in fake_daily.transfers] == [caller]
