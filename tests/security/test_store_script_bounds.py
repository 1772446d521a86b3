"""Whoever holds the store's credential may run the dispatcher's own scripts (granted by SHA1), with
arguments of its choosing: a script that loops over them would keep the store, which runs one
script at a time, answering BUSY to every replica (the renewal script with 8 M keys held it ~3 s).
Each looping script bounds its work itself, against a redis-server signed in as the stack's user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.maint_notifications import MaintNotificationsConfig

from dispatcher.store import call_media, owners
from tests.support.redis_server import RedisServer, redis_server


@pytest.fixture(scope="module")
def as_store_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield _user(server)


def _user(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, password=server.password, decode_responses=True, socket_timeout=10,
                                driver_info=None, maint_notifications_config=MaintNotificationsConfig(enabled=False))


def test_the_renewal_script_refuses_more_keys_than_a_replica_renews_at_once(as_store_user: redis.Redis) -> None:
    renew = as_store_user.register_script(owners._RENEW_MANY)
    keys = [f"{{voicefleet}}:owner:s{n}" for n in range(owners.RENEW_BATCH + 1)]
    assert renew(keys=keys[:-1], args=["r-a", 1000]) == [0] * owners.RENEW_BATCH  # what a replica sends
    with pytest.raises(redis.ResponseError, match=f"at most {owners.RENEW_BATCH} keys"):
        renew(keys=keys, args=["r-a", 1000])


def test_the_media_spend_script_refuses_more_digests_than_two_secrets_make(as_store_user: redis.Redis) -> None:
    key = "{voicefleet}:call:s1"
    as_store_user.register_script(call_media._RECORD)(keys=[key], args=["r-a", "d-real", 60_000])
    spend = as_store_user.register_script(call_media._SPEND)
    with pytest.raises(redis.ResponseError, match="at most 2 digests"):
        spend(keys=[key], args=[f"d-{n}" for n in range(3)])
    assert spend(keys=[key], args=["d-other", "d-real"]) == "r-a"  # two secrets during a change: still spent
