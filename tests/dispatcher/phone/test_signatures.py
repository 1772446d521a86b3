"""The carriers' signature schemes, each against a vector not produced by the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dispatcher.phone.signatures import Replays, TelnyxKey, plivo_valid, twilio_signature, twilio_valid

# Twilio's published example (its SDKs' request-validator tests): auth token 12345.
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]


def test_twilio_signature_matches_twilios_published_vector() -> None:
    assert twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_valid("12345", TWILIO_URL, reversed(TWILIO_PARAMS), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_twilio_repeated_parameters_match_the_sdks_vector() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert twilio_signature("12345", TWILIO_URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_twilio_refuses_a_tampered_parameter_url_or_token() -> None:
    good = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    tampered = [(k, "9999" if k == "Digits" else v) for k, v in TWILIO_PARAMS]
    assert not twilio_valid("12345", TWILIO_URL, tampered, good)
    assert not twilio_valid("12345", TWILIO_URL + "&x=1", TWILIO_PARAMS, good)
    assert not twilio_valid("54321", TWILIO_URL, TWILIO_PARAMS, good)
    assert not twilio_valid("12345", TWILIO_URL, TWILIO_PARAMS, None)


def _plivo_by_hand(token: str, signed: str) -> str:
    return base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha256).digest()).decode()


def test_plivo_v3_post_signs_url_then_sorted_params_then_nonce() -> None:
    # Plivo's SDK: `<url>?` + key+value sorted by key (a POST with no query), then `.` + nonce.
    signed = "https://calls.example.com/phone/plivo?CallUUIDabc-123From+14155550100To+14155550199.n0nce"
    signature = _plivo_by_hand("plivo-token", signed)
    params = [("To", "+14155550199"), ("From", "+14155550100"), ("CallUUID", "abc-123")]
    url = "https://calls.example.com/phone/plivo"
    assert plivo_valid("plivo-token", url, "n0nce", params, signature)
    assert plivo_valid("plivo-token", url, "n0nce", params, f"AAAA,{signature}")  # one per rotated token
    assert not plivo_valid("plivo-token", url, "other", params, signature)
    assert not plivo_valid("plivo-token", url, "n0nce", [*params, ("Extra", "1")], signature)
    assert not plivo_valid("plivo-token", url, None, params, signature)


def test_plivo_v3_with_a_query_puts_a_dot_between_query_and_params() -> None:
    signed = "https://h.example/phone/plivo?a=1&b=2.CallUUIDx.n"
    signature = _plivo_by_hand("t", signed)
    assert plivo_valid("t", "https://h.example/phone/plivo?b=2&a=1", "n", [("CallUUID", "x")], signature)


def _telnyx_pair() -> tuple[Ed25519PrivateKey, TelnyxKey]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, TelnyxKey(base64.b64encode(public).decode())


def test_telnyx_accepts_its_ed25519_signature_of_timestamp_and_body() -> None:
    private, key = _telnyx_pair()
    body = b"CallSid=v3:abc&From=%2B14155550100"
    signature = base64.b64encode(private.sign(b"1700000000|" + body)).decode()
    assert key.valid(body, signature, "1700000000", now=1700000010) is None


def test_telnyx_refuses_forged_expired_and_missing() -> None:
    private, key = _telnyx_pair()
    body = b"{}"
    signature = base64.b64encode(private.sign(b"1700000000|" + body)).decode()
    other, _ = _telnyx_pair()
    forged = base64.b64encode(other.sign(b"1700000000|" + body)).decode()
    assert key.valid(body, forged, "1700000000", now=1700000000) == "forged"
    assert key.valid(b"{ }", signature, "1700000000", now=1700000000) == "forged"
    assert key.valid(body, signature, "1700000000", now=1700000000 + 301) == "expired"
    assert key.valid(body, signature, "1700000000", now=1700000000 + 299) is None
    assert key.valid(body, None, "1700000000") == "missing"


def test_replays_remember_a_key_for_a_while_then_forget_it() -> None:
    now = [0.0]
    replays = Replays(memory_seconds=10, clock=lambda: now[0])
    assert replays.first_sighting("a")
    assert not replays.first_sighting("a")
    assert replays.first_sighting("b")
    now[0] = 11.0
    assert replays.first_sighting("a")
