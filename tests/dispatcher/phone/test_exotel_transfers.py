"""An Exotel call handed to a person through its flow's Connect applet, in one process: the target recorded
against the call's CallSid, the bot's stream ended, and the Connect applet's GET answered once, for that call
only (dispatcher/phone/exotel_transfers.py); tests/phone/test_exotel_transfer.py runs it through a real
dispatcher with Exotel's side faked."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from dispatcher.errors import ApiError
from dispatcher.phone.exotel_connect import (
    MAX_CONVERSATION_SECONDS,
    connect_secret,
    dial,
    dial_no_one,
    main,
    secret_matches,
)
from dispatcher.phone.exotel_transfers import ExotelTransfers
from dispatcher.phone.transfer_allow import parse_transfer_targets
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.transfers import LiveCall, Transfers
from dispatcher.store.memory import LocalFirstClaims

DESK = "+919876500001"
CALL_SID = "b2c1a0f4e2f64a1c9d3b7a8e5f6c0d12"
ALLOWED = parse_transfer_targets(f"{DESK}, pbx.example.com")


@dataclass
class Notes:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def note(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None:
        self.events.append((event, fields))


def exotel_start(call_sid: str = CALL_SID) -> list[dict[str, Any]]:
    """Exotel's Voicebot stream's first messages, as tests/fakes/carriers.py sends them."""
    start = {"event": "start", "stream_sid": "stream-1", "start": {"stream_sid": "stream-1", "call_sid": call_sid,
                                                                   "account_sid": "exotel-acct"}}
    return [{"type": "websocket.receive", "text": json.dumps({"event": "connected"})},
            {"type": "websocket.receive", "text": json.dumps(start)}]


@dataclass
class Line:
    """The carrier side of the stream: closing it is what sends Exotel's flow on to its Connect applet."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def end(self) -> None:
        self.closed.set()


def exotel_call(transfers: Transfers, *, opened_by_exotel: bool = True) -> tuple[LiveCall, Line]:
    call = transfers.opened("session-x", "exotel", None, exotel_start(), exotel_opened=opened_by_exotel)
    line = Line()
    call.end_stream = line.end
    return call, line


def make(records: LocalFirstClaims, notes: Notes | None = None, *, fetch_seconds: float = 5.0,
         exotel: bool = True) -> Transfers:
    handing = ExotelTransfers(records, fetch_seconds=fetch_seconds, poll_seconds=0.01) if exotel else None
    return Transfers(None, notes, ALLOWED, time_limit=900, exotel=handing)  # type: ignore[arg-type]


async def exotel_asks_once_the_stream_closed(transfers: Transfers, line: Line,
                                             call_sid: str = CALL_SID) -> tuple[TransferTarget, int, str] | None:
    """Exotel's side: the stream closed, the flow moved on, its Connect applet GETs the URL for the call."""
    await asyncio.wait_for(line.closed.wait(), 10)
    assert transfers.exotel is not None
    return await transfers.exotel.answer(call_sid)


async def test_the_target_is_recorded_the_stream_ended_and_the_connect_applet_answered_for_that_call_only(
) -> None:
    records, notes = LocalFirstClaims(), Notes()
    transfers = make(records, notes)
    call, line = exotel_call(transfers)
    assert transfers.exotel is not None
    assert await transfers.exotel.answer(CALL_SID) is None  # no transfer asked yet: no number, ever a default
    asking = asyncio.create_task(transfers.transfer(call, TransferTarget(DESK)))
    fetched = await exotel_asks_once_the_stream_closed(transfers, line)
    answer = await asking
    assert fetched is not None and (fetched[0].to, fetched[1], fetched[2]) == (DESK, 900, "session-x")
    assert (answer["status"], answer["carrier"], answer["carrier_status"]) == ("transferred", "exotel",
                                                                               "connect_fetched")
    assert [(e, f["carrier"], f["to"]) for e, f in notes.events] == [("transferred", "exotel", DESK)]
    assert transfers.end_reason(call, "carrier") == "transferred"
    # Exotel's Fallback URL (its primary answer lost) dials the same person; another call's CallSid no one.
    again = await transfers.exotel.answer(CALL_SID)
    assert again is not None and (again[0].to, again[1], again[2]) == (DESK, 900, "session-x")
    assert await transfers.exotel.answer("another0call0sid0000000000000000") is None


async def test_no_get_from_exotel_is_a_502_and_a_late_one_dials_no_one() -> None:
    records, notes = LocalFirstClaims(), Notes()
    transfers = make(records, notes, fetch_seconds=0.2)
    call, line = exotel_call(transfers)
    with pytest.raises(ApiError) as refused:
        await transfers.transfer(call, TransferTarget(DESK))
    assert (refused.value.status, refused.value.code) == (502, "connect_not_fetched"), refused.value
    assert refused.value.extra == {"outcome": "not_transferred"}
    assert "Connect applet" in refused.value.message and line.closed.is_set()
    assert transfers.exotel is not None and await transfers.exotel.answer(CALL_SID) is None  # given up: no one
    assert not notes.events and not call.transferring


