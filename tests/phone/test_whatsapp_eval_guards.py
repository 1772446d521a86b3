"""The eval entry (`POST /phone/whatsapp/eval_calls`) held to what a start is held to, on a keyed in-process
dispatcher whose bots are the stand-in (tests/dispatcher/standin_bot.py): the key's start rate, one answer
for every number that is not the key's, an offer of one audio m-line however its lines are broken, and a
body UTF-8 can hold. Meta's side is the strict fake, which must hear nothing of any of it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from dispatcher.observability.whatsapp_call import whatsapp_of
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp
from tests.phone.test_whatsapp_webhook import OFFER, Meta, dispatcher

ROUTE = "/phone/whatsapp/eval_calls"
KEY = "support-key-0123456789abcdef"
OTHER_NUMBER = "106540352242999"
UNKNOWN_NUMBER = "106540352242000"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = "application/json"
KEYS = {"DISPATCHER_API_KEYS": f"support:{KEY},other:other-key-0123456789abcdef00",
        "BOT_CHANNEL_TOKEN": "chan-token-0123456789abcdef0123456789"}


@pytest.fixture
async def meta(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Meta]:
    monkeypatch.setenv("STANDIN_MODE", "serve")
    with serve(FakeWhatsApp(numbers=(PHONE_NUMBER_ID, OTHER_NUMBER))) as fake:
        async with dispatcher(fake, numbers=f"{PHONE_NUMBER_ID}=support,{OTHER_NUMBER}=other",
                              keys={**KEYS, "START_RATE_PER_KEY": "0.001", "START_BURST_PER_KEY": "1"}) as running:
            yield running
        assert fake.calls == []  # nothing of an eval's call reaches Meta


async def test_the_keys_start_rate_holds_for_eval_calls_and_a_refused_call_spends_none_of_it(meta: Meta) -> None:
    client = meta.dispatcher.client
    refused = await client.post(ROUTE, json={"sdp": OFFER.replace("m=audio", "m=video")}, headers=AUTH)
    assert refused.status_code == 422, refused.text
    first = await client.post(ROUTE, json={"sdp": OFFER}, headers=AUTH)
    assert first.status_code == 200, first.text
    second = await client.post(ROUTE, json={"sdp": OFFER}, headers=AUTH)
    assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limited", second.text
    assert "retry-after" in second.headers
    assert len(meta.launches) == 1  # the refused start launched nothing


async def test_a_body_utf8_cannot_hold_is_refused_as_a_starts_is(meta: Meta) -> None:
    lone = json.dumps({"sdp": OFFER, "body": {"note": "HALF"}}).replace("HALF", "\\ud800")  # JSON allows half a pair
    refused = await meta.dispatcher.client.post(ROUTE, content=lone, headers={**AUTH, "content-type": JSON})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_json", refused.text
    assert "lone surrogate" in refused.json()["error"]["message"]
    assert meta.launches == []


async def test_a_number_not_the_keys_gets_one_answer_whether_another_key_runs_it_or_none_does(meta: Meta) -> None:
    told = []
    for number in (OTHER_NUMBER, UNKNOWN_NUMBER):  # the other key's, then one WHATSAPP_NUMBERS lacks
        answer = await meta.dispatcher.client.post(ROUTE, json={"sdp": OFFER, "phone_number_id": number}, headers=AUTH)
        assert answer.status_code == 404, answer.text
        told.append({**answer.json()["error"], "message": answer.json()["error"]["message"].replace(number, "N")})
    assert told[0] == told[1] and told[0]["code"] == "unknown_whatsapp_number", told
    assert PHONE_NUMBER_ID in told[0]["message"]  # the key's own numbers, named so the fix is plain
    assert meta.launches == []


DATA_CHANNEL = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel"


@pytest.mark.parametrize("offer", [
    OFFER.replace("a=fingerprint", f"a=x\r{DATA_CHANNEL}\r\na=fingerprint"),  # a line broken by \r alone
    OFFER.replace("a=fingerprint", f"a=x\u2028{DATA_CHANNEL}\r\na=fingerprint"),  # ... by a line separator
    OFFER + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n",  # a second audio stream
], ids=["cr", "u2028", "two-audio"])
async def test_an_offer_is_read_as_the_bots_aiortc_reads_it_one_audio_m_line_alone(meta: Meta, offer: str) -> None:
    refused = await meta.dispatcher.client.post(ROUTE, json={"sdp": offer}, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_offer", refused.text
    assert meta.launches == []


async def test_the_calls_record_that_leaves_the_dispatcher_says_it_was_simulated(meta: Meta) -> None:
    answer = await meta.dispatcher.client.post(ROUTE, json={"sdp": OFFER}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    timeline = await meta.dispatcher.client.get(f"/sessions/{answer.json()['session_id']}/timeline", headers=AUTH)
    told = whatsapp_of(timeline.json()["events"])  # as report.json and the `session.ended` webhook carry it
    assert told is not None and told["call_id"] == answer.json()["call_id"] and told["simulated"] is True, told
