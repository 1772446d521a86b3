"""Daily's `calltransfer.*` webhooks of a Daily dial-in call handed to a person cold (dispatcher/phone/
daily_calltransfer.py), through the dispatcher's webhook route: the strict fake sends them as Daily documents them
(reference/rest-api/webhooks/events/calltransfer-*), signed, at least once; the session's timeline says what they
told, and a transfer whose answer never came is settled by them, pushed to the lifecycle webhook once."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.api.test_daily_dialin_transfer import Dialin, code, dispatcher
from tests.dispatcher.api.test_daily_dialin_transfer import dialin as dialin  # noqa: PLC0414 - the same fixture
from tests.dispatcher.api.test_daily_webhooks import signed
from tests.fakes.daily import DOMAIN_ID, FakeDaily
from tests.fakes.fly import FakeFly
from tests.support.daily_hooks_app import SECRET as DAILY_SECRET
from tests.support.hook_receiver import hook_receiver
from tests.support.waiting import until

DESK = "+14155550123"
HOOK = "/phone/daily/webhook"
HOOKS_SECRET = "whsec_" + base64.b64encode(b"calltransfer-lifecycle-hook-key!").decode()


def heard(daily: FakeDaily, kind: str, status: int = 200) -> int:
    return daily.sent_webhooks.count((kind, status))


async def taken(daily: FakeDaily, *kinds: str) -> None:
    for kind in kinds:
        await until(lambda kind=kind: heard(daily, kind) >= 1, f"{kind} taken")  # type: ignore[misc]


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == kind]


@asynccontextmanager
async def pushing(fake_fly: FakeFly, fake_daily: FakeDaily) -> AsyncIterator[tuple[Dialin, list[dict[str, Any]]]]:
    """The `dialin` dispatcher with lifecycle webhooks to a receiver that keeps each verified delivery."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(HOOKS_SECRET).verify(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    async with hook_receiver(hook) as url, dispatcher(
            fake_fly, fake_daily, DAILY_WEBHOOK_SECRET=DAILY_SECRET, WEBHOOK_URL=url,
            WEBHOOK_SECRET=HOOKS_SECRET) as setup:
        fake_daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=setup.app), timeout=10)
        await fake_daily.subscribe("https://calls.example.com/phone/daily/webhook", DAILY_SECRET,
                                   retry_type="exponential")
        yield setup, received


def pushed(received: list[dict[str, Any]], session_id: str) -> list[dict[str, Any]]:
    return [r for r in received if r["type"] == "session.transferred" and r["data"]["session_id"] == session_id]


async def test_the_persons_answer_and_hang_up_go_on_the_sessions_timeline(dialin: Dialin) -> None:
    session_id, caller = await dialin.call()
    answer = await dialin.transfer(session_id, to=DESK, mode="cold")
    assert answer.status_code == 200, answer.text
    await taken(dialin.daily, "calltransfer.triggered", "calltransfer.initiated")
    # A REFER's event for the same room (the dispatcher sends none): not this transfer's, ignored.
    referred = event("calltransfer.answered", next(iter(dialin.daily.rooms)), is_sip_refer=True,
                     to_endpoint="sip:elsewhere@pbx.example.com")
    body = json.dumps(referred).encode()
    ignored = await dialin.http.post(HOOK, content=body, headers=signed(body, secret=DAILY_SECRET))
    assert (ignored.status_code, ignored.json()) == (200, {"status": "ignored"}), ignored.text
    dialin.daily.answer_transfer(caller)
    await taken(dialin.daily, "calltransfer.answered")
    dialin.daily.end_transfer(caller)
    await taken(dialin.daily, "calltransfer.completed")
    events = await dialin.events(session_id)
    (transferred,) = of(events, "transferred")  # Daily's answer said it: its webhooks add nothing to it
    assert transferred["carrier_status"] == "accepted" and "heard_from" not in transferred
    (answered,) = of(events, "transfer_answered")
    (completed,) = of(events, "transfer_completed")
    said = {e["type"]: e for e in dialin.daily.events}
    assert answered["at"] == int(said["calltransfer.answered"]["payload"]["timestamp"])  # Daily's own time
    assert (answered["to"], answered["carrier"]) == (DESK, "daily")
    assert completed["at"] == int(said["calltransfer.completed"]["payload"]["timestamp"])


