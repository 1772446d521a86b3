"""Finding: one captured, signed Twilio voice webhook minted a call token per form field. Twilio
signs url + key1 + value1 + key2 + value2 … (sorted, no separators) and the one-use record was
keyed on `CallSid`, so a `CallSid` that absorbs the pairs after it passed the same signature under
a new record. Plivo's V3 text ends `<last value>.<nonce>` and its record was keyed on the nonce: a
`.` in the last value moves that boundary the same way.

Against a real dispatcher process on a loopback port: every re-split of one captured webhook is
refused, and the carrier's own webhook is answered once (the control)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from dispatcher.phone.signatures import plivo_v3_signature, twilio_signature
from tests.support.processes import DispatcherProcess, run_dispatcher

PUBLIC = "https://calls.example.com"
TWILIO_TOKEN = "twilio-auth-token-" + "t" * 20
PLIVO_TOKEN = "plivo-auth-token-" + "p" * 20
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# What Twilio posts for an incoming call (a subset of its documented parameters), sorted as signed.
CALL = [("AccountSid", "AC" + "1" * 32), ("ApiVersion", "2010-04-01"), ("CallSid", "CA" + "c" * 32),
        ("CallStatus", "ringing"), ("Called", "+14155550199"), ("Caller", "+14155550100"),
        ("Direction", "inbound"), ("From", "+14155550100"), ("To", "+14155550199"), ("ToCountry", "US")]


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {"PHONE_PUBLIC_URL": PUBLIC, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PLIVO_AUTH_TOKEN": PLIVO_TOKEN,
           "PHONE_TOKEN_SECRET": "phone-token-secret-" + "p" * 30, "DISPATCHER_API_KEYS": "keyA-" + "a" * 30,
           "RESERVE_MAX_IDLE": "0"}
    log_dir: Path = tmp_path_factory.mktemp("resplit")
    with run_dispatcher(log_dir, env, ready_timeout=60) as running:
        yield running


def minted(answer: httpx.Response, carrier: str) -> bool:
    return re.search(rf"/ws/{carrier}/[A-Za-z0-9_\-.]+", answer.text) is not None


def resplit(call: list[tuple[str, str]], absorbed: int) -> list[tuple[str, str]]:
    """`CallSid`'s value swallows the `absorbed` pairs after it: the same signed text."""
    at = [key for key, _ in call].index("CallSid")
    merged = call[at][1] + "".join(key + value for key, value in call[at + 1:at + 1 + absorbed])
    return [*call[:at], ("CallSid", merged), *call[at + 1 + absorbed:]]


