"""Daily's webhooks at `POST /phone/daily/webhook` (dispatcher/api/routers/daily_webhooks.py): signed as Daily
signs them (https://docs.daily.co/reference/rest-api/webhooks, "hmac": BASE-64 HMAC-SHA256 of
`{X-Webhook-Timestamp}.{body}` keyed with the decoded secret), the strict fake posting them (tests/fakes/daily.py),
the dispatcher whole; what a request left in the store is read back through the app's own records."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest

from botchannel.transfer import DAILY_PERSON_USER
from dispatcher.media.daily import DailyRooms
from dispatcher.phone.daily_legs import DialoutLegs
from dispatcher.phone.daily_signature import sign, webhook_key
from dispatcher.phone.settings import PhoneSettings
from dispatcher.settings import SettingsError
from tests.dispatcher.api.test_daily_dialin_transfer import Dialin, dispatcher
from tests.dispatcher.api.test_daily_dialin_transfer import dialin as dialin  # noqa: PLC0414 - the same fixture
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly
from tests.support.daily_hooks_app import SECRET

HOOK = "/phone/daily/webhook"


def answered(dial: str, room: str = "vf-x", user: str = DAILY_PERSON_USER + "0" * 24) -> bytes:
    """A `dialout.answered` body as Daily documents it (reference/rest-api/webhooks/events/dialout-answered)."""
    return json.dumps({"version": "1.0.0", "type": "dialout.answered", "id": f"dial-out-ans-{dial}",
                       "payload": {"timestamp": int(time.time()), "session_id": dial, "user_id": user,
                                   "domain_id": "d", "room": room, "destination": "+14155550123"},
                       "event_ts": time.time()}).encode()


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {"Content-Type": "application/json", "X-Webhook-Timestamp": timestamp,
            "X-Webhook-Signature": sign(webhook_key(secret), timestamp, body)}


def legs(setup: Dialin) -> DialoutLegs:
    hooks = setup.app.state.voicefleet.phone.daily_hooks
    assert hooks is not None
    return hooks.legs  # type: ignore[no-any-return]


async def test_dailys_signed_answer_is_kept_for_any_replica(dialin: Dialin) -> None:
    dial = str(uuid.uuid4())
    await legs(dialin).place(DAILY_PERSON_USER + "0" * 24)  # the waiting replica's, before its dial-out
    body = answered(dial)
    answer = await dialin.http.post(HOOK, content=body, headers=signed(body))
    assert answer.status_code == 200, answer.text
    assert await legs(dialin).answered(dial)


@pytest.mark.parametrize("forge", ["another secret", "a changed body", "a changed timestamp"])
async def test_a_forged_webhook_is_refused_and_nothing_is_kept(dialin: Dialin, forge: str) -> None:
    dial, body = str(uuid.uuid4()), answered(str(uuid.uuid4()))
    headers = signed(body, secret=base64.b64encode(b"k" * 32).decode()) if forge == "another secret" else signed(body)
    if forge == "a changed timestamp":
        headers["X-Webhook-Timestamp"] = str(int(headers["X-Webhook-Timestamp"]) - 1)
    sent = answered(dial) if forge == "a changed body" else body
    answer = await dialin.http.post(HOOK, content=sent, headers=headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "signature_invalid")
    assert not await legs(dialin).answered(dial)
    assert not await legs(dialin).answered(json.loads(body)["payload"]["session_id"])


async def test_a_replayed_webhook_past_the_window_is_refused(dialin: Dialin) -> None:
    dial = str(uuid.uuid4())
    body = answered(dial)
    answer = await dialin.http.post(HOOK, content=body, headers=signed(body, at=time.time() - 600))
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "signature_expired")
    assert not await legs(dialin).answered(dial)


async def test_an_unsigned_event_is_refused_401(dialin: Dialin) -> None:
    dial = str(uuid.uuid4())
    answer = await dialin.http.post(HOOK, content=answered(dial), headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "signature_missing")
    assert not await legs(dialin).answered(dial)


async def test_without_the_secret_dailys_check_passes_and_an_event_is_refused_naming_the_setting(
        fake_fly: FakeFly, fake_daily: FakeDaily) -> None:
    async with dispatcher(fake_fly, fake_daily) as unhooked:
        check = await unhooked.http.post(HOOK, json={"test": "test"})  # Daily's, when the webhook is created
        assert check.status_code == 200
        body = answered(str(uuid.uuid4()))
        answer = await unhooked.http.post(HOOK, content=body, headers=signed(body))
        assert answer.status_code == 403 and "DAILY_WEBHOOK_SECRET" in answer.text


async def test_a_transfers_leg_that_nobody_waits_on_is_stopped_by_the_replica_that_heard_it(dialin: Dialin) -> None:
    # The replica that placed it was killed: its waiting mark lapsed, so its answer finds nobody.
    session_id, _ = await dialin.call()
    rooms: Any = dialin.app.state.voicefleet.rooms
    assert isinstance(rooms, DailyRooms)
    user = DAILY_PERSON_USER + uuid.uuid4().hex[:24]
    await legs(dialin).place(user)
    await legs(dialin).done(user)
    dial = await rooms.dial_out_start(session_id, "+14155550123", user)
    dialin.daily.answer_dial_out(dial)
    assert await dialin.daily.eventually(lambda: dialin.daily.dial_outs[dial]["state"] == "stopped", timeout=5.0)
    assert ("dialout.answered", 200) in dialin.daily.sent_webhooks


async def test_a_transfers_leg_this_store_never_placed_is_left_alone_and_nothing_kept(dialin: Dialin) -> None:
    # Another deployment's on the same Daily domain (staging with the same prefix), or another region's: its
    # leg is not provably this one's, so it is never stopped from here.
    session_id, _ = await dialin.call()
    rooms: Any = dialin.app.state.voicefleet.rooms
    dial = await rooms.dial_out_start(session_id, "+14155550123", DAILY_PERSON_USER + uuid.uuid4().hex[:24])
    dialin.daily.answer_dial_out(dial)
    assert await dialin.daily.eventually(lambda: ("dialout.answered", 200) in dialin.daily.sent_webhooks)
    assert dialin.daily.dial_outs[dial]["state"] == "answered"
    assert not await legs(dialin).answered(dial)


async def test_another_dial_out_of_the_domain_is_left_alone(dialin: Dialin) -> None:
    session_id, _ = await dialin.call()
    rooms: Any = dialin.app.state.voicefleet.rooms
    dial = await rooms.dial_out_start(session_id, "+14155550123", "someone-elses-dial-out")
    dialin.daily.answer_dial_out(dial)
    assert await dialin.daily.eventually(lambda: ("dialout.answered", 200) in dialin.daily.sent_webhooks)
    assert dialin.daily.dial_outs[dial]["state"] == "answered"


@pytest.mark.parametrize("secret", ["not base-64!", base64.b64encode(b"short").decode()])
def test_a_secret_daily_could_not_have_given_is_refused_at_start(secret: str) -> None:
    with pytest.raises(SettingsError, match="DAILY_WEBHOOK_SECRET"):
        PhoneSettings.from_env({"DAILY_WEBHOOK_SECRET": secret}, keyless=True, bot_channel_token=None,
                               default_drain_seconds=60)