async def test_a_transfer_daily_took_but_never_answered_is_settled_by_its_webhook_and_pushed_once(
        fake_fly: FakeFly, fake_daily: FakeDaily) -> None:
    async with pushing(fake_fly, fake_daily) as (setup, received):
        session_id, _ = await setup.call()
        fake_daily.pause_webhooks()  # Daily's webhooks lag behind its lost answer
        fake_daily.lose_transfer_answer(503)
        answer = await setup.transfer(session_id, to=DESK, mode="cold")
        assert (answer.status_code, code(answer)) == (504, "transfer_outcome_unknown"), answer.text
        assert of(await setup.events(session_id), "transferred") == []  # unknown: nothing said yet
        await fake_daily.release_webhooks()  # triggered, then initiated: each says Daily took it
        assert heard(fake_daily, "calltransfer.triggered") == heard(fake_daily, "calltransfer.initiated") == 1
        (transferred,) = of(await setup.events(session_id), "transferred")
        assert transferred | {"at": 0, "replica": ""} == {
            "event": "transferred", "at": 0, "replica": "", "to": DESK, "mode": "cold", "carrier": "daily",
            "carrier_status": "accepted", "heard_from": "calltransfer"}
        await until(lambda: pushed(received, session_id), "session.transferred pushed")
        assert await fake_daily.send_again("calltransfer.triggered") == 200  # Daily's at-least-once
        await asyncio.sleep(1.5)  # past the deliverer's next look: nothing more comes
        (hook,) = pushed(received, session_id)
        assert hook["data"]["carrier_status"] == "accepted" and hook["data"]["heard_from"] == "calltransfer"
        assert len(of(await setup.events(session_id), "transferred")) == 1
        again = await setup.transfer(session_id, to=DESK, mode="cold")
        assert (again.status_code, code(again)) == (409, "already_transferring")  # never sent twice
        assert len(setup.posts()) == 1


async def test_dailys_webhook_heard_before_its_lost_answer_makes_the_transfer_taken(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    dialin.daily.lose_transfer_answer(503)  # its webhooks delivered first, then the 503
    answer = await dialin.transfer(session_id, to=DESK, mode="cold")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["carrier_status"]) == ("transferred", "accepted")
    (transferred,) = of(await dialin.events(session_id), "transferred")
    assert transferred["heard_from"] == "calltransfer"


async def test_each_event_delivered_again_acts_once(dialin: Dialin) -> None:
    session_id, caller = await dialin.call()
    assert (await dialin.transfer(session_id, to=DESK)).status_code == 200
    dialin.daily.answer_transfer(caller)
    await taken(dialin.daily, "calltransfer.answered")
    dialin.daily.end_transfer(caller)
    await taken(dialin.daily, "calltransfer.completed")
    for kind in ("calltransfer.answered", "calltransfer.completed", "calltransfer.triggered"):
        assert await dialin.daily.send_again(kind) == 200
    events = await dialin.events(session_id)
    assert [len(of(events, kind)) for kind in ("transferred", "transfer_answered", "transfer_completed")] == [1, 1, 1]


def event(kind: str, room: str, **payload: Any) -> dict[str, Any]:
    return {"version": "1.0.0", "type": kind, "id": f"3602-call-transfer-{kind[-4:]}-x{int(time.time())}",
            "payload": {"domain_id": DOMAIN_ID, "room": room, "timestamp": str(int(time.time())),
                        "session_id": "07efe77a-74e8-4e69-81b0-41ca454c06e0", "mtg_session_id": "m",
                        "to_endpoint": DESK, "from_endpoint": "+14155550100", **payload},
            "event_ts": time.time()}


