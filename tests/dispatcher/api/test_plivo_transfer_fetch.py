"""Plivo's fetch of a transferred call's XML, against the real app in one process: Plivo's two HTTP
exchanges (the transfer's REST call, then its signed fetch of `aleg_url`, after the 202) are played
here as Plivo sends them. tests/phone/test_plivo_transfer.py runs whole calls through a real dispatcher."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from dispatcher.api_error import ApiError
from dispatcher.app import create_app
from dispatcher.phone.plivo_transfer_url import TICKET_SECONDS
from dispatcher.phone.transfer_target import TransferTarget
from dispatcher.phone.twilio_calls import TwilioRefused, Unanswered
from dispatcher.settings import Settings
from dispatcher.store.unavailable import StoreUnavailable
from tests.fakes.plivo import v3_signature

PUBLIC, FRONT = "http://127.0.0.1:18090", "https://voice.example.com"
EU, US = "http://127.0.0.1:18081", "http://127.0.0.1:18082"
TOKEN = "plivo-token"  # noqa: S105 (a test's)
DESK = "+14155550123"
ENV = {"PHONE_PUBLIC_URL": PUBLIC, "PLIVO_AUTH_TOKEN": TOKEN, "PLIVO_AUTH_ID": "MA0001",
       "PHONE_TRANSFER_TARGETS": DESK, "DISPATCHER_API_KEYS": "k" * 40}
STREAM = re.compile(r"/ws/plivo/([^<]+)</Stream>")


class Plivo:
    """The app, a live Plivo call of it, and Plivo's side: the transfers it was asked for, its fetches."""

    def __init__(self, env: dict[str, str], base: str = PUBLIC) -> None:
        self.app = create_app(Settings(), env=env, rooms=None)
        self.state = self.app.state.voicefleet
        self.transfers = self.state.phone.transfers
        self.rest = self.transfers._rest["plivo"]
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=base)
        self.uuid = str(uuid.uuid4())
        self.call = self.transfers.opened("session-1", "plivo", self.uuid, [])
        self.asked: list[str] = []  # each transfer's aleg_url
        self.answer: Callable[[str], Any] = lambda _url: {"message": "call transferred", "api_id": "x"}

        async def transfer_api(_path: str, document: dict[str, Any]) -> dict[str, Any]:
            self.asked.append(document["aleg_url"])
            answer: dict[str, Any] = self.answer(document["aleg_url"])
            return answer

        async def read_back(_call_sid: str) -> dict[str, Any]:  # the caller is still on the line
            return {"call_status": "in-progress", "status": "in-progress"}

        self.rest._post_json, self.rest.fetch = transfer_api, read_back

    async def fetch(self, aleg: str, call_uuid: str | None = None, status: str = "in-progress") -> httpx.Response:
        """Plivo's signed POST to `aleg`, as it sends it (a fresh nonce each time)."""
        form = {"CallUUID": call_uuid or self.uuid, "From": "+14155550100", "To": "+14155550199",
                "CallStatus": status, "Direction": "inbound"}
        nonce = secrets.token_hex(10)
        return await self.client.post(urlsplit(aleg).path, data=form, headers={
            "Host": urlsplit(aleg).netloc, "X-Plivo-Signature-V3-Nonce": nonce,
            "X-Plivo-Signature-V3": v3_signature(TOKEN, aleg, nonce, form)})


@pytest.fixture
async def plivo() -> AsyncIterator[Callable[..., Plivo]]:
    made: list[Plivo] = []

    def make(env: dict[str, str] = ENV, base: str = PUBLIC) -> Plivo:
        made.append(Plivo(env, base))
        return made[-1]

    yield make
    for one in made:
        await one.client.aclose()


def dials(answer: httpx.Response) -> bool:
    return answer.status_code == 200 and f"<Dial timeLimit=\"3600\"><Number>{DESK}</Number></Dial>" in answer.text


def streams_again(answer: httpx.Response) -> bool:
    return answer.status_code == 200 and "<Dial" not in answer.text and STREAM.search(answer.text) is not None


