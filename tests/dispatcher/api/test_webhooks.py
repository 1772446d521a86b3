"""The carriers' webhooks answer at once with XML pointing the call here; forged, replayed and
expired requests are refused (403) with no token, each beside its positive control."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from urllib.parse import urlencode
from xml.etree import ElementTree

from dispatcher.phone.signatures import twilio_signature
from tests.support.phone_dispatcher import PLIVO_TOKEN, PUBLIC, TWILIO_TOKEN, Phone

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CALL = {"CallSid": "CA" + "0" * 31 + "1", "From": "+14155550100", "To": "+14155550199", "AccountSid": "AC1"}


def twilio_headers(params: dict[str, str], token: str = TWILIO_TOKEN) -> dict[str, str]:
    return {**FORM, "X-Twilio-Signature": twilio_signature(token, f"{PUBLIC}/phone/twilio", params.items())}


def stream_token(xml: str, carrier: str, base: str = "wss://calls.example.com") -> str:
    match = re.search(rf"{re.escape(base)}/ws/{carrier}/([A-Za-z0-9_\-.]+)", xml)
    assert match, xml
    return match.group(1)


async def test_twilio_webhook_answers_twiml_that_streams_to_a_one_time_url(keyed: Phone) -> None:
    answer = await keyed.api.post("/phone/twilio", content=urlencode(CALL), headers=twilio_headers(CALL))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    stream = ElementTree.fromstring(answer.text).find("./Connect/Stream")
    assert stream is not None
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"from_number": "+14155550100", "to_number": "+14155550199"}
    grant = keyed.app.state.voicefleet.phone.tokens.check(stream_token(answer.text, "twilio"), "twilio")
    assert grant.call == CALL["CallSid"]  # the signed CallSid: this call may be transferred
    assert keyed.launches == []  # nothing starts before the carrier opens the stream


async def test_twilio_webhook_forged_or_replayed_gets_no_token(keyed: Phone) -> None:
    forged = await keyed.api.post("/phone/twilio", content=urlencode(CALL), headers=twilio_headers(CALL, "other"))
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "signature_invalid"
    first = await keyed.api.post("/phone/twilio", content=urlencode(CALL), headers=twilio_headers(CALL))
    assert first.status_code == 200
    replay = await keyed.api.post("/phone/twilio", content=urlencode(CALL), headers=twilio_headers(CALL))
    assert replay.status_code == 403
    assert replay.json()["error"]["code"] == "replayed"
    assert "wss://" not in replay.text


def plivo_headers(params: dict[str, str], nonce: str, token: str = PLIVO_TOKEN) -> dict[str, str]:
    signed = f"{PUBLIC}/phone/plivo?" + "".join(k + v for k, v in sorted(params.items())) + f".{nonce}"
    digest = base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha256).digest()).decode()
    return {**FORM, "X-Plivo-Signature-V3": digest, "X-Plivo-Signature-V3-Nonce": nonce}


async def test_plivo_answer_url_streams_bidirectionally_and_refuses_forged_and_replayed(keyed: Phone) -> None:
    call = {"CallUUID": "c-1", "From": "14155550100", "To": "14155550199"}
    good = await keyed.api.post("/phone/plivo", content=urlencode(call), headers=plivo_headers(call, "n-1"))
    assert good.status_code == 200, good.text
    stream = ElementTree.fromstring(good.text).find("./Stream")
    assert stream is not None and stream.get("bidirectional") == "true" and stream.get("keepCallAlive") == "true"
    assert stream.get("contentType") == "audio/x-mulaw;rate=8000"
    keyed.app.state.voicefleet.phone.tokens.check(stream_token(good.text, "plivo"), "plivo")
    forged = await keyed.api.post("/phone/plivo", content=urlencode(call), headers=plivo_headers(call, "n-2", "x"))
    assert forged.status_code == 403
    replay = await keyed.api.post("/phone/plivo", content=urlencode(call), headers=plivo_headers(call, "n-1"))
    assert replay.status_code == 403 and replay.json()["error"]["code"] == "replayed"


def telnyx_headers(phone: Phone, body: bytes, sent: int) -> dict[str, str]:
    signature = base64.b64encode(phone.telnyx.sign(str(sent).encode() + b"|" + body)).decode()
    return {**FORM, "telnyx-signature-ed25519": signature, "telnyx-timestamp": str(sent)}


async def test_telnyx_texml_webhook_valid_forged_expired_and_replayed(keyed: Phone) -> None:
    body = urlencode({"CallSid": "v3:1", "From": "+14155550100"}).encode()
    now = int(time.time())
    good = await keyed.api.post("/phone/telnyx", content=body, headers=telnyx_headers(keyed, body, now))
    assert good.status_code == 200, good.text
    stream = ElementTree.fromstring(good.text).find("./Connect/Stream")
    assert stream is not None and stream.get("bidirectionalMode") == "rtp"
    keyed.app.state.voicefleet.phone.tokens.check(stream_token(good.text, "telnyx"), "telnyx")

    tampered = await keyed.api.post("/phone/telnyx", content=body + b"&x=1", headers=telnyx_headers(keyed, body, now))
    assert tampered.status_code == 403 and tampered.json()["error"]["code"] == "signature_forged"
    old = now - 600
    expired = await keyed.api.post("/phone/telnyx", content=body, headers=telnyx_headers(keyed, body, old))
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "signature_expired"
    replay = await keyed.api.post("/phone/telnyx", content=body, headers=telnyx_headers(keyed, body, now))
    assert replay.status_code == 403 and replay.json()["error"]["code"] == "replayed"


async def test_a_keyless_local_dispatcher_answers_unsigned_webhooks(keyless: Phone) -> None:
    answer = await keyless.api.post("/phone/twilio", content=urlencode(CALL), headers=FORM)
    assert answer.status_code == 200
    # Nothing signed the CallSid: the token vouches for none, so no transfer can redirect the call it names.
    tokens = keyless.app.state.voicefleet.phone.tokens
    grant = tokens.check(stream_token(answer.text, "twilio", "ws://127.0.0.1"), "twilio")
    assert grant.call is None
