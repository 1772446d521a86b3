"""The issuer's keys are fetched once and kept: tokens naming made-up key ids cannot make the
dispatcher hammer the issuer, and an issuer that does not answer refuses tokens instead of failing."""

from __future__ import annotations

import base64
import time

import pytest

from dispatcher.channel import id_tokens
from dispatcher.channel.id_tokens import IdentityRefused, JsonWebKeys, verified_claims
from tests.fakes.gce import CHANNEL_AUDIENCE, FakeGce
from tests.fakes.server import serve
from tests.fakes.signing import SigningKey
from tests.support.ports import free_port

ISSUERS = ("https://accounts.google.com",)


def claims() -> dict[str, object]:
    now = int(time.time())
    return {"iss": ISSUERS[0], "aud": CHANNEL_AUDIENCE, "iat": now, "exp": now + 600}


async def test_made_up_key_ids_fetch_the_keys_at_most_once_per_refetch_interval() -> None:
    with serve(FakeGce(), "/compute/v1") as fake:
        keys = JsonWebKeys(f"{fake.root}/oauth2/v3/certs")
        try:
            assert (await verified_claims(fake.signing_key.sign(claims()), keys, issuers=ISSUERS,
                                          audience=CHANNEL_AUDIENCE))["aud"] == CHANNEL_AUDIENCE
            for _ in range(20):
                with pytest.raises(IdentityRefused, match="key the issuer does not publish"):
                    await verified_claims(SigningKey().sign(claims()), keys, issuers=ISSUERS,
                                          audience=CHANNEL_AUDIENCE)
            assert len(fake.calls_to("GET", "/oauth2/v3/certs")) == 1  # within MIN_REFETCH_SECONDS: none more
        finally:
            await keys.aclose()


async def test_a_rotated_key_is_fetched_after_the_refetch_interval() -> None:
    now = [1000.0]
    with serve(FakeGce(), "/compute/v1") as fake:
        keys = JsonWebKeys(f"{fake.root}/oauth2/v3/certs", clock=lambda: now[0])
        try:
            await verified_claims(fake.signing_key.sign(claims()), keys, issuers=ISSUERS, audience=CHANNEL_AUDIENCE)
            fake.signing_key = SigningKey()  # the issuer rotates
            rotated = fake.signing_key.sign(claims())
            with pytest.raises(IdentityRefused):
                await verified_claims(rotated, keys, issuers=ISSUERS, audience=CHANNEL_AUDIENCE)
            now[0] += id_tokens.MIN_REFETCH_SECONDS
            assert (await verified_claims(rotated, keys, issuers=ISSUERS, audience=CHANNEL_AUDIENCE))["iss"]
        finally:
            await keys.aclose()


async def test_an_issuer_that_does_not_answer_refuses_the_token_with_a_reason() -> None:
    keys = JsonWebKeys(f"http://127.0.0.1:{free_port()}/oauth2/v3/certs")  # nothing listens there
    try:
        with pytest.raises(IdentityRefused, match="keys are unreachable"):
            await verified_claims(SigningKey().sign(claims()), keys, issuers=ISSUERS, audience=CHANNEL_AUDIENCE)
    finally:
        await keys.aclose()


async def test_a_failing_issuer_is_asked_again_no_sooner_than_the_refetch_interval() -> None:
    """A flood of hellos while the issuer fails costs one fetch (its tries), not one per hello."""
    with serve(FakeGce(), "/compute/v1") as fake:
        fake.fail(503, times=1000, path_contains="/oauth2/v3/certs")
        keys = JsonWebKeys(f"{fake.root}/oauth2/v3/certs")
        try:
            for _ in range(10):
                with pytest.raises(IdentityRefused, match="keys are unreachable"):
                    await verified_claims(fake.signing_key.sign(claims()), keys, issuers=ISSUERS,
                                          audience=CHANNEL_AUDIENCE)
            assert len(fake.calls_to("GET", "/oauth2/v3/certs")) == id_tokens.FETCH_ATTEMPTS
        finally:
            await keys.aclose()


async def test_a_held_key_verifies_without_a_fetch_until_the_keys_are_an_hour_old() -> None:
    start = 1_000_000.0  # a monotonic clock's value on a host up for days
    now = [start]
    with serve(FakeGce(), "/compute/v1") as fake:
        keys = JsonWebKeys(f"{fake.root}/oauth2/v3/certs", clock=lambda: now[0])
        token = fake.signing_key.sign(claims())
        try:
            await verified_claims(token, keys, issuers=ISSUERS, audience=CHANNEL_AUDIENCE)
            now[0] += 2 * id_tokens.MIN_REFETCH_SECONDS  # past the refetch bound, well within the keys' age
            assert (await verified_claims(token, keys, issuers=ISSUERS, audience=CHANNEL_AUDIENCE))["iss"]
            assert len(fake.calls_to("GET", "/oauth2/v3/certs")) == 1  # the held key, not a fetch
            now[0] = start + id_tokens.MAX_AGE_SECONDS  # the keys are as old as kept: fetched again
            assert (await verified_claims(token, keys, issuers=ISSUERS, audience=CHANNEL_AUDIENCE))["iss"]
            assert len(fake.calls_to("GET", "/oauth2/v3/certs")) == 2
        finally:
            await keys.aclose()


def test_a_mismatch_names_the_first_claim_that_differs_and_none_when_all_match() -> None:
    expected = {"zone": "us-central1-a", "instance_name": "vf-prod--s1"}
    assert id_tokens.mismatch("instance identity token", dict(expected), expected) is None
    reason = id_tokens.mismatch("instance identity token", {**expected, "instance_name": "vf-prod--s2"}, expected)
    assert reason is not None and "instance_name" in reason and "vf-prod--s1" in reason


@pytest.mark.parametrize("size", range(1, 24))
def test_a_keys_numbers_decode_from_unpadded_base64url_of_any_length(size: int) -> None:
    """JWKs carry `n` and `e` without `=` padding (RFC 7518 §6.3.1): every length decodes."""
    value = int.from_bytes(bytes(range(200, 200 - size, -1)), "big")
    encoded = base64.urlsafe_b64encode(value.to_bytes(size, "big")).rstrip(b"=").decode()
    assert id_tokens._int(encoded) == value