def hangs_up(answer: httpx.Response) -> bool:
    return answer.status_code == 200 and answer.text.endswith("<Response><Hangup/></Response>")


async def session_ended(at: Plivo, reason: str) -> None:
    """The session's end on its timeline, as the dispatcher writes it once its call's stream closed."""
    at.state.sessions.timeline.note("session-1", "requested")  # what opens a session's timeline, at its start
    at.state.sessions.timeline.note("session-1", "ended", reason=reason)
    await at.state.sessions.timeline.settled()


async def test_behind_a_shared_front_door_the_fetch_is_checked_at_the_regions_own_url(
    plivo: Callable[..., Plivo],
) -> None:
    at = plivo({**ENV, "REGION": "eu", "REGIONS": f"eu={EU},us={US}", "REGION_SECRET": "s" * 40,
                "PHONE_PUBLIC_URL": FRONT}, base=EU)
    await at.transfers.transfer(at.call, TransferTarget(DESK))
    (aleg,) = at.asked
    assert aleg.startswith(EU + "/phone/plivo/transfer/")  # where Plivo fetches it, and what it signs
    assert dials(await at.fetch(aleg))


async def test_a_late_fetch_after_the_read_back_gave_up_dials_no_one_and_the_retry_dials_once(
    plivo: Callable[..., Plivo],
) -> None:
    at = plivo()
    at.transfers._settle = 0.2

    def gateway_gave_up(url: str) -> dict[str, Any]:
        if len(at.asked) == 1:  # the first transfer: Plivo took it, but its gateway answered 502
            raise Unanswered("Plivo answered 502: it may have been done")
        return {"message": "call transferred", "api_id": "x"}

    at.answer = gateway_gave_up
    with pytest.raises(ApiError) as caught:
        await at.transfers.transfer(at.call, TransferTarget(DESK))
    assert caught.value.extra == {"outcome": "not_transferred"}
    late = await at.fetch(at.asked[0])  # Plivo's queue fetches the first ticket after all: it is dead
    assert streams_again(late), late.text  # the caller is streamed to a bot, not rung through
    await at.transfers.transfer(at.call, TransferTarget(DESK))
    assert dials(await at.fetch(at.asked[1]))


def taken_unanswered(_url: str) -> dict[str, Any]:
    """Plivo took the transfer, but its gateway answered 502."""
    raise Unanswered("Plivo answered 502: it may have been done")


async def given_up(at: Plivo) -> ApiError:
    """The transfer asked of Plivo, its answer lost, the call read back and the transfer given up: why."""
    at.transfers._settle = 0.2
    at.answer = taken_unanswered
    with pytest.raises(ApiError) as caught:
        await at.transfers.transfer(at.call, TransferTarget(DESK))
    return caught.value


async def test_a_given_up_ticket_fetched_after_its_session_ended_hangs_the_call_up(
    plivo: Callable[..., Plivo],
) -> None:
    at = plivo()
    assert (await given_up(at)).extra == {"outcome": "not_transferred"}
    await session_ended(at, "caller_hung_up")  # the bot, told, ended the call; Plivo's queue fetches late
    late = await at.fetch(at.asked[0])
    assert hangs_up(late), late.text  # no person rung, no new session started for a call already over


async def test_a_transfer_given_up_as_the_call_over_never_dials_when_plivo_fetches_it_after_all(
    plivo: Callable[..., Plivo],
) -> None:
    at = plivo()

    async def not_live(_call_sid: str) -> dict[str, Any]:  # Plivo's read back: 404, the call not live
        raise TwilioRefused(404, None, "call not found", carrier="Plivo")

    at.rest.fetch = not_live
    assert (await given_up(at)).code == "call_over"
    await session_ended(at, "caller_hung_up")
    late = await at.fetch(at.asked[0])  # Plivo ran the transfer after all (its read and its queue disagreed)
    assert not dials(late) and hangs_up(late), late.text


