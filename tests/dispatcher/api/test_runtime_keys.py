"""A runtime key's secret (dispatcher/api/runtime_keys.py): only its scrypt hash is kept, a verified
secret is cached, and the cache forgets a secret the moment the record no longer holds it."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from dispatcher.api import runtime_keys
from dispatcher.api.runtime_keys import (
    FAILURE_WINDOW_SECONDS,
    FAILURES_PER_WINDOW,
    REVOKED_SCRYPTS_PER_WINDOW,
    STALE_SECONDS,
    KeyRecord,
    RuntimeKeys,
    new_secret,
    secret_id_of,
    slow_hash,
)
from dispatcher.api.runtime_settings import RuntimeSettings
from dispatcher.errors import ApiError
from dispatcher.store.runtime_book import MemoryRuntimeBook


def test_the_record_holds_a_salted_scrypt_and_never_the_secret() -> None:
    secret, record = new_secret("acme", "admin-1")
    stored = json.dumps(record.to_json())
    assert secret not in stored and secret.split("_", 2)[2] not in stored
    assert record.digest == slow_hash(secret, bytes.fromhex(record.salt))
    assert record.digest != hashlib.sha256(secret.encode()).hexdigest()
    assert secret_id_of(secret) == record.secret_id


def test_a_revoked_secret_is_refused_even_when_cached() -> None:
    keys = RuntimeKeys()
    secret, record = new_secret("acme", "admin-1")
    keys.seen({record.secret_id: record.to_json()})
    assert keys.verify(secret) == "acme"
    assert keys.verify(secret) == "acme"  # from the cache
    keys.seen({})
    assert keys.verify(secret) is None
    keys.seen({record.secret_id: record.to_json()})  # an old record read again: checked again, not cached
    assert keys.verify(secret) == "acme"


def test_shapes_that_are_not_a_runtime_secret_are_not_looked_up() -> None:
    for token in ("plain-key", "vf_", "vf_zz_x", "vf_0123456789ab", "vf_0123456789ab_"):
        assert secret_id_of(token) is None
    keys = RuntimeKeys()
    assert keys.verify("vf_0123456789ab_unknown") is None


async def test_the_off_loop_check_agrees_and_a_revocation_during_it_wins() -> None:
    keys = RuntimeKeys()
    secret, record = new_secret("acme", "admin-1")
    keys.seen({record.secret_id: record.to_json()})
    assert await keys.verify_off_loop(secret) == "acme"
    assert await keys.verify_off_loop(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    other, other_record = new_secret("beta", "admin-1")
    keys.seen({record.secret_id: record.to_json(), other_record.secret_id: other_record.to_json()})
    checking = asyncio.ensure_future(keys.verify_off_loop(other))
    await asyncio.sleep(0)  # its scrypt runs in a thread…
    keys.seen({record.secret_id: record.to_json()})  # …while the key is revoked
    assert await checking is None
    assert keys.verify(other) is None


def legacy(record: KeyRecord) -> dict[str, object]:
    """The record as a dispatcher before the quick check wrote it: no `check`."""
    return {name: value for name, value in record.to_json().items() if name != "check"}


def test_wrong_secrets_for_an_old_record_stop_costing_a_scrypt_and_the_verified_secret_still_answers() -> None:
    now = [0.0]
    keys = RuntimeKeys(clock=lambda: now[0])
    secret, record = new_secret("acme", "admin-1")
    keys.seen({record.secret_id: legacy(record)})
    wrong = f"vf_{record.secret_id}_{'A' * 43}"
    for _ in range(FAILURES_PER_WINDOW):
        assert keys.verify(wrong, "10.0.0.66") is None
    checked: list[str] = []
    keys._checked = lambda *args: checked.append("scrypt") or None  # type: ignore[method-assign,func-returns-value]
    with pytest.raises(ApiError) as refused:
        keys.verify(wrong, "10.0.0.66")
    assert refused.value.status == 429 and refused.value.retry_after and checked == []  # refused unchecked
    assert keys.verify(wrong, "10.0.0.7") is None and checked == ["scrypt"]  # another address is checked
    now[0] += FAILURE_WINDOW_SECONDS + 1
    assert keys.verify(wrong, "10.0.0.66") is None and checked == ["scrypt"] * 2  # the window moved on
    del keys._checked
    assert keys.verify(secret, "10.0.0.7") == "acme"
    assert keys.verify(secret, "10.0.0.66") == "acme"  # from the cache


def test_a_wrong_secret_its_check_rules_out_costs_no_scrypt_and_never_locks_the_real_one_out() -> None:
    keys = RuntimeKeys()
    secret, record = new_secret("acme", "admin-1")
    keys.seen({record.secret_id: record.to_json()})
    hashed: list[str] = []
    keys._checked = lambda *args: hashed.append("scrypt") or None  # type: ignore[method-assign,func-returns-value]
    wrong = next(t for i in range(100) if not record.passes(t := f"vf_{record.secret_id}_{i:043d}"))
    for _ in range(FAILURES_PER_WINDOW):
        assert keys.verify(wrong, "10.0.0.66") is None
    with pytest.raises(ApiError) as refused:
        keys.verify(wrong, "10.0.0.66")
    assert refused.value.status == 429 and hashed == []
    del keys._checked  # the real check again: the real secret, from the guesser's own address too
    assert keys.verify(secret, "10.0.0.66") == "acme"


async def test_wrong_secrets_sent_at_once_cost_no_more_scrypts_than_sent_in_turn(monkeypatch) -> None:
    keys = RuntimeKeys()
    _secret, record = new_secret("acme", "admin-1")
    keys.seen({record.secret_id: legacy(record)})
    hashed: list[str] = []

    def counted(secret: str, salt: bytes) -> str:
        hashed.append(secret)
        return slow_hash(secret, salt)

    monkeypatch.setattr(runtime_keys, "slow_hash", counted)
    burst = [f"vf_{record.secret_id}_{i:043d}" for i in range(3 * FAILURES_PER_WINDOW)]
    answers = await asyncio.gather(*(keys.verify_off_loop(t) for t in burst), return_exceptions=True)
    assert all(a is None or (isinstance(a, ApiError) and a.status == 429) for a in answers), answers
    assert len(hashed) <= FAILURES_PER_WINDOW, len(hashed)


async def test_one_secret_presented_many_times_at_once_costs_one_scrypt(monkeypatch) -> None:
    keys = RuntimeKeys()
    secret, record = new_secret("acme", "admin-1")
    keys.seen({record.secret_id: record.to_json()})
    hashed: list[str] = []

    def counted(token: str, salt: bytes) -> str:
        hashed.append(token)
        return slow_hash(token, salt)

    monkeypatch.setattr(runtime_keys, "slow_hash", counted)
    burst = 2 * FAILURES_PER_WINDOW  # more than the id's limit: none is refused, they wait for the one check
    assert await asyncio.gather(*(keys.verify_off_loop(secret) for _ in range(burst))) == ["acme"] * burst
    assert len(hashed) == 1


def test_an_entry_of_the_wrong_shape_in_the_record_opens_nothing_and_fails_no_request() -> None:
    secret, record = new_secret("acme", "admin-1")
    for broken in ({"salt": "zz" * 16}, {"digest": "00"}, {"name": "Team Ops"}, {"name": ""}):
        keys = RuntimeKeys()
        keys.seen({record.secret_id: {**record.to_json(), **broken}})
        assert keys.records == {}, broken
        assert keys.verify(secret) is None


async def test_a_replica_that_cannot_read_the_record_stops_taking_runtime_keys_until_it_reads_again() -> None:
    """A revocation reaches a replica by its read of the record: one that has not read it for
    STALE_SECONDS (the store does not answer it) may have missed one, so it takes no runtime key, the
    cached ones included, until a read, even of the same record, succeeds again."""
    now = [0.0]
    keys = RuntimeKeys(clock=lambda: now[0])
    book = MemoryRuntimeBook()
    secret, record = new_secret("acme", "admin-1")
    assert await book.write({"version": 1, "capacity": {}, "keys": {record.secret_id: record.to_json()}}, None)
    runtime = RuntimeSettings(book, keys)
    await runtime.refresh()
    assert keys.verify(secret) == "acme"
    now[0] += STALE_SECONDS + 1  # the store stopped answering this replica
    with pytest.raises(ApiError) as refused:
        keys.verify(secret)
    assert refused.value.status == 503
    await runtime.refresh()  # the same record, read again
    assert keys.verify(secret) == "acme"


async def test_a_secret_revoked_before_this_replica_verified_it_is_told_revoked_and_a_guess_is_not() -> None:
    keys = RuntimeKeys()
    secret, record = new_secret("acme", "admin-1")
    keys.seen({}, {record.secret_id: record.to_json()})  # revoked before it was ever presented here
    assert await keys.verify_off_loop(secret) is None and keys.was_revoked(secret)
    guess = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert keys.verify(guess) is None and not keys.was_revoked(guess)
    assert keys.verify(secret) is None and keys.was_revoked(secret)  # known now: no scrypt again


def test_revoked_secrets_hashes_cost_a_bounded_number_of_scrypts_from_any_number_of_addresses(monkeypatch) -> None:
    """A revoked secret's kept hash tells its holder it was revoked; checking guesses against it
    (an old record's, which has no check, or ones forged to pass a check) costs at most
    REVOKED_SCRYPTS_PER_WINDOW scrypts a window for every revoked id together, whatever the addresses.
    Past it a revoked id answers as an unknown one; its holder is told again once the window moves."""
    now = [0.0]
    keys = RuntimeKeys(clock=lambda: now[0])
    revoked = [new_secret(name, "admin-1") for name in ("acme", "beta", "gamma")]
    keys.seen({}, {record.secret_id: legacy(record) for _, record in revoked})
    hashed: list[str] = []

    def counted(token: str, salt: bytes) -> str:
        hashed.append(token)
        return slow_hash(token, salt)

    monkeypatch.setattr(runtime_keys, "slow_hash", counted)
    for n in range(3 * REVOKED_SCRYPTS_PER_WINDOW):  # each from an address of its own, spread over the ids
        record = revoked[n % len(revoked)][1]
        assert keys.verify(f"vf_{record.secret_id}_{n:043d}", f"10.1.{n // 250}.{n % 250}") is None
    assert len(hashed) == REVOKED_SCRYPTS_PER_WINDOW
    secret = revoked[0][0]
    assert keys.verify(secret, "10.9.9.9") is None and not keys.was_revoked(secret)  # the budget is spent
    now[0] += FAILURE_WINDOW_SECONDS + 1
    assert keys.verify(secret, "10.9.9.9") is None and keys.was_revoked(secret)  # told again
