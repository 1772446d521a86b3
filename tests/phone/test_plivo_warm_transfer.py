"""A Plivo call handed to a person warm, end to end: a real dispatcher and bot (tests/phone/echo_bot.py), the
call in through Plivo's signed answer URL, the transfer asked with `POST /sessions/{id}/transfer`, and the
strict Plivo fake (tests/fakes/plivo.py) playing the person: the consult call made through Plivo's Call API,
its V3-signed ring, answer, `<Redirect>` and hangup requests reaching the dispatcher over the network at its
PHONE_PUBLIC_URL, and the caller's call transferred into the same `<Conference>`."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.fakes.plivo import FakePlivo
from tests.phone.test_plivo_transfer import (  # noqa: F401 (fixtures: the cold transfer's dispatcher, fake, client)
    ADMIN,
    DESK,
    api,
    dispatcher,
    plivo,
    plivo_call,
    transfer_by_api,
)
from tests.phone.test_transfer import ended_transferred, timeline

pytestmark = pytest.mark.slow  # real processes, Pipecat imports: seconds per call
SUMMARY = "Ana Ruiz, order 1042, wants a refund."


async def test_a_plivo_call_s_person_is_briefed_then_joined_to_the_caller(
    api: httpx.AsyncClient, plivo: FakePlivo,  # noqa: F811 (the imported fixtures)
) -> None:
    call, at_plivo, session_id = await plivo_call(api, plivo)
    asked = asyncio.create_task(transfer_by_api(api, session_id, call, at_plivo,
                                                {"to": DESK, "mode": "warm", "summary": SUMMARY}))
    assert await FakePlivo.eventually(lambda: bool(plivo.placed), timeout=30)
    person = plivo.placed[-1]
    assert (person.document["to"], person.document["from"]) == (DESK[1:], at_plivo.to_number[1:])
    assert at_plivo.xml == []  # the caller is still with the bot while the person rings
    assert all(a.status_code == 204 for a in await plivo.ring(person.uuid))
    assert [a.status_code for a in await plivo.answer(person.uuid)] == [200, 200]
    answer = await asyncio.wait_for(asked, 60)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["carrier"], answer.json()["carrier_status"]) == ("plivo", "warm")
    assert person.said == [SUMMARY]
    assert {person.uuid, at_plivo.uuid} in plivo.conferences.values(), plivo.conferences
    events = await ended_transferred(api, session_id)
    assert [(e["to"], e["mode"], e["carrier"]) for e in events if e["event"] == "transferred"] == [
        (DESK, "warm", "plivo")]


async def test_a_person_who_does_not_answer_leaves_the_caller_with_the_bot(
    api: httpx.AsyncClient, plivo: FakePlivo,  # noqa: F811 (the imported fixtures)
) -> None:
    call, at_plivo, session_id = await plivo_call(api, plivo)
    placed = len(plivo.placed)
    asked = asyncio.create_task(api.post(f"/sessions/{session_id}/transfer", json={"to": DESK, "mode": "warm"},
                                         headers=ADMIN))
    assert await FakePlivo.eventually(lambda: len(plivo.placed) > placed, timeout=30)
    person = plivo.placed[-1]
    await plivo.ring(person.uuid)
    await plivo.finish(person.uuid, "timeout")  # Plivo's ring_timeout ran out
    answer = await asyncio.wait_for(asked, 60)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "person_unanswered"), answer.text
    assert at_plivo.xml == [] and at_plivo.live  # never left the bot
    assert not [e for e in await timeline(api, session_id) if e["event"] == "transferred"]
    await call.hang_up()