def test_a_captured_twilio_webhook_re_split_mints_no_more_call_tokens(dispatcher: DispatcherProcess) -> None:
    headers = {**FORM, "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC + "/phone/twilio", CALL)}
    url = dispatcher.base_url + "/phone/twilio"
    original = httpx.post(url, content=urlencode(CALL), headers=headers, timeout=10)
    assert original.status_code == 200 and minted(original, "twilio"), original.text  # control
    for absorbed in range(1, len(CALL) - 2):
        variant = resplit(CALL, absorbed)
        assert twilio_signature(TWILIO_TOKEN, PUBLIC + "/phone/twilio", variant) == headers["X-Twilio-Signature"]
        answer = httpx.post(url, content=urlencode(variant), headers=headers, timeout=10)
        assert answer.status_code == 403 and not minted(answer, "twilio"), (absorbed, answer.text)


def test_a_twilio_call_sid_of_another_shape_is_refused(dispatcher: DispatcherProcess) -> None:
    url = dispatcher.base_url + "/phone/twilio"
    for sid in ("CA-not-hex", "CA" + "a" * 31, "CA" + "b" * 33, "PN" + "a" * 32, ""):
        call = [("CallSid", sid), ("From", "+14155550100")]
        headers = {**FORM, "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC + "/phone/twilio", call)}
        answer = httpx.post(url, content=urlencode(call), headers=headers, timeout=10)
        assert answer.status_code == 403 and not minted(answer, "twilio"), (sid, answer.text)
    call = [("CallSid", "CA" + "0123456789abcdef" * 2), ("From", "+14155550100")]  # control: a well-formed one
    headers = {**FORM, "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, PUBLIC + "/phone/twilio", call)}
    answer = httpx.post(url, content=urlencode(call), headers=headers, timeout=10)
    assert answer.status_code == 200 and minted(answer, "twilio"), answer.text


def plivo_headers(signed_body: str, nonce: str) -> dict[str, str]:
    signed = f"{PUBLIC}/phone/plivo?{signed_body}.{nonce}"
    digest = base64.b64encode(hmac.new(PLIVO_TOKEN.encode(), signed.encode(), hashlib.sha256).digest()).decode()
    return {**FORM, "X-Plivo-Signature-V3": digest, "X-Plivo-Signature-V3-Nonce": nonce}


def test_a_captured_plivo_answer_with_its_nonce_boundary_moved_mints_no_more(dispatcher: DispatcherProcess) -> None:
    url = dispatcher.base_url + "/phone/plivo"
    call = [("CallUUID", "c-1"), ("From", "14155550100"), ("To", "sip:bot.v1.example")]  # `.` in the last value
    captured = plivo_headers("".join(k + v for k, v in call), "n0nce")
    original = httpx.post(url, content=urlencode(call), headers=captured, timeout=10)
    assert original.status_code == 200 and minted(original, "plivo"), original.text  # control
    for cut in ("sip:bot.v1", "sip:bot"):  # the value's tail moves into the nonce: the same signed text
        moved = [*call[:-1], ("To", cut)]
        nonce = "sip:bot.v1.example".removeprefix(cut + ".") + ".n0nce"
        headers = {**captured, "X-Plivo-Signature-V3-Nonce": nonce}
        assert plivo_headers("".join(k + v for k, v in moved), nonce)["X-Plivo-Signature-V3"] == (
            captured["X-Plivo-Signature-V3"])
        answer = httpx.post(url, content=urlencode(moved), headers=headers, timeout=10)
        assert answer.status_code == 403 and not minted(answer, "plivo"), (cut, answer.text)


def test_a_captured_plivo_answer_replayed_under_another_spelling_of_its_query_mints_no_more(
    dispatcher: DispatcherProcess,
) -> None:
    """Plivo signs the answer URL's query sorted, decoded and without empty pairs: `?&`, a re-ordered
    or a percent-encoded query of one captured webhook is the same signature under another URL."""
    call = [("CallUUID", "c6b1a7e0-1111-2222-3333-444455556666"), ("From", "14155550100"), ("To", "14155550199")]
    for query in ("", "agent=support&lang=en"):
        nonce = f"nonce-{len(query)}"
        signed_url = f"{PUBLIC}/phone/plivo" + (f"?{query}" if query else "")
        headers = {**FORM, "X-Plivo-Signature-V3": plivo_v3_signature(PLIVO_TOKEN, signed_url, nonce, call),
                   "X-Plivo-Signature-V3-Nonce": nonce}

        def answer(sent_query: str, headers: dict[str, str] = headers) -> httpx.Response:
            url = dispatcher.base_url + "/phone/plivo" + (f"?{sent_query}" if sent_query else "")
            return httpx.post(url, content=urlencode(call), headers=headers, timeout=10)

        original = answer(query)
        assert original.status_code == 200 and minted(original, "plivo"), original.text  # control
        spellings = ["&", "&&", "&&&&&&&&"] if not query else [
            "&" + query, query + "&", "lang=en&agent=support", "agent=%73upport&lang=en", "lang=en&&agent=support&"]
        for spelling in spellings:
            sent_url = f"{PUBLIC}/phone/plivo?{spelling}"
            assert plivo_v3_signature(PLIVO_TOKEN, sent_url, nonce, call) == headers["X-Plivo-Signature-V3"]
            replay = answer(spelling)
            assert replay.status_code == 403 and not minted(replay, "plivo"), (spelling, replay.text)


def test_a_captured_twilio_webhook_with_its_first_pairs_moved_into_the_query_mints_no_more(
    dispatcher: DispatcherProcess,
) -> None:
    """Twilio signs the URL and then the form's pairs with no separator: where the webhook's URL has
    a query, its value can take in the form's first pairs and sign the same text under another URL."""
    query = "agent=support"
    headers = {**FORM, "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, f"{PUBLIC}/phone/twilio?{query}", CALL)}
    url = dispatcher.base_url + "/phone/twilio"
    original = httpx.post(f"{url}?{query}", content=urlencode(CALL), headers=headers, timeout=10)
    assert original.status_code == 200 and minted(original, "twilio"), original.text  # control
    for moved in (1, 2):  # AccountSid, then ApiVersion too: CallSid stays in the form, well-formed
        sent_query = query + "".join(key + value for key, value in CALL[:moved])
        assert twilio_signature(TWILIO_TOKEN, f"{PUBLIC}/phone/twilio?{sent_query}", CALL[moved:]) == (
            headers["X-Twilio-Signature"])
        replay = httpx.post(f"{url}?{sent_query}", content=urlencode(CALL[moved:]), headers=headers, timeout=10)
        assert replay.status_code == 403 and not minted(replay, "twilio"), (moved, replay.text)
