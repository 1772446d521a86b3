"""Finding: a runtime-key record keeps a short check of its secret, and a token that passed it was
verified (a scrypt) whatever the count of wrong secrets, so whoever knew the check (the store, a peer
region, or timing) could make passing tokens offline and queue unbounded scrypts on the 2-thread
pool, starving every other key's first check; failures were counted per (id, address) alone, so
rotating addresses (or walking an IPv6 /64) lifted the limit; the guessers logged were never
forgotten and each new one wrote a warning; an old record (no check) refused its real secret at a
shared address once guessers had used up that address's count.

The check here is shortened (CHECK_HEX = 1, 4 bits) so that a test can forge passing tokens in a few
tries: the code paths are the real ones, scrypt included."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from dispatcher.api import runtime_keys
from dispatcher.api.runtime_keys import (
    CACHE_SECONDS,
    FAILURES_PER_ID_PER_WINDOW,
    FAILURES_PER_WINDOW,
    SCRYPT_FAILURES_PER_ID,
    SCRYPTS_IN_FLIGHT,
    WARNINGS_PER_WINDOW,
    KeyRecord,
    RuntimeKeys,
    new_secret,
    quick_check,
    slow_hash,
)
from dispatcher.errors import ApiError


@pytest.fixture
def scrypts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The scrypts paid (the real ones), with a 4-bit check so that tokens passing it are quick to forge."""
    monkeypatch.setattr(runtime_keys, "CHECK_HEX", 1)
    paid: list[str] = []

    def counted(token: str, salt: bytes) -> str:
        paid.append(token)
        return slow_hash(token, salt)

    monkeypatch.setattr(runtime_keys, "slow_hash", counted)
    return paid


def made(record: KeyRecord, *, passing: bool) -> Iterator[str]:
    """Wrong secrets that pass `record`'s check (what whoever reads the record can make offline), or
    that fail it (`passing=False`)."""
    i = 0
    while True:
        i += 1
        token = f"vf_{record.secret_id}_{i:043d}"
        if (quick_check(token) == record.check) == passing:
            yield token


def forged(record: KeyRecord) -> Iterator[str]:
    return made(record, passing=True)


def wrong_ones(record: KeyRecord) -> Iterator[str]:
    return made(record, passing=False)


async def refused_or_none(keys: RuntimeKeys, token: str, source: str) -> int:
    try:
        assert await keys.verify_off_loop(token, source) is None
    except ApiError as error:
        assert error.retry_after, error
        return error.status
    return 401


async def test_forged_tokens_that_pass_the_check_cost_a_bounded_number_of_scrypts(scrypts: list[str]) -> None:
    secret, record = new_secret("acme", "admin-1")
    keys = RuntimeKeys()
    keys.seen({record.secret_id: record.to_json()})
    scrypts.clear()  # new_secret's own
    assert await keys.verify_off_loop(secret, "198.51.100.7") == "acme"  # the real client, verified once
    tokens = forged(record)
    answers = [await refused_or_none(keys, next(tokens), f"203.0.113.{i}") for i in range(40)]
    assert len(scrypts) - 1 <= SCRYPT_FAILURES_PER_ID, len(scrypts)  # from rotating addresses too
    assert answers[-1] == 429
    assert await keys.verify_off_loop(secret, "198.51.100.7") == "acme"  # the cache still answers it


async def test_a_burst_of_forged_tokens_is_refused_past_the_scrypts_in_flight_rather_than_queued(
        scrypts: list[str]) -> None:
    keys = RuntimeKeys()
    records = [new_secret(f"key-{i}", "admin-1")[1] for i in range(8)]
    keys.seen({r.secret_id: r.to_json() for r in records})
    scrypts.clear()  # new_secret's own
    made = [forged(r) for r in records]
    burst = [next(tokens) for tokens in made for _ in range(3)]
    answers = await asyncio.gather(*(refused_or_none(keys, t, "203.0.113.9") for t in burst))
    assert len(scrypts) <= SCRYPTS_IN_FLIGHT, len(scrypts)
    assert answers.count(429) == len(burst) - len(scrypts)


async def test_rotating_addresses_meet_a_limit_per_id(scrypts: list[str]) -> None:
    _secret, record = new_secret("acme", "admin-1")
    keys = RuntimeKeys()
    keys.seen({record.secret_id: record.to_json()})
    scrypts.clear()  # new_secret's own
    guesses = wrong_ones(record)
    logging.disable(logging.WARNING)
    try:
        answers = [await refused_or_none(keys, next(guesses), f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
                   for i in range(FAILURES_PER_ID_PER_WINDOW + 5)]
    finally:
        logging.disable(logging.NOTSET)
    assert set(answers[:FAILURES_PER_ID_PER_WINDOW]) == {401}
    assert set(answers[FAILURES_PER_ID_PER_WINDOW:]) == {429}
    assert scrypts == []


async def test_addresses_of_one_ipv6_64_are_counted_together(scrypts: list[str]) -> None:
    secret, record = new_secret("acme", "admin-1")
    keys = RuntimeKeys()
    keys.seen({record.secret_id: record.to_json()})
    scrypts.clear()  # new_secret's own
    guesses = wrong_ones(record)
    answers = [await refused_or_none(keys, next(guesses), f"2001:db8:1:2::{i:x}")
               for i in range(FAILURES_PER_WINDOW + 3)]
    assert answers[FAILURES_PER_WINDOW:] == [429] * 3
    assert await refused_or_none(keys, next(guesses), "2001:db8:1:3::1") == 401  # the next /64 is another client
    assert await keys.verify_off_loop(secret, "2001:db8:1:2::99") == "acme"  # the real secret passes its check


async def test_guessers_logged_are_bounded_and_the_warnings_rate_limited(
        scrypts: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(runtime_keys, "CACHE_ENTRIES", 5)
    _secret, record = new_secret("acme", "admin-1")
    keys = RuntimeKeys()
    keys.seen({record.secret_id: record.to_json()})
    scrypts.clear()  # new_secret's own
    guesses = wrong_ones(record)
    with caplog.at_level(logging.WARNING, logger="dispatcher.api.runtime_keys"):
        for address in range(40):
            for _ in range(FAILURES_PER_WINDOW + 1):
                await refused_or_none(keys, next(guesses), f"192.0.2.{address}")
    assert len(keys._told) <= 5
    assert sum("wrong secrets" in r.getMessage() for r in caplog.records) == WARNINGS_PER_WINDOW


async def test_an_old_record_lets_its_real_secret_through_a_guessed_out_shared_address(scrypts: list[str]) -> None:
    now = [0.0]
    secret, record = new_secret("acme", "admin-1")
    old = {k: v for k, v in record.to_json().items() if k != "check"}
    keys = RuntimeKeys(clock=lambda: now[0])
    keys.seen({record.secret_id: old})
    balancer = "10.0.0.1"  # every client behind the load balancer shares its address
    assert await keys.verify_off_loop(secret, balancer) == "acme"
    now[0] += CACHE_SECONDS + 1
    keys.seen({record.secret_id: old})  # read again: the cache entry has expired
    for i in range(FAILURES_PER_WINDOW + 1):
        await refused_or_none(keys, f"vf_{record.secret_id}_{i:043d}", balancer)
    assert await keys.verify_off_loop(secret, balancer) == "acme"
