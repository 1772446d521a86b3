"""The dispatcher's Twilio Calls client against the strict fake of Twilio's Calls resource: what each
answer becomes, what is retried, what is never sent twice, and what the fake refuses as Twilio does."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import httpx
import pytest

from dispatcher.outbound.retry import Backoff
from dispatcher.phone.twilio_calls import TwilioCalls, TwilioCredentials, TwilioRefused, Unanswered
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

DIAL = "<Response><Dial><Number>+14155550123</Number></Dial></Response>"
QUICK = Backoff(attempts=3, base=0.01, cap=0.05, deadline=5.0)
KEY = ("SK" + "1" * 32, "key-secret")


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with serve(FakeTwilio(api_key=KEY)) as fake:
        yield fake


def client(fake: FakeTwilio, user: str = ACCOUNT_SID, secret: str = AUTH_TOKEN, timeout: float = 5.0) -> TwilioCalls:
    return TwilioCalls(TwilioCredentials(ACCOUNT_SID, user, secret), fake.url, timeout=timeout, backoff=QUICK)


async def test_an_update_sends_the_twiml_as_its_one_form_field_and_answers_the_call(twilio: FakeTwilio) -> None:
    call = twilio.live_call("CA" + "1" * 32)
    calls = client(twilio)
    answer = await calls.update(call.sid, DIAL)
    await calls.aclose()
    assert (answer["sid"], answer["status"]) == (call.sid, "in-progress")
    assert call.twiml == [DIAL]
    sent = twilio.calls_to("POST", call.sid)[0]
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call.sid}.json"
    assert httpx.QueryParams(sent.body.decode()) == httpx.QueryParams({"Twiml": DIAL})


async def test_an_api_key_is_taken_and_wrong_credentials_are_twilios_401(twilio: FakeTwilio) -> None:
    call = twilio.live_call("CA" + "2" * 32)
    with_key = client(twilio, *KEY)
    assert (await with_key.fetch(call.sid))["status"] == "in-progress"
    wrong = client(twilio, ACCOUNT_SID, "not-the-token")
    with pytest.raises(TwilioRefused) as refused:
        await wrong.update(call.sid, DIAL)
    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert call.twiml == []
    await with_key.aclose()
    await wrong.aclose()


async def test_an_unknown_call_is_20404_and_a_call_no_longer_in_progress_is_21220(twilio: FakeTwilio) -> None:
    calls = client(twilio)
    with pytest.raises(TwilioRefused) as unknown:
        await calls.update("CA" + "3" * 32, DIAL)
    assert (unknown.value.status, unknown.value.code) == (404, 20404)
    over = twilio.live_call("CA" + "4" * 32)
    over.status = "completed"
    with pytest.raises(TwilioRefused) as not_live:
        await calls.update(over.sid, DIAL)
    assert (not_live.value.status, not_live.value.code) == (400, 21220)
    await calls.aclose()


async def test_a_throttled_update_is_retried_within_its_attempts_and_a_5xx_never(twilio: FakeTwilio) -> None:
    call = twilio.live_call("CA" + "5" * 32)
    calls = client(twilio)
    twilio.fail(429, retry_after=0.05, method="POST", path_contains=call.sid)
    await calls.update(call.sid, DIAL)
    assert len(twilio.calls_to("POST", call.sid)) == 2 and call.twiml == [DIAL]
    twilio.fail(429, retry_after=0.01, times=3, method="POST", path_contains=call.sid)
    with pytest.raises(TwilioRefused) as gave_up:
        await calls.update(call.sid, DIAL)
    assert gave_up.value.status == 429 and len(twilio.calls_to("POST", call.sid)) == 5  # three more, then no more
    # A 5xx may come from a gateway whose backend did the update: sent again, the person would be rung twice.
    twilio.fail(503, times=3, method="POST", path_contains=call.sid)
    with pytest.raises(Unanswered):
        await calls.update(call.sid, DIAL)
    assert len(twilio.calls_to("POST", call.sid)) == 6
    await calls.aclose()


async def test_an_update_that_gets_no_answer_is_never_sent_again(twilio: FakeTwilio) -> None:
    call = twilio.live_call("CA" + "6" * 32)
    calls = client(twilio, timeout=0.3)
    hold = twilio.hold(method="POST", path_contains=call.sid)
    with pytest.raises(Unanswered):
        await calls.update(call.sid, DIAL)
    hold.release()
    assert len(twilio.calls_to("POST", call.sid)) == 1
    await calls.aclose()


async def test_the_fake_refuses_what_twilio_refuses(twilio: FakeTwilio) -> None:
    call = twilio.live_call("CA" + "7" * 32)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()}
    path = f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call.sid}.json"
    async with httpx.AsyncClient(headers=auth) as raw:
        unknown = await raw.post(path, data={"Twiml": DIAL, "Transfer": "now"})
        as_json = await raw.post(path, json={"Twiml": DIAL})
        too_long = await raw.post(path, data={"Twiml": "<Response>" + "x" * 4000 + "</Response>"})
        not_twiml = await raw.post(path, data={"Twiml": "<Dial>+1</Dial>"})
    assert [r.status_code for r in (unknown, as_json, too_long, not_twiml)] == [400, 400, 400, 400]
    assert unknown.json()["code"] == 20001 and "Transfer" in unknown.json()["message"]
    assert call.twiml == []


async def test_past_its_rate_the_fake_answers_429() -> None:
    with serve(FakeTwilio(max_per_second=2)) as fake:
        call = fake.live_call("CA" + "8" * 32)
        calls = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), fake.url,
                            backoff=Backoff(attempts=1))
        await calls.fetch(call.sid)
        await calls.fetch(call.sid)
        with pytest.raises(TwilioRefused) as throttled:
            await calls.fetch(call.sid)
        await calls.aclose()
    assert (throttled.value.status, throttled.value.code) == (429, None)


async def test_while_twilio_throttles_the_account_no_request_of_any_call_is_sent(twilio: FakeTwilio) -> None:
    first, second = twilio.live_call("CA" + "9" * 32), twilio.live_call("CA" + "a" * 32)
    calls = TwilioCalls(TwilioCredentials(ACCOUNT_SID, ACCOUNT_SID, AUTH_TOKEN), twilio.url,
                        backoff=Backoff(attempts=1))
    twilio.fail(429, retry_after=0.5, method="POST")
    with pytest.raises(TwilioRefused) as throttled:
        await calls.update(first.sid, DIAL)
    with pytest.raises(TwilioRefused) as paced_update:
        await calls.update(second.sid, DIAL)
    with pytest.raises(TwilioRefused) as paced_read:
        await calls.fetch(second.sid)
    for paced in (paced_update, paced_read):
        assert paced.value.status == 429 and 0 < (paced.value.retry_after or 0) <= 0.5
    assert len(twilio.calls) == 1 and throttled.value.status == 429  # only the one Twilio throttled
    await asyncio.sleep(0.6)  # past Twilio's Retry-After
    assert (await calls.update(second.sid, DIAL))["status"] == "in-progress"
    await calls.aclose()
