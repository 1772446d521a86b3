"""What one region asks another is signed; what no region sent to this one, recently and once, is refused."""

from __future__ import annotations

import hashlib
from types import MappingProxyType

import pytest

from dispatcher.errors import ApiError
from dispatcher.regions.config import Regions
from dispatcher.regions.signing import (
    COVERED_HEADERS,
    EDGE_VOUCHED,
    RELAYED_BY,
    SIGNATURE,
    SPILLED,
    TIME,
    RegionSigner,
    RegionVerifier,
    headers_digest,
)
from dispatcher.store.memory import LocalOnce

URLS = MappingProxyType({"eu": "https://eu.example", "us": "https://us.example", "ap": "https://ap.example"})
SECRET = b"k" * 32


def region(name: str, secret: bytes = SECRET) -> Regions:
    return Regions(name, URLS, secret)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier(clock: Clock, name: str = "us") -> RegionVerifier:
    return RegionVerifier(region(name), LocalOnce(), clock)


async def refused(check: RegionVerifier, headers: dict[str, str], *, method: str = "GET",
                  path: str = "/regions/state", body: bytes = b"") -> str:
    with pytest.raises(ApiError) as error:
        await check.sender(method, path, headers, body)
    assert (error.value.status, error.value.code) == (401, "region_unauthenticated")
    return error.value.message


async def test_a_request_signed_by_another_region_names_its_sender(clock: Clock) -> None:
    headers = RegionSigner(region("eu"), clock).headers("us", "POST", "/regions/x?a=1", b"{}")
    assert await verifier(clock).sender("POST", "/regions/x?a=1", headers, b"{}") == "eu"


async def test_no_headers_or_a_stranger_are_refused(clock: Clock) -> None:
    check = verifier(clock)
    assert "needs the Voicefleet-Region headers" in await refused(check, {})
    stranger = RegionSigner(Regions("mars", MappingProxyType({**URLS, "mars": "https://m"}), SECRET), clock)
    assert "not another region" in await refused(check, stranger.headers("us", "GET", "/regions/state"))


async def test_a_wrong_secret_or_a_changed_request_does_not_match(clock: Clock) -> None:
    check = verifier(clock)
    wrong = RegionSigner(region("eu", b"x" * 32), clock).headers("us", "GET", "/regions/state")
    assert "does not match" in await refused(check, wrong)
    signed = RegionSigner(region("eu"), clock).headers("us", "POST", "/regions/x", b"{}")
    assert "does not match" in await refused(check, signed, method="POST", path="/regions/x", body=b'{"a":1}')
    assert "does not match" in await refused(check, signed, method="POST", path="/regions/y", body=b"{}")


async def test_a_request_signed_for_another_region_is_nothing_here(clock: Clock) -> None:
    for_ap = RegionSigner(region("eu"), clock).headers("ap", "GET", "/regions/state")
    assert "does not match" in await refused(verifier(clock, "us"), for_ap)


async def test_a_stale_request_is_refused(clock: Clock) -> None:
    headers = RegionSigner(region("eu"), clock).headers("us", "GET", "/regions/state")
    clock.now += 31
    assert "more than 30 s" in await refused(verifier(clock), headers)
    assert "not a time" in await refused(verifier(clock), {**headers, TIME: "soon"})


async def test_a_replayed_request_is_refused(clock: Clock) -> None:
    check = verifier(clock)
    headers = RegionSigner(region("eu"), clock).headers("us", "GET", "/regions/state")
    assert await check.sender("GET", "/regions/state", headers, b"") == "eu"
    assert "already taken" in await refused(check, headers)
    assert "does not match" in await refused(check, {**headers, SIGNATURE: headers[SIGNATURE].upper()})


async def test_one_region_answers_region_paths_404(clock: Clock) -> None:
    with pytest.raises(ApiError) as error:
        await RegionVerifier(Regions(), LocalOnce(), clock).sender("GET", "/regions/state", {}, b"")
    assert error.value.status == 404


