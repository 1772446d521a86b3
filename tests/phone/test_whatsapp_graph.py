"""The dispatcher's Graph API client against the strict fake of Meta's calling endpoint: what it sends
is what Meta documents, a 429 is tried again with backoff (and a 5xx for `reject` and `terminate`), an
answer Meta may have taken (a 5xx) is not, nor are Meta's refusals."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dispatcher.whatsapp.graph import GraphCalls, GraphRefused
from tests.fakes.server import serve
from tests.fakes.whatsapp import ACCESS_TOKEN, PHONE_NUMBER_ID, VERSION, FakeWhatsApp
from tests.phone.test_whatsapp_webhook import OFFER

ANSWER = OFFER.replace("a=setup:actpass", "a=setup:active")


@pytest.fixture
def meta() -> Iterator[FakeWhatsApp]:
    with serve(FakeWhatsApp()) as fake:
        yield fake


def graph(meta: FakeWhatsApp, token: str = ACCESS_TOKEN) -> GraphCalls:
    return GraphCalls(f"{meta.url}/{VERSION}", token)


async def test_a_call_is_pre_accepted_then_accepted_with_meta_s_documented_body(meta: FakeWhatsApp) -> None:
    call = meta.ring(OFFER)
    client = graph(meta)
    try:
        await client.answer(PHONE_NUMBER_ID, call.call_id, "pre_accept", ANSWER)
        await client.answer(PHONE_NUMBER_ID, call.call_id, "accept", ANSWER)
    finally:
        await client.aclose()
    assert (call.state, call.answer) == ("accepted", ANSWER)
    assert meta.calls[0].json() == {"messaging_product": "whatsapp", "call_id": call.call_id, "action": "pre_accept",
                                    "session": {"sdp_type": "answer", "sdp": ANSWER}}
    assert meta.calls[0].headers["authorization"] == f"Bearer {ACCESS_TOKEN}"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_throttled_or_failing_graph_is_tried_again(meta: FakeWhatsApp, status: int) -> None:
    call = meta.ring(OFFER)
    meta.fail(status, times=1, retry_after=0.1 if status == 429 else None)
    client = graph(meta)
    try:
        await client.end(PHONE_NUMBER_ID, call.call_id, "reject")
    finally:
        await client.aclose()
    assert len(meta.calls_to("POST", "/calls")) == 2
    assert call.state == "rejected"


async def test_meta_s_refusal_is_not_tried_again_and_says_why(meta: FakeWhatsApp) -> None:
    call = meta.ring(OFFER)
    client = graph(meta)
    try:
        with pytest.raises(GraphRefused) as refused:
            await client.end(PHONE_NUMBER_ID, call.call_id, "terminate")  # a ringing call is rejected, not terminated
    finally:
        await client.aclose()
    assert (refused.value.status, refused.value.code) == (400, 100)
    assert len(meta.calls_to("POST", "/calls")) == 1


async def test_a_wrong_token_is_meta_s_401_and_the_token_is_never_in_the_error(meta: FakeWhatsApp) -> None:
    call = meta.ring(OFFER)
    client = graph(meta, token="a-leaked-looking-token")
    try:
        with pytest.raises(GraphRefused) as refused:
            await client.end(PHONE_NUMBER_ID, call.call_id, "reject")
    finally:
        await client.aclose()
    assert (refused.value.status, refused.value.code) == (401, 190)
    assert "a-leaked-looking-token" not in str(refused.value)


@pytest.mark.parametrize(("body", "refused"), [
    ({"call_id": "x", "action": "reject"}, "messaging_product"),
    ({"messaging_product": "whatsapp", "call_id": "x", "action": "reject", "to": "1"}, "unknown fields"),
    ({"messaging_product": "whatsapp", "call_id": "x", "action": "accept",
      "session": {"sdp_type": "offer", "sdp": ANSWER}}, "sdp_type"),
    ({"messaging_product": "whatsapp", "call_id": "x", "action": "accept",
      "session": {"sdp_type": "answer", "sdp": ANSWER + "a=fingerprint:sha-512 AB\r\n"}}, "SHA-256"),
])
async def test_the_fake_refuses_what_meta_refuses(meta: FakeWhatsApp, body: dict[str, object], refused: str) -> None:
    call = meta.ring(OFFER)
    body["call_id"] = call.call_id
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{meta.url}/{VERSION}/{PHONE_NUMBER_ID}/calls", json=body,
                                 headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == 100 and refused in error["message"] and error["fbtrace_id"]
    assert call.state == "ringing"


async def test_an_answer_graph_fails_with_a_5xx_is_not_sent_again_and_may_have_been_done(meta: FakeWhatsApp) -> None:
    # Meta may have taken it before failing: the call's handling decides what follows (calls.py).
    call = meta.ring(OFFER)
    meta.fail(500, times=1)
    client = graph(meta)
    try:
        with pytest.raises(GraphRefused) as refused:
            await client.answer(PHONE_NUMBER_ID, call.call_id, "pre_accept", ANSWER)
        await client.answer(PHONE_NUMBER_ID, call.call_id, "accept", ANSWER)
    finally:
        await client.aclose()
    assert (refused.value.status, refused.value.maybe_done) == (500, True)
    assert len(meta.calls_to("POST", "/calls")) == 2


async def test_a_throttled_answer_is_sent_again(meta: FakeWhatsApp) -> None:
    call = meta.ring(OFFER)
    meta.fail(429, times=1, retry_after=0.1)
    client = graph(meta)
    try:
        await client.answer(PHONE_NUMBER_ID, call.call_id, "accept", ANSWER)
    finally:
        await client.aclose()
    assert [c.json()["action"] for c in meta.calls_to("POST", "/calls")] == ["accept", "accept"]
    assert call.state == "accepted"
