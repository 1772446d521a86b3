"""The edges of the request contract: size limits at their exact boundary, Idempotency-Key
characters and length, the bearer scheme's case, and what a replay counts as."""

from __future__ import annotations

import hashlib
import json
import time

import h11
import httptools
import pytest

from dispatcher.api.auth import LOCAL_CALLER, Authenticator
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import IDEMPOTENCY_KEY, body_digest, digest_key, is_session_id, new_session_id
from dispatcher.settings import Settings, hash_api_key

MAX_BODY = Settings.max_body_bytes


def body_of_size(size: int) -> dict[str, str]:
    """A `body` whose compact JSON is exactly `size` bytes."""
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    return {"k": "x" * (size - overhead)}


async def test_a_body_of_exactly_the_limit_is_accepted_one_byte_more_is_413(api):
    accepted = await api.post("/start", json={"body": body_of_size(MAX_BODY)})
    assert accepted.status_code == 201, accepted.text
    refused = await api.post("/start", json={"body": body_of_size(MAX_BODY + 1)})
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("key", ["!", "~", "x" * 255, "call-1:retry/2"])
def test_printable_idempotency_keys_up_to_255_characters_are_valid(key: str) -> None:
    assert IDEMPOTENCY_KEY.fullmatch(key)


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "caf\u00e9", "a\x7f"])
def test_other_idempotency_keys_are_not(key: str) -> None:
    assert not IDEMPOTENCY_KEY.fullmatch(key)


async def test_a_replay_counts_as_replayed_not_as_a_new_start(api):
    headers = {"Idempotency-Key": "metrics-replay"}
    assert (await api.post("/start", json={}, headers=headers)).status_code == 201
    assert (await api.post("/start", json={}, headers=headers)).status_code == 200
    text = (await api.get("/metrics")).text
    assert 'voicefleet_session_starts_total{outcome="created",provider="local",release="default"} 1.0' in text
    assert 'voicefleet_session_starts_total{outcome="replayed",provider="local",release="default"} 1.0' in text


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    auth = Authenticator(frozenset({hash_api_key("k-123")}))
    assert auth.caller(f"{scheme} k-123") == auth.caller("Bearer k-123")


def test_a_key_with_a_space_starts_and_matches_as_a_client_sends_it() -> None:
    """`Authorization: Bearer a b` is a header a client (httpx's h11) sends and the dispatcher's
    parser (httptools) reads whole."""
    settings = Settings.from_env({"DISPATCHER_API_KEYS": "dg-secret two"})
    wire = h11.Connection(h11.CLIENT).send(h11.Request(method="GET", target="/sessions", headers=[
        ("Host", "dispatcher"), ("Authorization", "Bearer dg-secret two")]))
    read: dict[bytes, bytes] = {}

    class Headers:
        def on_header(self, name: bytes, value: bytes) -> None:
            read[name.lower()] = value

    httptools.HttpRequestParser(Headers()).feed_data(wire or b"")
    sent = read[b"authorization"].decode("latin-1")
    assert Authenticator(settings.api_key_hashes).caller(sent) != LOCAL_CALLER


@pytest.mark.parametrize("header", [None, "", "Basic k-123", "Bearer", "Bearer  ", "Bearer k-124", "k-123"])
def test_anything_but_a_known_bearer_key_is_401(header: str | None) -> None:
    auth = Authenticator(frozenset({hash_api_key("k-123")}))
    with pytest.raises(ApiError) as caught:
        auth.caller(header)
    assert caught.value.status == 401


def test_callers_are_told_apart_by_key() -> None:
    auth = Authenticator(frozenset({hash_api_key("k-1"), hash_api_key("k-2")}))
    assert auth.caller("Bearer k-1") != auth.caller("Bearer k-2")


def test_every_session_id_is_one_every_provider_can_name_a_machine_after() -> None:
    ids = [new_session_id(b"caller", None), new_session_id(b"caller", "key-1")]
    assert all(is_session_id(i) for i in ids)  # 24 lowercase hex: ECS, Daily, Fly and GCE names
    assert new_session_id(b"caller", None) != new_session_id(b"caller", None)  # random without a key


def test_a_keyed_session_id_is_the_same_for_a_retry_and_differs_per_caller_and_key() -> None:
    assert new_session_id(b"a", "k") == new_session_id(b"a", "k")
    assert len({new_session_id(b"a", "k"), new_session_id(b"b", "k"), new_session_id(b"a", "k2")}) == 3


KEY = digest_key(b"owner", "b" * 40)


def test_the_body_digest_ignores_key_order_but_not_content() -> None:
    assert body_digest({"a": 1, "b": [1, 2]}, KEY) == body_digest({"b": [1, 2], "a": 1}, KEY)
    assert body_digest({"a": 1}, KEY) != body_digest({"a": 2}, KEY)
    assert len(body_digest({}, KEY)) == 32


def test_the_body_digest_is_keyed_so_a_guessed_body_cannot_be_checked_against_it() -> None:
    """Kept where others read it (a Cloud Run execution's env): a phone number in a body must not be
    recoverable by hashing guesses. Every replica (same API key, same channel secret) agrees."""
    body = {"customer_phone": "+14155550123", "lang": "en"}
    seen = body_digest(body, KEY)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert seen != hashlib.sha256(canonical).hexdigest()[:32]
    assert seen == body_digest(body, digest_key(b"owner", "b" * 40))  # another replica of the deployment
    assert seen != body_digest(body, digest_key(b"owner", "c" * 40))  # another deployment's secret
    assert seen != body_digest(body, digest_key(b"other owner", "b" * 40))


async def test_a_retry_with_the_same_body_in_another_key_order_is_a_replay_not_a_conflict(api):
    headers = {"Idempotency-Key": "order"}
    first = await api.post("/start", json={"body": {"a": 1, "b": 2}}, headers=headers)
    again = await api.post("/start", json={"body": {"b": 2, "a": 1}}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    conflict = await api.post("/start", json={"body": {"a": 1, "b": 3}}, headers=headers)
    assert conflict.status_code == 409


async def test_the_launch_time_metric_counts_the_start_it_timed(api):
    began = time.monotonic()
    assert (await api.post("/start", json={})).status_code == 201
    took = time.monotonic() - began
    text = (await api.get("/metrics")).text
    launch_sum = 'voicefleet_launch_seconds_sum{provider="local",release="default",waited="false"}'
    [recorded] = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(launch_sum)]
    assert 0 <= recorded <= took  # within the request it timed (no threshold: only the order)