async def test_two_identical_requests_in_one_millisecond_are_both_taken(clock: Clock) -> None:
    check = verifier(clock)
    signer = RegionSigner(region("eu"), clock)
    first, second = (signer.headers("us", "GET", "/regions/state") for _ in range(2))
    assert first[SIGNATURE] != second[SIGNATURE]  # a nonce of their own
    assert [await check.sender("GET", "/regions/state", h, b"") for h in (first, second)] == ["eu", "eu"]


def test_an_answer_counts_only_signed_for_the_request_it_answers() -> None:
    from dispatcher.regions.signing import ANSWER_SIGNATURE, answer_is_signed, answer_signature

    request = RegionSigner(region("eu")).headers("us", "GET", "/regions/state")
    body = b'{"region":"us"}'
    signed = {ANSWER_SIGNATURE: answer_signature(SECRET, request[SIGNATURE], body)}
    assert answer_is_signed((SECRET,), request, signed, body)
    assert not answer_is_signed((SECRET,), request, signed, b'{"region":"eu"}')
    assert not answer_is_signed((b"x" * 32,), request, signed, body)
    other = RegionSigner(region("eu")).headers("us", "GET", "/regions/state")
    assert not answer_is_signed((SECRET,), other, signed, body)  # an answer to another request
    assert not answer_is_signed((SECRET,), request, {}, body)


def test_an_answer_signed_with_its_status_counts_only_with_that_status() -> None:
    from dispatcher.regions.answer_status import STATUS_SIGNATURE, status_is_signed, status_signature
    from dispatcher.regions.signing import ANSWER_SIGNATURE, answer_signature

    request = RegionSigner(region("eu")).headers("us", "POST", "/regions/sip-transfers", b"{}")
    body = b'{"how":"referred"}'
    signed = {STATUS_SIGNATURE: status_signature(SECRET, request[SIGNATURE], 200, body)}
    assert status_is_signed((SECRET,), request, 200, signed, body)
    assert not status_is_signed((SECRET,), request, 409, signed, body)  # a 200 sent on as a refusal
    assert not status_is_signed((SECRET,), request, 200, signed, b'{"how":"bridged"}')
    assert not status_is_signed((b"x" * 32,), request, 200, signed, body)
    other = RegionSigner(region("eu")).headers("us", "POST", "/regions/sip-transfers", b"{}")
    assert not status_is_signed((SECRET,), other, 200, signed, body)  # an answer to another request
    # the body's signature alone, as every other route's answer carries, says nothing of the status
    assert not status_is_signed((SECRET,), request, 200, {STATUS_SIGNATURE: answer_signature(
        SECRET, request[SIGNATURE], body)}, body)
    assert not status_is_signed((SECRET,), request, 200, {ANSWER_SIGNATURE: signed[STATUS_SIGNATURE]}, body)
    # its Retry-After, which the asker passes on to its client, is signed too
    later = {STATUS_SIGNATURE: status_signature(SECRET, request[SIGNATURE], 503, body, "5"), "retry-after": "5"}
    assert status_is_signed((SECRET,), request, 503, later, body)
    assert not status_is_signed((SECRET,), request, 503, {**later, "retry-after": "3600"}, body)
    assert not status_is_signed((SECRET,), request, 503, {STATUS_SIGNATURE: later[STATUS_SIGNATURE]}, body)


async def test_a_request_without_its_nonce_is_refused_and_thirty_seconds_of_skew_are_allowed(clock: Clock) -> None:
    from dispatcher.regions.signing import NONCE

    headers = RegionSigner(region("eu"), clock).headers("us", "GET", "/regions/state")
    without_nonce = {k: v for k, v in headers.items() if k != NONCE}
    assert "needs the Voicefleet-Region headers" in await refused(verifier(clock), without_nonce)
    clock.now += 30
    assert await verifier(clock).sender("GET", "/regions/state", headers, b"") == "eu"


NEW = b"n" * 32


def changing(name: str, secret: bytes, accepted: bytes) -> Regions:
    return Regions(name, URLS, secret, accepted)