async def test_a_fetch_that_beat_the_read_back_is_the_transfer_though_the_stream_lasts(
    plivo: Callable[..., Plivo],
) -> None:
    at = plivo()
    at.transfers._settle = 0.5
    fetched: list[asyncio.Future[httpx.Response]] = []

    def fetched_then_gateway_gave_up(url: str) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.05, lambda: fetched.append(asyncio.ensure_future(at.fetch(url))))
        raise Unanswered("Plivo answered 502: it may have been done")

    at.answer = fetched_then_gateway_gave_up
    answer = await at.transfers.transfer(at.call, TransferTarget(DESK))
    assert answer["status"] == "transferred"
    assert dials(await fetched[0])
    with pytest.raises(ApiError) as caught:  # never a second <Dial>
        await at.transfers.transfer(at.call, TransferTarget(DESK))
    assert caught.value.code == "already_transferring"


async def test_a_store_blip_after_the_202_still_dials_and_plivos_repeat_gets_the_same_xml(
    plivo: Callable[..., Plivo],
) -> None:
    at = plivo()
    await at.transfers.transfer(at.call, TransferTarget(DESK))
    claims = at.state.phone.webhooks
    first_use = claims.first_use

    async def down(*_args: Any) -> bool:
        raise StoreUnavailable("store blip")

    claims.first_use = down
    blip = await at.fetch(at.asked[0])
    claims.first_use = first_use
    assert dials(blip), blip.text  # Plivo drops a call whose fetch failed: never a 503 here
    first, repeat = await at.fetch(at.asked[0]), await at.fetch(at.asked[0])  # its own retry, a fresh nonce
    assert dials(first) and first.text == repeat.text
    other = await at.fetch(at.asked[0], call_uuid=str(uuid.uuid4()))
    assert (other.status_code, other.json()["error"]["code"]) == (403, "callback_forged")


async def test_a_transfer_plivo_answered_leaves_no_ticket_behind(plivo: Callable[..., Plivo]) -> None:
    """Only a transfer Plivo did not answer may need its ticket killed later: an answered one's is dropped, or
    the replica would keep one per transferred call for its life."""
    at = plivo()
    answer = await at.transfers.transfer(at.call, TransferTarget(DESK))
    assert (answer["status"], answer["carrier_status"]) == ("transferred", "call transferred"), answer
    assert at.rest._tickets == {}, f"kept for the replica's life: {at.rest._tickets}"
    assert dials(await at.fetch(at.asked[0]))  # dropped from memory, the ticket itself still dials


async def test_a_ticket_whose_outcome_was_never_learnt_is_dropped_past_its_records_life(
    plivo: Callable[..., Plivo],
) -> None:
    at = plivo()
    now = [1000.0]
    at.rest._clock = lambda: now[0]
    at.transfers._settle = 0.2

    async def read_back_unanswered(_call_sid: str) -> dict[str, Any]:
        raise Unanswered("Plivo did not answer the read back")

    at.answer, at.rest.fetch = taken_unanswered, read_back_unanswered
    with pytest.raises(ApiError) as caught:
        await at.transfers.transfer(at.call, TransferTarget(DESK))
    assert caught.value.code == "transfer_outcome_unknown"
    assert list(at.rest._tickets) == [at.uuid]  # still killable while its records last
    now[0] += 2 * TICKET_SECONDS + 1
    at.answer = lambda _url: {"message": "call transferred", "api_id": "x"}
    other = at.transfers.opened("session-2", "plivo", str(uuid.uuid4()), [])
    await at.transfers.transfer(other, TransferTarget(DESK))
    assert at.rest._tickets == {}, at.rest._tickets


async def test_every_signed_ringing_answer_request_binds_the_call(plivo: Callable[..., Plivo]) -> None:
    at = plivo()
    for _attempt in ("first, its answer lost on the way back", "Plivo's retry, the one it streams with"):
        answer = await at.fetch(PUBLIC + "/phone/plivo", status="ringing")
        assert answer.status_code == 200, answer.text
        match = STREAM.search(answer.text)
        assert match is not None
        body = match.group(1).split(".")[0]
        assert json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["call"] == at.uuid
