"""A Twilio account outside US1 (dispatcher/phone/twilio_host.py): `TWILIO_REGION` and `TWILIO_EDGE` give the
REST API's host as twilio-python builds it, and every request of the dispatcher's goes there with the region's
own credentials. The dispatcher in-process places a call and hands it to a person through a strict fake of
IE1 (tests/fakes/twilio_outbound.py), which refuses a credential of another region as Twilio does; the fake
is served on loopback (`TWILIO_API_URL`), so the host the dispatcher computes is held to the fake's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.transfer_target import transfer_target
from dispatcher.phone.twilio_host import twilio_host
from dispatcher.settings import Settings, SettingsError
from tests.dispatcher.phone.placed_calls import PUBLIC, TWILIO_CALL, calls_allowed
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls

IE1_TOKEN = "test-twilio-ie1-auth-token"  # noqa: S105 (a test's): the account's auth token made in IE1
DESK = "+14155550123"


# twilio-python's rule (twilio/base/client_base.py `get_hostname`): api.{edge}.{region}.twilio.com, a part
# left out when unset; Twilio's docs name the two regional hosts (the API domain migration guide).
@pytest.mark.parametrize(("env", "host"), [
    ({}, "api.twilio.com"),
    ({"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin"}, "api.dublin.ie1.twilio.com"),
    ({"TWILIO_REGION": "au1", "TWILIO_EDGE": "sydney"}, "api.sydney.au1.twilio.com"),
    ({"TWILIO_REGION": " IE1 ", "TWILIO_EDGE": "Dublin"}, "api.dublin.ie1.twilio.com"),
])
def test_the_api_host_is_built_as_twilio_s_sdk_builds_it(env: dict[str, str], host: str) -> None:
    assert twilio_host(env).name == host
    assert PhoneSettings.from_env(env, keyless=False, bot_channel_token=None).twilio_api_url == f"https://{host}"


@pytest.mark.parametrize(("env", "said"), [
    ({"TWILIO_REGION": "ie1"}, r"TWILIO_REGION=ie1 needs TWILIO_EDGE=dublin: .*api\.dublin\.ie1\.twilio\.com"),
    ({"TWILIO_REGION": "au1", "TWILIO_EDGE": "dublin"}, r"TWILIO_REGION=au1 needs TWILIO_EDGE=sydney, not dublin"),
    ({"TWILIO_EDGE": "sydney"}, r"TWILIO_EDGE=sydney needs TWILIO_REGION=au1"),
    ({"TWILIO_REGION": "us1", "TWILIO_EDGE": "dublin"}, r"TWILIO_EDGE=dublin is IE1's: .*leave TWILIO_EDGE unset"),
    ({"TWILIO_REGION": "eu1"}, r"TWILIO_REGION='eu1' is not one of us1, ie1, au1"),
    # Pipecat's TwilioFrameSerializer (pipecat/serializers/twilio.py) raises for a region without an edge: a
    # team mirroring the dispatcher's pair to its bots would have every bot fail at start.
    ({"TWILIO_REGION": "us1"}, r"TWILIO_REGION=us1 is Twilio's default: leave TWILIO_REGION unset"),
    ({"TWILIO_REGION": "ie1", "TWILIO_EDGE": "ie1"}, r"TWILIO_EDGE='ie1' is not one of dublin, sydney"),
])
def test_a_region_and_edge_twilio_does_not_serve_are_refused_at_start_naming_the_choice(
        env: dict[str, str], said: str) -> None:
    with pytest.raises(SettingsError, match=said):
        PhoneSettings.from_env(env, keyless=False, bot_channel_token=None)


def test_twilio_api_url_wins_and_the_credentials_are_the_region_s() -> None:
    env = {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": IE1_TOKEN, "TWILIO_API_URL": "http://127.0.0.1:8123/"}
    phone = PhoneSettings.from_env(env, keyless=False, bot_channel_token=None)
    assert (phone.twilio_api_url, phone.twilio_host.name) == ("http://127.0.0.1:8123", "api.dublin.ie1.twilio.com")
    assert phone.twilio_rest is not None and phone.twilio_rest.region == "IE1"


@pytest.fixture
def ie1() -> Iterator[FakeTwilioCalls]:
    with serve(FakeTwilioCalls(region="ie1", auth_token=IE1_TOKEN, create_per_second=50)) as fake:
        yield fake


def env_for(fake: FakeTwilioCalls, token: str) -> dict[str, str]:
    return {**fake.env(), "TWILIO_AUTH_TOKEN": token, "PHONE_PUBLIC_URL": PUBLIC, "TWILIO_CALLS_PER_SECOND": "50",
            "PHONE_TRANSFER_TARGETS": DESK, **calls_allowed("twilio")}


@pytest.fixture
async def app(ie1: FakeTwilioCalls) -> AsyncIterator[Any]:
    app = create_app(Settings(), env=env_for(ie1, IE1_TOKEN), machines=LocalMachines(LocalSettings()), rooms=None)
    ie1.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    yield app
    await app.state.voicefleet.aclose()


async def test_an_ie1_account_s_call_is_placed_and_handed_to_a_person_at_ie1_s_host(
        app: Any, ie1: FakeTwilioCalls) -> None:
    # Without the fake's URL the dispatcher would reach the very host Twilio serves IE1 at.
    unpointed = {k: v for k, v in env_for(ie1, IE1_TOKEN).items() if k != "TWILIO_API_URL"}
    assert PhoneSettings.from_env(unpointed, keyless=False, bot_channel_token=None).twilio_api_url == \
        f"https://{ie1.host}"
    assert app.state.voicefleet.phone.settings.twilio_host.name == ie1.host == "api.dublin.ie1.twilio.com"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        answer = await api.post("/calls", json=TWILIO_CALL)
    assert answer.status_code == 201, answer.text
    session_id, call = answer.json()["session_id"], ie1.placed[-1]
    # IE1 signs the call's status callbacks with IE1's auth token, which the dispatcher checks them with.
    assert all(a.status_code == 204 for a in await ie1.answer(call.sid))
    state = app.state.voicefleet
    start = {"event": "start", "start": {"callSid": call.sid, "streamSid": "MZ" + "0" * 32}}
    state.phone.transfers.opened(session_id, "twilio", None, [{"type": "websocket.receive", "text": json.dumps(start)}])
    done = await state.phone.handing.transfer(session_id, transfer_target(DESK, "cold"))
    assert done is not None and done["status"] == "transferred", done
    assert len(call.twiml) == 1 and f"<Number>{DESK}</Number>" in call.twiml[0], call.twiml


async def refused_call(fake: FakeTwilioCalls, env: dict[str, str]) -> httpx.Response:
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        answer = await api.post("/calls", json=TWILIO_CALL)
    await app.state.voicefleet.aclose()
    assert fake.placed == []
    return answer


async def test_a_us1_credential_at_ie1_s_host_is_refused_naming_the_region_it_must_be_made_in(
        ie1: FakeTwilioCalls) -> None:
    answer = await refused_call(ie1, env_for(ie1, AUTH_TOKEN))
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "twilio_refused", answer.text
    assert "error 20003" in answer.text and "made in Twilio's IE1 region" in answer.text, answer.text


async def test_an_ie1_credential_without_twilio_region_is_refused_at_us1_naming_twilio_region() -> None:
    """The account is in IE1, the dispatcher left at Twilio's default: US1 knows no such credential."""
    with serve(FakeTwilioCalls(create_per_second=50)) as us1:
        answer = await refused_call(us1, env_for(us1, IE1_TOKEN))
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "twilio_refused", answer.text
    assert "made in Twilio's US1 region" in answer.text and "TWILIO_REGION" in answer.text, answer.text
