"""A call the dispatcher placed out (`POST /calls`, Twilio or Telnyx) is handed to a person as a call that
came in through the signed webhook is: the dispatcher in-process, each carrier a strict fake
(tests/fakes/twilio_outbound.py, tests/fakes/telnyx_outbound.py) that takes the create, sends its signed
callbacks and takes the transfer's update. The call's stream is registered as the carrier route registers
it once its bot is attached (dispatcher/api/routers/carriers.py: `Transfers.opened` with the token's call,
none for a placed call, and the stream's first messages).

A placed call's asynchronous answering-machine verdict and its transfer race (Twilio's AMD runs up to 30 s
into the call, while the callee may be handed to a person as soon as they pick up): whichever comes first acts,
the other leaves the call alone (dispatcher/phone/placed_turns.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.errors import ApiError
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.transfer_target import transfer_target
from dispatcher.settings import Settings
from tests.dispatcher.phone.placed_calls import PUBLIC, calls_allowed, twilio_placing
from tests.fakes.server import serve
from tests.fakes.telnyx_outbound import FakeTelnyxCalls
from tests.fakes.twilio_outbound import FakeTwilioCalls, PlacedCall

DESK = "+14155550123"


@pytest.fixture(params=["twilio", "telnyx"])
def carrier(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeTwilioCalls]]:
    fake = FakeTwilioCalls(create_per_second=50) if request.param == "twilio" else FakeTelnyxCalls(create_per_second=50)
    with serve(fake) as served:
        yield request.param, served


def env_for(name: str, fake: FakeTwilioCalls) -> dict[str, str]:
    if name == "twilio":
        return {**twilio_placing(fake.url), "PHONE_TRANSFER_TARGETS": DESK}
    return {**fake.env(), "PHONE_PUBLIC_URL": PUBLIC, "TELNYX_CALLS_PER_SECOND": "50",
            "PHONE_TRANSFER_TARGETS": DESK, **calls_allowed(name)}


@pytest.fixture
async def app(carrier: tuple[str, FakeTwilioCalls]) -> Any:
    name, fake = carrier
    app = create_app(Settings(), env=env_for(name, fake), machines=LocalMachines(LocalSettings()), rooms=None)
    fake.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    yield app
    await app.state.voicefleet.aclose()


async def place(app: Any, fake: FakeTwilioCalls, name: str, voicemail: str = "hang_up") -> tuple[str, PlacedCall]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        answer = await api.post("/calls", json={"to": "+14155550100", "from": "+14155550199", "carrier": name,
                                                "voicemail": voicemail})
    assert answer.status_code == 201, answer.text
    call = fake.placed[-1]
    assert all(a.status_code == 204 for a in await fake.answer(call.sid))  # it rings, the callee picks up
    return answer.json()["session_id"], call


def stream_start(call_sid: str) -> list[dict[str, Any]]:
    """The carrier's first stream messages as the relay keeps them (Twilio's `start` names its call)."""
    start = {"event": "start", "start": {"callSid": call_sid, "streamSid": "MZ" + "0" * 32}}
    return [{"type": "websocket.receive", "text": json.dumps(start)}]


async def test_a_placed_call_is_handed_to_a_person_by_its_session(app: Any,
                                                                 carrier: tuple[str, FakeTwilioCalls]) -> None:
    name, fake = carrier
    session_id, call = await place(app, fake, name)
    state = app.state.voicefleet
    state.phone.transfers.opened(session_id, name, None, stream_start(call.sid))
    answer = await state.phone.handing.transfer(session_id, transfer_target(DESK, "cold"))
    assert answer is not None and answer["status"] == "transferred" and answer["carrier"] == name, answer
    assert len(call.twiml) == 1 and f"<Number>{DESK}</Number>" in call.twiml[0], call.twiml


async def test_a_stream_naming_another_call_than_the_one_placed_is_not_transferred(
        app: Any, carrier: tuple[str, FakeTwilioCalls]) -> None:
    name, fake = carrier
    session_id, call = await place(app, fake, name)
    state = app.state.voicefleet
    if name == "twilio":  # a Twilio stream's `start` must name the call placed; Telnyx's ids come from the dispatcher
        state.phone.transfers.opened(session_id, name, None, stream_start("CA" + "f" * 32))
        with pytest.raises(ApiError) as refused:
            await state.phone.handing.transfer(session_id, transfer_target(DESK, "cold"))
        assert (refused.value.status, refused.value.code) == (409, "call_not_verified")
    # A session this dispatcher placed no call for (a stream opened with a POST /start token) still cannot be.
    state.phone.transfers.opened("s-" + "a" * 22, name, None, stream_start(call.sid))
    with pytest.raises(ApiError) as refused:
        await state.phone.handing.transfer("s-" + "a" * 22, transfer_target(DESK, "cold"))
    assert (refused.value.status, refused.value.code) == (409, "call_not_verified")
    assert call.twiml == []


async def placed_and_transferred(app: Any, fake: FakeTwilioCalls, name: str, voicemail: str) -> tuple[str, PlacedCall]:
    """A call placed with `voicemail`, answered, its stream attached, then handed to DESK (the transfer's `<Dial>`
    taken by the carrier) before the carrier's AMD verdict came."""
    session_id, call = await place(app, fake, name, voicemail)
    state = app.state.voicefleet
    state.phone.transfers.opened(session_id, name, None, stream_start(call.sid))
    done = await state.phone.handing.transfer(session_id, transfer_target(DESK, "cold"))
    assert done is not None and done["status"] == "transferred", done
    assert len(call.twiml) == 1 and f"<Number>{DESK}</Number>" in call.twiml[0], call.twiml
    return session_id, call


