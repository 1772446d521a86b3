"""One-time call tokens: each refusal beside its positive control."""

from __future__ import annotations

import pytest

from dispatcher.artifacts.wanted import Wanted
from dispatcher.phone.tokens import MAX_TOKEN_BODY_BYTES, CallTokens, TokenRefused

KEY = b"k" * 32


def tokens(now: list[float]) -> CallTokens:
    return CallTokens(KEY, seconds=300, clock=lambda: now[0])


def test_a_token_opens_its_call_once_with_its_body() -> None:
    now = [1000.0]
    issuer = tokens(now)
    token, grant = issuer.mint("twilio", {"user": "ada"})
    redeemed = issuer.redeem(token, "twilio")
    assert (redeemed.session_key, dict(redeemed.body)) == (grant.session_key, {"user": "ada"})
    with pytest.raises(TokenRefused) as replay:
        issuer.redeem(token, "twilio")
    assert replay.value.reason == "replayed"


def test_an_expired_token_is_refused_and_one_just_in_time_is_not() -> None:
    now = [1000.0]
    issuer = tokens(now)
    late, _ = issuer.mint("plivo")
    on_time, _ = issuer.mint("plivo")
    now[0] = 1299.0
    issuer.redeem(on_time, "plivo")
    now[0] = 1300.0
    with pytest.raises(TokenRefused) as expired:
        issuer.redeem(late, "plivo")
    assert expired.value.reason == "expired"


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
    lambda t: "eyJqdGkiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5LCJjYXJyaWVyIjoidHdpbGlvIiwic2lkIjoieCJ9." + t.split(".")[1],
    lambda t: "not-a-token",
    lambda t: "",
])
def test_a_forged_token_is_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    issuer = tokens(now)
    token, _ = issuer.mint("twilio")
    with pytest.raises(TokenRefused) as forged:
        issuer.redeem(mangle(token), "twilio")
    assert forged.value.reason == "forged"
    issuer.redeem(token, "twilio")  # the real one still opens its call


def test_a_token_for_one_carrier_opens_no_other() -> None:
    now = [1000.0]
    issuer = tokens(now)
    token, _ = issuer.mint("twilio")
    with pytest.raises(TokenRefused) as wrong:
        issuer.redeem(token, "telnyx")
    assert wrong.value.reason == "wrong_carrier"
    issuer.redeem(token, "twilio")


def test_another_deployments_key_opens_nothing() -> None:
    now = [1000.0]
    token, _ = tokens(now).mint("twilio")
    with pytest.raises(TokenRefused):
        CallTokens(b"o" * 32, clock=lambda: now[0]).redeem(token, "twilio")


def test_a_regions_token_opens_a_call_in_that_region_only_and_names_where_it_was_handed_from() -> None:
    eu, us = CallTokens(KEY, region="eu"), CallTokens(KEY, region="us")  # one key, two regions
    token, _ = us.mint("twilio", handed_from=("eu", "at_capacity"))
    with pytest.raises(TokenRefused) as elsewhere:
        eu.check(token, "twilio")
    assert elsewhere.value.reason == "wrong_region"
    with pytest.raises(TokenRefused):
        CallTokens(KEY).check(token, "twilio")  # nor at a dispatcher that is one region
    assert us.redeem(token, "twilio").handed_from == ("eu", "at_capacity")
    assert us.redeem(us.mint("twilio")[0], "twilio").handed_from is None  # a call that came to us itself


def test_a_start_pinned_and_marked_as_an_eval_opens_its_call_pinned_and_marked() -> None:
    issuer = tokens([1000.0])
    token, _ = issuer.mint("twilio", {"user": "ada"}, release="next", evaluation=True)
    redeemed = issuer.redeem(token, "twilio")
    assert (redeemed.release, redeemed.evaluation) == ("next", True)
    plain, _ = issuer.mint("twilio")
    assert (issuer.redeem(plain, "twilio").release, issuer.check(plain, "twilio").evaluation) == (None, False)


def _body_of(size: int) -> dict[str, str]:
    """A body whose compact JSON is exactly `size` bytes, as the start's limit measures it."""
    return {"p": "x" * (size - len('{"p":""}'))}


def test_a_body_at_its_limit_rides_with_every_field_a_start_may_add_and_one_byte_more_does_not() -> None:
    # The limit is the body's own: the token's other fields (its region, the region it was handed
    # from, its key, its release pin and eval mark) never eat into what a caller may send.
    issuer = CallTokens(KEY, region="r" * 20)
    token, _ = issuer.mint("generic", _body_of(MAX_TOKEN_BODY_BYTES), owner="0" * 16,
                           handed_from=("h" * 20, "cold_start_too_slow"), release="r" * 32, evaluation=True)
    assert issuer.redeem(token, "generic").body == _body_of(MAX_TOKEN_BODY_BYTES)
    with pytest.raises(ValueError, match=f"exceeds {MAX_TOKEN_BODY_BYTES} bytes"):
        issuer.mint("generic", _body_of(MAX_TOKEN_BODY_BYTES + 1))


def test_a_tokens_recording_wish_comes_back_as_minted_and_a_token_without_one_asks_nothing() -> None:
    issuer = tokens([1000.0])
    wished, _ = issuer.mint("exotel", recording=Wanted(audio="off"))
    plain, _ = issuer.mint("exotel")
    assert issuer.redeem(wished, "exotel").recording == Wanted(audio="off", transcript=None)
    assert issuer.redeem(plain, "exotel").recording is None


def test_a_webhooks_token_carries_the_call_twilio_signed_and_a_starts_names_none() -> None:
    issuer = tokens([1000.0])
    signed, _ = issuer.mint("twilio", call="CA" + "a" * 32)
    started, _ = issuer.mint("twilio", {"user": "ada"})
    assert issuer.redeem(signed, "twilio").call == "CA" + "a" * 32
    assert issuer.redeem(started, "twilio").call is None