async def test_during_a_change_of_secret_either_secret_is_taken_and_only_the_current_one_signs(clock: Clock) -> None:
    # Step 1 of the change: us takes NEW beside SECRET; eu still signs with SECRET, ap already with NEW.
    check = RegionVerifier(changing("us", SECRET, NEW), LocalOnce(), clock)
    old_signed = RegionSigner(region("eu"), clock).headers("us", "GET", "/regions/state")
    new_signed = RegionSigner(region("ap", NEW), clock).headers("us", "GET", "/regions/state")
    assert await check.sender("GET", "/regions/state", old_signed, b"") == "eu"
    assert await check.sender("GET", "/regions/state", new_signed, b"") == "ap"
    unknown = RegionSigner(region("eu", b"u" * 32), clock).headers("us", "GET", "/regions/state")
    assert "does not match" in await refused(check, unknown)
    # us itself signs with its current secret only: a region not yet given NEW still takes it.
    mine = RegionSigner(changing("us", SECRET, NEW), clock).headers("eu", "GET", "/regions/state")
    assert await verifier(clock, "eu").sender("GET", "/regions/state", mine, b"") == "us"


def test_an_answer_signed_with_the_accepted_secret_counts() -> None:
    from dispatcher.regions.signing import ANSWER_SIGNATURE, answer_is_signed, answer_signature

    request = RegionSigner(region("eu")).headers("us", "GET", "/regions/state")
    body = b'{"region":"us"}'
    by_new = {ANSWER_SIGNATURE: answer_signature(NEW, request[SIGNATURE], body)}
    assert answer_is_signed(changing("eu", SECRET, NEW).secrets, request, by_new, body)
    assert not answer_is_signed(region("eu").secrets, request, by_new, body)


async def test_the_headers_a_region_acts_on_are_signed_whatever_their_spelling(clock: Clock) -> None:
    signer, check = RegionSigner(region("eu"), clock), verifier(clock)
    sent = {"Authorization": "Bearer key-a", "Idempotency-Key": "k-1", RELAYED_BY: "eu"}
    signed = {**sent, **signer.headers("us", "POST", "/start", b"{}", sent)}
    for changed in ({"Authorization": "Bearer key-b"}, {SPILLED: "eu at_capacity"}, {"Idempotency-Key": "k-2"}):
        assert "changed after signing" in await refused(check, {**signed, **changed}, method="POST", path="/start",
                                                        body=b"{}")
    lowered = {name.lower(): value for name, value in signed.items()}  # as the receiver's ASGI server reads them
    assert await check.sender("POST", "/start", lowered, b"{}") == "eu"


async def test_a_regions_word_for_the_sip_edge_is_signed_and_absent_digests_as_the_release_before(
        clock: Clock) -> None:
    signer, check = RegionSigner(region("eu"), clock), verifier(clock)
    sent = {"Authorization": "Bearer key-a", RELAYED_BY: "eu"}
    plain = {**sent, **signer.headers("us", "POST", "/start", b"{}", sent)}
    assert "changed after signing" in await refused(check, {**plain, EDGE_VOUCHED: "1"}, method="POST",
                                                    path="/start", body=b"{}")
    vouched = {**sent, EDGE_VOUCHED: "1"}
    assert await check.sender("POST", "/start", {**vouched, **signer.headers("us", "POST", "/start", b"{}", vouched)},
                              b"{}") == "eu"
    # Without the mark, the digest is the release before's (COVERED_HEADERS alone): both still check each other.
    named = {name.lower(): value for name, value in sent.items()}
    before = "\n".join(f"{name}:{named.get(name, '')}" for name in COVERED_HEADERS)
    assert headers_digest(sent) == hashlib.sha256(before.encode()).hexdigest()


def test_a_part_this_dispatcher_lacks_is_answered_404_naming_why() -> None:
    from dispatcher.api.routers.regions import NO_RUNTIME, present

    assert present("kept", NO_RUNTIME) == "kept"
    with pytest.raises(ApiError) as error:
        present(None, NO_RUNTIME)
    assert (error.value.status, error.value.code, error.value.message) == (404, "not_found", NO_RUNTIME)