async def test_a_machine_verdict_after_the_transfer_does_not_hang_up_the_person_s_call(
        app: Any, carrier: tuple[str, FakeTwilioCalls]) -> None:
    """voicemail `hang_up` (the default): the verdict comes once the callee is talking to the desk."""
    name, fake = carrier
    session_id, call = await placed_and_transferred(app, fake, name, "hang_up")
    verdict = await fake.detect(call.sid, "machine_start")  # AMD's false positives are common
    assert verdict is not None and verdict.status_code == 204, verdict
    assert call.status == "in-progress", f"the dispatcher hung up a call it had transferred to {DESK}"
    await app.state.voicefleet.sessions.timeline.settled()
    timeline = list(await app.state.voicefleet.sessions.timeline.read(session_id))
    outcomes = [e.get("outcome") for e in timeline if e["event"] == "call_outcome"]
    assert "voicemail" not in outcomes, "a transferred session's outcome rewritten as voicemail"
    verdicts = [e for e in timeline if e["event"] == "answered_by"]
    assert [(v["answered_by"], v.get("ignored")) for v in verdicts] == [("machine_start", "transferred")], verdicts


async def test_a_flag_verdict_after_the_transfer_does_not_pull_the_call_away_from_the_person(
        app: Any, carrier: tuple[str, FakeTwilioCalls]) -> None:
    """voicemail `flag`: the verdict would move the call to a fresh bot's stream, off the person's `<Dial>`."""
    name, fake = carrier
    _, call = await placed_and_transferred(app, fake, name, "flag")
    verdict = await fake.detect(call.sid, "machine_start")
    assert verdict is not None and verdict.status_code == 204, verdict
    assert len(call.twiml) == 1, f"the call was redirected after its transfer: {call.twiml[1:]}"


async def test_a_call_its_verdict_handed_to_a_fresh_bot_is_not_transferred_by_the_first_session(
        app: Any, carrier: tuple[str, FakeTwilioCalls]) -> None:
    """The other order: `flag` moved the call to a fresh session's stream, and the first session's stream has not
    closed yet (the carrier ends it a moment after the update): its transfer is refused, the fresh bot keeps it."""
    name, fake = carrier
    session_id, call = await place(app, fake, name, "flag")
    state = app.state.voicefleet
    state.phone.transfers.opened(session_id, name, None, stream_start(call.sid))
    verdict = await fake.detect(call.sid, "machine_start")
    assert verdict is not None and verdict.status_code == 204, verdict
    assert len(call.twiml) == 1 and "<Stream" in call.twiml[0], call.twiml  # handed to the fresh bot
    with pytest.raises(ApiError) as refused:
        await state.phone.handing.transfer(session_id, transfer_target(DESK, "cold"))
    assert (refused.value.status, refused.value.code) == (409, "answered_by_machine"), refused.value
    assert len(call.twiml) == 1, f"the fresh bot's call was taken by the first session's transfer: {call.twiml[1:]}"


async def test_a_transfer_the_carrier_refused_leaves_the_call_to_a_later_verdict(
        app: Any, carrier: tuple[str, FakeTwilioCalls]) -> None:
    """A transfer that did not happen claims nothing: the machine's verdict still hangs the call up."""
    name, fake = carrier
    session_id, call = await place(app, fake, name, "hang_up")
    state = app.state.voicefleet
    state.phone.transfers.opened(session_id, name, None, stream_start(call.sid))
    fake.fail(401, method="POST", path_contains=call.sid)  # the dispatcher's credential, refused once
    with pytest.raises(ApiError) as refused:
        await state.phone.handing.transfer(session_id, transfer_target(DESK, "cold"))
    assert (refused.value.status, refused.value.code) == (502, "carrier_refused"), refused.value
    verdict = await fake.detect(call.sid, "machine_start")
    assert verdict is not None and verdict.status_code == 204, verdict
    assert call.status == "completed" and call.twiml == [], (call.status, call.twiml)
