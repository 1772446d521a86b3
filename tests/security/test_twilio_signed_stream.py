"""A captured `X-Twilio-Signature` of a Media Streams upgrade: it covers only the `wss://` URL, so
the same header is valid on every upgrade to that URL, forever. Against a real dispatcher on a
loopback port: the header opens no call by default, and one call at most where signed streams are
turned on; the webhook's one-time token (the default way in) still opens its call."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dispatcher.factory import build_coordination
from dispatcher.phone.signatures import twilio_signature
from tests.dispatcher.api.test_upgrade_auth import accepted, refused
from tests.support.phone_dispatcher import TWILIO_TOKEN, Phone, phone_dispatcher
from tests.support.ports import free_port

STREAM_URL = "wss://calls.example.com/ws/twilio"  # what a TwiML Bin names, and Twilio signs
CAPTURED = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, STREAM_URL)}


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    async for running in phone_dispatcher(keyed=True):
        yield running


async def webhook_token_url(phone: Phone) -> str:
    form = {"CallSid": "CA" + secrets.token_hex(16), "From": "+14155550100"}
    signed = twilio_signature(TWILIO_TOKEN, "https://calls.example.com/phone/twilio", form.items())
    answer = await phone.api.post("/phone/twilio", data=form, headers={"X-Twilio-Signature": signed})
    assert answer.status_code == 200, answer.text
    stream = answer.text.split('url="', 1)[1].split('"', 1)[0]
    return phone.ws(stream.removeprefix("wss://calls.example.com"))


async def test_a_captured_upgrade_signature_opens_no_call_by_default(phone: Phone) -> None:
    for _ in range(3):
        assert await refused(phone.ws("/ws/twilio"), CAPTURED) == 403
    assert phone.launches == []
    await accepted(phone, await webhook_token_url(phone))  # positive control: the webhook's token


async def test_with_signed_streams_on_a_captured_signature_opens_one_call_only(phone: Phone) -> None:
    state = phone.app.state.voicefleet.phone
    state.settings = dataclasses.replace(state.settings, twilio_signed_streams=True)
    await accepted(phone, phone.ws("/ws/twilio"), CAPTURED)  # the genuine upgrade
    for _ in range(3):
        assert await refused(phone.ws("/ws/twilio"), CAPTURED) == 403  # its replays
    assert len(phone.launches) == 1


async def test_a_stream_that_sends_no_start_is_closed_before_any_session(phone: Phone) -> None:
    state = phone.app.state.voicefleet.phone
    state.settings = dataclasses.replace(state.settings, handshake_seconds=1.0)
    async with connect(await webhook_token_url(phone), proxy=None) as silent:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(silent.recv(), 30)  # closed by the dispatcher, not by the deadline
    assert phone.launches == []
    await accepted(phone, await webhook_token_url(phone))  # positive control: a carrier that speaks


async def test_with_the_store_down_a_signed_stream_is_refused_not_spent_in_memory(phone: Phone) -> None:
    """Several replicas share one store; while it does not answer, a replica's own memory would let
    the same captured signature open one call at each replica. The upgrade is refused instead, as
    a webhook is answered 503."""
    state = phone.app.state.voicefleet.phone
    state.settings = dataclasses.replace(state.settings, twilio_signed_streams=True)
    one_process = state.spent, state.webhooks
    unreachable = build_coordination({"REDIS_URL": f"redis://:pw@127.0.0.1:{free_port()}/0", "REPLICA_ID": "r-a",
                                      "REDIS_TIMEOUT_SECONDS": "0.5", "REDIS_MESSAGE_SECRET": "m" * 32})
    state.spent, state.webhooks = unreachable.spent, unreachable.webhooks  # a replica whose store is down
    try:
        for _ in range(2):
            assert await refused(phone.ws("/ws/twilio"), CAPTURED) == 403
        assert phone.launches == []
    finally:
        state.spent, state.webhooks = one_process
        await unreachable.aclose()
    await accepted(phone, phone.ws("/ws/twilio"), CAPTURED)  # control: recorded where it can be, it opens its call
