"""Bot claims, shared start rates and the store's health, against a real redis-server."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatcher.settings import SettingsError
from dispatcher.store.claims import BotClaims
from dispatcher.store.client import Store, StoreSettings, StoreUnavailable
from dispatcher.store.rates import SharedRate
from tests.dispatcher.store.conftest import settings_for


async def test_an_idle_bot_is_claimed_by_one_session_only(store):
    claims = BotClaims(store)
    results = await asyncio.gather(*(claims.claim("bot-1", f"s{n}") for n in range(20)))
    assert results.count(True) == 1
    winner = f"s{results.index(True)}"
    assert await claims.claim("bot-1", winner)  # the winner's own retry is still its claim


async def test_a_shared_rate_lets_the_burst_through_then_refuses_with_the_wait(redis, prefix):
    stores = [Store(settings_for(redis, f"r-{n}", prefix)) for n in range(2)]
    rates = [SharedRate(s, per_second=0.1, burst=3) for s in stores]  # one every 10 s after the burst
    began = time.monotonic()
    waits = [await rates[n % 2].take("caller") for n in range(4)]
    elapsed = time.monotonic() - began  # the store's clock moved at most this much between the takes
    assert waits[:3] == [0, 0, 0]
    assert 10 - elapsed - 0.002 <= waits[3] <= 10  # the next slot is 10 s after the first take (ms steps)
    assert await rates[0].take("another caller") == 0  # each key its own bucket
    for s in stores:
        await s.aclose()


async def test_an_unreachable_store_fails_calls_within_the_timeout_and_says_so(redis, prefix):
    # A port nothing listens on (the test server's, once stopped, is exercised in tests/replicas).
    from tests.support.processes import free_port

    settings = StoreSettings(url=f"redis://127.0.0.1:{free_port()}/0", replica_id="r-x", timeout_seconds=0.2)
    store = Store(settings)
    with pytest.raises(StoreUnavailable):
        await store.call(store.redis.ping)
    assert store.health.as_json()["status"] == "unreachable"
    assert not await store.ping()
    await store.aclose()


async def test_health_comes_back_with_the_first_call_that_succeeds(store):
    store.health.ok = False
    assert await store.ping()
    assert store.health.as_json()["status"] == "ok"


SIGNING = "m" * 32  # REDIS_MESSAGE_SECRET


def test_settings_need_a_redis_url_scheme_and_a_sane_replica_id():
    assert StoreSettings.from_env({}) is None
    with pytest.raises(SettingsError, match="REDIS_URL"):
        StoreSettings.from_env({"REDIS_URL": "localhost:6379"})
    with pytest.raises(SettingsError, match="REPLICA_ID"):
        StoreSettings.from_env({"REDIS_URL": "redis://x", "REPLICA_ID": "a b"})
    settings = StoreSettings.from_env({"REDIS_URL": "rediss://user:pw@cache:6379", "REDIS_TIMEOUT_SECONDS": "0.3",
                                       "REDIS_MESSAGE_SECRET": SIGNING})
    assert settings is not None and settings.timeout_seconds == 0.3
    assert "pw" not in repr(settings) and SIGNING not in repr(settings)  # the URL may carry the password
    assert settings.replica_id.startswith("r-") and settings.prefix == "{voicefleet}:"


async def test_launches_across_replicas_never_pass_the_cap_between_counts(redis, prefix):
    from dispatcher.store.launches import SharedLaunches

    stores = [Store(settings_for(redis, f"r-{n}", prefix)) for n in range(3)]
    launches = [SharedLaunches(s, keep_seconds=60) for s in stores]
    counted_at = await launches[0].now()  # the provider counted 2 running sessions then
    admitted = await asyncio.gather(*(
        launches[n % 3].admit(f"s{n}", counted=2, counted_at=counted_at, limit=5) for n in range(9)
    ))
    assert admitted.count(True) == 3
    first = f"s{admitted.index(True)}"
    await launches[1].failed(first)  # a failed launch frees its place
    assert await launches[2].admit("s-late", counted=2, counted_at=counted_at, limit=5)
    # Launches in flight count in any later count; once landed, a recount asked for after the
    # landing sees them at the provider, and only what is admitted later adds up.
    in_flight_at = await launches[0].now() + 1
    assert not await launches[0].admit("s-in-flight", counted=2, counted_at=in_flight_at, limit=5)
    for n, ok in enumerate(admitted):
        if ok and f"s{n}" != first:
            await launches[0].landed(f"s{n}")
    await launches[0].landed("s-late")
    recounted_at = await launches[0].now() + 1
    assert await launches[0].admit("s-after", counted=4, counted_at=recounted_at, limit=5)
    assert not await launches[0].admit("s-over", counted=4, counted_at=recounted_at, limit=5)
    for s in stores:
        await s.aclose()


async def test_a_password_from_redis_password_signs_in_and_a_wrong_one_is_refused(redis):
    right = Store(StoreSettings.from_env(redis.env))  # the user in REDIS_URL, as the AWS stack sets it
    wrong = Store(StoreSettings.from_env({**redis.env, "REDIS_PASSWORD": "nope-not-the-password"}))
    assert await right.ping()
    assert not await wrong.ping()
    await right.aclose()
    await wrong.aclose()


def test_store_settings_read_auth_and_the_ca_and_refuse_nonsense():
    pem = "-----BEGIN CERTIFICATE-----\\nA\\n-----END CERTIFICATE-----"
    settings = StoreSettings.from_env({"REDIS_URL": "rediss://10.0.0.5:6379/0", "REDIS_AUTH": "gcp-iam",
                                       "REDIS_CA_CERT": pem, "REDIS_MESSAGE_SECRET": SIGNING})
    assert settings is not None and settings.auth == "gcp-iam" and settings.ca_certificate == pem
    with pytest.raises(SettingsError, match="REDIS_AUTH"):
        StoreSettings.from_env({"REDIS_URL": "redis://x", "REDIS_AUTH": "kerberos"})
    with pytest.raises(SettingsError, match="REDIS_CA_CERT"):
        StoreSettings.from_env({"REDIS_URL": "redis://x", "REDIS_CA_CERT": "not a pem",
                                "REDIS_MESSAGE_SECRET": SIGNING})