async def test_another_deployments_room_or_a_malformed_event_is_answered_and_ignored(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    room = next(iter(dialin.daily.rooms))
    untransferred = event("calltransfer.answered", room)  # this deployment's room, but no transfer of its store's
    elsewhere = event("calltransfer.answered", "another-app-" + session_id)
    no_payload = {**event("calltransfer.triggered", room), "payload": "x"}
    no_time = event("calltransfer.completed", room, timestamp="soon")
    no_time["event_ts"] = None
    odd_time = event("calltransfer.completed", room, timestamp="\u00b2")  # isdigit(), yet no float: never a 500
    odd_time["event_ts"] = None
    for sent in (untransferred, elsewhere, no_payload, no_time, odd_time):
        body = json.dumps(sent).encode()
        answer = await dialin.http.post(HOOK, content=body, headers=signed(body, secret=DAILY_SECRET))
        assert (answer.status_code, answer.json()) == (200, {"status": "ignored"}), sent
    events = await dialin.events(session_id)
    assert not of(events, "transfer_answered") and not of(events, "transfer_completed") and not of(
        events, "transferred")


async def test_an_unsigned_or_forged_event_is_refused_and_notes_nothing(dialin: Dialin) -> None:
    session_id, caller = await dialin.call()
    assert (await dialin.transfer(session_id, to=DESK)).status_code == 200
    body = json.dumps(event("calltransfer.answered", next(iter(dialin.daily.rooms)), session_id=caller)).encode()
    unsigned = await dialin.http.post(HOOK, content=body, headers={"Content-Type": "application/json"})
    assert (unsigned.status_code, code(unsigned)) == (401, "signature_missing")
    forged = await dialin.http.post(HOOK, content=body, headers={
        "Content-Type": "application/json", "X-Webhook-Timestamp": str(int(time.time())),
        "X-Webhook-Signature": base64.b64encode(b"x" * 32).decode()})
    assert (forged.status_code, code(forged)) == (403, "signature_invalid")
    assert of(await dialin.events(session_id), "transfer_answered") == []


async def test_a_store_that_does_not_answer_is_a_503_and_dailys_retry_acts(dialin: Dialin) -> None:
    session_id, caller = await dialin.call()
    assert (await dialin.transfer(session_id, to=DESK)).status_code == 200
    await taken(dialin.daily, "calltransfer.triggered", "calltransfer.initiated")
    claims = dialin.app.state.voicefleet.phone.daily_calltransfers._claims
    real, downs = claims.held, [1]

    async def held(what: str) -> str | None:
        if downs:
            downs.pop()
            raise StoreUnavailable("down")
        return await real(what)

    claims.held = held
    dialin.daily.answer_transfer(caller)
    await taken(dialin.daily, "calltransfer.answered")
    assert heard(dialin.daily, "calltransfer.answered", 503) == 1  # refused first, taken on Daily's retry
    (answered,) = of(await dialin.events(session_id), "transfer_answered")
    assert answered["to"] == DESK


async def test_a_transfer_daily_refused_after_its_webhook_came_is_taken_on_the_webhooks_word(dialin: Dialin) -> None:
    """Daily's signed calltransfer webhook says it took the transfer; the refusal that came after is the echo of a
    lost answer (the caller had moved already). The transfer is noted, and Daily's later webhooks settle against
    its record: the person's answer and the call's end reach the timeline."""
    session_id, caller = await dialin.call()
    dialin.daily.lose_transfer_answer(404)  # its webhooks delivered first (the record marked heard), then refused
    taken_anyway = await dialin.transfer(session_id, to=DESK, mode="cold")
    assert taken_anyway.status_code == 200, taken_anyway.text
    assert heard(dialin.daily, "calltransfer.triggered") == 1
    dialin.daily.answer_transfer(caller)
    await until(lambda: heard(dialin.daily, "calltransfer.answered") >= 1, "answered delivered")
    dialin.daily.end_transfer(caller)
    await until(lambda: heard(dialin.daily, "calltransfer.completed") >= 1, "completed delivered")
    events = await dialin.events(session_id)
    (transferred,) = of(events, "transferred")
    assert transferred["to"] == DESK and transferred["heard_from"] == "calltransfer", transferred
    assert of(events, "transfer_answered") and of(events, "transfer_completed"), events
    again = await dialin.transfer(session_id, to=DESK, mode="cold")  # never handed over a second time
    assert again.status_code == 409, again.text
    assert len(dialin.posts()) == 1