async def test_a_caller_who_hung_up_before_the_stream_was_ended_is_call_over() -> None:
    transfers = make(LocalFirstClaims(), fetch_seconds=0.2)
    call, _ = exotel_call(transfers)
    call.held_hang_up = (1.0, "stop")  # heard as the transfer began
    with pytest.raises(ApiError) as refused:
        await transfers.transfer(call, TransferTarget(DESK))
    assert (refused.value.status, refused.value.code) == (409, "call_over"), refused.value


async def test_warm_is_refused_naming_why_and_nothing_is_recorded() -> None:
    records = LocalFirstClaims()
    transfers = make(records)
    call, line = exotel_call(transfers)
    with pytest.raises(ApiError) as refused:
        await transfers.transfer(call, TransferTarget(DESK, "warm"))
    assert (refused.value.status, refused.value.code) == (409, "warm_unsupported"), refused.value
    # It names what Exotel's applet can do, what is missing, and the way that works today.
    for named in ("start_call_playback", "music_on_hold", "max_ringing_duration", "second Voicebot applet",
                  "no-answer and busy transitions", "A warm transfer on Exotel", '"mode": "cold"'):
        assert named in refused.value.message, named
    assert not line.closed.is_set()
    assert transfers.exotel is not None and await transfers.exotel.answer(CALL_SID) is None


@pytest.mark.parametrize(("target", "status", "code"), [
    ("+14155550999", 403, "target_not_allowed"),
    ("sip:desk@pbx.example.com", 422, "invalid_target"),
])
async def test_a_target_off_the_list_or_not_a_number_is_refused_and_the_stream_stays(
    target: str, status: int, code: str,
) -> None:
    transfers = make(LocalFirstClaims())
    call, line = exotel_call(transfers)
    with pytest.raises(ApiError) as refused:
        await transfers.transfer(call, TransferTarget(target))
    assert (refused.value.status, refused.value.code) == (status, code), refused.value
    assert not line.closed.is_set() and not call.transferring


async def test_a_stream_exotel_did_not_open_is_not_verified_and_no_exotel_credential_is_not_configured() -> None:
    transfers = make(LocalFirstClaims())
    call, line = exotel_call(transfers, opened_by_exotel=False)  # a POST /start token's stream names any call
    with pytest.raises(ApiError) as refused:
        await transfers.transfer(call, TransferTarget(DESK))
    assert (refused.value.status, refused.value.code) == (409, "call_not_verified"), refused.value
    assert not line.closed.is_set()
    bare = make(LocalFirstClaims(), exotel=False)
    other, _ = exotel_call(bare)
    with pytest.raises(ApiError) as unset:
        await bare.transfer(other, TransferTarget(DESK))
    assert (unset.value.status, unset.value.code) == (409, "transfer_not_configured"), unset.value
    assert "EXOTEL_API_KEY" in unset.value.message


async def test_a_second_transfer_of_the_call_is_refused() -> None:
    records = LocalFirstClaims()
    transfers = make(records, fetch_seconds=0.5)
    call, line = exotel_call(transfers)
    first = asyncio.create_task(transfers.transfer(call, TransferTarget(DESK)))
    await asyncio.wait_for(line.closed.wait(), 10)
    with pytest.raises(ApiError) as refused:
        await transfers.transfer(call, TransferTarget(DESK))
    assert refused.value.code == "already_transferring"
    assert transfers.exotel is not None and await transfers.exotel.answer(CALL_SID) is not None
    await first


def test_the_url_secret_is_the_credentials_alone_and_the_answers_are_exotels_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = connect_secret("key:token")
    assert secret_matches("key:token", secret) and not secret_matches("key:other", secret)
    assert not secret_matches(None, secret) and "token" not in secret and len(secret) == 43
    assert dial(TransferTarget(DESK), 900) == {"fetch_after_attempt": False, "destination": {"numbers": [DESK]},
                                                "max_conversation_duration": 900}
    assert dial(TransferTarget(DESK), 10**6)["max_conversation_duration"] == MAX_CONVERSATION_SECONDS
    assert dial_no_one() == {"fetch_after_attempt": False, "destination": {"numbers": []}}
    assert main({"PHONE_PUBLIC_URL": "https://calls.example.com/", "EXOTEL_API_KEY": "key",
                 "EXOTEL_API_TOKEN": "token"}) == 0
    assert capsys.readouterr().out.strip() == f"https://calls.example.com/phone/exotel/connect/{secret}"
    assert main({}) == 2
